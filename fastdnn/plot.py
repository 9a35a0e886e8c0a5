"""Plots of training curves and activation functions (the optional ``plot`` extra: matplotlib).

Both functions return a matplotlib ``Figure`` and, given ``path``, save it as a PNG. They use the
non-interactive Agg backend when no display is configured, so they work on servers and in CI.
"""

import numpy as np

from fastdnn import activations as activations_module
from fastdnn import validation


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ImportError("fastdnn.plot needs matplotlib: pip install 'fastdnn[plot]'") from None
    if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline") and not _has_display():
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _has_display():
    import os

    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _save(figure, path):
    if path is not None:
        figure.savefig(path, dpi=110, bbox_inches="tight")
    return figure


def history(history, path=None, metrics=None):
    """Loss and metric curves, training and validation, one panel per quantity.

    Parameters
    ----------
    history : History or dict
        What ``fit`` returned (or its ``.history`` dict).
    path : str, optional
        Save the figure there as a PNG.
    metrics : list of str, optional
        Quantities to plot (default: ``loss`` and every metric logged, without the ``val_`` prefix).

    Returns
    -------
    matplotlib.figure.Figure
    """
    logs = getattr(history, "history", history)
    if not isinstance(logs, dict) or not logs:
        raise TypeError(f"history: expected what fit() returned (or its .history dict), received {validation.describe(history)}")
    names = metrics or [key for key in logs if not key.startswith("val_") and key != "learning_rate"]
    missing = [name for name in names if name not in logs]
    if missing:
        raise ValueError(f"metrics: {missing} not in the history; available: {sorted(logs)}")
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.2), squeeze=False)
    for axis, name in zip(axes[0], names):
        epochs = np.arange(1, len(logs[name]) + 1)
        axis.plot(epochs, logs[name], label="training", color="tab:blue")
        if f"val_{name}" in logs:
            axis.plot(epochs, logs[f"val_{name}"], label="validation", color="tab:orange")
        axis.set_xlabel("epoch")
        axis.set_title(name)
        axis.grid(alpha=0.3)
        axis.legend()
    figure.tight_layout()
    return _save(figure, path)


def activations(names=None, path=None, x_range=(-4.0, 4.0)):
    """Each activation and its derivative on a grid (softmax over the pair ``(x, 0)``).

    Parameters
    ----------
    names : list of str, optional
        Activations to draw (default: every registered one).
    path : str, optional
        Save the figure there as a PNG.
    x_range : (float, float)

    Returns
    -------
    matplotlib.figure.Figure
    """
    names = names or activations_module.registry.names()
    functions = [activations_module.get(name) for name in names]
    low = validation.real_number(x_range[0], "x_range[0]")
    high = validation.real_number(x_range[1], "x_range[1]", low=low, low_inclusive=False)
    plt = _pyplot()
    columns = min(5, len(functions))
    rows = -(-len(functions) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.0 * columns, 2.6 * rows), squeeze=False)
    x = np.linspace(low, high, 401)
    for axis, function in zip(axes.flat, functions):
        if function.name == "softmax":
            z = np.stack([x, np.zeros_like(x)], axis=1)  # first component of softmax([x, 0]) = sigmoid(x)
            y = function(z)[:, 0]
            upstream = np.zeros_like(z)
            upstream[:, 0] = 1.0
            dy = function.backward(z, upstream)[:, 0]
            title = "softmax([x, 0])[0]"
        else:
            z = x.reshape(-1, 1)
            y = function(z)[:, 0]
            dy = function.backward(z, np.ones_like(z))[:, 0]
            title = function.name
        axis.plot(x, y, label="f(x)", color="tab:blue")
        axis.plot(x, dy, label="f'(x)", color="tab:red", linestyle="--")
        axis.axhline(0, color="black", linewidth=0.5)
        axis.axvline(0, color="black", linewidth=0.5)
        axis.set_title(title)
        axis.grid(alpha=0.3)
    for axis in list(axes.flat)[len(functions) :]:
        axis.axis("off")
    axes.flat[0].legend(loc="upper left")
    figure.tight_layout()
    return _save(figure, path)
