"""The CUDA device on a machine without one: clear errors. (The CUDA kernels themselves are tested in
``tests/cuda_sim``, under numba's simulator, which tests/conftest.py switches on for the session.)
"""

import importlib.util
import os

import numpy as np
import pytest

import fastdnn as fd
from fastdnn import config


@pytest.fixture
def no_gpu(monkeypatch):
    """A machine without a usable device, as numba.cuda reports it (whatever this one has, simulator included)."""
    try:
        from numba import cuda
    except ImportError:  # no numba.cuda at all: fastdnn reports that instead
        return
    monkeypatch.setattr(cuda, "is_available", lambda: False)


def _model():
    return fd.Sequential([fd.layers.Dense(3, input_shape=(4,))])


def test_cuda_without_a_gpu_is_a_clear_error(no_gpu):
    with pytest.raises(ValueError, match=r"^device: 'cuda' was asked for, but CUDA is unavailable: .*device='cpu'"):
        _model().compile(optimizer="sgd", loss="mse", device="cuda")


def test_config_default_device_applies_and_is_checked(no_gpu, monkeypatch):
    monkeypatch.setattr(config, "_DEVICE", "cuda")
    with pytest.raises(ValueError, match="device: 'cuda'"):
        _model().compile(optimizer="sgd", loss="mse")
    model = _model()
    model.compile(optimizer="sgd", loss="mse", device="cpu")
    assert model.predict(np.ones((2, 4), np.float32)).shape == (2, 3)


def test_unknown_device_names_are_refused():
    with pytest.raises(ValueError, match=r"device: expected one of \('cpu', 'cuda'\), received 'gpu'"):
        _model().compile(optimizer="sgd", loss="mse", device="gpu")
    with pytest.raises(ValueError, match="device"):
        fd.config.set_device("tpu")


def test_gradcheck_cli_without_cuda_exits_2(no_gpu, capsys):
    from fastdnn.verify.cli import main

    assert main(["--device", "cuda"]) == 2
    assert "CUDA is unavailable" in capsys.readouterr().err


@pytest.mark.skipif(importlib.util.find_spec("numba_cuda") is None, reason="numba-cuda (the cuda extra) is not installed")
@pytest.mark.skipif(os.environ.get("NUMBA_ENABLE_CUDASIM") == "0", reason="NUMBA_ENABLE_CUDASIM=0 keeps the simulator off")
def test_the_simulator_is_on_for_this_session():
    """tests/cuda_sim runs in this session: numba must have been imported with the simulator on."""
    from numba.core import config as numba_config

    assert numba_config.ENABLE_CUDASIM
