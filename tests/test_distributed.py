"""Data-parallel training over MPI, with real processes: ``mpirun -n 2``.

Skipped where mpirun or mpi4py is missing; CI installs Open MPI and the ``mpi`` extra.
"""

import ast
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import fastdnn as fd
from fastdnn import distributed

SCRIPT = os.path.join(os.path.dirname(__file__), "mpi", "train_on_ranks.py")
FAMILIES_SCRIPT = os.path.join(os.path.dirname(__file__), "mpi", "families_on_ranks.py")

def _missing_mpi():
    """Why the multi-process tests cannot run here, or None: each missing piece named with its install."""
    missing = []
    if shutil.which("mpirun") is None:
        missing.append("no mpirun on PATH (apt-get install openmpi-bin libopenmpi-dev)")
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        missing.append("mpi4py is not installed (pip install '.[mpi]')")
    return "; ".join(missing) or None


needs_mpi = pytest.mark.skipif(_missing_mpi() is not None, reason=f"needs real MPI processes: {_missing_mpi()}")


def _mpirun(ranks, *args, timeout=300, script=SCRIPT):
    # PYTHONPATH: the ranks import this checkout's fastdnn (the script's folder comes first on sys.path,
    # so without it they would import whichever fastdnn is installed)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    environment = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", PYTHONPATH=path)
    command = ["mpirun", "--oversubscribe", "-n", str(ranks), sys.executable, script, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=environment)


def _dataset(tmp_path, batch_size, n=203, weighted=False):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(int) + (x[:, 2] > 1).astype(int)
    extra = {"sample_weight": rng.uniform(0.0, 3.0, n)} if weighted else {}
    np.savez(tmp_path / "data.npz", x=x, y=y, batch_size=batch_size, **extra)
    return (x, y, extra["sample_weight"]) if weighted else (x, y)


def _one_process(x, y, batch_size, **weights):
    fd.set_seed(5)
    single = fd.Sequential([fd.layers.Dense(16, activation="tanh", input_shape=(6,)), fd.layers.Dense(3, activation="softmax")])
    single.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return single, single.fit(x, y, batch_size=batch_size, epochs=3, validation_split=0.2, verbose=0, **weights).history


@needs_mpi
def test_two_ranks_train_like_one_process_with_the_same_global_batch(tmp_path):
    # one launch, three runs: batch 32; batch 7 (shards of 4 and 3 rows, an uneven last batch); batch 7
    # with sample weights (each rank's loss is over its own rows)
    runs = {"b32": (32, False), "b7": (7, False), "b7-weighted": (7, True)}
    for name, (batch_size, weighted) in runs.items():
        (tmp_path / name).mkdir()
        _dataset(tmp_path / name, batch_size, weighted=weighted)
    result = _mpirun(2, "train", *(str(tmp_path / name) for name in runs))
    assert result.returncode == 0, result.stdout + result.stderr
    for name, (batch_size, weighted) in runs.items():
        folder = tmp_path / name
        x, y, *weights = _dataset(folder, batch_size, weighted=weighted)
        ranks = [np.load(folder / f"weights-rank{r}.npz") for r in range(2)]
        for key in ranks[0].files:  # every rank ends with identical weights
            np.testing.assert_array_equal(ranks[0][key], ranks[1][key], err_msg=name)
        single, history = _one_process(x, y, batch_size, **({"sample_weight": weights[0]} if weighted else {}))
        for key, expected in zip(ranks[0].files, single.get_weights()):
            np.testing.assert_allclose(ranks[0][key], expected, rtol=2e-5, atol=2e-6, err_msg=name)
        # losses, metrics and validation are reduced over the ranks: the same numbers as one process
        logged = ast.literal_eval((folder / "history-rank1.txt").read_text())
        for key in ("loss", "val_loss") if weighted else ("loss", "accuracy", "val_loss", "val_accuracy"):
            np.testing.assert_allclose(logged[key], history[key], rtol=1e-4, atol=1e-6, err_msg=f"{name}: {key}")
        # only rank 0 writes logs
        assert (folder / "log-rank0.csv").exists() and not (folder / "log-rank1.csv").exists(), name
    # and only rank 0 prints progress: one "Epoch 3/3" per run
    assert result.stdout.count("Epoch 3/3") == len(runs), result.stdout


@needs_mpi
def test_ranks_that_disagree_on_the_data_all_get_the_same_error(tmp_path):
    _dataset(tmp_path, 32)
    result = _mpirun(2, "disagree", str(tmp_path), timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr  # every rank raised, none waited for the others
    errors = [(tmp_path / f"error-rank{rank}.txt").read_text() for rank in range(2)]
    assert errors[0] == errors[1], errors  # the same error on both ranks
    assert "x: rank 0 has [[162, 6]" in errors[0] and errors[0].startswith("fit: the 2 ranks disagree on validation"), errors[0]


@needs_mpi
def test_a_rank_that_raises_ends_the_whole_job(tmp_path):
    _dataset(tmp_path, 32)
    result = _mpirun(2, "crash", str(tmp_path), timeout=120)
    assert result.returncode != 0
    assert "simulated failure on rank 1" in result.stderr
    assert "rank 1 of 2 failed; aborting the job" in result.stderr


def _rank_results(folder, name, ranks):
    """Each rank's weights and history of one run of tests/mpi/families_on_ranks.py."""
    results = []
    for rank in range(ranks):
        with np.load(folder / f"{name}-rank{rank}.npz") as saved:
            weights = [saved[f"arr_{i}"] for i in range(len(saved.files) - 1)]
            results.append((weights, json.loads(str(saved["history"]))))
    return results


def _assert_like_one_process(results, model, history, what):
    weights, logged = results[0]
    for rank, (other, other_logged) in enumerate(results[1:], 1):  # every rank holds the same model, bit for bit
        for k, (a, b) in enumerate(zip(weights, other)):
            np.testing.assert_array_equal(b, a, err_msg=f"{what}: rank {rank}, weight {k}")
        assert other_logged == logged, what
    expected = model.get_weights()
    assert len(weights) == len(expected), what
    for k, (a, b) in enumerate(zip(weights, expected)):  # one process on the same global batches
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6, err_msg=f"{what}: weight {k}")
    assert sorted(logged) == sorted(history), what
    for key in history:
        np.testing.assert_allclose(logged[key], history[key], rtol=1e-5, atol=1e-6, err_msg=f"{what}: {key}")


@needs_mpi
def test_every_layer_family_trains_like_one_process_on_2_and_3_ranks_and_resumes_across_rank_counts(tmp_path):
    """ONE launch per rank count trains every family (tests/mpi/families.py); the 3-rank launch also
    resumes a checkpoint that rank 0 of the 2-rank launch wrote."""
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "mpi"))
    try:
        import families
    finally:
        sys.path.pop(0)
    two, three = tmp_path / "two", tmp_path / "three"
    two.mkdir()
    three.mkdir()
    result = _mpirun(2, str(two), script=FAMILIES_SCRIPT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    checkpoint = two / "ckpt-2.fdnn"
    assert sorted(p.name for p in two.glob("ckpt-*")) == [f"ckpt-{e}.fdnn" for e in (1, 2, 3, 4)]
    result = _mpirun(3, str(three), str(checkpoint), script=FAMILIES_SCRIPT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    for name in families.FAMILIES:
        model, history = families.train(name)
        for folder, ranks in ((two, 2), (three, 3)):
            _assert_like_one_process(_rank_results(folder, name, ranks), model, history, f"{name} on {ranks} ranks")

    # per-shard statistics (synchronized=False): not one process's training, but replicas that never drift
    for folder, ranks in ((two, 2), (three, 3)):
        results = _rank_results(folder, "per-shard", ranks)
        for weights, logged in results[1:]:
            for a, b in zip(weights, results[0][0]):
                np.testing.assert_array_equal(a, b)
            assert logged == results[0][1]
        synchronized = _rank_results(folder, "batch_norm", 1)[0][0]
        assert not np.allclose(results[0][0][3], synchronized[3])  # the moving means: other statistics

    # the checkpoint of epoch 2 of a 2-rank run, resumed in 3 ranks and in 1, continues that run
    uninterrupted, history = families.train("graph", epochs=4)
    for folder, ranks in ((two, 2), (three, 3)):
        _assert_like_one_process(_rank_results(folder, "graph-4-epochs", ranks), uninterrupted, history, f"4 epochs on {ranks} ranks")
    _, x, y = families.build("graph")
    resumed, resumed_history = families.resume(checkpoint, x, y)
    for a, b in zip(resumed.get_weights(), uninterrupted.get_weights()):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)
    assert resumed.optimizer.iterations == uninterrupted.optimizer.iterations == 4 * 5
    _assert_like_one_process(_rank_results(three, "resumed", 3), resumed, resumed_history, "resumed on 3 ranks")
    for key, values in resumed_history.items():
        np.testing.assert_allclose(values, history[key][2:], rtol=1e-5, atol=1e-6, err_msg=key)

    # ranks that disagree on synchronized all raise the same error, which names the setting
    for folder, ranks in ((two, 2), (three, 3)):
        messages = {(folder / f"disagree-rank{r}.txt").read_text() for r in range(ranks)}
        assert messages == {
            f"fit: the {ranks} ranks disagree on model.layers[1].config.synchronized: rank 0 has null, "
            + ", ".join(f"rank {r} has {'false' if r == 1 else 'null'}" for r in range(1, ranks))
            + ". Every rank must run the same model on the same data"
        }


def test_without_mpi_the_same_script_trains_as_one_process():
    model = fd.Sequential([fd.layers.Dense(2, activation="softmax", input_shape=(3,))])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    assert distributed.data_parallel(model) is model
    assert model._parallel.size == 1 and model._parallel.is_root
    history = model.fit(np.zeros((8, 3)), np.zeros(8, dtype=int), epochs=2, verbose=0)
    assert len(history.epoch) == 2
    with pytest.raises(TypeError, match="model: expected a fastdnn.Model or Sequential"):
        distributed.data_parallel("model")


def test_shards_split_a_batch_like_array_split():
    class FakeComm:
        def __init__(self, rank, size):
            self.rank, self.size = rank, size

        def Get_rank(self):
            return self.rank

        def Get_size(self):
            return self.size

    pytest.importorskip("mpi4py")
    for total, size in [(10, 3), (2, 4), (7, 2), (32, 2)]:
        shards = [distributed.MPIDataParallel(FakeComm(rank, size)).shard(5, 5 + total) for rank in range(size)]
        expected = np.array_split(np.arange(5, 5 + total), size)
        assert [list(range(lo, hi)) for lo, hi in shards] == [list(part) for part in expected]


def test_ranks_on_different_devices_get_an_error_naming_the_device():
    """fit's agreement check covers the device: a fake second rank that compiled for "cuda"."""
    pytest.importorskip("mpi4py")

    class OtherRankOnCuda:
        def Get_rank(self):
            return 0

        def Get_size(self):
            return 2

        def allgather(self, mine):
            description, error = mine
            other = json.loads(description)
            other["device"] = "cuda"
            return [mine, (json.dumps(other, sort_keys=True), error)]

    model = fd.Sequential([fd.layers.Dense(2, input_shape=(3,))])
    model.compile(optimizer="sgd", loss="mse")
    distributed.data_parallel(model, comm=OtherRankOnCuda())
    with pytest.raises(ValueError, match='fit: the 2 ranks disagree on device: rank 0 has "cpu", rank 1 has "cuda"'):
        model.fit(np.zeros((4, 3)), np.zeros((4, 2)), verbose=0)


def test_allreduce_sum_in_one_process_and_its_refusals():
    values = np.arange(3.0)
    assert distributed.SingleProcess().allreduce_sum(values) is values and values.tolist() == [0.0, 1.0, 2.0]
    pytest.importorskip("mpi4py")

    class OneOfTwo:
        def Get_rank(self):
            return 0

        def Get_size(self):
            return 2

    for bad, received in ((np.arange(3), "an array of dtype int64"), (np.zeros((3, 2))[:, 0], "a non-contiguous array of dtype float64"), ([1.0], "list")):
        with pytest.raises(TypeError, match=f"values: expected a contiguous float NumPy array, received {received}"):
            distributed.MPIDataParallel(OneOfTwo()).allreduce_sum(bad)


def test_rank_and_size_without_mpirun():
    assert (distributed.rank(), distributed.size()) == (0, 1)


def _readme_mpirun_lines():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as file:
        return [line[2:].strip() for line in file if line.startswith("$ mpirun")]


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@needs_mpi
def test_readme_mpirun_command_runs_the_example(tmp_path):
    """The README's portable mpirun line (4 ranks on any machine, as root too), for one epoch."""
    line = next(line for line in _readme_mpirun_lines() if "--allow-run-as-root" in line)
    command = line.split()
    script = command.index("examples/train_data_parallel.py")
    command[script] = os.path.join(ROOT, "examples", "train_data_parallel.py")
    command[command.index("python")] = sys.executable
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    result = subprocess.run([*command, "--epochs", "1"], cwd=tmp_path, capture_output=True, text=True, timeout=300, env=environment)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "4 process(es): test accuracy" in result.stdout
    assert result.stdout.count("test accuracy") == 1  # printed by rank 0 only
