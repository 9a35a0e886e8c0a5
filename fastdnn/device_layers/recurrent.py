"""SimpleRNN, LSTM and GRU on the device: the buffers and kernel calls of ``fastdnn.layers.recurrent``
with the CUDA twins of its kernels (``fastdnn.kernels.cuda.recurrent``)."""

from fastdnn.device_layers import DeviceLayer, register


class _RecurrentOnDevice(DeviceLayer):
    """Shared buffers: time-major ``(T, n, width)`` buffers are allocated flat (a smaller last batch
    is then a prefix view), as the CPU layer does; the cell activation is not fused with any loss,
    so there is no `logits`."""

    def _time_major(self, key, n, width):
        T = self.layer.steps
        return self.buffer(key, (T * n * width,)).reshape(T, n, width)

    def _states(self, key, n):
        layer = self.layer
        return self.buffer(key, ((layer.steps + 1) * n * layer.units,)).reshape(layer.steps + 1, n, layer.units)

    def _output(self, n):
        layer = self.layer
        return self.buffer("y", (n, layer.steps if layer.return_sequences else 1, layer.units))

    def _returned(self, y):
        return y if self.layer.return_sequences else y.reshape(y.shape[0], self.layer.units)

    def _upstream(self, dLdY, n):
        layer = self.layer
        return dLdY.reshape(n, layer.steps if layer.return_sequences else 1, layer.units)

    def _input_grad_buffers(self, n):
        layer = self.layer
        if not layer.compute_input_grad:
            empty = self.buffer("empty", (0, 0, 0))
            return empty, empty
        return self._time_major("dxt", n, layer.features), self.buffer("dx", (n, layer.steps, layer.features))

    def _bias(self, store):
        return store["b"] if self.layer.use_bias else self.engine._empty

    def _act(self):
        act = self.layer.cell_activation
        return act.code, act.alpha_as(self.dtype)

    def _ract(self):
        act = self.layer.recurrent_activation
        return act.code, act.alpha_as(self.dtype)

    def _finish(self, dX):
        return dX if self.layer.compute_input_grad else None


@register("SimpleRNN")
class SimpleRNNOnDevice(_RecurrentOnDevice):
    """``h_t = f(x_t W + h_{t-1} U + b)``: one gemm for all input projections, a gemm and a cell kernel per step."""

    def forward(self, x, params, training):
        layer = self.layer
        n = x.shape[0]
        xt = self._time_major("xt", n, layer.features)
        h = self._states("h", n)
        y = self._output(n)
        self.k.recurrent.simple_rnn_forward(
            x, params["W"], params["U"], self._bias(params), *self._act(), xt, self.buffer("rec", (n, layer.units)), h, y
        )
        self._cache = (xt, h, n)
        return self._returned(y)

    def backward(self, dLdY, params, grads, from_logits):
        layer = self.layer
        xt, h, n = self._cache
        dxt, dX = self._input_grad_buffers(n)
        self.k.recurrent.simple_rnn_backward(
            xt, params["W"], params["U"], h, self._upstream(dLdY, n), *self._act(),
            self.buffer("dh", (n, layer.units)), self._time_major("dA", n, layer.units),
            grads["W"], grads["U"], self._bias(grads), dxt, dX, layer.compute_input_grad,
        )
        return self._finish(dX)


@register("LSTM")
class LSTMOnDevice(_RecurrentOnDevice):
    """Gates ``i, f, c, o``: one gemm for all input projections, a gemm and a cell kernel per step."""

    def forward(self, x, params, training):
        layer = self.layer
        n = x.shape[0]
        xt = self._time_major("xt", n, layer.features)
        gates = self._time_major("gates", n, 4 * layer.units)
        c, h = self._states("c", n), self._states("h", n)
        tc = self._time_major("tc", n, layer.units)
        y = self._output(n)
        self.k.recurrent.lstm_forward(
            x, params["W"], params["U"], self._bias(params), *self._act(), *self._ract(),
            xt, self.buffer("rec", (n, 4 * layer.units)), gates, c, h, tc, y,
        )
        self._cache = (xt, gates, c, h, tc, n)
        return self._returned(y)

    def backward(self, dLdY, params, grads, from_logits):
        layer = self.layer
        xt, gates, c, h, tc, n = self._cache
        dxt, dX = self._input_grad_buffers(n)
        self.k.recurrent.lstm_backward(
            xt, params["W"], params["U"], gates, c, h, tc, self._upstream(dLdY, n), *self._act(), *self._ract(),
            self.buffer("dh", (n, layer.units)), self.buffer("dc", (n, layer.units)), self._time_major("dA", n, 4 * layer.units),
            grads["W"], grads["U"], self._bias(grads), dxt, dX, layer.compute_input_grad,
        )
        return self._finish(dX)


@register("GRU")
class GRUOnDevice(_RecurrentOnDevice):
    """Gates ``z, r, h`` with ``reset_after``: ``b`` is ``(2, 3 units)``, the input and the recurrent bias."""

    def _biases(self, store):
        if not self.layer.use_bias:
            return self.engine._empty, self.engine._empty
        return store["b"][0], store["b"][1]

    def forward(self, x, params, training):
        layer = self.layer
        n = x.shape[0]
        xt = self._time_major("xt", n, layer.features)
        gates = self._time_major("gates", n, 3 * layer.units)
        rh = self._time_major("rh", n, layer.units)
        h = self._states("h", n)
        y = self._output(n)
        self.k.recurrent.gru_forward(
            x, params["W"], params["U"], *self._biases(params), *self._act(), *self._ract(),
            xt, self.buffer("rec", (n, 3 * layer.units)), gates, rh, h, y,
        )
        self._cache = (xt, gates, rh, h, n)
        return self._returned(y)

    def backward(self, dLdY, params, grads, from_logits):
        layer = self.layer
        xt, gates, rh, h, n = self._cache
        dxt, dX = self._input_grad_buffers(n)
        self.k.recurrent.gru_backward(
            xt, params["W"], params["U"], gates, rh, h, self._upstream(dLdY, n), *self._act(), *self._ract(),
            self.buffer("dh", (n, layer.units)), self.buffer("carry", (n, layer.units)),
            self._time_major("dAx", n, 3 * layer.units), self._time_major("dAr", n, 3 * layer.units),
            grads["W"], grads["U"], *self._biases(grads), dxt, dX, layer.compute_input_grad,
        )
        return self._finish(dX)
