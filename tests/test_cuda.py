"""The CUDA device from a plain (CPU) run: clear errors without a GPU, and the simulator suite.

The simulator must be switched on before numba is imported, so ``tests/cuda_sim`` runs in a
subprocess with ``NUMBA_ENABLE_CUDASIM=1`` (every CUDA kernel against its CPU twin, training runs).
"""

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

import fastdnn as fd
from fastdnn import backend, config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HAS_NUMBA_CUDA = importlib.util.find_spec("numba_cuda") is not None

needs_no_gpu = pytest.mark.skipif(backend.cuda_available(), reason="this machine has a usable CUDA device")


def _model():
    return fd.Sequential([fd.layers.Dense(3, input_shape=(4,))])


@needs_no_gpu
def test_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(ValueError, match=r"^device: 'cuda' was asked for, but CUDA is unavailable: .*device='cpu'"):
        _model().compile(optimizer="sgd", loss="mse", device="cuda")


@needs_no_gpu
def test_config_default_device_applies_and_is_checked(monkeypatch):
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


@needs_no_gpu
def test_gradcheck_cli_without_cuda_exits_2(capsys):
    from fastdnn.verify.cli import main

    assert main(["--device", "cuda"]) == 2
    assert "CUDA is unavailable" in capsys.readouterr().err


@pytest.mark.skipif(not HAS_NUMBA_CUDA, reason="numba-cuda (the cuda extra) is not installed")
def test_cuda_kernels_and_training_under_the_simulator():
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", os.path.join("tests", "cuda_sim")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    tail = (result.stdout + result.stderr)[-6000:]
    assert result.returncode == 0, tail
    assert " passed" in result.stdout, tail
    # Only the real-GPU compile checks may skip, and only where no NVVM is installed (the cuda extra
    # does not bring one: it comes with a CUDA toolkit or numba-cuda[cu12]/[cu13]).
    skips = [line for line in result.stdout.splitlines() if line.startswith("SKIPPED")]
    assert all("no NVVM" in line for line in skips), tail
