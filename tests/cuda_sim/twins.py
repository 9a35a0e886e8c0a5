"""The same model on the CPU and on the (simulated) device: build, train and compare the pair."""

import numpy as np

import fastdnn as fd


def pair(layers, **compile_kwargs):
    """``[cpu_model, cuda_model]`` from the same ``layers()`` and the same seed (the same weights)."""
    models = []
    for device in ("cpu", "cuda"):
        fd.set_seed(3)
        model = fd.Sequential(layers())
        model.compile(device=device, **compile_kwargs)
        models.append(model)
    return models


def fit_both(models, x, y, **fit_kwargs):
    """Fit each model with the same seed (the same shuffling order); their histories."""
    histories = []
    for model in models:
        fd.set_seed(11)
        histories.append(model.fit(x, y, verbose=0, **fit_kwargs).history)
    return histories


def assert_same(models, histories, tol=2e-5):
    """Equal histories and weights, and the device model's weights back on the host as NumPy arrays."""
    cpu, gpu = models
    for key in histories[0]:
        np.testing.assert_allclose(histories[1][key], histories[0][key], rtol=tol, atol=tol, err_msg=key)
    for a, b in zip(cpu.get_weights(), gpu.get_weights()):
        assert isinstance(b, np.ndarray)
        np.testing.assert_allclose(b, a, rtol=tol, atol=tol)
