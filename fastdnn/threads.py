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
with one while other work ran).

A third way suits the recurrent layers, whose steps are long runs of small products that OpenBLAS
splits badly even on an idle machine, and the convolution and pooling layers, whose kernels are
serial: the rows of the batch are independent through a whole layer call (all the steps of a
recurrent layer), so fastdnn's own pool runs them as parts side by side (`split_batch`), each part
calling the BLAS single-threaded; the threads meet once per layer call, not once per product, and
a waiting thread blocks instead of spinning. Large products are cut into parts too (`matmul`).
This only works with the BLAS's own threads off: after a product with two threads, OpenBLAS's idle
thread keeps spinning for a while and takes the core a part needs (an LSTM(128) forward pass over 50 steps at batch 128
took 19.0 ms in two parts with the BLAS's threads on between calls, 12.3 ms with them off, 19.5 ms
on one thread).

So each way of running is a `Plan` (BLAS threads, pool parts): one thread, the BLAS's threads, and
fastdnn's pool. Which wins depends on the model and on the load, which changes, so
`ThreadChooser` times the repeating training step under each candidate plan, keeps the fastest,
and times them again from time to time; ``fit`` drives it with one call per step
(`training_step`). ``fd.set_num_threads(n)`` pins ``n`` BLAS threads and turns the choice off;
``fd.set_num_threads(None)`` turns it back on. ``FASTDNN_NUM_THREADS`` (an integer) pins a count
from the start.

The choice can change the plan during training, and OpenBLAS's products with one and with two
threads (or cut into parts) may differ in the last bit: pin the count for bit-identical runs.
"""

import collections
import concurrent.futures
import contextvars
import ctypes
import glob
import os
import statistics
import threading
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


def set_num_threads(n, pool=False):
    """Use ``n`` threads in numba's parallel kernels and in the BLAS matrix products.

    By default (and after ``set_num_threads(None)``) fastdnn chooses how to thread its work while it
    trains, by timing the training step with one thread, with one BLAS thread per core and, when the
    model has work to split, with its own pool (see `fastdnn.threads`). A number pins ``n`` BLAS
    threads (``Plan(n, 1)``) and turns that choice off; with ``pool=True`` it pins fastdnn's pool
    of ``n`` threads over single-threaded BLAS instead (``Plan(1, n)``).

    Parameters
    ----------
    n : int or None
        At least 1 and at most ``numba.config.NUMBA_NUM_THREADS`` (the cores numba saw at start);
        None returns the choice to fastdnn.
    pool : bool
        Pin the pool plan rather than the BLAS's threads.
    """
    global _PINNED
    if n is None:
        if _PINNED is not None:
            _PINNED = None
            _CHOOSER.forget()
        return
    n = validation.positive_int(n, "n")
    if not isinstance(pool, (bool, np.bool_)):
        raise TypeError(f"pool: expected True or False, received {pool!r}")
    limit = numba.config.NUMBA_NUM_THREADS
    if n > limit:
        raise ValueError(f"n: expected at most {limit} threads (NUMBA_NUM_THREADS), received {n}")
    _PINNED = n
    numba.set_num_threads(n)
    use_plan(Plan(1, n) if pool else Plan(n, 1))


def get_num_threads():
    """``{"numba": n, "blas": [n per OpenBLAS library found], "plan": the `Plan` in use, "policy":
    "pinned" or "auto"}``."""
    blas = [int(getter()) for _, getter in _blas() if getter is not None]
    policy = "auto" if _PINNED is None else "pinned"
    return {"numba": numba.get_num_threads(), "blas": blas, "plan": _PLAN, "policy": policy}


# -- plans: who runs the products --------------------------------------------------------------------


class Plan(collections.namedtuple("Plan", ["blas", "parts"])):
    """How the CPU work is spread: ``blas`` threads in each BLAS product, and fastdnn's own pool
    cutting `split_batch` work and large `matmul` products into ``parts`` (1: no pool)."""

    __slots__ = ()

    def __str__(self):
        if self.parts > 1:
            return f"pool of {self.parts}"
        return f"BLAS {self.blas}" if self.blas > 1 else "1 thread"


_CORES = min(available_cores(), numba.config.NUMBA_NUM_THREADS)
_PLAN = Plan(_CORES, 1)  # the BLAS's own default, until fit or the user sets one
_SPLITTABLE = False  # whether a `split_batch` since the last look could have split (see `_pool_helps`)


def use_plan(plan):
    """Run the work under ``plan`` (the chooser's ``apply``; ``set_num_threads(n)`` uses ``Plan(n, 1)``)."""
    global _PLAN
    _PLAN = Plan(*plan)
    set_blas_threads(_PLAN.blas)


def _pool_helps():
    """Whether the work seen since the last call was big enough to split (then reset)."""
    global _SPLITTABLE
    seen, _SPLITTABLE = _SPLITTABLE, False
    return seen


# -- fastdnn's pool: work split over rows ----------------------------------------------------------

#: Fewest rows in a part of `split_batch`: below this, a part's work is too small to repay a wake-up.
MIN_PART_ROWS = 8
#: Fewest floating-point operations in a part of `matmul` (about 0.2 ms on one core).
MIN_PART_FLOPS = 10_000_000

_POOL = None
_POOL_NAME = "fastdnn-pool"
_POOL_PID = None
_POOL_LOCK = threading.Lock()


def _pool(workers):
    global _POOL, _POOL_PID
    with _POOL_LOCK:
        # a forked child inherits the pool object but not its threads: it needs a pool of its own
        if _POOL is None or _POOL._max_workers < workers or _POOL_PID != os.getpid():
            _POOL = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix=_POOL_NAME)
            _POOL_PID = os.getpid()
        return _POOL


def _run_parts(bounds, body):
    """``body(lo, hi, part)`` for each consecutive pair ``lo, hi`` of ``bounds`` (``part`` counts
    them from 0): the first in this thread, the others in the pool; an exception in any part is
    raised after every part has finished."""
    ranges = [(lo, hi, part) for part, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:]))]
    if len(ranges) == 1 or threading.current_thread().name.startswith(_POOL_NAME):
        # one part; or a part that splits again: waiting on the pool from inside it could wait forever
        for arguments in ranges:
            body(*arguments)
        return
    # each part in a copy of the caller's context, so that its np.errstate holds in the pool too
    futures = [_pool(len(ranges) - 1).submit(contextvars.copy_context().run, body, *arguments) for arguments in ranges[1:]]
    try:
        body(*ranges[0])
    finally:
        concurrent.futures.wait(futures)
    for future in futures:
        future.result()


def _bounds(n, parts):
    return [n * p // parts for p in range(parts + 1)]


def part_count(n):
    """How many parts `split_batch` cuts ``n`` rows into (for scratch space of one per part)."""
    return max(1, min(_PLAN.parts, n // MIN_PART_ROWS))


def split_batch(n, body):
    """Run ``body(lo, hi, part)`` over parts of the rows ``0..n``, side by side under a pool plan.

    ``body`` must touch only its own rows of its outputs (and the scratch space of its ``part``,
    ``0 <= part < part_count(n)``). Under a `Plan` with ``parts > 1``, the rows are cut into that
    many parts (as even as they allow, none under `MIN_PART_ROWS` rows), one per thread of
    fastdnn's pool (the caller's thread takes the first), each calling the single-threaded BLAS.
    The threads meet once per call, not once per product, and a thread that waits blocks instead of
    spinning. Otherwise ``body(0, n, 0)`` runs in the caller's thread.
    """
    global _SPLITTABLE
    if n >= 2 * MIN_PART_ROWS:
        _SPLITTABLE = True
    _run_parts(_bounds(n, part_count(n)), body)


def matmul(a, b, out):
    """``np.matmul(a, b, out=out)`` for 2-d arrays, cut into parts of ``out``'s rows (or columns,
    when it has fewer rows than columns) under a pool plan, when each part keeps at least
    `MIN_PART_FLOPS`."""
    if _PLAN.parts == 1:  # the common case first: a product costs a few microseconds of Python
        np.matmul(a, b, out=out)
        return
    rows, cols = out.shape
    flops = 2 * rows * cols * a.shape[1]
    parts = min(_PLAN.parts, flops // MIN_PART_FLOPS, max(rows, cols))
    if parts <= 1:
        np.matmul(a, b, out=out)
    elif rows >= cols:
        _run_parts(_bounds(rows, parts), lambda lo, hi, _: np.matmul(a[lo:hi], b, out=out[lo:hi]))
    else:
        _run_parts(_bounds(cols, parts), lambda lo, hi, _: np.matmul(a, b[:, lo:hi], out=out[:, lo:hi]))


# -- the automatic choice --------------------------------------------------------------------------


class ThreadChooser:
    """Times a repeating step with each candidate thread count and keeps the fastest, re-checking.

    Call `step` once per step (the time between two calls is one step). A probe runs every
    candidate for ``probe_steps`` timed steps (or at least two that took ``probe_seconds`` in all:
    long steps time well in fewer), twice, interleaved (so that a change of load during the probe
    hits both), after one untimed step per switch (the first step after a change pays
    for waking or parking threads); the candidate with the lowest median step time is kept. A count
    whose fastest timed step is ``give_up`` times the median of a count already timed gets no more
    steps in that probe (under load, two threads can be ten times slower than one: probing them
    fully would cost more than the choice saves).

    The next probe comes when the training time since the last one is at least ``1 / overhead``
    times what the probe cost beyond running the winner throughout (so that probing costs at most
    about ``overhead`` of the training time), and at least ``min_wait`` seconds have passed; the
    wait doubles each time a probe confirms the previous choice, up to ``max_wait``, and starts
    again when the choice changes. Training time is the sum of the steps: `resume` marks a pause
    (between epochs, between calls of ``fit``), which is not a step and does not count toward the
    budget (else a user who trains an epoch at a time with other work between, or a benchmark that
    interleaves libraries, pays a probe at every epoch), but does count toward the wait: the load
    may change in a pause. A probe also comes early (but not before the probing budget allows) when
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
    worth_probing : callable(candidate) -> bool
        Asked for each candidate when a probe starts: a candidate that cannot help the steps seen
        (a pool plan when no work was big enough to split) sits that probe out.
    settle : callable(candidate) -> float
        Seconds after switching to a candidate during which its steps are not timed (besides the
        first): the pool's parts are slowed while OpenBLAS's idle threads still spin.
    """

    def __init__(self, candidates, apply, clock=time.perf_counter, probe_steps=4, probe_seconds=0.05, overhead=0.05,
                 min_wait=1.0, max_wait=30.0, slow_factor=2.0, slow_steps=8, give_up=1.5,
                 worth_probing=lambda candidate: True, settle=lambda candidate: 0.0):
        self.candidates = tuple(candidates)
        self._apply = apply
        self._worth_probing = worth_probing
        self._settle = settle
        self._clock = clock
        self.probe_steps = probe_steps
        self.probe_seconds = probe_seconds
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
        self._elapsed = 0.0  # training seconds: the sum of the steps, pauses left out

    def resume(self):
        """Steps resume after a pause (a new epoch, or ``fit`` called again): the time until the
        next `step` is not a step."""
        self._last = None

    def step(self, key=None):
        """Note that one step ended. ``key`` names what is being stepped (a model): another key
        starts a new probe, since its step times are not comparable."""
        now = self._clock()
        if id(key) != self._key:  # an id, so that the chooser keeps no model alive
            self.forget()
            self._key = id(key)
        last, self._last = self._last, now
        if last is None:
            if self.choice is None and not self._plan:  # this key's first step
                self._start_probe(now)
            return  # the first step after a pause: its time includes the pause
        seconds = now - last
        self._elapsed += seconds
        if self._plan:
            self._probe_step(seconds, now)
        elif now >= self._next_probe and self._elapsed >= self._earliest:
            self._start_probe(now)
        elif seconds > self.slow_factor * self._best:
            self._slow += 1
            if self._slow >= self.slow_steps and self._elapsed >= self._earliest:
                self._start_probe(now)
        else:
            self._slow = 0

    def _start_probe(self, now):
        candidates = [candidate for candidate in self.candidates if self._worth_probing(candidate)]
        if len(candidates) < 2:
            self.choice = candidates[0] if candidates else None
            self._next_probe = self._earliest = self._best = float("inf")
            return
        self._plan = [count for _ in range(2) for count in candidates]
        self._times = {count: [] for count in candidates}
        self._lead, self._block = [], []
        self._probe_count = 0
        self._probe_started = self._elapsed
        self._switch(now)

    def _switch(self, now):
        self._apply(self._plan[0])
        self._switched_at = now

    def _probe_step(self, seconds, now):
        count = self._plan[0]
        self._probe_count += 1
        # not timed: the first step after a switch, and any that began within settle(count) of it
        if not self._lead or now - seconds - self._switched_at < self._settle(count):
            self._lead.append(seconds)
        else:
            self._block.append(seconds)
        hopeless = self._hopeless(count)
        timed = self._block
        enough = len(timed) >= self.probe_steps or (len(timed) >= 2 and sum(timed) >= self.probe_seconds)
        if not enough and not hopeless:
            return
        self._times[count] += self._block
        self._lead, self._block = [], []
        self._plan.pop(0)
        if hopeless:  # far slower than a count already timed: not worth more steps
            self._plan = [other for other in self._plan if other != count]
        if self._plan:
            self._switch(now)
            return
        medians = {count: statistics.median(times) for count, times in self._times.items() if times}
        if not medians:  # every count was dropped on its untimed step alone: keep the one probed first
            medians = {self.candidates[0]: seconds}
        best = min(medians, key=medians.get)
        excess = max(0.0, (self._elapsed - self._probe_started) - self._probe_count * medians[best])
        self._backoff = min(self.max_wait, 2 * self._backoff) if best == self.choice else self.min_wait
        self.choice = best
        self._best = medians[best]
        self._slow = 0
        self._earliest = self._elapsed + excess / self.overhead  # training time: the budget
        self._next_probe = now + self._backoff  # wall-clock time: the load may change in a pause
        self.history.append((now, medians, best))
        self._apply(best)

    def _hopeless(self, count):
        """Whether every step of ``count`` so far (the untimed one too) took ``give_up`` times the
        median of another count's completed block."""
        others = [statistics.median(t) for c, t in self._times.items() if c != count and t]  # completed blocks
        return bool(others) and min(self._lead + self._block + self._times[count]) > self.give_up * min(others)


def _candidates():
    """One thread; fastdnn's pool over single-threaded BLAS (one per core); the BLAS's threads.

    In this order, so that in a probe the pool never follows the BLAS's threads: OpenBLAS's idle
    threads spin for a while after a product, on the cores the pool's parts need."""
    if _CORES == 1:
        return (Plan(1, 1),)
    return (Plan(1, 1), Plan(1, _CORES), Plan(_CORES, 1))


def _worth_probing(plan):
    """A pool plan is probed only when the steps since the last probe ran a `split_batch` big enough
    to split (a recurrent, convolution or pooling layer): for products alone, the BLAS's own threads
    were as fast or faster idle, and one thread beside a busy process (784-512-256-10 MLP epochs at
    batch 128 and 1024, idle: pool 0.75 and 0.62 of one thread's time, BLAS 0.60 and 0.59; beside
    a busy process: pool 1.03 and 1.09, BLAS 2.04 and 1.37)."""
    return plan.parts == 1 or _pool_helps()


#: How long OpenBLAS's idle threads spin after a product (its THREAD_TIMEOUT, 2^28 cycles: about 0.1 s
#: at 2.7 GHz; measured here as the process's CPU time while it slept after a two-thread product).
BLAS_SPIN_SECONDS = 0.15

_CHOOSER = ThreadChooser(
    _candidates(),
    use_plan,
    worth_probing=_worth_probing,
    settle=lambda plan: BLAS_SPIN_SECONDS if plan.parts > 1 else 0.0,
    probe_steps=config.THREAD_PROBE_STEPS,
    overhead=config.THREAD_PROBE_OVERHEAD,
    max_wait=config.THREAD_RECHECK_SECONDS,
)


def training_step(model):
    """Called by ``fit`` after every training step: drives the automatic choice (nothing when pinned)."""
    if _PINNED is None:
        _CHOOSER.step(model)


def training_resumes():
    """Called by ``fit`` before each epoch's steps: the time since the last step was a pause."""
    _CHOOSER.resume()


def chooser():
    """The `ThreadChooser` that ``fit`` drives (its ``choice`` and ``history`` show what it measured)."""
    return _CHOOSER


if config.NUM_THREADS is not None:
    set_num_threads(config.NUM_THREADS)
