"""Recurrent kernels: SimpleRNN, LSTM and GRU, forward over time and backpropagation through time.

Layout. The input ``x`` is ``(n, T, D)`` (batch, time, features), as in Keras. The kernels copy it
time-major into ``xt`` ``(T, n, D)`` so that every step reads contiguous rows, and so that the input
projection of all steps is ONE gemm, ``(T n, D) x (D, G)``; only the recurrent products ``h_{t-1} U``
remain per step. The states ``h`` (and the LSTM's ``c``) are ``(T + 1, n, units)`` with step 0 the
zero initial state. The output ``y`` is ``(n, T, units)`` with ``return_sequences``, else
``(n, 1, units)`` (the last state); the upstream gradient comes in the same shape.

The products run in NumPy's BLAS (``np.matmul(..., out=)``), called from the plain-Python loops over
the steps of ``*_forward`` / ``*_backward``, with each step's elementwise work one compiled call, as
``dense`` does: ``np.dot`` inside ``@njit`` would reach SciPy's OpenBLAS, a second pool of threads
beside the one every Dense and Conv product uses (see ``fastdnn.threads``). A step costs two calls
of Python (a few microseconds) beside a product of ``(n, units) x (units, G units)``.

The rows of the batch never meet in the recurrence, so the step loops run through
`fastdnn.threads.split_batch`: under a pool plan, each thread of fastdnn's pool takes a part of the
rows through all the steps (its products single-threaded), and the products over all steps go
through `fastdnn.threads.matmul`.

In the backward pass the per-step work is the elementwise chain rule and one product with ``U^T``;
the pre-activation gradients of all steps are kept (``dA``, time-major), so that the weight gradients
are again single gemms over all steps: ``dW = X^T dA``, ``dU = H_{0..T-1}^T dA``, ``db = sum dA``,
``dX = dA W^T``.

Activations are kernel codes (see ``activation``) whose derivative follows from the output alone
(linear, sigmoid, tanh, relu, leaky relu, softplus): ``f'`` is evaluated from ``y = f(z)``. The
elementwise work of a step is an inlined helper called with the default codes (tanh, sigmoid) as
constants, so that the branches on the code fold away and the loop vectorizes, or with the codes of
the layer otherwise. In float32, tanh is a rational approximation (Eigen's, the one XLA uses on
CPUs: within 3e-7 of tanh, vectorizable) and sigmoid goes through a polynomial exp (see
``activation``), since libm's ``tanhf`` is a call per element that costs more than the recurrent
product itself; in float64 they are exact.

Equations (Keras 3; ``f`` the activation, ``s`` the recurrent activation, ``*`` elementwise):

- SimpleRNN: ``h_t = f(x_t W + h_{t-1} U + b)``.
- LSTM, gates in the order i, f, c, o along the ``4 units`` axis::

      i = s(a_i),  f = s(a_f),  g = f(a_c),  o = s(a_o),   a = x_t W + h_{t-1} U + b
      c_t = f * c_{t-1} + i * g,   h_t = o * f(c_t)

- GRU with ``reset_after`` (Keras 3's default), gates z, r, h; ``b`` is ``(2, 3 units)``, input and
  recurrent biases::

      u = x_t W + b_0,  v = h_{t-1} U + b_1
      z = s(u_z + v_z),  r = s(u_r + v_r),  hh = f(u_h + r * v_h)
      h_t = z * h_{t-1} + (1 - z) * hh
"""

import numpy as np

from fastdnn.kernels.cpu.activation import (
    SIGMOID,
    TANH,
    derivative_scalar,
    fast_sigmoid_scalar,
    fast_tanh_scalar,
    forward_scalar,
)
from fastdnn.kernels.jit import jit
from fastdnn.threads import matmul, split_batch

_ONE = np.float32(1.0)


# -- activations: fast in float32, exact in float64 -------------------------------------------------

# In float32 these are the vectorizable forms of ``activation`` (rational tanh, polynomial exp).
fast_tanh = fast_tanh_scalar
fast_sigmoid = fast_sigmoid_scalar


@jit(inline="always")
def _act(code, z, alpha):
    """``f(z)`` for an activation code (tanh and sigmoid first: the defaults)."""
    if code == TANH:
        return fast_tanh(z)
    if code == SIGMOID:
        return fast_sigmoid(z)
    return forward_scalar(code, z, alpha)


@jit(inline="always")
def _dact(code, y, alpha):
    """``f'(z)`` from ``y = f(z)``."""
    if code == TANH:
        return _ONE - y * y
    if code == SIGMOID:
        return y * (_ONE - y)
    return derivative_scalar(code, y, y, alpha)


# -- shared steps -----------------------------------------------------------------------------------


@jit(inline="always")
def _four(row, units):
    """The four gate blocks of a row of ``4 units`` values, as views."""
    return row[:units], row[units : 2 * units], row[2 * units : 3 * units], row[3 * units :]


@jit(inline="always")
def _three(row, units):
    """The three gate blocks of a row of ``3 units`` values, as views."""
    return row[:units], row[units : 2 * units], row[2 * units :]


@jit
def _to_time_major(x, xt):
    """``xt[t, b] = x[b, t]``."""
    n, T, D = x.shape
    for t in range(T):
        for b in range(n):
            src = x[b, t]
            dst = xt[t, b]
            for d in range(D):
                dst[d] = src[d]


@jit
def _from_time_major(xt, x):
    """``x[b, t] = xt[t, b]``."""
    T, n, D = xt.shape
    for b in range(n):
        for t in range(T):
            src = xt[t, b]
            dst = x[b, t]
            for d in range(D):
                dst[d] = src[d]


def _input_projection(x, W, b, xt, A):
    """``xt`` = ``x`` time-major; ``A[t] = x_t W + b`` for every step in one gemm (``b`` may be empty)."""
    n, T, D = x.shape
    G = W.shape[1]
    _to_time_major(x, xt)
    A2 = A.reshape((T * n, G))
    matmul(xt.reshape((T * n, D)), W, A2)
    if b.shape[0] > 0:
        _add_row(A2, b)


@jit
def _add_row(a, b):
    """``a[r] += b`` for every row."""
    rows, width = a.shape
    for r in range(rows):
        for j in range(width):
            a[r, j] += b[j]


@jit
def _write_output(h, y):
    """``y[b, t] = h[t + 1, b]`` for every step (``y`` (n, T, units)), or the last state (``y`` (n, 1, units))."""
    T = h.shape[0] - 1
    n, T_out, units = y.shape
    first = T - T_out
    for b in range(n):
        for t in range(T_out):
            src = h[first + t + 1, b]
            dst = y[b, t]
            for j in range(units):
                dst[j] = src[j]


@jit
def _add_output_gradient(dLdY, t, T, dh):
    """``dh += dL/dy_t`` when step ``t`` is an output (every step, or only the last)."""
    n, T_out, units = dLdY.shape
    k = t - (T - T_out)
    if k < 0:
        return
    for b in range(n):
        g = dLdY[b, k]
        row = dh[b]
        for j in range(units):
            row[j] += g[j]


def _input_gradients(xt, W, dA, dW, db, dxt, dX, compute_dx):
    """``dW = X^T dA``, ``db = sum dA`` (if non-empty), and ``dX = dA W^T`` back in batch-major order."""
    T, n, D = xt.shape
    G = dA.shape[2]
    dA2 = dA.reshape((T * n, G))
    matmul(xt.reshape((T * n, D)).T, dA2, dW)
    if db.shape[0] > 0:
        _column_sums(dA2, db)
    if compute_dx:
        matmul(dA2, W.T, dxt.reshape((T * n, D)))
        _from_time_major(dxt, dX)


def _recurrent_gradient(h, dA, dU):
    """``dU = sum_t h_{t-1}^T dA_t`` as one gemm over the states 0..T-1."""
    T, n, G = dA.shape
    units = h.shape[2]
    matmul(h[:T].reshape((T * n, units)).T, dA.reshape((T * n, G)), dU)


@jit
def _column_sums(a, out):
    """``out[j] = sum_r a[r, j]``."""
    rows, G = a.shape
    out[:] = 0
    for r in range(rows):
        for j in range(G):
            out[j] += a[r, j]


# -- SimpleRNN --------------------------------------------------------------------------------------


@jit(inline="always")
def _simple_rnn_cells(a, rec, code, alpha):
    """``a = f(a + rec)`` in place, ``a`` holding ``x_t W + b``, ``rec`` ``h_{t-1} U``."""
    n, units = a.shape
    for bi in range(n):
        for j in range(units):
            a[bi, j] = _act(code, a[bi, j] + rec[bi, j], alpha)


@jit
def _simple_rnn_step(a, rec, code, alpha):
    if code == TANH:
        _simple_rnn_cells(a, rec, TANH, alpha)
    else:
        _simple_rnn_cells(a, rec, code, alpha)


def simple_rnn_forward(x, W, U, b, code, alpha, xt, rec, h, y):
    """``h_t = f(x_t W + h_{t-1} U + b)``; ``h`` (T + 1, n, units) keeps every state, ``y`` the outputs.

    ``h[1:]`` first receives the input projections; each step then turns its own into the state.
    ``rec`` (n, units) is scratch for ``h_{t-1} U``.
    """
    T = x.shape[1]
    _input_projection(x, W, b, xt, h[1:])
    h[0] = 0

    def steps(lo, hi, _part):
        for t in range(T):
            np.matmul(h[t, lo:hi], U, out=rec[lo:hi])
            _simple_rnn_step(h[t + 1, lo:hi], rec[lo:hi], code, alpha)

    split_batch(x.shape[0], steps)
    _write_output(h, y)


@jit(inline="always")
def _simple_rnn_cells_backward(state, dh, dA_t, code, alpha):
    """``dA_t = dL/dh_t * f'(h_t)``."""
    n, units = state.shape
    for bi in range(n):
        for j in range(units):
            dA_t[bi, j] = dh[bi, j] * _dact(code, state[bi, j], alpha)


@jit
def _simple_rnn_step_backward(dLdY, t, T, state, dh, dA_t, code, alpha):
    """Step ``t``'s output gradient into ``dh``, then ``dA_t = dh * f'(h_t)``."""
    _add_output_gradient(dLdY, t, T, dh)
    if code == TANH:
        _simple_rnn_cells_backward(state, dh, dA_t, TANH, alpha)
    else:
        _simple_rnn_cells_backward(state, dh, dA_t, code, alpha)


def simple_rnn_backward(xt, W, U, h, dLdY, code, alpha, dh, dA, dW, dU, db, dxt, dX, compute_dx):
    """BPTT: ``dA_t = (dL/dh_t) * f'(h_t)``, ``dL/dh_{t-1} = dA_t U^T`` (plus its own output gradient).

    ``dh`` (n, units) is scratch; ``dA`` (T, n, units) keeps every step's pre-activation gradient.
    """
    T = xt.shape[0]
    dh[...] = 0

    def steps(lo, hi, _part):
        for t in range(T - 1, -1, -1):
            _simple_rnn_step_backward(dLdY[lo:hi], t, T, h[t + 1, lo:hi], dh[lo:hi], dA[t, lo:hi], code, alpha)
            if t > 0:
                np.matmul(dA[t, lo:hi], U.T, out=dh[lo:hi])

    split_batch(xt.shape[1], steps)
    _recurrent_gradient(h, dA, dU)
    _input_gradients(xt, W, dA, dW, db, dxt, dX, compute_dx)


# -- LSTM -------------------------------------------------------------------------------------------


@jit(inline="always")
def _lstm_cells(g_t, rec, c_prev, c_t, h_t, tc_t, act, act_alpha, ract, ract_alpha):
    """One step's gates and states; ``g_t`` holds ``x_t W + b`` and receives the gate values.

    Two passes per row, the gates in place, then the states: loops that read and write one array
    at the same index, or read some and write others, are the ones LLVM vectorizes. Each gate is a
    view of its own, indexed from 0: an index numba cannot prove non-negative (``2 units + j``)
    gets a wraparound test per element, which stops the vectorizer (a step at 64 x 128 in float32
    took 67 us with the gates indexed by offsets, 18 us by views).
    """
    n, units = c_t.shape
    for bi in range(n):
        i_f, cand, out_gate = g_t[bi, : 2 * units], g_t[bi, 2 * units : 3 * units], g_t[bi, 3 * units :]
        rec_if, rec_cand, rec_out = rec[bi, : 2 * units], rec[bi, 2 * units : 3 * units], rec[bi, 3 * units :]
        for k in range(2 * units):
            i_f[k] = _act(ract, i_f[k] + rec_if[k], ract_alpha)
        for k in range(units):
            cand[k] = _act(act, cand[k] + rec_cand[k], act_alpha)
        for k in range(units):
            out_gate[k] = _act(ract, out_gate[k] + rec_out[k], ract_alpha)
        i_gate, f_gate = i_f[:units], i_f[units:]
        previous, cell, hidden, squashed = c_prev[bi], c_t[bi], h_t[bi], tc_t[bi]
        for j in range(units):
            value = f_gate[j] * previous[j] + i_gate[j] * cand[j]
            cell[j] = value
            s = _act(act, value, act_alpha)
            squashed[j] = s
            hidden[j] = out_gate[j] * s


@jit
def _lstm_step(g_t, rec, c_prev, c_t, h_t, tc_t, act, act_alpha, ract, ract_alpha):
    if act == TANH and ract == SIGMOID:
        _lstm_cells(g_t, rec, c_prev, c_t, h_t, tc_t, TANH, act_alpha, SIGMOID, ract_alpha)
    else:
        _lstm_cells(g_t, rec, c_prev, c_t, h_t, tc_t, act, act_alpha, ract, ract_alpha)


def lstm_forward(x, W, U, b, act, act_alpha, ract, ract_alpha, xt, rec, gates, c, h, tc, y):
    """LSTM over all steps (see the module docstring).

    ``gates`` (T, n, 4 units) receives the input projections, then each step's gate values
    ``[i, f, g, o]``; ``c``, ``h`` (T + 1, n, units) the states; ``tc`` (T, n, units) ``f(c_t)``;
    ``rec`` (n, 4 units) is scratch for ``h_{t-1} U``.
    """
    T = x.shape[1]
    _input_projection(x, W, b, xt, gates)
    h[0] = 0
    c[0] = 0

    def steps(lo, hi, _part):
        for t in range(T):
            np.matmul(h[t, lo:hi], U, out=rec[lo:hi])
            _lstm_step(
                gates[t, lo:hi], rec[lo:hi], c[t, lo:hi], c[t + 1, lo:hi], h[t + 1, lo:hi], tc[t, lo:hi],
                act, act_alpha, ract, ract_alpha,
            )

    split_batch(x.shape[0], steps)
    _write_output(h, y)


@jit(inline="always")
def _lstm_cells_backward(g_t, c_prev, tc_t, dh, dc, dA_t, act, act_alpha, ract, ract_alpha):
    """One step of the chain rule (see `lstm_backward`); updates ``dc`` in place for step t-1.

    Gates and their gradients are views indexed from 0, as in `_lstm_cells`."""
    n, units = dh.shape
    for bi in range(n):
        i_gates, f_gates, cands, o_gates = _four(g_t[bi], units)
        d_i, d_f, d_cand, d_out = _four(dA_t[bi], units)
        squashed_row, dh_row, dc_row, previous = tc_t[bi], dh[bi], dc[bi], c_prev[bi]
        for j in range(units):
            i_gate = i_gates[j]
            f_gate = f_gates[j]
            cand = cands[j]
            o_gate = o_gates[j]
            squashed = squashed_row[j]
            dh_j = dh_row[j]
            d_o = dh_j * squashed
            d_c = dc_row[j] + dh_j * o_gate * _dact(act, squashed, act_alpha)
            dc_row[j] = d_c * f_gate
            d_i[j] = d_c * cand * _dact(ract, i_gate, ract_alpha)
            d_f[j] = d_c * previous[j] * _dact(ract, f_gate, ract_alpha)
            d_cand[j] = d_c * i_gate * _dact(act, cand, act_alpha)
            d_out[j] = d_o * _dact(ract, o_gate, ract_alpha)


@jit
def _lstm_step_backward(dLdY, t, T, g_t, c_prev, tc_t, dh, dc, dA_t, act, act_alpha, ract, ract_alpha):
    """Step ``t``'s output gradient into ``dh``, then the step's chain rule (`_lstm_cells_backward`)."""
    _add_output_gradient(dLdY, t, T, dh)
    if act == TANH and ract == SIGMOID:
        _lstm_cells_backward(g_t, c_prev, tc_t, dh, dc, dA_t, TANH, act_alpha, SIGMOID, ract_alpha)
    else:
        _lstm_cells_backward(g_t, c_prev, tc_t, dh, dc, dA_t, act, act_alpha, ract, ract_alpha)


def lstm_backward(xt, W, U, gates, c, h, tc, dLdY, act, act_alpha, ract, ract_alpha, dh, dc, dA, dW, dU, db, dxt, dX, compute_dx):
    """BPTT through the LSTM; ``dh``, ``dc`` (n, units) scratch, ``dA`` (T, n, 4 units) the gate gradients.

    Per step, with ``dh`` the gradient reaching ``h_t`` and ``dc`` the one reaching ``c_t`` from step t+1::

        do = dh f(c_t);   dc += dh o f'(c_t)
        di = dc g;  dg = dc i;  df = dc c_{t-1};   dc <- dc f   (for step t-1)
        dA_t = [di s'(i), df s'(f), dg f'(g), do s'(o)];   dh <- dA_t U^T
    """
    T = xt.shape[0]
    dh[...] = 0
    dc[...] = 0

    def steps(lo, hi, _part):
        for t in range(T - 1, -1, -1):
            _lstm_step_backward(
                dLdY[lo:hi], t, T, gates[t, lo:hi], c[t, lo:hi], tc[t, lo:hi], dh[lo:hi], dc[lo:hi], dA[t, lo:hi],
                act, act_alpha, ract, ract_alpha,
            )
            if t > 0:
                np.matmul(dA[t, lo:hi], U.T, out=dh[lo:hi])

    split_batch(xt.shape[1], steps)
    _recurrent_gradient(h, dA, dU)
    _input_gradients(xt, W, dA, dW, db, dxt, dX, compute_dx)


# -- GRU (reset_after) ------------------------------------------------------------------------------


@jit(inline="always")
def _gru_cells(g_t, rec, h_prev, h_t, rh_t, act, act_alpha, ract, ract_alpha):
    """One step: ``g_t`` holds ``x_t W + b_in`` and receives ``[z, r, hh]``; ``rec`` is ``h_{t-1} U + b_rec``.

    Two passes per row (the gates z, r in place, then the candidate and the state), so both vectorize;
    the gate blocks are views indexed from 0 (see `_lstm_cells`).
    """
    n, units = h_t.shape
    for bi in range(n):
        gates = g_t[bi]
        recurrent = rec[bi]
        z_r, rec_z_r = gates[: 2 * units], recurrent[: 2 * units]
        for k in range(2 * units):
            z_r[k] = _act(ract, z_r[k] + rec_z_r[k], ract_alpha)
        z_gate, r_gate, cands = gates[:units], gates[units : 2 * units], gates[2 * units :]
        rec_h = recurrent[2 * units :]
        previous, hidden, kept = h_prev[bi], h_t[bi], rh_t[bi]
        for j in range(units):
            v_h = rec_h[j]
            cand = _act(act, cands[j] + r_gate[j] * v_h, act_alpha)
            z = z_gate[j]
            hidden[j] = z * previous[j] + (_ONE - z) * cand
            cands[j] = cand
            kept[j] = v_h


@jit
def _gru_step(g_t, rec, b_rec, h_prev, h_t, rh_t, act, act_alpha, ract, ract_alpha):
    if b_rec.shape[0] > 0:
        _add_row(rec, b_rec)
    if act == TANH and ract == SIGMOID:
        _gru_cells(g_t, rec, h_prev, h_t, rh_t, TANH, act_alpha, SIGMOID, ract_alpha)
    else:
        _gru_cells(g_t, rec, h_prev, h_t, rh_t, act, act_alpha, ract, ract_alpha)


def gru_forward(x, W, U, b_in, b_rec, act, act_alpha, ract, ract_alpha, xt, rec, gates, rh, h, y):
    """GRU with the reset gate applied after the recurrent product (see the module docstring).

    ``gates`` (T, n, 3 units) receives ``x_t W + b_in``, then each step's ``[z, r, hh]``; ``rh``
    (T, n, units) keeps ``v_h = (h_{t-1} U + b_rec)_h``; ``h`` (T + 1, n, units) the states; ``rec``
    (n, 3 units) is scratch. ``b_in``, ``b_rec`` are both empty without bias.
    """
    T = x.shape[1]
    _input_projection(x, W, b_in, xt, gates)
    h[0] = 0

    def steps(lo, hi, _part):
        for t in range(T):
            np.matmul(h[t, lo:hi], U, out=rec[lo:hi])
            _gru_step(
                gates[t, lo:hi], rec[lo:hi], b_rec, h[t, lo:hi], h[t + 1, lo:hi], rh[t, lo:hi],
                act, act_alpha, ract, ract_alpha,
            )

    split_batch(x.shape[0], steps)
    _write_output(h, y)


@jit(inline="always")
def _gru_cells_backward(g_t, h_prev, rh_t, dh, carry, dAx_t, dAr_t, act, act_alpha, ract, ract_alpha):
    """One step of the chain rule (see `gru_backward`); gate blocks as views indexed from 0."""
    n, units = dh.shape
    for bi in range(n):
        z_gates, r_gates, cands = _three(g_t[bi], units)
        dx_z, dx_r, dx_h = _three(dAx_t[bi], units)
        dr_z, dr_r, dr_h = _three(dAr_t[bi], units)
        dh_row, previous, kept, carry_row = dh[bi], h_prev[bi], rh_t[bi], carry[bi]
        for j in range(units):
            z = z_gates[j]
            r = r_gates[j]
            cand = cands[j]
            dh_j = dh_row[j]
            a_z = dh_j * (previous[j] - cand) * _dact(ract, z, ract_alpha)
            a_h = dh_j * (_ONE - z) * _dact(act, cand, act_alpha)
            a_r = a_h * kept[j] * _dact(ract, r, ract_alpha)
            dx_z[j] = a_z
            dx_r[j] = a_r
            dx_h[j] = a_h
            dr_z[j] = a_z
            dr_r[j] = a_r
            dr_h[j] = a_h * r
            carry_row[j] = dh_j * z


@jit
def _gru_step_backward(dLdY, t, T, g_t, h_prev, rh_t, dh, carry, dAx_t, dAr_t, act, act_alpha, ract, ract_alpha):
    """Step ``t``'s output gradient into ``dh``, then the step's chain rule (`_gru_cells_backward`)."""
    _add_output_gradient(dLdY, t, T, dh)
    if act == TANH and ract == SIGMOID:
        _gru_cells_backward(g_t, h_prev, rh_t, dh, carry, dAx_t, dAr_t, TANH, act_alpha, SIGMOID, ract_alpha)
    else:
        _gru_cells_backward(g_t, h_prev, rh_t, dh, carry, dAx_t, dAr_t, act, act_alpha, ract, ract_alpha)


@jit
def _add_in_place(a, b):
    """``a += b`` for 2-d arrays of one shape."""
    rows, width = a.shape
    for r in range(rows):
        for j in range(width):
            a[r, j] += b[r, j]


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
    T, n, D = xt.shape
    units = U.shape[0]
    dh[...] = 0

    def steps(lo, hi, _part):
        for t in range(T - 1, -1, -1):
            _gru_step_backward(
                dLdY[lo:hi], t, T, gates[t, lo:hi], h[t, lo:hi], rh[t, lo:hi], dh[lo:hi], carry[lo:hi],
                dAx[t, lo:hi], dAr[t, lo:hi], act, act_alpha, ract, ract_alpha,
            )
            if t > 0:
                np.matmul(dAr[t, lo:hi], U.T, out=dh[lo:hi])
                _add_in_place(dh[lo:hi], carry[lo:hi])

    split_batch(n, steps)
    _recurrent_gradient(h, dAr, dU)
    if db_rec.shape[0] > 0:
        _column_sums(dAr.reshape((T * n, 3 * units)), db_rec)
    _input_gradients(xt, W, dAx, dW, db_in, dxt, dX, compute_dx)
