"""Every layer's argument space (fastdnn/verify/spaces.py): complete, covered by the grid, checked.

Each configuration is checked forward against the reference (float64 and float32) and backward by
finite differences; the grid is the default run, Hypothesis draws more (a few per layer here, 125 per
layer under HYPOTHESIS_PROFILE=long).
"""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastdnn as fd
from fastdnn.verify import spaces

SPACES = spaces.spaces()


def test_every_argument_of_every_layer_has_a_range():
    assert spaces.unranged() == {}


def test_a_new_argument_without_a_range_is_reported():
    class Grouped(fd.layers.Conv2D):
        def __init__(self, filters, kernel_size, groups=1, **kwargs):
            super().__init__(filters, kernel_size, **kwargs)
            self.groups = groups

    class Registry:
        def canonical_items(self):
            return [("conv2d", Grouped), ("dense", fd.layers.Dense)]

    assert spaces.unranged(registry=Registry()) == {"conv2d": ["groups"]}


def test_a_new_layer_without_a_space_is_reported(monkeypatch):
    class Doubling(fd.layers.Layer):
        pass

    monkeypatch.setitem(fd.layers.registry._entries, "doubling", Doubling)
    monkeypatch.setitem(fd.layers.registry._canonical, "doubling", Doubling)
    assert spaces.unranged() == {"doubling": ["(no space)"]}


@pytest.mark.parametrize("name", sorted(SPACES))
def test_the_grid_covers_every_allowed_pair_of_values(name):
    space = SPACES[name]
    grid = spaces.grid(space)
    ranges = spaces.all_ranges(space)  # the constructor's arguments and the inputs' geometry
    names = list(ranges)
    allowed = [dict(zip(names, values)) for values in itertools.product(*ranges.values())]
    allowed = [c for c in allowed if space.constraint is None or space.constraint(c)]
    assert all(space.constraint is None or space.constraint(c) for c in grid)

    def pairs(configs):
        return {(a, repr(c[a]), b, repr(c[b])) for c in configs for a, b in itertools.combinations(names, 2)}

    assert pairs(allowed) == pairs(grid)
    for argument, values in ranges.items():  # every value of every argument
        assert {repr(v) for v in values} == {repr(c[argument]) for c in grid}, argument
    assert len(grid) <= 80  # the default run stays fast


@pytest.mark.parametrize("name", sorted(SPACES))
def test_every_grid_configuration_is_right_forward_and_backward(name):
    cases = spaces.config_cases(only_layer=name)
    assert cases
    failed = []
    for case in cases:
        results = case.run("full", np.random.default_rng(0))
        assert {"reference", "float32"} <= {r.mode for r in results}
        failed += [r.failure_report() for r in results if not r.passed]
    assert not failed, "\n".join(failed[:10])


# Hypothesis: more configurations than the grid, and fresh ones under the long profile.
DRAWN = settings(max_examples=max(3, settings().max_examples // 40), deadline=None)


@pytest.mark.parametrize("name", sorted(SPACES))
@DRAWN
@given(data=st.data())
def test_drawn_configurations_are_right(name, data):
    space = SPACES[name]
    config = spaces.configuration(space, data.draw)
    seed = data.draw(st.integers(0, 2**31 - 1))
    case = spaces.ConfigCase(f"layer:{name}[{config}]", f"layer:{name}", name, config, space, seed)
    failed = [r.failure_report() for r in case.run("random", np.random.default_rng(seed)) if not r.passed]
    assert not failed, "\n".join(failed)


@pytest.mark.parametrize("name", sorted(name for name, space in SPACES.items() if space.refused))
def test_values_outside_the_range_are_refused_by_name(name):
    space = SPACES[name]
    cls = fd.layers.registry.lookup(name)
    base = spaces.constructor_arguments_of(space, spaces.grid(space)[0])
    for argument, values in space.refused.items():
        for value in values:
            with pytest.raises(ValueError, match=rf"^{argument}: "):
                cls(**{**base, argument: value})


def test_merge_cases_differentiate_every_input():
    """A merge layer's case perturbs each of its inputs; a wrong reference is caught."""
    space = SPACES["dot"]
    case = next(c for c in spaces.config_cases(only_layer="dot") if c.config["normalize"] and c.config["rank"] == 3)
    assert set(case.gradient_case().arguments) == {"x0", "x1"}
    assert all(r.passed for r in case.run("full", np.random.default_rng(0)))
    wrong = spaces.Space(space.ranges, lambda config, xs, params, dtype: spaces.reference.dot(xs[0], xs[1], config["axes"] if isinstance(config["axes"], tuple) else (config["axes"],) * 2, False), space.make_input, space.constraint, inputs=space.inputs)
    broken = spaces.ConfigCase(case.op, case.covers, case.registered, case.config, wrong, case.seed)
    assert not all(r.passed for r in broken.forward_results())


def test_recurrent_cells_range_over_every_registered_activation():
    """Every registered activation is either in a recurrent cell's range or refused by it."""
    for name in ("simplernn", "lstm", "gru"):
        space = SPACES[name]
        for argument in ("activation", "recurrent_activation"):
            if argument in space.ranges:
                assert set(space.ranges[argument]) | set(space.refused[argument]) == set(fd.activations.registry.names())
