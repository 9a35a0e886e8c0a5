"""How many threads run fastdnn's work, chosen by fastdnn unless the user pins a count.

fastdnn's CPU kernels are serial; the threads are those of the BLAS under the matrix products
(NumPy's OpenBLAS, which Dense, Conv and the recurrent layers call; SciPy's copy too, which numba's
``np.dot`` reaches) and numba's pool for parallel kernels. Both are reached through their exported
``*_set_num_threads`` symbols, the way threadpoolctl does, without depending on it.

Why a choice at all: OpenBLAS splits each product statically between its threads, which then wait
for each other. On an idle machine two threads finish a large product sooner; when another runnable
thread holds a core (a second process, a notebook's other library spinning its pool), the split
product waits for the descheduled half, and one thread is many times faster (on the 2-core machine
this was measured on, a 784-512-256-10 MLP epoch at batch 32 took 10x longer with two threads than
with one while other work ran). Which count wins depends on the load, which changes, so
`ThreadChooser` times the repeating training step with each candidate count, keeps the fastest,
and times them again from time to time; ``fit`` drives it with one call per step
(`training_step`). ``fd.set_num_threads(n)`` pins a count and turns the choice off;
``fd.set_num_threads(None)`` turns it back on. ``FASTDNN_NUM_THREADS`` (an integer) pins a count
from the start.

The choice can change the count during training, and OpenBLAS's products with one and with two
threads may differ in the last bit: pin the count for bit-identical runs.
"""

import ctypes
import glob
import os
import statistics
import time

import numba
import numpy as np

from fastdnn import config, validation

_SETTERS = (
    "scipy_openblas_set_num_threads64_",
    "scipy_openblas_set_num_threads",
    "openblas_set_num_threads64_",
    "openblas_set_num_threads",
)
_GETTERS = (
    "scipy_openblas_get_num_threads64_",
    "scipy_openblas_get_num_threads",
    "openblas_get_num_threads64_",
    "openblas_get_num_threads",
)


def _openblas_libraries():
    import scipy

    folders = []
    for module in (np, scipy):
        root = os.path.dirname(os.path.dirname(module.__file__))
        folders.append(os.path.join(root, f"{module.__name__}.libs"))
        folders.append(os.path.join(os.path.dirname(module.__file__), ".dylibs"))
    libraries = []
    for folder in folders:
        for path in sorted(glob.glob(os.path.join(folder, "*openblas*"))):
            try:
                libraries.append(ctypes.CDLL(path))
            except OSError:
                continue
    return libraries


def _first_symbol(library, names):
    for name in names:
        function = getattr(library, name, None)
        if function is not None:
            return function
    return None


_BLAS = None  # [(setter, getter)] per OpenBLAS library, found once


def _blas():
    global _BLAS
    if _BLAS is None:
        found = []
        for library in _openblas_libraries():
            setter, getter = _first_symbol(library, _SETTERS), _first_symbol(library, _GETTERS)
            if setter is not None:
                setter.argtypes = [ctypes.c_int]
            if getter is not None:
                getter.restype = ctypes.c_int
            found.append((setter, getter))
        _BLAS = found
    return _BLAS


def set_blas_threads(n):
    """Give every OpenBLAS found ``n`` threads (no validation: the policy's fast path)."""
    for setter, _ in _blas():
        if setter is not None:
            setter(n)


def available_cores():
    """Cores this process may run on (its CPU affinity where the OS tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# -- the user's pin ----------------------------------------------------------------------------------

_PINNED = None  # the count fd.set_num_threads(n) asked for; None: fastdnn chooses


def set_num_threads(n):
    """Use ``n`` threads in numba's parallel kernels and in the BLAS matrix products.

    By default (and after ``set_num_threads(None)``) fastdnn chooses the count itself while it
    trains, by timing the training step with one thread and with one per core (see
    `fastdnn.threads`). A number pins the count and turns that choice off.

    Parameters
    ----------
    n : int or None
        At least 1 and at most ``numba.config.NUMBA_NUM_THREADS`` (the cores numba saw at start);
        None returns the choice to fastdnn.
    """
    global _PINNED
    if n is None:
        if _PINNED is not None:
            _PINNED = None
            _CHOOSER.forget()
        return
    n = validation.positive_int(n, "n")
    limit = numba.config.NUMBA_NUM_THREADS
    if n > limit:
        raise ValueError(f"n: expected at most {limit} threads (NUMBA_NUM_THREADS), received {n}")
    _PINNED = n
    numba.set_num_threads(n)
    set_blas_threads(n)


def get_num_threads():
    """``{"numba": n, "blas": [n per OpenBLAS library found], "policy": "pinned" or "auto"}``."""
    blas = [int(getter()) for _, getter in _blas() if getter is not None]
    return {"numba": numba.get_num_threads(), "blas": blas, "policy": "auto" if _PINNED is None else "pinned"}


# -- the automatic choice --------------------------------------------------------------------------


class ThreadChooser:
    """Times a repeating step with each candidate thread count and keeps the fastest, re-checking.

    Call `step` once per step (the time between two calls is one step). A probe runs every
    candidate for ``probe_steps`` timed steps, twice, interleaved (so that a change of load during
    the probe hits both), after one untimed step per switch (the first step after a change pays
    for waking or parking threads); the candidate with the lowest median step time is kept. A count
    whose fastest timed step is ``give_up`` times the median of a count already timed gets no more
    steps in that probe (under load, two threads can be ten times slower than one: probing them
    fully would cost more than the choice saves).

    The next probe comes when the time since the last one is at least ``1 / overhead`` times what
    the probe cost beyond running the winner throughout (so that probing costs at most about
    ``overhead`` of the training time), and at least ``min_wait`` seconds; the wait doubles each
    time a probe confirms the previous choice, up to ``max_wait``, and starts again when the choice
    changes. A probe also comes early (but not before the probing budget allows) when
    ``slow_steps`` steps in a row took more than ``slow_factor`` times the winner's probed median:
    the load changed.

    Parameters
    ----------
    candidates : sequence of int
        The thread counts to choose from, in the order they are probed.
    apply : callable(int)
        Sets the thread count.
    clock : callable() -> float
        Seconds (``time.perf_counter``; tests give a fake clock).
    """

    def __init__(self, candidates, apply, clock=time.perf_counter, probe_steps=4, overhead=0.05,
                 min_wait=1.0, max_wait=30.0, slow_factor=2.0, slow_steps=8, give_up=2.0):
        self.candidates = tuple(candidates)
        self._apply = apply
        self._clock = clock
        self.probe_steps = probe_steps
        self.overhead = overhead
        self.min_wait = min_wait
        self.max_wait = max_wait
        self.slow_factor = slow_factor
        self.slow_steps = slow_steps
        self.give_up = give_up
        self.choice = None
        self.history = []  # (time, {count: median step seconds}, chosen count), one entry per probe
        self.forget()

    def forget(self):
        """Drop what was measured: the next step starts a new probe (a new model, or a new policy)."""
        self.choice = None
        self._key = None
        self._last = None
        self._backoff = self.min_wait
        self._plan = []
        self._slow = 0

    def step(self, key=None):
        """Note that one step ended. ``key`` names what is being stepped (a model): another key
        starts a new probe, since its step times are not comparable."""
        now = self._clock()
        if id(key) != self._key:  # an id, so that the chooser keeps no model alive
            self.forget()
            self._key = id(key)
        last, self._last = self._last, now
        if last is None:
            self._start_probe(now)
            return
        if self._plan:
            self._probe_step(now - last, now)
        elif now >= self._next_probe:
            self._start_probe(now)
        elif now - last > self.slow_factor * self._best:
            self._slow += 1
            if self._slow >= self.slow_steps and now >= self._earliest:
                self._start_probe(now)
        else:
            self._slow = 0

    def _start_probe(self, now):
        if len(self.candidates) < 2:
            self.choice = self.candidates[0] if self.candidates else None
            self._next_probe = self._best = float("inf")
            return
        self._plan = [count for _ in range(2) for count in self.candidates]
        self._times = {count: [] for count in self.candidates}
        self._block = []
        self._probe_count = 0
        self._probe_started = now
        self._apply(self._plan[0])

    def _probe_step(self, seconds, now):
        count = self._plan[0]
        self._probe_count += 1
        self._block.append(seconds)
        hopeless = self._hopeless(count)
        if len(self._block) <= self.probe_steps and not hopeless:
            return
        self._times[count] += self._block[1:]  # the first step after a switch is not timed
        self._block = []
        self._plan.pop(0)
        if hopeless:  # far slower than a count already timed: not worth more steps
            self._plan = [other for other in self._plan if other != count]
        if self._plan:
            self._apply(self._plan[0])
            return
        medians = {count: statistics.median(times) for count, times in self._times.items() if times}
        if not medians:  # every count was dropped on its untimed step alone: keep the one probed first
            medians = {self.candidates[0]: seconds}
        best = min(medians, key=medians.get)
        excess = max(0.0, (now - self._probe_started) - self._probe_count * medians[best])
        self._backoff = min(self.max_wait, 2 * self._backoff) if best == self.choice else self.min_wait
        self.choice = best
        self._best = medians[best]
        self._slow = 0
        self._earliest = now + excess / self.overhead
        self._next_probe = max(self._earliest, now + self._backoff)
        self.history.append((now, medians, best))
        self._apply(best)

    def _hopeless(self, count):
        """Whether every step of ``count`` so far (the untimed one too) took ``give_up`` times the
        median of another count's completed block."""
        others = [statistics.median(t) for c, t in self._times.items() if c != count and len(t) >= self.probe_steps]
        return bool(others) and min(self._block + self._times[count]) > self.give_up * min(others)


def _candidates():
    cores = min(available_cores(), numba.config.NUMBA_NUM_THREADS)
    return (1, cores) if cores > 1 else (1,)


_CHOOSER = ThreadChooser(
    _candidates(),
    set_blas_threads,
    probe_steps=config.THREAD_PROBE_STEPS,
    overhead=config.THREAD_PROBE_OVERHEAD,
    max_wait=config.THREAD_RECHECK_SECONDS,
)


def training_step(model):
    """Called by ``fit`` after every training step: drives the automatic choice (nothing when pinned)."""
    if _PINNED is None:
        _CHOOSER.step(model)


def chooser():
    """The `ThreadChooser` that ``fit`` drives (its ``choice`` and ``history`` show what it measured)."""
    return _CHOOSER


if config.NUM_THREADS is not None:
    set_num_threads(config.NUM_THREADS)
