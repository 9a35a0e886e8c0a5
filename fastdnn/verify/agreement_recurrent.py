"""CPU-vs-CUDA agreement cases of the recurrent kernels (SimpleRNN, LSTM, GRU), for `fastdnn.verify.agreement`.

Each variant runs a forward case on fresh inputs and a backward case on the states of the CPU's
forward pass (so that gates lie where training puts them). Variants cover the default activations
(tanh with sigmoid gates: the float32 rational forms), other activation codes in both slots, with
and without bias, ``return_sequences`` on and off, and ``compute_dx`` on and off. Shapes are tiny
(3 steps, at most 2 rows, 3 units): the simulator runs every CUDA thread as a Python thread.
"""

import numpy as np

# (label, cell activation, recurrent activation, use_bias, return_sequences, compute_dx)
_VARIANTS = (
    ("tanh/sigmoid,seq", "TANH", "SIGMOID", True, True, True),
    ("leaky_relu/tanh,no bias,last,no dx", "LEAKY_RELU", "TANH", False, False, False),
    ("softplus/sigmoid,seq,no dx", "SOFTPLUS", "SIGMOID", True, True, False),
)
_STEPS = 3
_UNITS = 3


def cases(rng, dtype, n, d, k):
    """Yield ``(name, "recurrent", function, args, output positions)`` as `fastdnn.verify.agreement._cases` does."""
    from fastdnn.kernels.cpu import activation as act
    from fastdnn.kernels.cpu import recurrent as cpu

    scalar = np.dtype(dtype).type
    alpha = scalar(0.2)
    n, D, T, units = min(n, 2), min(k, 4), _STEPS, _UNITS
    empty1, empty3 = np.empty(0, dtype), np.empty((0, 0, 0), dtype)

    def arr(*shape, scale=1.0):
        return (scale * rng.normal(size=shape)).astype(dtype)

    def zeros(*shape):
        return np.zeros(shape, dtype)

    for label, act_name, ract_name, use_bias, sequences, compute_dx in _VARIANTS:
        code, rcode = getattr(act, act_name), getattr(act, ract_name)
        T_out = T if sequences else 1
        dxt, dX = (zeros(T, n, D), zeros(n, T, D)) if compute_dx else (empty3, empty3)

        # SimpleRNN
        x, W, U = arr(n, T, D), arr(D, units, scale=0.5), arr(units, units, scale=0.5)
        b = arr(units, scale=0.5) if use_bias else empty1
        yield (f"simple_rnn_forward[{label}]", "recurrent", "simple_rnn_forward",
               [x, W, U, b, code, alpha, zeros(T, n, D), zeros(n, units), zeros(T + 1, n, units), zeros(n, T_out, units)],
               [6, 7, 8, 9])
        xt, h = zeros(T, n, D), zeros(T + 1, n, units)
        cpu.simple_rnn_forward(x, W, U, b, code, alpha, xt, zeros(n, units), h, zeros(n, T_out, units))
        yield (f"simple_rnn_backward[{label}]", "recurrent", "simple_rnn_backward",
               [xt, W, U, h, arr(n, T_out, units), code, alpha, zeros(n, units), zeros(T, n, units),
                zeros(D, units), zeros(units, units), zeros(units) if use_bias else empty1, dxt.copy(), dX.copy(), compute_dx],
               [7, 8, 9, 10, 11, 12, 13])

        # LSTM
        G = 4 * units
        x, W, U = arr(n, T, D), arr(D, G, scale=0.5), arr(units, G, scale=0.5)
        b = arr(G, scale=0.5) if use_bias else empty1
        yield (f"lstm_forward[{label}]", "recurrent", "lstm_forward",
               [x, W, U, b, code, alpha, rcode, alpha, zeros(T, n, D), zeros(n, G), zeros(T, n, G),
                zeros(T + 1, n, units), zeros(T + 1, n, units), zeros(T, n, units), zeros(n, T_out, units)],
               [8, 9, 10, 11, 12, 13, 14])
        xt, gates, c, h, tc = zeros(T, n, D), zeros(T, n, G), zeros(T + 1, n, units), zeros(T + 1, n, units), zeros(T, n, units)
        cpu.lstm_forward(x, W, U, b, code, alpha, rcode, alpha, xt, zeros(n, G), gates, c, h, tc, zeros(n, T_out, units))
        yield (f"lstm_backward[{label}]", "recurrent", "lstm_backward",
               [xt, W, U, gates, c, h, tc, arr(n, T_out, units), code, alpha, rcode, alpha,
                zeros(n, units), zeros(n, units), zeros(T, n, G), zeros(D, G), zeros(units, G),
                zeros(G) if use_bias else empty1, dxt.copy(), dX.copy(), compute_dx],
               [12, 13, 14, 15, 16, 17, 18, 19])

        # GRU (reset_after: an input and a recurrent bias)
        G = 3 * units
        x, W, U = arr(n, T, D), arr(D, G, scale=0.5), arr(units, G, scale=0.5)
        b_in, b_rec = (arr(G, scale=0.5), arr(G, scale=0.5)) if use_bias else (empty1, empty1)
        yield (f"gru_forward[{label}]", "recurrent", "gru_forward",
               [x, W, U, b_in, b_rec, code, alpha, rcode, alpha, zeros(T, n, D), zeros(n, G), zeros(T, n, G),
                zeros(T, n, units), zeros(T + 1, n, units), zeros(n, T_out, units)],
               [9, 10, 11, 12, 13, 14])
        xt, gates, rh, h = zeros(T, n, D), zeros(T, n, G), zeros(T, n, units), zeros(T + 1, n, units)
        cpu.gru_forward(x, W, U, b_in, b_rec, code, alpha, rcode, alpha, xt, zeros(n, G), gates, rh, h, zeros(n, T_out, units))
        db_in, db_rec = (zeros(G), zeros(G)) if use_bias else (empty1, empty1)
        yield (f"gru_backward[{label}]", "recurrent", "gru_backward",
               [xt, W, U, gates, rh, h, arr(n, T_out, units), code, alpha, rcode, alpha,
                zeros(n, units), zeros(n, units), zeros(T, n, G), zeros(T, n, G), zeros(D, G), zeros(units, G),
                db_in, db_rec, dxt.copy(), dX.copy(), compute_dx],
               [11, 12, 13, 14, 15, 16, 17, 18, 19, 20])
