"""The verifier checks itself: known bugs are planted into copies of real kernels and must be caught.

Each `Mutation` edits the source of one fastdnn function (a backward pass, a loss gradient, an update
rule), compiles the edited copy, swaps it in for the duration of the check, and runs the cases that
cover that function. A mutation is caught when at least one of those checks fails. The originals
are restored afterwards, whatever happens.
"""

import inspect
import textwrap
import time
from dataclasses import dataclass

import fastdnn as fd
from fastdnn.kernels.cpu import activation as activation_kernels
from fastdnn.kernels.cpu import conv as conv_kernels
from fastdnn.kernels.cpu import dense as dense_kernels
from fastdnn.kernels.cpu import dropout as dropout_kernels
from fastdnn.kernels.cpu import embedding as embedding_kernels
from fastdnn.kernels.cpu import loss as loss_kernels
from fastdnn.kernels.cpu import normalization as norm_kernels
from fastdnn.kernels.cpu import optim as optim_kernels
from fastdnn.kernels.cpu import pool as pool_kernels
from fastdnn.kernels.cpu import recurrent as recurrent_kernels
from fastdnn.kernels.jit import KernelsByKey
from fastdnn.kernels.jit import jit as cached_jit
from fastdnn.layers import conv as conv_layers
from fastdnn.verify import run


@dataclass
class Mutation:
    """A planted bug.

    Parameters
    ----------
    kind : str
        The class of bug: flipped sign, missing factor, transposed matrix, dropped term, epsilon placement.
    description : str
    module : module
        Where the function lives.
    function : str
        Name of the function (or ``Class.method``) whose source is edited.
    old, new : str
        The edit: every occurrence of ``old`` becomes ``new`` (``old`` must occur).
    cases : str
        Pattern (see ``fastdnn.verify.run.matches``) of the cases expected to catch it.
    rebuild : tuple of str
        Functions of the same module compiled again against the mutant (callers of ``function``).
    patch : tuple of (owner, attribute, name)
        Where the library looks the compiled functions up at call time: ``owner.attribute`` is
        pointed at the rebuilt ``name``.
    """

    kind: str
    description: str
    module: object
    function: str
    old: str
    new: str
    cases: str
    rebuild: tuple = ()
    patch: tuple = ()


def _source(module, name):
    obj = module
    for part in name.split("."):
        obj = getattr(obj, part)
    obj = getattr(obj, "py_func", obj)
    return textwrap.dedent(inspect.getsource(obj))


def _uncached_jit(func=None, **options):
    # An edited copy has no file for numba's cache to key on.
    return cached_jit(func, **{**options, "cache": False})


def plant(mutation):
    """Compile the mutant (and its rebuilt callers); return ``[(owner, attribute, new value)]`` to patch."""
    namespace = dict(vars(mutation.module))
    namespace["jit"] = _uncached_jit
    source = _source(mutation.module, mutation.function)
    if mutation.old not in source:
        raise ValueError(f"self-test: {mutation.function} no longer contains {mutation.old!r}; update the mutation")
    mutated = source.replace(mutation.old, mutation.new)
    exec(compile(mutated, f"<planted bug: {mutation.description}>", "exec"), namespace)
    for caller in mutation.rebuild:
        exec(compile(_source(mutation.module, caller), f"<rebuilt {caller}>", "exec"), namespace)
    # A table of kernels compiled on first use whose builder was rebuilt starts empty, built by the mutant.
    for name, value in list(namespace.items()):
        if isinstance(value, KernelsByKey) and value.build.__name__ in (mutation.function, *mutation.rebuild):
            namespace[name] = KernelsByKey(namespace[value.build.__name__])
    replacements = []
    for owner, attribute, name in mutation.patch:
        value = namespace[name]
        if isinstance(inspect.getattr_static(owner, attribute), staticmethod):
            value = staticmethod(value)
        replacements.append((owner, attribute, value))
    return replacements


def caught(mutation, seed=0):
    """Run the cases of ``mutation`` with the bug planted; ``(caught, failing checks, cases run)``."""
    replacements = plant(mutation)
    originals = [(owner, attribute, inspect.getattr_static(owner, attribute)) for owner, attribute, _ in replacements]
    try:
        for owner, attribute, value in replacements:
            setattr(owner, attribute, value)
        results, _ = run.run(only=mutation.cases, seed=seed)
    finally:
        for owner, attribute, value in originals:
            setattr(owner, attribute, value)
    failing = [r for r in results if not r.passed]
    return bool(failing), failing, len({r.op for r in results})


A = activation_kernels
D = dense_kernels
L = loss_kernels
O = optim_kernels
C = conv_kernels
P = pool_kernels
R = recurrent_kernels
_ACT_BACKWARD = ((A, "activation_backward", "activation_backward"),)
# A mutant scalar function is compiled into the per-activation kernels: rebuild them (see `plant`).
_ACT_REBUILD = ("_build_backward", "activation_backward")

MUTATIONS = [
    Mutation("flipped sign", "sigmoid derivative negated", A, "derivative_scalar",
             "return y * (_ONE - y)", "return -y * (_ONE - y)", "activation:sigmoid",
             rebuild=_ACT_REBUILD, patch=_ACT_BACKWARD),
    Mutation("flipped sign", "softmax backward adds the inner product instead of subtracting it", A, "_build_backward",
             "y[i, j] * (dLdY[i, j] - inner)", "y[i, j] * (dLdY[i, j] + inner)", "activation:softmax",
             rebuild=_ACT_REBUILD[1:], patch=_ACT_BACKWARD),
    Mutation("missing factor", "tanh derivative 1 - y instead of 1 - y^2", A, "derivative_scalar",
             "return _ONE - y * y", "return _ONE - y", "activation:tanh",
             rebuild=_ACT_REBUILD, patch=_ACT_BACKWARD),
    Mutation("missing factor", "leaky relu derivative loses its slope", A, "derivative_scalar",
             "return _ONE if y > _ZERO else alpha", "return _ONE if y > _ZERO else _ZERO", "activation:leaky_relu",
             rebuild=_ACT_REBUILD, patch=_ACT_BACKWARD),
    Mutation("dropped term", "gelu derivative without the z phi(z) term", A, "gelu_derivative_scalar",
             " + x * _INV_SQRT_2PI * math.exp(-0.5 * x * x)", "", "activation:gelu",
             rebuild=_ACT_REBUILD, patch=_ACT_BACKWARD),
    Mutation("transposed matrix", "Dense dL/dx uses W instead of W^T", D, "dense_backward",
             "matmul(g, W.T, dX)", "matmul(g, W, dX)", "layer:Dense(tanh) 2x4->4",
             patch=((D, "dense_backward", "dense_backward"),)),
    Mutation("dropped term", "Dense bias gradient never written", D, "dense_backward",
             "column_sums(g, db)", "db[:] = 0", "layer:Dense(linear)",
             patch=((D, "dense_backward", "dense_backward"),)),
    Mutation("missing factor", "mean squared error gradient without its factor 2", L, "mean_squared_error",
             "grad[i, j] = 2.0 * diff * scale", "grad[i, j] = diff * scale", "loss:mean_squared_error",
             patch=((fd.losses.MeanSquaredError, "kernel", "mean_squared_error"),)),
    Mutation("missing factor", "categorical crossentropy (logits) gradient not divided by the batch size", L,
             "categorical_crossentropy_from_logits",
             "grad[i, j] = (prob * t_sum - float(t[i, j])) * scale", "grad[i, j] = prob * t_sum - float(t[i, j])",
             "loss:categorical_crossentropy from_logits",
             patch=((fd.losses.CategoricalCrossentropy, "logits_kernel", "categorical_crossentropy_from_logits"),)),
    Mutation("flipped sign", "fused sigmoid + binary crossentropy gradient adds the target", L,
             "binary_crossentropy_from_logits",
             "(sigmoid_scalar(logit) - target) * scale", "(sigmoid_scalar(logit) + target) * scale",
             "model:silu|sigmoid + BCE",
             patch=((fd.losses.BinaryCrossentropy, "logits_kernel", "binary_crossentropy_from_logits"),)),
    Mutation("dropped term", "Adam without the 1 / (1 - beta_1^t) bias correction", fd.optimizers, "Adam.update",
             "/ (1.0 - self.beta_1**t)", "", "optimizer:adam",
             patch=((fd.optimizers.Adam, "update", "update"),)),
    Mutation("epsilon placement", "Adam epsilon inside the square root", O, "adam_step",
             "p[i] -= alpha * mi / (math.sqrt(vi) + epsilon)", "p[i] -= alpha * mi / math.sqrt(vi + epsilon)",
             "optimizer:adam(defaults)", patch=((O, "adam_step", "adam_step"),)),
    Mutation("epsilon placement", "Adagrad epsilon outside the square root", O, "adagrad_step",
             "lr * grad / math.sqrt(total + epsilon)", "lr * grad / (math.sqrt(total) + epsilon)",
             "optimizer:adagrad", patch=((O, "adagrad_step", "adagrad_step"),)),
    Mutation("flipped sign", "Nesterov look-ahead subtracts the wrong way", O, "momentum_step",
             "p[i] += momentum * velocity - step", "p[i] += momentum * velocity + step",
             "optimizer:nag", patch=((O, "momentum_step", "momentum_step"),)),
    Mutation("missing factor", "RMSprop second moment without (1 - rho)", O, "rmsprop_step",
             "rho * vel[i] + keep * grad * grad", "rho * vel[i] + grad * grad",
             "optimizer:rmsprop", patch=((O, "rmsprop_step", "rmsprop_step"),)),
    Mutation("flipped sign", "centered RMSprop adds the squared mean", O, "rmsprop_step",
             "v - a * a + epsilon", "v + a * a + epsilon",
             "optimizer:rmsprop(centered=True)", patch=((O, "rmsprop_step", "rmsprop_step"),)),
    Mutation("flipped sign", "Adadelta steps uphill", O, "adadelta_step",
             "p[i] += lr * delta", "p[i] -= lr * delta",
             "optimizer:adadelta", patch=((O, "adadelta_step", "adadelta_step"),)),
    Mutation("flipped sign", "SGD ascends the gradient", O, "sgd_step",
             "p[i] -= lr * g[i]", "p[i] += lr * g[i]",
             "optimizer:sgd(defaults)", patch=((O, "sgd_step", "sgd_step"),)),
    # convolution, pooling and the other layer kinds
    Mutation("dropped term", "col2im overwrites instead of accumulating overlapping patches", C, "_add_patch",
             "df[d + k] += cf[o + k]", "df[d + k] = cf[o + k]",
             "layer:Conv2D(2, k=3, valid)", rebuild=("col2im", "conv_backward"), patch=((C, "conv_backward", "conv_backward"),)),
    Mutation("missing factor", "Conv dL/dW from dL/dy instead of dL/dz (no activation derivative)", C, "conv_backward",
             "matmul(cols.T, g, dK)", "matmul(cols.T, dLdY, dK)", "layer:Conv1D(3, k=3, s=2, same, tanh)",
             patch=((C, "conv_backward", "conv_backward"),)),
    Mutation("missing factor", "one-channel Conv dL/dW (padded planes) from dL/dy instead of dL/dz", C, "conv_backward_planes",
             "kernel_grad_planes(xp[lo:hi], g[rows],", "kernel_grad_planes(xp[lo:hi], dLdY[rows],", "layer:Conv2D(2, k=3, d=2, same, sigmoid, no bias)",
             patch=((C, "conv_backward_planes", "conv_backward_planes"),)),
    Mutation("missing factor", "average pooling gradient not divided by the window size", P, "avg_pool_backward",
             "df[dst + c] += gf[out + c] * scale", "df[dst + c] += gf[out + c]", "layer:AveragePooling2D",
             patch=((P, "avg_pool_backward", "avg_pool_backward"),)),
    Mutation("dropped term", "scatter-add of the embedding gradient overwrites repeated indices", embedding_kernels,
             "embedding_backward", "row[j] += g[j]", "row[j] = g[j]", "layer:Embedding(6, 3)",
             patch=((embedding_kernels, "embedding_backward", "embedding_backward"),)),
    Mutation("missing factor", "dropout backward without the mask", dropout_kernels, "dropout_backward",
             "dX[i] = dLdY[i] * mask[i]", "dX[i] = dLdY[i]", "layer:Dropout",
             patch=((dropout_kernels, "dropout_backward", "dropout_backward"),)),
    Mutation("dropped term", "batch normalization dL/dx without the variance term", norm_kernels, "batch_norm_backward",
             " - x_hat[i, j] * sum_gx[j])", ")", "layer:BatchNormalization 4x3",
             patch=((norm_kernels, "batch_norm_backward", "batch_norm_backward"),)),
    Mutation("dropped term", "synchronized batch normalization dL/dx without the variance term", norm_kernels,
             "batch_norm_global_backward", " - x_hat[i, j] * (sums[C + j] * inv_m))", ")",
             "layer:BatchNormalization(synchronized: a shard of two) 4x3",
             patch=((norm_kernels, "batch_norm_global_backward", "batch_norm_global_backward"),)),
    # recurrent backward passes
    Mutation("transposed matrix", "SimpleRNN backpropagates through U instead of U^T", R, "simple_rnn_backward",
             "np.matmul(dA[t, lo:hi], U.T, out=dh[lo:hi])", "np.matmul(dA[t, lo:hi], U, out=dh[lo:hi])", "layer:SimpleRNN(3",
             patch=((R, "simple_rnn_backward", "simple_rnn_backward"),)),
    Mutation("missing factor", "LSTM cell gradient passed back without the forget gate", R, "_lstm_cells_backward",
             "dc_row[j] = d_c * f_gate", "dc_row[j] = d_c", "layer:LSTM(3)",
             rebuild=("_lstm_step_backward", "lstm_backward"), patch=((R, "lstm_backward", "lstm_backward"),)),
    Mutation("flipped sign", "GRU update-gate gradient with (hh - h_prev)", R, "_gru_cells_backward",
             "(previous[j] - cand)", "(cand - previous[j])", "layer:GRU(3)",
             rebuild=("_gru_step_backward", "gru_backward"), patch=((R, "gru_backward", "gru_backward"),)),
    Mutation("dropped term", "GRU gradient reaching h_{t-1} without the direct z path", R, "_gru_cells_backward",
             "carry_row[j] = dh_j * z", "carry_row[j] = 0", "layer:GRU(3, return_sequences)",
             rebuild=("_gru_step_backward", "gru_backward"), patch=((R, "gru_backward", "gru_backward"),)),
    # bugs that finite differences cannot see (forward passes, arguments the hand-listed cases missed):
    # caught by the argument-space configurations against the reference, and the target-row cases
    Mutation("forward geometry", "'same' padding puts the larger half first", conv_layers, "padding_amounts",
             "return max((out - 1) * stride + eff - length, 0) // 2, out",
             "return -(-max((out - 1) * stride + eff - length, 0) // 2), out",
             "layer:*[*padding=same*", patch=((conv_layers, "padding_amounts", "padding_amounts"),)),
    Mutation("transposed axes", "im2col steps rows by the column dilation", C, "im2col",
             "hi = h0 + i * dh", "hi = h0 + i * dw", "layer:Conv2D[*dilation_rate=?x?*",
             rebuild=("conv_forward",), patch=((C, "conv_forward", "conv_forward"),)),
    Mutation("dropped term", "recurrent cells drop leaky_relu's slope", R, "_act",
             "return forward_scalar(code, z, alpha)", "return forward_scalar(code, z, alpha * 0)",
             "layer:SimpleRNN[*activation=leaky_relu*",
             rebuild=("_simple_rnn_cells", "_simple_rnn_step", "simple_rnn_forward"), patch=((R, "simple_rnn_forward", "simple_rnn_forward"),)),
    Mutation("missing factor", "categorical crossentropy (logits) gradient assumes target rows sum to 1", L,
             "categorical_crossentropy_from_logits",
             "grad[i, j] = (prob * t_sum - float(t[i, j])) * scale", "grad[i, j] = (prob - float(t[i, j])) * scale",
             "loss:categorical_crossentropy from_logits*targets*",
             patch=((fd.losses.CategoricalCrossentropy, "logits_kernel", "categorical_crossentropy_from_logits"),)),
    # the graph engine: fan-out and sharing
    Mutation("dropped term", "a tensor read by several layers keeps the last consumer's gradient (overwrite, not sum)",
             fd.model, "Model._add_gradient",
             "np.add(current, gradient.reshape(current.shape), out=current)", "np.copyto(current, gradient.reshape(current.shape))",
             "model:graph: one tensor read by three layers", patch=((fd.model.Model, "_add_gradient", "_add_gradient"),)),
    Mutation("dropped term", "a shared layer keeps only its last call's parameter gradient", fd.model, "Model._backward",
             "grads[start:stop] += kept", "grads[start:stop] = grads[start:stop]",
             "model:graph: a layer shared by two branches", patch=((fd.model.Model, "_backward", "_backward"),)),
]


def self_test(seed=0, mutations=None):
    """Plant every mutation; returns ``(rows, seconds)`` with one row per mutation:
    ``{"kind", "description", "function", "caught", "cases", "first_failure"}``.
    """
    start = time.perf_counter()
    rows = []
    for mutation in mutations or MUTATIONS:
        was_caught, failing, n_cases = caught(mutation, seed)
        first = ""
        if failing:
            error = failing[0].extra.get("error")
            first = f"{failing[0].op}: {error}" if error else failing[0].failure_report()
        rows.append(
            {
                "kind": mutation.kind,
                "description": mutation.description,
                "function": f"{mutation.module.__name__}.{mutation.function}",
                "caught": was_caught,
                "cases": n_cases,
                "first_failure": first,
            }
        )
    return rows, time.perf_counter() - start
