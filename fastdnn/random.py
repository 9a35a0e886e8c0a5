"""The library's random state: one NumPy Generator for initializers and shuffling, seeded by `set_seed`."""

import contextlib
import numbers

import numpy as np

from fastdnn.kernels.jit import jit

_generator = np.random.default_rng()


def set_seed(seed):
    """Seed every random source fastdnn uses (weights, shuffling, kernels that draw numbers).

    Same seed, same data and same thread count give identical weights after training.

    Parameters
    ----------
    seed : int
        A non-negative integer.
    """
    global _generator
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed: expected a non-negative integer, received {seed!r}")
    _generator = np.random.default_rng(int(seed))
    _seed_numba(int(seed) % (2**32))


def generator():
    """The current ``numpy.random.Generator``."""
    return _generator


@jit
def _seed_numba(seed):
    # numba keeps its own random state, separate from NumPy's, for draws inside kernels. Cached on disk
    # like every kernel: uncached, each process that called set_seed compiled it (0.2 s).
    np.random.seed(seed)


@contextlib.contextmanager
def seeded(seed):
    """Run a block with fastdnn's generator seeded by ``seed``, then give the previous one back.

    ``None`` leaves the generator as it is. What the block draws (initial weights, shuffling) then
    depends on ``seed`` alone, and code after the block draws as if the block had not run. numba's
    in-kernel generator has no state to save: it stays seeded from ``seed``.
    """
    global _generator
    if seed is None:
        yield
        return
    previous = _generator
    set_seed(seed)
    try:
        yield
    finally:
        _generator = previous


_MASK64 = (1 << 64) - 1


def mix64(z):
    """SplitMix64's output function on a Python integer (modulo 2^64): ``kernels.cpu.dropout.mix64``
    for the once-per-step word, without a kernel call (a third of the cost)."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


class CounterStream:
    """A layer's counter-based random stream: the numbers of a step are a hash of (key, step, element).

    Nothing is carried from one number to the next, so any process (or device) computes the numbers
    of any element alone: a data-parallel process draws for its rows of the global batch what one
    process draws for them. ``key``: the layer's seed, or None to draw one from the library's generator
    (`set_seed`) when the layer first trains; ``step`` counts the steps drawn so far. Both are saved
    with a model (`fastdnn.saving`) so that a resumed run draws what an uninterrupted one would.
    """

    def __init__(self, key=None):
        self.key = None if key is None else int(key)
        self.step = 0

    def ensure_key(self):
        """Draw the key from the library's generator if the layer was not seeded (once)."""
        if self.key is None:
            self.key = int(_generator.integers(0, 2**63))
        return self.key

    def next_word(self):
        """The ``numpy.uint64`` word of the next step (``kernels.cpu.dropout``'s ``stream``),
        ``mix64(key ^ mix64(step))``; advances ``step``."""
        key = self.ensure_key()
        word = np.uint64(mix64(key ^ mix64(self.step)))
        self.step += 1
        return word

    def get_state(self):
        return {"key": self.key, "step": self.step}

    def set_state(self, state):
        """Restore `get_state`'s dict (validated: a key None or in [0, 2^64), a step >= 0)."""
        key, step = state.get("key") if isinstance(state, dict) else None, state.get("step") if isinstance(state, dict) else None
        valid_key = key is None or (isinstance(key, numbers.Integral) and not isinstance(key, bool) and 0 <= key <= _MASK64)
        if not valid_key or isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
            raise ValueError(f"state: expected {{'key': None or an integer in [0, 2^64), 'step': a non-negative integer}}, received {state!r}")
        self.key = None if key is None else int(key)
        self.step = int(step)
