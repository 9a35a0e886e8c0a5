"""Start-up latency in a fresh process: ``import fastdnn``, and the import plus a first epoch on digits.

"warm cache": numba's on-disk cache already holds the kernels (every run after the first on a
machine); "empty cache": ``NUMBA_CACHE_DIR`` points at a new empty folder, so every kernel the model
uses is compiled (the first run ever). The timed code starts after the interpreter and NumPy are up.
"""

import subprocess
import sys
import textwrap

DATA = textwrap.dedent(
    """
    import numpy as np
    rng = np.random.default_rng(0)
    x = rng.random((1347, 64), dtype=np.float32)
    y = rng.integers(0, 10, 1347)
    """
)

EMPTY_CACHE = textwrap.dedent(
    """
    import atexit, os, shutil, tempfile
    os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="fastdnn-bench-cache-")
    atexit.register(shutil.rmtree, os.environ["NUMBA_CACHE_DIR"], True)
    """
)

IMPORT = "import fastdnn as fd"

FIRST_FIT = textwrap.dedent(
    """
    import fastdnn as fd
    fd.set_seed(0)
    model = fd.Sequential([
        fd.layers.Dense(64, activation="relu", input_shape=(64,)),
        fd.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    """
)


class Startup:
    params = ["warm cache", "empty cache"]
    param_names = ["compile cache"]
    number = 1
    repeat = (1, 5, 60.0)
    warmup_time = 0
    timeout = 600

    def setup(self, cache):
        if cache == "warm cache":
            # Fill the cache the timed processes will read (the same one this process would use).
            subprocess.run([sys.executable, "-c", DATA + FIRST_FIT], check=True, timeout=600)

    def _setup_code(self, cache):
        return (EMPTY_CACHE if cache == "empty cache" else "") + DATA

    def timeraw_import(self, cache):
        return IMPORT, self._setup_code(cache)

    def timeraw_import_and_first_epoch(self, cache):
        return FIRST_FIT, self._setup_code(cache)
