"""CUDA twins of ``kernels.cpu.recurrent``: SimpleRNN, LSTM and GRU forward over time and backpropagation through time.

Same layout, buffers and equations as the CPU module (read its docstring): ``x`` ``(n, T, D)`` is
copied time-major into ``xt`` ``(T, n, D)`` by one kernel; the input projection of all steps is ONE
`dense.gemm` ``(T n, D) x (D, G)``; each step is then a gemm ``h_{t-1} U`` into ``rec`` and one
elementwise cell kernel with a thread per (batch row, unit), which adds the bias (the CPU adds it in
the projection: the same sums in the same order), applies the gates and writes the states. Step 0
skips its gemm, since ``h_0 = 0``. Backpropagation runs a cell-backward kernel per step (it adds the
output gradient of the step, and the GRU's carried ``dh z`` term, to the ``dh`` that the previous
gemm left) and one gemm for ``dL/dh_{t-1}``; at the end one gemm each for ``dU``, ``dW`` and ``dX``,
and column sums for the biases.

Activations: tanh and sigmoid go through `fast_tanh` / `fast_sigmoid`, which are, as on the CPU, in
float32 Eigen's rational tanh (the same constants, the same Horner order, all in float32) and the
overflow-free select form of the sigmoid in float32 arithmetic, and exact in float64; other codes use
``activation.forward_scalar`` and ``derivative_scalar``. Like their CPU twins they are Python
functions overloaded per argument type for the compiled CUDA target; under the simulator, where
kernels run as Python, the float32 choice is made on the NumPy scalar type.
"""

import math

import numpy as np
from numba import cuda

from fastdnn.backend import simulating
from fastdnn.kernels.cpu import activation as cpu_activation
from fastdnn.kernels.cuda._launch import block, grid
from fastdnn.kernels.cuda.activation import SIGMOID, TANH, derivative_scalar, forward_scalar
from fastdnn.kernels.cuda.dense import column_sums, gemm

_ZERO = np.float32(0.0)
_ONE = np.float32(1.0)


# -- activations: fast in float32, exact in float64 -------------------------------------------------

# Eigen's rational tanh, the CPU's own function and constants: its Python body compiles inline into
# the float32 overload below (a device function there would need a live context to be typed) and
# runs as is under the simulator.
_tanh_rational = cpu_activation._tanh_rational.py_func


def _sigmoid_exact(z):
    # the overflow-free form of activation.sigmoid_scalar
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def _sigmoid32(z):
    # The CPU's float32 form: e^-|z| never overflows, a select picks the side. The CPU evaluates
    # e^x by a polynomial (for vectorization; within 1 ulp of exp), the GPU by its expf.
    e = np.float32(math.exp(-abs(z)))
    s = _ONE / (_ONE + e)
    return s if z >= _ZERO else e * s


def _tanh_exact(z):
    return math.tanh(z)


def fast_tanh(z):
    """``tanh z``: the rational approximation for float32, ``math.tanh`` otherwise (callable in kernels)."""
    return _tanh_rational(z) if isinstance(z, np.float32) else math.tanh(z)


def fast_sigmoid(z):
    """``1 / (1 + e^-z)`` without overflow, in float32 arithmetic for float32 (as the CPU's fast form)."""
    return _sigmoid32(z) if isinstance(z, np.float32) else _sigmoid_exact(z)


if not simulating():
    from numba.cuda import types as _types
    from numba.cuda.extending import overload

    def _is_float32(z):
        return isinstance(z, _types.Float) and z.bitwidth == 32

    @overload(fast_tanh, target="cuda")
    def _fast_tanh_cuda(z):
        return _tanh_rational if _is_float32(z) else _tanh_exact

    @overload(fast_sigmoid, target="cuda")
    def _fast_sigmoid_cuda(z):
        return _sigmoid32 if _is_float32(z) else _sigmoid_exact


@cuda.jit(device=True)
def _act(code, z, alpha):
    """``f(z)`` for an activation code (tanh and sigmoid first: the defaults)."""
    if code == TANH:
        return fast_tanh(z)
    if code == SIGMOID:
        return fast_sigmoid(z)
    return forward_scalar(code, z, alpha)


@cuda.jit(device=True)
def _dact(code, y, alpha):
    """``f'(z)`` from ``y = f(z)``."""
    if code == TANH:
        return _ONE - y * y
    if code == SIGMOID:
        return y * (_ONE - y)
    return derivative_scalar(code, y, y, alpha)


# -- shared steps -----------------------------------------------------------------------------------


@cuda.jit
def _to_time_major(x, xt):
    # one thread per element of xt, in xt's order: the writes coalesce
    n, T, D = x.shape
    for k in range(cuda.grid(1), T * n * D, cuda.gridsize(1)):
        d = k % D
        r = k // D
        b = r % n
        t = r // n
        xt[t, b, d] = x[b, t, d]


@cuda.jit
def _from_time_major(xt, x):
    T, n, D = xt.shape
    for k in range(cuda.grid(1), n * T * D, cuda.gridsize(1)):
        d = k % D
        r = k // D
        t = r % T
        b = r // T
        x[b, t, d] = xt[t, b, d]


@cuda.jit
def _write_output(h, y):
    # y[b, t] = h[first + t + 1, b]: every state, or only the last
    T = h.shape[0] - 1
    n, T_out, units = y.shape
    first = T - T_out
    for k in range(cuda.grid(1), n * T_out * units, cuda.gridsize(1)):
        j = k % units
        r = k // units
        t = r % T_out
        b = r // T_out
        y[b, t, j] = h[first + t + 1, b, j]


@cuda.jit
def _zero_rows(a):
    n, d = a.shape
    for k in range(cuda.grid(1), n * d, cuda.gridsize(1)):
        i = k // d
        a[i, k - i * d] = 0


def _time_major(x, xt):
    """``xt[t, b] = x[b, t]``."""
    n, T, D = x.shape
    if n * T * D > 0:
        _to_time_major[grid(n * T * D), block()](x, xt)


def _project(x, W, xt, A):
    """``xt`` = ``x`` time-major and ``A[t] = x_t W`` for every step in one gemm (the bias is added per step)."""
    n, T, D = x.shape
    _time_major(x, xt)
    gemm(xt.reshape((T * n, D)), W, A.reshape((T * n, W.shape[1])))


def _output(h, y):
    n, T_out, units = y.shape
    if n * T_out * units > 0:
        _write_output[grid(n * T_out * units), block()](h, y)


def _zero(a):
    n, d = a.shape
    if n * d > 0:
        _zero_rows[grid(n * d), block()](a)


def _output_step(dLdY, t, T):
    """The index of step ``t`` along ``dLdY``'s time axis, or -1 when it is not an output."""
    k = t - (T - dLdY.shape[1])
    return k if k >= 0 else -1


def _input_gradients(xt, W, dA, dW, db, dxt, dX, compute_dx):
    """``dW = X^T dA``, ``db = sum dA`` (if non-empty), and ``dX = dA W^T`` back in batch-major order."""
    T, n, D = xt.shape
    G = dA.shape[2]
    dA2 = dA.reshape((T * n, G))
    gemm(xt.reshape((T * n, D)), dA2, dW, True, False)
    column_sums(dA2, db)
    if compute_dx:
        gemm(dA2, W, dxt.reshape((T * n, D)), False, True)
        if n * T * D > 0:
            _from_time_major[grid(n * T * D), block()](dxt, dX)


def _recurrent_gradient(h, dA, dU):
    """``dU = sum_t h_{t-1}^T dA_t`` as one gemm over the states 0..T-1."""
    T, n, G = dA.shape
    units = h.shape[2]
    gemm(h[:T].reshape((T * n, units)), dA.reshape((T * n, G)), dU, True, False)


# -- SimpleRNN --------------------------------------------------------------------------------------


@cuda.jit
def _simple_rnn_step(a, b, has_bias, rec, has_rec, code, alpha):
    # a = f(a + b + rec) in place; a holds x_t W
    n, units = a.shape
    for k in range(cuda.grid(1), n * units, cuda.gridsize(1)):
        i = k // units
        j = k - i * units
        v = a[i, j]
        if has_bias:
            v += b[j]
        if has_rec:
            v += rec[i, j]
        a[i, j] = _act(code, v, alpha)


def simple_rnn_forward(x, W, U, b, code, alpha, xt, rec, h, y):
    """``h_t = f(x_t W + h_{t-1} U + b)``; ``h`` (T + 1, n, units) keeps every state, ``y`` the outputs.

    ``h[1:]`` first receives the input projections; each step then turns its own into the state.
    ``rec`` (n, units) is scratch for ``h_{t-1} U``.
    """
    n, T, _ = x.shape
    units = U.shape[0]
    if n * units == 0:
        return
    _project(x, W, xt, h[1:])
    _zero(h[0])
    has_bias = b.shape[0] > 0
    for t in range(T):
        if t > 0:
            gemm(h[t], U, rec)
        _simple_rnn_step[grid(n * units), block()](h[t + 1], b, has_bias, rec, t > 0, code, alpha)
    _output(h, y)


@cuda.jit
def _simple_rnn_step_backward(state, dLdY, k_out, dh, first, dA_t, code, alpha):
    # dh = dL/dh_t (the previous gemm's dA_{t+1} U^T plus this step's output gradient); dA_t = dh f'(h_t)
    n, units = state.shape
    for k in range(cuda.grid(1), n * units, cuda.gridsize(1)):
        i = k // units
        j = k - i * units
        g = _ZERO if first else dh[i, j]
        if k_out >= 0:
            g += dLdY[i, k_out, j]
        dh[i, j] = g
        dA_t[i, j] = g * _dact(code, state[i, j], alpha)


def simple_rnn_backward(xt, W, U, h, dLdY, code, alpha, dh, dA, dW, dU, db, dxt, dX, compute_dx):
    """BPTT: ``dA_t = (dL/dh_t) * f'(h_t)``, ``dL/dh_{t-1} = dA_t U^T`` (plus its own output gradient).

    ``dh`` (n, units) is scratch; ``dA`` (T, n, units) keeps every step's pre-activation gradient.
    """
    T, n, _ = xt.shape
    units = U.shape[0]
    if n * units == 0:
        return
    for t in range(T - 1, -1, -1):
        _simple_rnn_step_backward[grid(n * units), block()](
            h[t + 1], dLdY, _output_step(dLdY, t, T), dh, t == T - 1, dA[t], code, alpha
        )
        if t > 0:
            gemm(dA[t], U, dh, False, True)
    _recurrent_gradient(h, dA, dU)
    _input_gradients(xt, W, dA, dW, db, dxt, dX, compute_dx)


# -- LSTM -------------------------------------------------------------------------------------------


@cuda.jit
def _lstm_step(g_t, b, has_bias, rec, has_rec, c_prev, c_t, h_t, tc_t, act, act_alpha, ract, ract_alpha):
    # One thread per (row, unit): its four gates, then its cell and hidden state. The gates are stored
    # and read back, so that the states use the stored (rounded) values, as on the CPU.
    n, units = c_t.shape
    for k in range(cuda.grid(1), n * units, cuda.gridsize(1)):
        i = k // units
        j = k - i * units
        for q in range(4):
            col = q * units + j
            v = g_t[i, col]
            if has_bias:
                v += b[col]
            if has_rec:
                v += rec[i, col]
            if q == 2:
                g_t[i, col] = _act(act, v, act_alpha)
            else:
                g_t[i, col] = _act(ract, v, ract_alpha)
        value = g_t[i, units + j] * c_prev[i, j] + g_t[i, j] * g_t[i, 2 * units + j]
        c_t[i, j] = value
        s = _act(act, value, act_alpha)
        tc_t[i, j] = s
        h_t[i, j] = g_t[i, 3 * units + j] * tc_t[i, j]


def lstm_forward(x, W, U, b, act, act_alpha, ract, ract_alpha, xt, rec, gates, c, h, tc, y):
    """LSTM over all steps (see the CPU module's docstring).

    ``gates`` (T, n, 4 units) receives the input projections, then each step's gate values
    ``[i, f, g, o]``; ``c``, ``h`` (T + 1, n, units) the states; ``tc`` (T, n, units) ``f(c_t)``;
    ``rec`` (n, 4 units) is scratch for ``h_{t-1} U``.
    """
    n, T, _ = x.shape
    units = U.shape[0]
    if n * units == 0:
        return
    _project(x, W, xt, gates)
    _zero(h[0])
    _zero(c[0])
    has_bias = b.shape[0] > 0
    for t in range(T):
        if t > 0:
            gemm(h[t], U, rec)
        _lstm_step[grid(n * units), block()](
            gates[t], b, has_bias, rec, t > 0, c[t], c[t + 1], h[t + 1], tc[t], act, act_alpha, ract, ract_alpha
        )
    _output(h, y)


@cuda.jit
def _lstm_step_backward(g_t, c_prev, tc_t, dLdY, k_out, dh, dc, first, dA_t, act, act_alpha, ract, ract_alpha):
    # the chain rule of one step (see lstm_backward); dc is updated in place for step t-1
    n, units = dh.shape
    for k in range(cuda.grid(1), n * units, cuda.gridsize(1)):
        i = k // units
        j = k - i * units
        i_gate = g_t[i, j]
        f_gate = g_t[i, units + j]
        cand = g_t[i, 2 * units + j]
        o_gate = g_t[i, 3 * units + j]
        squashed = tc_t[i, j]
        dh_j = _ZERO if first else dh[i, j]
        if k_out >= 0:
            dh_j += dLdY[i, k_out, j]
        dh[i, j] = dh_j
        d_o = dh_j * squashed
        d_c = (_ZERO if first else dc[i, j]) + dh_j * o_gate * _dact(act, squashed, act_alpha)
        dc[i, j] = d_c * f_gate
        dA_t[i, j] = d_c * cand * _dact(ract, i_gate, ract_alpha)
        dA_t[i, units + j] = d_c * c_prev[i, j] * _dact(ract, f_gate, ract_alpha)
        dA_t[i, 2 * units + j] = d_c * i_gate * _dact(act, cand, act_alpha)
        dA_t[i, 3 * units + j] = d_o * _dact(ract, o_gate, ract_alpha)


def lstm_backward(xt, W, U, gates, c, h, tc, dLdY, act, act_alpha, ract, ract_alpha, dh, dc, dA, dW, dU, db, dxt, dX, compute_dx):
    """BPTT through the LSTM; ``dh``, ``dc`` (n, units) scratch, ``dA`` (T, n, 4 units) the gate gradients.

    Per step, with ``dh`` the gradient reaching ``h_t`` and ``dc`` the one reaching ``c_t`` from step t+1::

        do = dh f(c_t);   dc += dh o f'(c_t)
        di = dc g;  dg = dc i;  df = dc c_{t-1};   dc <- dc f   (for step t-1)
        dA_t = [di s'(i), df s'(f), dg f'(g), do s'(o)];   dh <- dA_t U^T
    """
    T, n, _ = xt.shape
    units = U.shape[0]
    if n * units == 0:
        return
    for t in range(T - 1, -1, -1):
        _lstm_step_backward[grid(n * units), block()](
            gates[t], c[t], tc[t], dLdY, _output_step(dLdY, t, T), dh, dc, t == T - 1, dA[t],
            act, act_alpha, ract, ract_alpha,
        )
        if t > 0:
            gemm(dA[t], U, dh, False, True)
    _recurrent_gradient(h, dA, dU)
    _input_gradients(xt, W, dA, dW, db, dxt, dX, compute_dx)


# -- GRU (reset_after) ------------------------------------------------------------------------------


@cuda.jit
def _gru_step(g_t, b_in, b_rec, has_bias, rec, has_rec, h_prev, h_t, rh_t, act, act_alpha, ract, ract_alpha):
    # One thread per (row, unit). rec receives h_{t-1} U + b_rec as on the CPU (scratch); the
    # candidate reads the stored reset gate and the state the stored update gate, as on the CPU.
    n, units = h_t.shape
    for k in range(cuda.grid(1), n * units, cuda.gridsize(1)):
        i = k // units
        j = k - i * units
        for q in range(3):
            col = q * units + j
            v = rec[i, col] if has_rec else _ZERO
            if has_bias:
                v += b_rec[col]
            rec[i, col] = v
            u = g_t[i, col]
            if has_bias:
                u += b_in[col]
            if q < 2:
                g_t[i, col] = _act(ract, u + v, ract_alpha)
            else:
                g_t[i, col] = u
        v_h = rec[i, 2 * units + j]
        cand = _act(act, g_t[i, 2 * units + j] + g_t[i, units + j] * v_h, act_alpha)
        z = g_t[i, j]
        h_t[i, j] = z * h_prev[i, j] + (_ONE - z) * cand
        g_t[i, 2 * units + j] = cand
        rh_t[i, j] = v_h


def gru_forward(x, W, U, b_in, b_rec, act, act_alpha, ract, ract_alpha, xt, rec, gates, rh, h, y):
    """GRU with the reset gate applied after the recurrent product (see the CPU module's docstring).

    ``gates`` (T, n, 3 units) receives ``x_t W``, then each step's ``[z, r, hh]``; ``rh`` (T, n, units)
    keeps ``v_h = (h_{t-1} U + b_rec)_h``; ``h`` (T + 1, n, units) the states; ``rec`` (n, 3 units) is
    scratch. ``b_in``, ``b_rec`` are both empty without bias.
    """
    n, T, _ = x.shape
    units = U.shape[0]
    if n * units == 0:
        return
    _project(x, W, xt, gates)
    _zero(h[0])
    has_bias = b_in.shape[0] > 0
    for t in range(T):
        if t > 0:
            gemm(h[t], U, rec)
        _gru_step[grid(n * units), block()](
            gates[t], b_in, b_rec, has_bias, rec, t > 0, h[t], h[t + 1], rh[t], act, act_alpha, ract, ract_alpha
        )
    _output(h, y)


@cuda.jit
def _gru_step_backward(g_t, h_prev, rh_t, dLdY, k_out, dh, carry, first, dAx_t, dAr_t, act, act_alpha, ract, ract_alpha):
    # dh = the previous gemm's dAr_{t+1} U^T + the carried dh_{t+1} z_{t+1} + this step's output gradient
    n, units = dh.shape
    for k in range(cuda.grid(1), n * units, cuda.gridsize(1)):
        i = k // units
        j = k - i * units
        dh_j = _ZERO if first else dh[i, j] + carry[i, j]
        if k_out >= 0:
            dh_j += dLdY[i, k_out, j]
        dh[i, j] = dh_j
        z = g_t[i, j]
        r = g_t[i, units + j]
        cand = g_t[i, 2 * units + j]
        a_z = dh_j * (h_prev[i, j] - cand) * _dact(ract, z, ract_alpha)
        a_h = dh_j * (_ONE - z) * _dact(act, cand, act_alpha)
        a_r = a_h * rh_t[i, j] * _dact(ract, r, ract_alpha)
        dAx_t[i, j] = a_z
        dAx_t[i, units + j] = a_r
        dAx_t[i, 2 * units + j] = a_h
        dAr_t[i, j] = a_z
        dAr_t[i, units + j] = a_r
        dAr_t[i, 2 * units + j] = a_h * r
        carry[i, j] = dh_j * z


def gru_backward(
    xt, W, U, gates, rh, h, dLdY, act, act_alpha, ract, ract_alpha, dh, carry, dAx, dAr, dW, dU, db_in, db_rec, dxt, dX, compute_dx
):
    """BPTT through the GRU; ``dh``, ``carry`` (n, units) scratch; ``dAx``, ``dAr`` (T, n, 3 units).

    Per step, with ``dh`` the gradient reaching ``h_t``::

        dz = dh (h_{t-1} - hh);   dhh = dh (1 - z);   a_h = dhh f'(hh);   dr = a_h v_h
        dAx_t = [dz s'(z), dr s'(r), a_h]            (gradient of x_t W + b_in)
        dAr_t = [dz s'(z), dr s'(r), a_h r]          (gradient of h_{t-1} U + b_rec)
        dh <- dh z + dAr_t U^T
    """
    T, n, _ = xt.shape
    units = U.shape[0]
    if n * units == 0:
        return
    for t in range(T - 1, -1, -1):
        _gru_step_backward[grid(n * units), block()](
            gates[t], h[t], rh[t], dLdY, _output_step(dLdY, t, T), dh, carry, t == T - 1, dAx[t], dAr[t],
            act, act_alpha, ract, ract_alpha,
        )
        if t > 0:
            gemm(dAr[t], U, dh, False, True)
    _recurrent_gradient(h, dAr, dU)
    column_sums(dAr.reshape((T * n, 3 * units)), db_rec)
    _input_gradients(xt, W, dAx, dW, db_in, dxt, dX, compute_dx)
