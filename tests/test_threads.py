import numba
import numpy as np
import pytest

import fastdnn as fd
from fastdnn import threads
from fastdnn.threads import ThreadChooser


@pytest.fixture
def restore_threads():
    before = fd.get_num_threads()
    yield
    fd.set_num_threads(before["numba"])  # the suite runs pinned (conftest)


def test_set_num_threads_reaches_numba_and_blas(restore_threads):
    fd.set_num_threads(1)
    counts = fd.get_num_threads()
    assert counts["numba"] == 1
    assert counts["blas"] and all(n == 1 for n in counts["blas"])
    assert counts["policy"] == "pinned"


def test_thread_count_is_validated():
    with pytest.raises(ValueError, match="n: expected a positive integer, received 0"):
        fd.set_num_threads(0)
    with pytest.raises(ValueError, match="NUMBA_NUM_THREADS"):
        fd.set_num_threads(numba.config.NUMBA_NUM_THREADS + 1)


def test_seed_is_validated():
    with pytest.raises(ValueError, match="seed: expected a non-negative integer, received -1"):
        fd.set_seed(-1)
    with pytest.raises(ValueError, match="seed"):
        fd.set_seed(1.5)


class FakeMachine:
    """A step takes ``seconds[count]`` of a fake clock under the thread count last applied."""

    def __init__(self, seconds, count=2):
        self.seconds = dict(seconds)
        self.count = count
        self.now = 0.0
        self.applied = []
        self.steps_at = {}

    def apply(self, count):
        self.count = count
        self.applied.append(count)

    def clock(self):
        return self.now

    def run(self, chooser, steps, key="model"):
        for _ in range(steps):
            self.now += self.seconds[self.count]
            self.steps_at[self.count] = self.steps_at.get(self.count, 0) + 1
            chooser.step(key)


def chooser_on(machine, **options):
    return ThreadChooser((1, 2), machine.apply, clock=machine.clock, **options)


def test_the_faster_count_is_kept_idle_machine():
    machine = FakeMachine({1: 0.010, 2: 0.006})
    chooser = chooser_on(machine, probe_steps=4)
    machine.run(chooser, 30)
    assert chooser.choice == 2 and machine.count == 2
    assert machine.applied[:5] == [1, 2, 1, 2, 2]  # two interleaved blocks each, then the winner
    when, medians, chosen = chooser.history[0]
    assert medians == {1: pytest.approx(0.010), 2: pytest.approx(0.006)} and chosen == 2


def test_a_far_slower_count_gets_one_block_step_under_load():
    machine = FakeMachine({1: 0.010, 2: 0.200})  # two threads stalled by a busy neighbour
    chooser = chooser_on(machine, probe_steps=4)
    machine.run(chooser, 40)
    assert chooser.choice == 1 and machine.count == 1
    # the step before the chooser's first call ran with the BLAS's default two threads; in the
    # probe, one step with two threads (the untimed one) was enough to drop them
    assert machine.steps_at[2] == 2
    assert machine.applied[:3] == [1, 2, 1]


def test_the_choice_follows_a_change_of_load():
    machine = FakeMachine({1: 0.010, 2: 0.006})
    chooser = chooser_on(machine, probe_steps=4, min_wait=0.5, max_wait=2.0)
    machine.run(chooser, 50)
    assert chooser.choice == 2
    machine.seconds = {1: 0.011, 2: 0.100}  # a busy process starts
    machine.run(chooser, 300)
    assert chooser.choice == 1 and machine.count == 1
    machine.seconds = {1: 0.010, 2: 0.006}  # and stops
    machine.run(chooser, 1000)
    assert chooser.choice == 2 and machine.count == 2


def test_probing_costs_at_most_the_overhead_budget():
    machine = FakeMachine({1: 0.010, 2: 0.015})
    chooser = chooser_on(machine, probe_steps=4, overhead=0.05, min_wait=0.1, max_wait=1.0)
    machine.run(chooser, 20000)
    best_possible = 20000 * 0.010
    assert len(chooser.history) > 10  # it did re-check
    assert machine.now <= best_possible * 1.05 + 0.2
    assert chooser.choice == 1


def test_the_wait_between_probes_doubles_while_the_choice_holds():
    machine = FakeMachine({1: 0.010, 2: 0.012})
    chooser = chooser_on(machine, probe_steps=4, overhead=1.0, min_wait=1.0, max_wait=8.0)
    machine.run(chooser, 6000)
    times = [entry[0] for entry in chooser.history]
    probe = 2 * 5 * 0.010 + 2 * 5 * 0.012  # two blocks of 1 untimed + 4 timed steps per count
    waits = np.diff(times) - probe  # from the end of one probe to the end of the next
    assert waits[0] == pytest.approx(1.0, abs=0.05) and waits[1] == pytest.approx(2.0, abs=0.05)
    assert waits[2] == pytest.approx(4.0, abs=0.05)
    assert waits[-1] == pytest.approx(8.0, abs=0.05) and max(waits) < 8.05


def test_steps_slowing_down_bring_the_probe_early():
    machine = FakeMachine({1: 0.010, 2: 0.006})
    chooser = chooser_on(machine, probe_steps=4, overhead=0.05, min_wait=100.0, max_wait=100.0)
    machine.run(chooser, 30)
    assert chooser.choice == 2
    machine.seconds = {1: 0.011, 2: 0.050}
    machine.run(chooser, 40)  # far sooner than the 100 s wait
    assert chooser.choice == 1


@pytest.mark.parametrize("steps_per_epoch", [3, 100])
def test_pauses_between_epochs_are_not_training_time(steps_per_epoch):
    """An epoch at a time with other work between (or libraries interleaved in a benchmark): a
    pause is not a step (with few steps per epoch, a probe spans several epochs), and probing stays
    within its budget of the training time."""
    machine = FakeMachine({1: 0.010, 2: 0.006})
    chooser = chooser_on(machine, probe_steps=4, overhead=0.05, min_wait=1.0, max_wait=30.0)
    for _ in range(4000 // steps_per_epoch):
        chooser.resume()
        machine.now += 5.0  # the caller's own work
        machine.run(chooser, steps_per_epoch)
    training = machine.steps_at[1] * 0.010 + machine.steps_at[2] * 0.006
    assert training <= 4000 * 0.006 * 1.05 + 0.2 and chooser.choice == 2
    assert len(chooser.history) >= 5
    for _, medians, _ in chooser.history:  # no step was timed across a pause
        assert medians == {1: pytest.approx(0.010), 2: pytest.approx(0.006)}


def test_another_model_starts_a_new_probe():
    machine = FakeMachine({1: 0.010, 2: 0.006})
    chooser = chooser_on(machine, probe_steps=2, min_wait=100.0, max_wait=100.0)
    machine.run(chooser, 20, key="first")
    assert len(chooser.history) == 1
    machine.run(chooser, 20, key="second")
    assert len(chooser.history) == 2


def test_a_single_candidate_is_kept_without_probing():
    machine = FakeMachine({1: 0.010}, count=1)
    chooser = ThreadChooser((1,), machine.apply, clock=machine.clock)
    machine.run(chooser, 10)
    assert chooser.choice == 1 and machine.applied == []


def small_model():
    model = fd.Sequential([fd.layers.Dense(8, activation="relu", input_shape=(4,)), fd.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def test_fit_drives_the_choice_unless_the_count_is_pinned(monkeypatch, restore_threads, rng):
    machine = FakeMachine({1: 0.010, 2: 0.006})
    monkeypatch.setattr(threads, "_CHOOSER", chooser_on(machine, probe_steps=2))
    x, y = rng.normal(size=(64, 4)).astype(np.float32), rng.integers(0, 3, 64)
    model = small_model()
    fd.set_num_threads(1)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert machine.applied == [] and fd.get_num_threads()["policy"] == "pinned"
    fd.set_num_threads(None)
    assert fd.get_num_threads()["policy"] == "auto"
    machine.now = 0.0
    original = threads._CHOOSER.step

    def step(key):  # each of fit's steps takes the fake machine's time for the applied count
        machine.now += machine.seconds[machine.count]
        original(key)

    monkeypatch.setattr(threads._CHOOSER, "step", step)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)  # 16 steps
    assert threads._CHOOSER.choice == 2 and machine.applied[:5] == [1, 2, 1, 2, 2]


@pytest.fixture
def pool_of(restore_threads):
    def use(parts):
        threads.use_plan(threads.Plan(1, parts))

    return use


@pytest.mark.parametrize("n, parts, expected", [(37, 2, [(0, 18), (18, 37)]), (37, 3, [(0, 12), (12, 24), (24, 37)]), (15, 2, [(0, 15)]), (16, 3, [(0, 8), (8, 16)])])
def test_split_batch_runs_each_row_once_in_as_many_threads_as_parts(pool_of, n, parts, expected):
    import threading

    pool_of(parts)
    together = threading.Barrier(len(expected), timeout=10)  # broken unless the parts run side by side
    ran = []

    def body(lo, hi, part):
        ran.append((lo, hi))
        assert (lo, hi) == expected[part]
        together.wait()

    threads.split_batch(n, body)
    assert sorted(ran) == expected  # at least MIN_PART_ROWS (8) rows a part
    assert threads.get_num_threads()["blas"] == [1] * len(threads.get_num_threads()["blas"])


def test_split_batch_is_one_call_without_a_pool(restore_threads):
    fd.set_num_threads(2)
    ran = []
    threads.split_batch(64, lambda lo, hi, part: ran.append((lo, hi, part)))
    assert ran == [(0, 64, 0)]


def test_an_error_in_a_part_is_raised_after_every_part_finished(pool_of):
    import time

    pool_of(2)
    finished = []

    def body(lo, hi, part):
        if lo == 0:
            raise ValueError("first part failed")
        time.sleep(0.05)
        finished.append(lo)

    with pytest.raises(ValueError, match="first part failed"):
        threads.split_batch(32, body)
    assert finished == [16]


@pytest.mark.parametrize("shape", [(300, 40, 20), (20, 40, 300)])  # rows cut, then columns cut
@pytest.mark.parametrize("transposed", [False, True])
def test_matmul_in_parts_equals_numpy(pool_of, monkeypatch, shape, transposed, rng):
    monkeypatch.setattr(threads, "MIN_PART_FLOPS", 1000)
    m, k, n = shape
    a = rng.normal(size=(k, m)).T if transposed else rng.normal(size=(m, k))  # a transposed view too
    b = rng.normal(size=(k, n))
    out = np.full((m, n), np.nan)
    pool_of(3)
    threads.matmul(a, b, out)
    np.testing.assert_allclose(out, a @ b, rtol=1e-12, atol=1e-12)


def test_a_pool_plan_is_probed_only_when_worth_it():
    machine = FakeMachine({1: 0.010, 2: 0.006, 3: 0.004})
    worth = {"pool": False}
    chooser = ThreadChooser((1, 2, 3), machine.apply, clock=machine.clock, probe_steps=2, min_wait=0.1, max_wait=0.1,
                            worth_probing=lambda count: count != 3 or worth["pool"])
    machine.run(chooser, 30)
    assert chooser.choice == 2 and 3 not in machine.applied
    worth["pool"] = True
    machine.run(chooser, 300)
    assert chooser.choice == 3 and machine.count == 3
    assert set(chooser.history[-1][1]) == {1, 2, 3}


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
def test_a_forked_child_gets_a_pool_of_its_own(pool_of):
    import multiprocessing

    pool_of(2)
    threads.split_batch(32, lambda lo, hi, part: None)  # the parent's pool exists
    context = multiprocessing.get_context("fork")
    with context.Pool(1) as children:  # the child's split would wait forever on the parent's threads
        assert children.apply_async(_split_in_child).get(timeout=60) == [(0, 16), (16, 32)]


def _split_in_child():
    ran = []
    threads.split_batch(32, lambda lo, hi, part: ran.append((lo, hi)))
    return sorted(ran)


def test_long_steps_are_probed_in_shorter_blocks():
    machine = FakeMachine({1: 0.030, 2: 0.026})
    chooser = chooser_on(machine, probe_steps=4, probe_seconds=0.05)
    machine.run(chooser, 13)  # the step before the first call, then 2 counts x 2 blocks x (1 untimed + 2 timed)
    assert len(chooser.history) == 1 and chooser.choice == 2
    assert machine.steps_at[1] == 6
    machine = FakeMachine({1: 0.010, 2: 0.006})  # short steps: probe_steps timed steps per block
    chooser = chooser_on(machine, probe_steps=4, probe_seconds=0.05)
    machine.run(chooser, 13)
    assert chooser.history == []


def test_steps_within_the_settling_time_of_a_switch_are_not_timed():
    machine = FakeMachine({1: 0.010, 2: 0.006})
    chooser = chooser_on(machine, probe_steps=4, give_up=2.0, settle=lambda count: 0.05 if count == 2 else 0.0)
    # count 2: besides the first step after each switch, 8 more began within 0.05 s of it
    machine.run(chooser, 1 + 2 * (1 + 4) + 2 * (1 + 8 + 4) - 1)
    assert chooser.history == []
    machine.run(chooser, 1)
    assert len(chooser.history) == 1 and machine.steps_at[1] == 10
    assert chooser.history[0][1] == {1: pytest.approx(0.010), 2: pytest.approx(0.006)}
    machine.run(chooser, 1)
    assert machine.count == 2


def test_a_part_that_splits_again_runs_its_parts_itself(pool_of):
    pool_of(2)
    ran = []

    def inner(lo, hi, part):
        ran.append((lo, hi))

    threads.split_batch(64, lambda lo, hi, part: threads.split_batch(hi - lo, inner))  # would wait forever on the pool
    assert sorted(ran) == [(0, 16), (0, 16), (16, 32), (16, 32)]


def test_the_pool_can_be_pinned(restore_threads):
    fd.set_num_threads(2, pool=True)
    assert fd.get_num_threads()["plan"] == threads.Plan(1, 2) and fd.get_num_threads()["policy"] == "pinned"
    assert str(threads.Plan(1, 2)) == "pool of 2" and str(threads.Plan(2, 1)) == "BLAS 2" and str(threads.Plan(1, 1)) == "1 thread"
    with pytest.raises(TypeError, match="pool: expected True or False, received 'yes'"):
        fd.set_num_threads(2, pool="yes")
