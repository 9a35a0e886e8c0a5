"""Kernels one by one: Dense forward/backward, every activation, every loss, every optimizer step.

Each is called through the layer / loss / optimizer object that the model itself calls (tier 2 of
DESIGN.md: buffers owned, inputs trusted, no validation), so the times are the kernels' own plus the
few Python calls that a training step pays for them.
"""

import numpy as np

import fastdnn as fd

from .common import PARAMETER_COUNTS


class DenseLayer:
    """``y = relu(x W + b)`` and its backward pass (``dW``, ``db`` and ``dX``) on one batch."""

    params = ([32, 1024], ["784x512", "512x256"])
    param_names = ["batch", "n_in x n_out"]

    def setup(self, batch, shape):
        n_in, n_out = map(int, shape.split("x"))
        rng = np.random.default_rng(0)
        self.layer = fd.layers.Dense(n_out, activation="relu")
        self.layer.build((n_in,), np.float32)
        self.x = rng.standard_normal((batch, n_in), dtype=np.float32)
        self.dy = rng.standard_normal((batch, n_out), dtype=np.float32)
        self.layer.forward(self.x, training=True)  # compiles or loads the kernels, sizes the buffers
        self.layer.backward(self.dy)

    def time_forward(self, batch, shape):
        self.layer.forward(self.x, training=True)

    def time_backward(self, batch, shape):
        self.layer.backward(self.dy)


class Activations:
    """Every registered activation, forward and backward, on a 1024 x 512 float32 batch."""

    params = [fd.activations.registry.names()]
    param_names = ["activation"]

    def setup(self, name):
        rng = np.random.default_rng(0)
        self.layer = fd.layers.Activation(name)
        self.layer.build((512,), np.float32)
        self.z = rng.standard_normal((1024, 512), dtype=np.float32)
        self.dy = rng.standard_normal((1024, 512), dtype=np.float32)
        self.layer.forward(self.z, training=True)
        self.layer.backward(self.dy)

    def time_forward(self, name):
        self.layer.forward(self.z, training=True)

    def time_backward(self, name):
        self.layer.backward(self.dy)


def _loss_cases():
    cases = []
    for name, cls in fd.losses.registry.canonical_items():
        cases.append(name)
        if cls.logits_kernel is not None:
            cases.append(f"{name} from_logits")
    return cases


class Losses:
    """Every registered loss (and the logits form a fused softmax/sigmoid output uses): the mean loss
    and ``dL/dy`` of a 1024 x 10 batch in one kernel call.
    """

    params = [_loss_cases()]
    param_names = ["loss"]

    def setup(self, case):
        name, _, variant = case.partition(" ")
        self.loss = fd.losses.get({"name": name, "from_logits": True} if variant else name)
        n, width = 1024, 10
        rng = np.random.default_rng(0)
        logits = rng.standard_normal((n, width), dtype=np.float32)
        if self.loss.from_logits:
            self.y_pred = logits
        elif self.loss.fused_activation == "sigmoid":
            self.y_pred = (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)
        else:
            e = np.exp(logits - logits.max(axis=1, keepdims=True))
            self.y_pred = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
        labels = rng.integers(0, width, n)
        if self.loss.sparse:
            raw = labels
        elif self.loss.fused_activation == "softmax":
            raw = np.eye(width, dtype=np.float32)[labels]
        else:
            raw = rng.integers(0, 2, (n, width)).astype(np.float32)
        self.targets = self.loss.prepare_targets(raw, (width,), n, np.float32)
        self.grad = np.empty_like(self.y_pred)
        self.loss.compute(self.y_pred, self.targets, self.grad)

    def time_loss_and_gradient(self, case):
        self.loss.compute(self.y_pred, self.targets, self.grad)


class OptimizerStep:
    """One step of every registered update rule over flat float32 buffers (what ``fit`` calls).

    The "10M" rows are the parameter count of the optimizer target; ``benchmarks/peers.py --workload
    optim`` sets them beside PyTorch's fused Adam and the memory-bandwidth floor.
    """

    params = (fd.optimizers.registry.names(), list(PARAMETER_COUNTS))
    param_names = ["rule", "parameters"]
    timeout = 120

    def setup(self, rule, count):
        size = PARAMETER_COUNTS[count]
        rng = np.random.default_rng(0)
        self.optimizer = fd.optimizers.get(rule)
        self.optimizer.build(size, np.float32)
        self.params = rng.standard_normal(size, dtype=np.float32)
        self.grads = rng.standard_normal(size, dtype=np.float32) * np.float32(1e-3)
        self.optimizer.step(self.params, self.grads)

    def time_step(self, rule, count):
        self.optimizer.step(self.params, self.grads)


class OptimizerStepDeadUnits(OptimizerStep):
    """Adam's step when most gradients are 0 (dead ReLU units) and the state they left has decayed
    to the smallest normal numbers. The kernels flush such state to 0 rather than step on subnormal
    numbers, which x86 CPUs handle on a slow path: without the flush this step took 2.1 times
    ``OptimizerStep``'s (0.64 ms against 0.30 ms, 1M parameters, this project's 2-core machine).
    Adam only: the other rules' state decays by 0.9 or 0.95 a step and leaves the subnormal range
    within a few hundred steps (they measured within 10% either way); Adam's velocity, by 0.999,
    stays there for thousands.
    """

    params = (["adam"], ["1M"])

    def setup(self, rule, count):
        super().setup(rule, count)
        self.grads[: self.grads.size * 85 // 100] = 0  # 85% of Adam's momentum was subnormal after one such epoch
        for state in self.optimizer.state.values():
            state[:] = np.finfo(np.float32).tiny
