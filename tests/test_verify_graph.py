"""The verifier on the graph: merge-layer and graph-model cases, fan-out self-test bugs, --only matching."""


from fastdnn.verify import cases, run, selftest


def test_merge_layers_and_graph_models_have_passing_cases():
    results, _ = run.run(only="graph")
    ops = {r.op for r in results}
    for name in ("residual block", "two inputs", "two outputs with loss weights", "a layer shared by two branches", "one tensor read by three layers"):
        assert any(name in op for op in ops), name
    assert results and all(r.passed for r in results)
    covered = {case.covers for case, _ in cases.gradient_cases()}
    for name in ("add", "subtract", "multiply", "average", "maximum", "minimum", "concatenate", "dot"):
        assert f"layer:{name}" in covered
    assert not any(cases.uncovered().values())


def test_fan_out_and_sharing_bugs_are_caught():
    planted = [m for m in selftest.MUTATIONS if m.module.__name__ == "fastdnn.model"]
    assert len(planted) == 2
    rows, _ = selftest.self_test(mutations=planted)
    assert all(row["caught"] for row in rows), rows


def test_only_matches_case_insensitively():
    assert run.matches("layer:Dense(tanh) 1x3->4", "dense")
    assert run.matches("layer:Dense(tanh) 1x3->4", "LAYER:DENSE*")
    assert run.matches("optimizer:adam(defaults)", "ADAM*")
    assert not run.matches("optimizer:adam(defaults)", "sgd")
    assert len(run.selected("DENSE(TANH)")) == len(run.selected("dense(tanh)")) > 0
