import json
import subprocess
import sys

import numpy as np
import pytest

import fastdnn as fd
from fastdnn.verify import cases, check_model, gradcheck, report, run, selftest
from fastdnn.verify.cli import main as gradcheck_main


def test_every_registered_thing_has_a_case():
    assert cases.uncovered() == {"activation": [], "loss": [], "layer": [], "optimizer": []}


def test_a_new_optimizer_without_listed_options_is_reported(monkeypatch):
    # activations, losses and layers get cases by walking their registries; an optimizer's options
    # (and the reference rule they map to) must be listed, so a new name is reported until they are.
    monkeypatch.setitem(fd.optimizers.registry._entries, "lion", fd.optimizers.Adam)
    assert cases.uncovered()["optimizer"] == ["lion"]


def test_a_new_layer_is_walked_into_a_case(monkeypatch):
    class Doubling(fd.layers.Layer):
        def forward(self, x, training=False):
            self._x = x
            return 2.0 * x

        def backward(self, dLdY):
            return 2.0 * dLdY

    monkeypatch.setitem(fd.layers.registry._entries, "doubling", Doubling)
    monkeypatch.setitem(fd.layers.registry._canonical, "doubling", Doubling)
    assert cases.uncovered()["layer"] == []
    walked = [case for case, _ in cases.gradient_cases() if case.covers == "layer:doubling"]
    assert walked and all(r.passed for case in walked for r in gradcheck.check(case))


def test_the_whole_verifier_passes():
    results, seconds = run.run()
    failed = [r.failure_report() for r in results if not r.passed]
    assert not failed, "\n".join(failed)
    ops = {r.op for r in results}
    assert any(op.startswith("activation:") for op in ops) and any(op.startswith("model:") for op in ops)
    assert any(r.mode == "random" for r in results) and any(r.mode == "full" for r in results)
    assert seconds > 0  # the run's duration is reported (how long it takes is benchmarked, not tested)


def test_random_mode_on_every_gradient_case():
    results, _ = run.run(mode="random", seed=3)
    assert all(r.passed for r in results)


@pytest.mark.parametrize("mutation", selftest.MUTATIONS, ids=lambda m: m.description)
def test_every_planted_bug_is_caught(mutation):
    # one test per planted bug (each compiles its mutant): they spread over the test workers
    was_caught, failing, cases_run = selftest.caught(mutation)
    assert cases_run and was_caught, f"{mutation.description}: {cases_run} cases ran, none failed"


def test_the_planted_bugs_cover_every_kind_of_mistake():
    assert len(selftest.MUTATIONS) >= 32
    kinds = {mutation.kind for mutation in selftest.MUTATIONS}
    assert {"flipped sign", "missing factor", "transposed matrix", "dropped term", "epsilon placement", "forward geometry"} <= kinds


def test_the_recorded_self_test_output_in_the_docs_counts_every_planted_bug():
    import os

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    count = len(selftest.MUTATIONS)
    for page in ("README.md", os.path.join("docs", "guides", "gradcheck.rst")):
        with open(os.path.join(root, page), encoding="utf-8") as handle:
            assert f"self-test: {count} of {count} planted bugs caught" in handle.read(), page


def test_self_test_reports_one_row_per_planted_bug():
    rows, _ = selftest.self_test(mutations=selftest.MUTATIONS[:2])
    assert [row["description"] for row in rows] == [m.description for m in selftest.MUTATIONS[:2]]
    assert all(row["caught"] and row["first_failure"] for row in rows)


def test_planted_bugs_are_removed_afterwards():
    selftest.caught(selftest.MUTATIONS[0])
    results, _ = run.run(only="activation:sigmoid")
    assert all(r.passed for r in results)


def test_engine_finds_a_wrong_gradient_and_reports_it():
    x = np.array([[0.5, -1.0, 2.0]])
    good = gradcheck.GradientCase("square", {"x": x}, lambda: x**2, lambda v: {"x": 2 * x * v})
    bad = gradcheck.GradientCase("square (buggy)", {"x": x}, lambda: x**2, lambda v: {"x": x * v}, note="anywhere")
    for mode in ("full", "random"):
        assert all(r.passed for r in gradcheck.check(good, mode))
        (result,) = gradcheck.check(bad, mode)
        assert not result.passed
    (result,) = gradcheck.check(bad, "full")
    text = result.failure_report()
    assert "square (buggy)" in text and "'x'" in text and "numerical" in text and "analytical" in text
    assert "tolerance" in text and "Worst element" in text
    assert result.numerical == pytest.approx(2 * result.analytical)


def test_full_mode_compares_the_whole_jacobian():
    # y = A x: the Jacobian is A; a backward pass that uses A (not A^T) is wrong only off the diagonal
    A = np.array([[1.0, 2.0], [3.0, 4.0]])
    x = np.array([0.3, -0.7])
    case = gradcheck.GradientCase("matvec", {"x": x}, lambda: A @ x, lambda v: {"x": A @ v})
    (result,) = gradcheck.check(case, "full")
    assert not result.passed and result.worst_index in ((0, 1), (1, 0))


def test_check_model_reports_per_layer(rng):
    model = fd.Sequential([fd.layers.Dense(6, activation="tanh", input_shape=(4,)), fd.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    result = check_model(model, rng.normal(size=(20, 4)), rng.integers(0, 3, 20))
    assert result.passed
    assert set(result.per_layer()) == {layer.name for layer in model.layers}
    assert "ok" in str(result)
    assert model.layers[0].dtype == np.float32  # the user's model is untouched


def test_check_model_catches_a_planted_fused_loss_bug(rng):
    mutation = next(m for m in selftest.MUTATIONS if "fused sigmoid" in m.description)
    model = fd.Sequential([fd.layers.Dense(3, activation="sigmoid", input_shape=(4,))])
    model.compile(optimizer="adam", loss="binary_crossentropy")
    x, y = rng.normal(size=(5, 4)), rng.integers(0, 2, (5, 3))
    replacements = selftest.plant(mutation)
    originals = [(owner, attribute, owner.__dict__[attribute]) for owner, attribute, _ in replacements]
    try:
        for owner, attribute, value in replacements:
            setattr(owner, attribute, value)
        assert not check_model(model, x, y).passed
    finally:
        for owner, attribute, value in originals:
            setattr(owner, attribute, value)
    assert check_model(model, x, y).passed


def test_check_model_needs_a_compiled_model():
    model = fd.Sequential([fd.layers.Dense(2, input_shape=(3,))])
    with pytest.raises(RuntimeError, match="compiled"):
        check_model(model, np.zeros((2, 3)), np.zeros((2, 2)))


def test_cli_exit_codes_and_outputs(tmp_path, capsys):
    assert gradcheck_main(["--only", "activation:tanh", "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "max rel err" in out and "all passed" in out
    payload = json.loads((tmp_path / "r.json").read_text())
    assert payload["passed"] and all(r["op"].startswith("activation:tanh") for r in payload["results"])
    assert gradcheck_main(["--only", "no-such-op"]) == 2
    assert gradcheck_main(["--list", "--only", "optimizer:*"]) == 0
    assert "optimizer:adam(defaults)" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        gradcheck_main(["--mode", "sideways"])
    assert exit_info.value.code == 2


def test_each_case_checks_the_same_inputs_alone_in_order_or_in_worker_processes():
    import dataclasses

    def rows(results):
        return repr([dataclasses.asdict(r) for r in results])

    pattern = "*lstm*"  # gradient cases, layer configurations and a model with weights of its own
    alone, _ = run.run(only="layer:LSTM(3) 2x4x2->2x3")
    together, _ = run.run(only=pattern)
    again, _ = run.run(only=pattern)
    assert len(together) > len(alone) and rows(together) == rows(again)
    assert alone and rows(alone) == rows([r for r in together if r.op == "layer:LSTM(3) 2x4x2->2x3"])
    few = "layer:Dense(tanh)*"  # few kernels to compile in the workers
    in_process, _ = run.run(only=few)
    spread, _ = run.run(only=few, jobs=2)
    assert len(spread) > 4 and rows(spread) == rows(in_process) and all(r.passed for r in spread)


def test_jobs_must_be_positive(capsys):
    with pytest.raises(SystemExit) as exit_info:
        gradcheck_main(["--jobs", "0"])
    assert exit_info.value.code == 2 and "--jobs: expected a positive number of processes, received 0" in capsys.readouterr().err


def test_cli_exits_1_on_a_failure(monkeypatch, capsys):
    mutation = selftest.MUTATIONS[2]  # tanh derivative
    for owner, attribute, value in selftest.plant(mutation):
        monkeypatch.setattr(owner, attribute, value)
    assert gradcheck_main(["--only", "activation:tanh", "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "activation:tanh" in out and "Worst element" in out


def test_console_script_and_module_entry_point():
    result = subprocess.run([sys.executable, "-m", "fastdnn.verify", "--only", "loss:mean_squared_error"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "all passed" in result.stdout


def test_report_table_lists_every_check():
    results, seconds = run.run(only="layer:Dense(relu)")
    text = report.table(results)
    assert text.count("\n") == len(results) + 1
    assert "passed" in report.summary(results, seconds)


def test_verifier_is_installed_under_fastdnns_name_only():
    """The wheel holds no top-level ``verify`` (a distinct PyPI project has that name), the console script
    points into ``fastdnn.verify``, and ``import fastdnn`` does not load the verifier (it imports fastdnn)."""
    import importlib
    import pathlib
    import tomllib

    import setuptools

    root = pathlib.Path(__file__).resolve().parents[1]
    project = tomllib.loads((root / "pyproject.toml").read_text())
    found = setuptools.find_packages(str(root), **project["tool"]["setuptools"]["packages"]["find"])
    assert {name.split(".")[0] for name in found} == {"fastdnn"}
    assert "fastdnn.verify" in found
    module, _, attribute = project["project"]["scripts"]["fastdnn-gradcheck"].partition(":")
    assert module == "fastdnn.verify.cli" and callable(getattr(importlib.import_module(module), attribute))
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, fastdnn; print(sorted(m for m in sys.modules if 'verify' in m))"],
        capture_output=True, text=True, cwd=root,
    )
    assert loaded.returncode == 0 and loaded.stdout.strip() == "[]", loaded.stderr
