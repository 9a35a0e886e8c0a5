"""The benchmarks cannot rot: every asv benchmark runs once at its smallest parameters, and peers.py
runs its small workloads, without asv or any peer library installed.
"""

import importlib
import inspect
import itertools
import json
import os
import pathlib
import re
import subprocess
import sys
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
PREFIXES = ("time_", "peakmem_", "mem_", "track_", "timeraw_")


def _import(module):
    sys.path.insert(0, str(BENCHMARKS))  # asv imports the suite as the package "benchmarks"
    try:
        return importlib.import_module(f"benchmarks.{module}")
    finally:
        sys.path.remove(str(BENCHMARKS))


def _suites():
    for path in sorted((BENCHMARKS / "benchmarks").glob("bench_*.py")):
        module = _import(path.stem)
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and any(attr.startswith(PREFIXES) for attr in dir(cls)):
                yield pytest.param(cls, id=f"{path.stem}.{name}")


def _smallest(cls):
    """The first value of each parameter list (the lists are written smallest first)."""
    params = getattr(cls, "params", [])
    if not params:
        return ()
    if not isinstance(params[0], (list, tuple)):
        params = [params]
    return tuple(values[0] for values in params)


def _run_timeraw(code):
    stmt, setup = code if isinstance(code, tuple) else (code, "")
    completed = subprocess.run([sys.executable, "-c", f"{setup}\n{stmt}"], capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr


@pytest.mark.parametrize("cls", list(_suites()))
def test_benchmark_runs_once_at_its_smallest_parameters(cls):
    args = _smallest(cls)
    instance = cls()
    if hasattr(instance, "setup"):
        instance.setup(*args)
    try:
        methods = [name for name in dir(cls) if name.startswith(PREFIXES)]
        assert methods
        for name in methods:
            result = getattr(instance, name)(*args)
            if name.startswith("timeraw_"):
                _run_timeraw(result)
    finally:
        if hasattr(instance, "teardown"):
            instance.teardown(*args)


def test_every_parameter_list_matches_its_names():
    for param in _suites():
        cls = param.values[0]
        params = getattr(cls, "params", None)
        if params is None:
            continue
        lists = params if isinstance(params[0], (list, tuple)) else [params]
        assert len(lists) == len(cls.param_names), cls.__name__
        assert all(len(values) > 0 for values in lists), cls.__name__
        assert len(set(itertools.product(*lists))) == len(list(itertools.product(*lists))), cls.__name__


def test_asv_configuration():
    text = (BENCHMARKS / "asv.conf.json").read_text()
    config = json.loads(re.sub(r"^\s*//.*$", "", text, flags=re.M))
    assert config["repo"] == ".."
    assert config["environment_type"] == "virtualenv"
    assert (BENCHMARKS / config["benchmark_dir"] / "__init__.py").is_file()
    assert all(config[key].startswith(".asv/") for key in ("env_dir", "results_dir", "html_dir"))
    ignored = (ROOT / ".gitignore").read_text().split()
    assert "benchmarks/.asv/" in ignored


def _peers():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        return importlib.import_module("peers")
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_peers_small_workloads_run(capsys):
    peers = _peers()
    results = peers.main(
        ["--workload", "digits", "optim", "--rounds", "1", "--optim-rounds", "1", "--optim-size", "10000", "--peers", "fastdnn", "numpy", "--pause", "0"]
    )
    out = capsys.readouterr().out
    assert "digits-mlp 1347x64-64-10 batch 32" in out
    assert "optimizer step over 10,000 float32 parameters" in out
    assert ("epoch", "digits-mlp", 32, "numpy") in results
    assert all(("optim", f"fastdnn {rule}") in results for rule in ("sgd", "adam"))


def test_peers_reports_a_missing_peer_instead_of_failing(monkeypatch):
    peers = _peers()

    def missing(work):
        raise ImportError("No module named 'torch'")

    monkeypatch.setitem(peers.PEERS, "torch", missing)
    notes = []
    work = peers.MLPEpoch("digits-mlp", (64, 64, 10), 64, 32)
    rows = peers.run_epochs([work], ["fastdnn", "torch"], rounds=1, pause=0, notes=notes)
    condition, _, times = rows[0]
    assert condition == "same-process" and list(times) == ["fastdnn"]
    assert notes == ["digits-mlp 64x64-64-10 batch 32 (1 epoch) (same process): torch: not available (No module named 'torch')"]


def test_peers_conditions_run_each_peer_in_its_own_process_and_beside_busy_processes(capsys):
    peers = _peers()
    results = peers.main(
        ["--workload", "digits", "lstm", "--lstm-samples", "8", "--rounds", "1", "--conditions", "all", "--peers", "fastdnn", "numpy", "--pause", "0"]
    )
    out = capsys.readouterr().out
    assert "epochs by condition" in out and "own processes, 1 busy beside" in out
    for condition in ("idle", "loaded", "same-process"):
        assert ("condition", condition, "digits-mlp 1347x64-64-10 batch 32 (1 epoch)", "numpy") in results
        assert ("condition", condition, "lstm 8x50x32 LSTM(128) batch 128 (1 epoch)", "fastdnn") in results


def test_busy_processes_are_killed_however_the_block_ends():
    peers = _peers()
    try:
        with peers.busy_processes(2) as load:
            processes = list(load.processes)
            assert len(processes) == 2 and all(process.poll() is None for process in processes)
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    assert load.processes == [] and all(process.poll() is not None for process in processes)


def test_a_busy_process_ends_when_the_process_that_started_it_dies():
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); from benchmarks.common import BusyProcesses\n"
        "load = BusyProcesses(1).start(); print(load.processes[0].pid, flush=True)\n"
        "import os; os._exit(0)  # dies without stopping it"
    )
    # the busy process inherits stdout: read the pid, do not wait for the pipe to close
    parent = subprocess.Popen([sys.executable, "-c", script, str(BENCHMARKS)], stdout=subprocess.PIPE, text=True)
    pid = int(parent.stdout.readline())
    parent.wait(timeout=120)
    parent.stdout.close()
    for _ in range(200):
        if not pathlib.Path(f"/proc/{pid}").exists() or "Z" in _process_state(pid):
            break
        time.sleep(0.05)
    else:
        os.kill(pid, 9)
        pytest.fail("the busy process outlived its parent")


def _process_state(pid):
    try:
        return pathlib.Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0]
    except OSError:
        return "Z"


def test_a_worker_process_reports_a_peer_missing_for_a_workload():
    peers = _peers()
    notes = []
    factories = {"numpy": lambda: peers.WorkerRunner("numpy", peers.LeNetEpoch("lenet", 8, 4))}
    assert peers.make_runners(factories, notes.append) == {}
    assert notes == ["numpy: not available (no plain-NumPy lenet (MLPs only))"]


def test_flops_of_the_mnist_step():
    peers = _peers()
    # forward 2 n (784*512 + 512*256 + 256*10), dW the same, dX for all but the first layer
    assert peers.mlp_step_flops_per_sample((784, 512, 256, 10)) == 2 * (3 * 535040 - 401408)
