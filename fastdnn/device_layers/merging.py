"""The merge layers on the device: the CPU layer's own body (`Merge._compute`) run with the CUDA kernels."""

from fastdnn.device_layers import DeviceLayer, register


@register("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate", "Dot")
class MergeOnDevice(DeviceLayer):
    """Several device inputs in, one output; backward returns one gradient per input."""

    def forward(self, x, params, training):
        out, self._cache = self.layer._compute(self.k.merge, self.buffer, x)
        return out

    def backward(self, dLdY, params, grads, from_logits):
        return self.layer._backward_with(self.k.merge, self.buffer, self._cache, dLdY)
