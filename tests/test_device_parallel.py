"""Data-parallel training on ``device="cuda"``: ONE ``mpirun -n 2`` launch in numba's CUDA simulator
(tests/mpi/train_on_device_ranks.py), every result of it checked by one test; the GPU choice, the
environment switches and the two gradient transports also in-process.
"""

import json
import os

import numpy as np
import pytest

import fastdnn as fd
from fastdnn import backend, device_parallel, distributed
from tests.mpi import device_models
from tests.test_distributed import _missing_mpi

needs_mpi = pytest.mark.skipif(_missing_mpi() is not None, reason=f"needs real MPI processes: {_missing_mpi()}")
needs_simulator = pytest.mark.skipif(not backend.simulating(), reason="runs in numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1)")
SCRIPT = os.path.join(os.path.dirname(__file__), "mpi", "train_on_device_ranks.py")


def _launch_two_ranks(out):
    """One ``mpirun -n 2`` launch of the script: its output folder, the result and each rank's report."""
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    environment = dict(
        os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
        PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p),
        NUMBA_ENABLE_CUDASIM="1", FASTDNN_CUDA_BLOCK="8", FASTDNN_CUDA_TILE="4", FASTDNN_CUDA_GEMM_REG="2",
    )
    for name in (device_parallel.SHARE_GPUS, device_parallel.CUDA_AWARE):
        environment.pop(name, None)
    command = ["mpirun", "--oversubscribe", "-n", "2", sys.executable, SCRIPT, str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=environment)
    assert result.returncode == 0, result.stdout + result.stderr
    reports = [json.loads((out / f"report-rank{r}.json").read_text()) for r in range(2)]
    return out, result, reports


def _one_process(kind):
    """The same model and global batches in one process on the CPU: the reference."""
    model = device_models.build(kind, "cpu")
    history = device_models.train(model, kind)
    return model.get_weights(), history.history


@needs_mpi
@needs_simulator
def test_data_parallel_on_two_simulated_gpus(tmp_path):
    """ONE launch (each costs seconds, and the simulator is slow), every check of it: one test, so that
    pytest-xdist never runs the launch twice."""
    out, result, reports = _launch_two_ranks(tmp_path)
    # staged: a graph model with two outputs; direct: batch norm (synchronized) and dropout, an empty shard
    for transport, kind in (("staged", "graph"), ("direct", "norm")):
        _trains_like_one_process(out, result, reports, transport, kind)
    _unsynchronized_batch_norm_follows_the_cpu_ranks(out, reports)
    _bad_device_setups_raise_the_same_error_on_every_rank(reports)


def _trains_like_one_process(out, result, reports, transport, kind):
    weights, history = _one_process(kind)
    ranks = [np.load(out / f"{transport}-weights-rank{r}.npz") for r in range(2)]
    for key in ranks[0].files:  # every rank holds the same model, bit for bit
        np.testing.assert_array_equal(ranks[0][key], ranks[1][key])
    for key, expected in zip(ranks[0].files, weights):  # and it is one process's, to float32 round-off
        np.testing.assert_allclose(ranks[0][key], expected, rtol=2e-5, atol=2e-6)
    # losses, metrics and validation are summed over the ranks: one process's numbers, on every rank
    for report in reports:
        assert report[transport]["transport"] == {"staged": "staged", "direct": "cuda-aware"}[transport]
        assert set(report[transport]["history"]) == set(history)
        for key, values in history.items():
            np.testing.assert_allclose(report[transport]["history"][key], values, rtol=1e-5, atol=1e-6, err_msg=key)
    # only rank 0 prints progress and writes logs
    assert result.stdout.count(f"Epoch {device_models.EPOCHS}/{device_models.EPOCHS}") == 4  # once per fit
    assert (out / f"{transport}-log-rank0.csv").exists() and not (out / f"{transport}-log-rank1.csv").exists()


def _bad_device_setups_raise_the_same_error_on_every_rank(reports):
    # more ranks on the host than GPUs (the simulator has one): named, with the rank and the ways out
    too_many = {report["too_many_ranks"] for report in reports}
    assert len(too_many) == 1, too_many
    message = too_many.pop()
    assert message.startswith("device: rank 1 of 2 (local rank 1 on host "), message
    assert "more ranks than its 1 GPU(s)" in message and "FASTDNN_SHARE_GPUS=1" in message
    # ranks compiled for different devices
    disagree = {report["disagree"] for report in reports}
    assert disagree == {'fit: the 2 ranks disagree on device: rank 0 has "cuda", rank 1 has "cpu". Every rank must run the same model on the same data'}
    # a rank that cannot use CUDA at all: compile passed there, fit names it on both ranks
    assert {report["no_cuda"] for report in reports} == {"device: rank 1 of 2 cannot use CUDA: no CUDA driver on this test rank [on rank 1 of 2]"}
    # a malformed switch: refused before training, on every rank
    assert {report["malformed"] for report in reports} == {"FASTDNN_CUDA_AWARE_MPI: expected 1 or 0 (true/false, yes/no, on/off), received 'maybe' [on rank 0 of 2]"}
    # weights that overflow: every rank sees the same summed loss and raises the same error
    diverged = {report["diverged"] for report in reports}
    assert len(diverged) == 1 and next(iter(diverged)).startswith("learning_rate: training diverged at epoch 1, batch "), diverged


def test_compile_on_one_of_several_ranks_leaves_a_missing_gpu_to_fit(monkeypatch):
    monkeypatch.setattr(backend, "cuda_unavailable_reason", lambda: "no driver here")

    def compiled():
        model = fd.Sequential([fd.layers.Dense(2, input_shape=(3,))])
        model.compile(loss="mse", device="cuda")
        return model

    for name in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match="device: 'cuda' was asked for, but CUDA is unavailable: no driver here"):
        compiled()
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "2")  # one of two ranks: the error waits for fit's agreement
    assert compiled()._device == "cuda"


@pytest.mark.parametrize(
    "local_rank, gpus, own, share, expected",
    [(0, 2, False, False, 0), (1, 2, False, False, 1), (3, 2, False, True, 1), (1, 1, True, False, 0), (2, 1, False, True, 0)],
)
def test_each_rank_gets_the_gpu_of_its_local_rank(local_rank, gpus, own, share, expected):
    assert device_parallel.choose_gpu(local_rank, 4, local_rank, gpus, own, share) == expected


def test_a_rank_without_a_gpu_of_its_own_is_named():
    with pytest.raises(ValueError, match=r"device: rank 5 of 6 \(local rank 2 on host .*\) has no GPU of its own: this host runs more ranks than its 2 GPU\(s\)"):
        device_parallel.choose_gpu(5, 6, 2, 2, False, False)
    with pytest.raises(ValueError, match=r"device: rank 1 of 2 \(local rank 1 on host .*\) sees no GPU"):
        device_parallel.choose_gpu(1, 2, 1, 0, True, True)


def test_the_environment_switches_are_read_strictly(monkeypatch):
    monkeypatch.setenv(device_parallel.CUDA_AWARE, "1")
    assert device_parallel.cuda_aware_mpi() == (True, "FASTDNN_CUDA_AWARE_MPI=1")
    monkeypatch.setenv(device_parallel.CUDA_AWARE, "off")
    assert device_parallel.cuda_aware_mpi()[0] is False
    monkeypatch.setenv(device_parallel.CUDA_AWARE, "maybe")
    with pytest.raises(ValueError, match="FASTDNN_CUDA_AWARE_MPI: expected 1 or 0 .*received 'maybe'"):
        device_parallel.cuda_aware_mpi()


def test_the_mpi_library_is_asked_whether_it_is_cuda_aware(monkeypatch):
    pytest.importorskip("mpi4py")
    monkeypatch.delenv(device_parallel.CUDA_AWARE, raising=False)
    supported, how = device_parallel.cuda_aware_mpi()
    # this machine's Open MPI is built without CUDA: its extension answers 0
    assert isinstance(supported, bool) and ("MPIX_Query_cuda_support()" in how or "mpi_memory_alloc_kinds" in how or "does not say" in how)


class _TwoRanks(distributed.SingleProcess):
    """A strategy whose "other rank" contributed ``other`` (gradients and loss): reduce_step adds it."""

    size = 2

    def __init__(self, other):
        self.other = other

    def reduce_step(self, store, loss_value, n_local, n_global):
        buffer = store.reduction
        buffer[-1] = loss_value * (n_local / n_global) if n_local else 0.0
        buffer += self.other
        return float(buffer[-1])


@needs_simulator
@pytest.mark.parametrize("direct", [False, True])
def test_both_transports_sum_the_device_gradients_in_place(direct):
    from numba import cuda

    other = np.array([1.0, 2.0, 3.0, 0.25], dtype=np.float32)  # three gradients, the other rank's loss share
    mine = np.array([0.5, -1.0, 4.0, 99.0], dtype=np.float32)  # the slot after the gradients is overwritten
    reduction = cuda.to_device(mine)
    transport = device_parallel.GradientReduction(_TwoRanks(other), reduction, direct)
    assert transport.kind == ("cuda-aware" if direct else "staged")
    loss = transport.step(0.5, 3, 4)  # this rank: 3 of the 4 rows, mean loss 0.5
    assert loss == pytest.approx(0.5 * 3 / 4 + 0.25)
    np.testing.assert_array_equal(reduction.copy_to_host()[:-1], [1.5, 1.0, 7.0])
    # a rank without rows in a batch contributes zeros
    assert transport.step(0.0, 0, 1) == pytest.approx(0.25)
    np.testing.assert_array_equal(reduction.copy_to_host()[:-1], other[:-1])
    # MPI is handed the device buffer itself (CUDA-aware; in the simulator its host storage), or a host copy of it
    handed = transport._device.reduction if direct else transport._host.reduction
    assert np.shares_memory(handed, reduction._ary) == direct


def _unsynchronized_batch_norm_follows_the_cpu_ranks(out, reports):
    """synchronized=False: each rank normalizes its shard, the moving statistics are averaged over the
    ranks after every step; the device ranks (their batches streamed from the host) do what the CPU
    ranks do, and stay identical."""
    assert reports[0]["streamed epochs"] == reports[1]["streamed epochs"] == device_models.EPOCHS
    devices = {device: [np.load(out / f"unsynchronized-{device}-weights-rank{r}.npz") for r in range(2)] for device in ("cuda", "cpu")}
    for ranks in devices.values():
        for key in ranks[0].files:  # moving statistics included: the same on every rank
            np.testing.assert_array_equal(ranks[0][key], ranks[1][key])
    for key in devices["cpu"][0].files:
        np.testing.assert_allclose(devices["cuda"][0][key], devices["cpu"][0][key], rtol=2e-5, atol=2e-6)
    for key, values in reports[0]["unsynchronized-cpu"]["history"].items():
        np.testing.assert_allclose(reports[0]["unsynchronized-cuda"]["history"][key], values, rtol=1e-5, atol=1e-6, err_msg=key)
    # and they differ from the synchronized model's: the setting is not ignored
    synchronized = np.load(out / "direct-weights-rank0.npz")
    assert not np.allclose(synchronized["arr_4"], devices["cuda"][0]["arr_4"])  # moving means


def test_the_gpu_guide_shows_the_error_as_raised(monkeypatch):
    monkeypatch.setattr(device_parallel.socket, "gethostname", lambda: "gpu1")
    with pytest.raises(ValueError) as raised:
        device_parallel.choose_gpu(4, 5, 4, 4, False, False)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "docs", "guides", "gpu.rst"), encoding="utf-8") as handle:
        guide = " ".join(handle.read().split())
    assert f"ValueError: {raised.value}" in guide


class _CountingRanks(distributed.SingleProcess):
    """Two ranks as one process sees them: the collectives are counted (the other rank adds nothing)."""

    size = 2

    def __init__(self):
        self.layer_collectives = 0

    def allreduce_sum(self, values):
        self.layer_collectives += 1
        return values


@needs_simulator
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # the simulator computes with NaN in NumPy
def test_a_rank_whose_loss_overflows_still_meets_the_others_in_the_layers_collectives(monkeypatch):
    """Synchronized batch norm sums over ranks in backward too: a rank that skipped backward on its own
    non-finite loss would leave the others waiting there. The step itself is skipped (the summed loss
    is not finite either)."""
    from numba import cuda

    monkeypatch.setenv(device_parallel.CUDA_AWARE, "0")
    fd.set_seed(0)
    model = fd.Sequential([fd.layers.Dense(3, input_shape=(4,)), fd.layers.BatchNormalization(), fd.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse", device="cuda")
    ranks = _CountingRanks()
    model._parallel = ranks
    model.layers[1].shard = distributed.Shard(ranks)
    model.layers[2].params["W"][0, 0] = np.inf  # this rank's loss: not finite
    engine = backend.engine_for(model)
    engine.push_params()
    before = engine.params.copy_to_host()
    engine._attach_optimizer()
    x = cuda.to_device(np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32))
    loss, _, _ = engine.train_step(x, cuda.to_device(np.zeros((5, 2), np.float32)), 10)
    engine._detach_optimizer()
    assert not np.isfinite(loss)
    assert ranks.layer_collectives == 2  # batch norm's forward sums and its backward sums
    np.testing.assert_array_equal(engine.params.copy_to_host(), before)  # (inf included)
