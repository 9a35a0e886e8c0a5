"""Recurrent kernels: SimpleRNN, LSTM and GRU, forward over time and backpropagation through time.

Layout. The input ``x`` is ``(n, T, D)`` (batch, time, features), as in Keras. The kernels copy it
time-major into ``xt`` ``(T, n, D)`` so that every step reads contiguous rows, and so that the input
projection of all steps is ONE gemm, ``(T n, D) x (D, G)``; only the recurrent products ``h_{t-1} U``
remain per step. The states ``h`` (and the LSTM's ``c``) are ``(T + 1, n, units)`` with step 0 the
zero initial state. The output ``y`` is ``(n, T, units)`` with ``return_sequences``, else
``(n, 1, units)`` (the last state); the upstream gradient comes in the same shape.

In the backward pass the per-step work is the elementwise chain rule and one product with ``U^T``;
the pre-activation gradients of all steps are kept (``dA``, time-major), so that the weight gradients
are again single gemms over all steps: ``dW = X^T dA``, ``dU = H_{0..T-1}^T dA``, ``db = sum dA``,
``dX = dA W^T``.

Activations are kernel codes (see ``activation``) whose derivative follows from the output alone
(linear, sigmoid, tanh, relu, leaky relu, softplus): ``f'`` is evaluated from ``y = f(z)``.

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

from fastdnn.kernels.cpu.activation import derivative_scalar, forward_scalar
from fastdnn.kernels.jit import jit

_ONE = np.float32(1.0)


# -- shared steps -----------------------------------------------------------------------------------


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


@jit
def _input_projection(x, W, b, xt, A):
    """``xt`` = ``x`` time-major; ``A[t] = x_t W + b`` for every step in one gemm (``b`` may be empty)."""
    n, T, D = x.shape
    G = W.shape[1]
    _to_time_major(x, xt)
    A2 = A.reshape((T * n, G))
    np.dot(xt.reshape((T * n, D)), W, A2)
    if b.shape[0] > 0:
        for r in range(T * n):
            for j in range(G):
                A2[r, j] += b[j]


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


@jit
def _input_gradients(xt, W, dA, dW, db, dxt, dX, compute_dx):
    """``dW = X^T dA``, ``db = sum dA`` (if non-empty), and ``dX = dA W^T`` back in batch-major order."""
    T, n, D = xt.shape
    G = dA.shape[2]
    dA2 = dA.reshape((T * n, G))
    np.dot(xt.reshape((T * n, D)).T, dA2, dW)
    if db.shape[0] > 0:
        _column_sums(dA2, db)
    if compute_dx:
        np.dot(dA2, W.T, dxt.reshape((T * n, D)))
        _from_time_major(dxt, dX)


@jit
def _recurrent_gradient(h, dA, dU):
    """``dU = sum_t h_{t-1}^T dA_t`` as one gemm over the states 0..T-1."""
    T, n, G = dA.shape
    units = h.shape[2]
    np.dot(h[:T].reshape((T * n, units)).T, dA.reshape((T * n, G)), dU)


@jit
def _column_sums(a, out):
    """``out[j] = sum_r a[r, j]``."""
    rows, G = a.shape
    out[:] = 0
    for r in range(rows):
        for j in range(G):
            out[j] += a[r, j]


# -- SimpleRNN --------------------------------------------------------------------------------------


@jit
def simple_rnn_forward(x, W, U, b, code, alpha, xt, rec, h, y):
    """``h_t = f(x_t W + h_{t-1} U + b)``; ``h`` (T + 1, n, units) keeps every state, ``y`` the outputs.

    ``h[1:]`` first receives the input projections; each step then turns its own into the state.
    ``rec`` (n, units) is scratch for ``h_{t-1} U``.
    """
    n, T, D = x.shape
    units = U.shape[0]
    _input_projection(x, W, b, xt, h[1:])
    h[0] = 0
    for t in range(T):
        np.dot(h[t], U, rec)
        a = h[t + 1]
        for bi in range(n):
            for j in range(units):
                a[bi, j] = forward_scalar(code, a[bi, j] + rec[bi, j], alpha)
    _write_output(h, y)


@jit
def simple_rnn_backward(xt, W, U, h, dLdY, code, alpha, dh, dA, dW, dU, db, dxt, dX, compute_dx):
    """BPTT: ``dA_t = (dL/dh_t) * f'(h_t)``, ``dL/dh_{t-1} = dA_t U^T`` (plus its own output gradient).

    ``dh`` (n, units) is scratch; ``dA`` (T, n, units) keeps every step's pre-activation gradient.
    """
    T, n, D = xt.shape
    units = U.shape[0]
    dh[...] = 0
    for t in range(T - 1, -1, -1):
        _add_output_gradient(dLdY, t, T, dh)
        state = h[t + 1]
        dA_t = dA[t]
        for bi in range(n):
            for j in range(units):
                y = state[bi, j]
                dA_t[bi, j] = dh[bi, j] * derivative_scalar(code, y, y, alpha)
        if t > 0:
            np.dot(dA_t, U.T, dh)
    _recurrent_gradient(h, dA, dU)
    _input_gradients(xt, W, dA, dW, db, dxt, dX, compute_dx)


# -- LSTM -------------------------------------------------------------------------------------------


@jit
def lstm_forward(x, W, U, b, act, act_alpha, ract, ract_alpha, xt, rec, gates, c, h, tc, y):
    """LSTM over all steps (see the module docstring).

    ``gates`` (T, n, 4 units) receives the input projections, then each step's gate values
    ``[i, f, g, o]``; ``c``, ``h`` (T + 1, n, units) the states; ``tc`` (T, n, units) ``f(c_t)``;
    ``rec`` (n, 4 units) is scratch for ``h_{t-1} U``.
    """
    n, T, D = x.shape
    units = U.shape[0]
    _input_projection(x, W, b, xt, gates)
    h[0] = 0
    c[0] = 0
    for t in range(T):
        np.dot(h[t], U, rec)
        g_t = gates[t]
        c_prev = c[t]
        c_t = c[t + 1]
        h_t = h[t + 1]
        tc_t = tc[t]
        for bi in range(n):
            for j in range(units):
                i_gate = forward_scalar(ract, g_t[bi, j] + rec[bi, j], ract_alpha)
                f_gate = forward_scalar(ract, g_t[bi, units + j] + rec[bi, units + j], ract_alpha)
                cand = forward_scalar(act, g_t[bi, 2 * units + j] + rec[bi, 2 * units + j], act_alpha)
                o_gate = forward_scalar(ract, g_t[bi, 3 * units + j] + rec[bi, 3 * units + j], ract_alpha)
                cell = f_gate * c_prev[bi, j] + i_gate * cand
                squashed = forward_scalar(act, cell, act_alpha)
                c_t[bi, j] = cell
                tc_t[bi, j] = squashed
                h_t[bi, j] = o_gate * squashed
                g_t[bi, j] = i_gate
                g_t[bi, units + j] = f_gate
                g_t[bi, 2 * units + j] = cand
                g_t[bi, 3 * units + j] = o_gate
    _write_output(h, y)


@jit
def lstm_backward(xt, W, U, gates, c, h, tc, dLdY, act, act_alpha, ract, ract_alpha, dh, dc, dA, dW, dU, db, dxt, dX, compute_dx):
    """BPTT through the LSTM; ``dh``, ``dc`` (n, units) scratch, ``dA`` (T, n, 4 units) the gate gradients.

    Per step, with ``dh`` the gradient reaching ``h_t`` and ``dc`` the one reaching ``c_t`` from step t+1::

        do = dh f(c_t);   dc += dh o f'(c_t)
        di = dc g;  dg = dc i;  df = dc c_{t-1};   dc <- dc f   (for step t-1)
        dA_t = [di s'(i), df s'(f), dg f'(g), do s'(o)];   dh <- dA_t U^T
    """
    T, n, D = xt.shape
    units = U.shape[0]
    dh[...] = 0
    dc[...] = 0
    for t in range(T - 1, -1, -1):
        _add_output_gradient(dLdY, t, T, dh)
        g_t = gates[t]
        c_prev = c[t]
        tc_t = tc[t]
        dA_t = dA[t]
        for bi in range(n):
            for j in range(units):
                i_gate = g_t[bi, j]
                f_gate = g_t[bi, units + j]
                cand = g_t[bi, 2 * units + j]
                o_gate = g_t[bi, 3 * units + j]
                squashed = tc_t[bi, j]
                dh_j = dh[bi, j]
                d_o = dh_j * squashed
                d_c = dc[bi, j] + dh_j * o_gate * derivative_scalar(act, squashed, squashed, act_alpha)
                dc[bi, j] = d_c * f_gate
                dA_t[bi, j] = d_c * cand * derivative_scalar(ract, i_gate, i_gate, ract_alpha)
                dA_t[bi, units + j] = d_c * c_prev[bi, j] * derivative_scalar(ract, f_gate, f_gate, ract_alpha)
                dA_t[bi, 2 * units + j] = d_c * i_gate * derivative_scalar(act, cand, cand, act_alpha)
                dA_t[bi, 3 * units + j] = d_o * derivative_scalar(ract, o_gate, o_gate, ract_alpha)
        if t > 0:
            np.dot(dA_t, U.T, dh)
    _recurrent_gradient(h, dA, dU)
    _input_gradients(xt, W, dA, dW, db, dxt, dX, compute_dx)


# -- GRU (reset_after) ------------------------------------------------------------------------------


@jit
def gru_forward(x, W, U, b_in, b_rec, act, act_alpha, ract, ract_alpha, xt, rec, gates, rh, h, y):
    """GRU with the reset gate applied after the recurrent product (see the module docstring).

    ``gates`` (T, n, 3 units) receives ``x_t W + b_in``, then each step's ``[z, r, hh]``; ``rh``
    (T, n, units) keeps ``v_h = (h_{t-1} U + b_rec)_h``; ``h`` (T + 1, n, units) the states; ``rec``
    (n, 3 units) is scratch. ``b_in``, ``b_rec`` are both empty without bias.
    """
    n, T, D = x.shape
    units = U.shape[0]
    has_bias = b_rec.shape[0] > 0
    _input_projection(x, W, b_in, xt, gates)
    h[0] = 0
    for t in range(T):
        np.dot(h[t], U, rec)
        if has_bias:
            for bi in range(n):
                for j in range(3 * units):
                    rec[bi, j] += b_rec[j]
        g_t = gates[t]
        h_prev = h[t]
        h_t = h[t + 1]
        rh_t = rh[t]
        for bi in range(n):
            for j in range(units):
                z = forward_scalar(ract, g_t[bi, j] + rec[bi, j], ract_alpha)
                r = forward_scalar(ract, g_t[bi, units + j] + rec[bi, units + j], ract_alpha)
                v_h = rec[bi, 2 * units + j]
                cand = forward_scalar(act, g_t[bi, 2 * units + j] + r * v_h, act_alpha)
                h_t[bi, j] = z * h_prev[bi, j] + (_ONE - z) * cand
                g_t[bi, j] = z
                g_t[bi, units + j] = r
                g_t[bi, 2 * units + j] = cand
                rh_t[bi, j] = v_h
    _write_output(h, y)


@jit
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
    for t in range(T - 1, -1, -1):
        _add_output_gradient(dLdY, t, T, dh)
        g_t = gates[t]
        h_prev = h[t]
        rh_t = rh[t]
        dAx_t = dAx[t]
        dAr_t = dAr[t]
        for bi in range(n):
            for j in range(units):
                z = g_t[bi, j]
                r = g_t[bi, units + j]
                cand = g_t[bi, 2 * units + j]
                dh_j = dh[bi, j]
                a_z = dh_j * (h_prev[bi, j] - cand) * derivative_scalar(ract, z, z, ract_alpha)
                a_h = dh_j * (_ONE - z) * derivative_scalar(act, cand, cand, act_alpha)
                a_r = a_h * rh_t[bi, j] * derivative_scalar(ract, r, r, ract_alpha)
                dAx_t[bi, j] = a_z
                dAx_t[bi, units + j] = a_r
                dAx_t[bi, 2 * units + j] = a_h
                dAr_t[bi, j] = a_z
                dAr_t[bi, units + j] = a_r
                dAr_t[bi, 2 * units + j] = a_h * r
                carry[bi, j] = dh_j * z
        if t > 0:
            np.dot(dAr_t, U.T, dh)
            for bi in range(n):
                for j in range(units):
                    dh[bi, j] += carry[bi, j]
    _recurrent_gradient(h, dAr, dU)
    if db_rec.shape[0] > 0:
        _column_sums(dAr.reshape((T * n, 3 * units)), db_rec)
    _input_gradients(xt, W, dAx, dW, db_in, dxt, dX, compute_dx)
