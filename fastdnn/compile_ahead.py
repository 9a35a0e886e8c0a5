"""``fastdnn compile``: compile the kernels of common models into numba's disk cache, ahead of a first run.

fastdnn's kernels are compiled on first use and cached on disk (``FASTDNN_CACHE``), so the first run
on a machine pays for compiling them. This module pays it ahead: each family trains tiny models for
one step (``fit``, ``evaluate``, ``predict``), which compiles exactly the kernels and argument types a
real run of that family uses, in the float type of ``fd.config.floatx()`` unless told otherwise.
A kernel already in the cache is loaded, not compiled, so running it again costs little.
"""

import time

import numpy as np

#: Families in the order they run: name -> (what it covers, the models it trains).
FAMILIES = {}

#: The families a plain ``fastdnn compile`` runs: Dense networks with the usual activations, losses
#: and Adam/SGD (the digits demo and most MLPs).
DEFAULT_FAMILIES = ("dense",)


def _family(name, description):
    def register(build):
        FAMILIES[name] = (description, build)
        return build

    return register


def _fit_once(model, x, y, loss, optimizer="adam", metrics=("accuracy",)):
    model.compile(optimizer=optimizer, loss=loss, metrics=list(metrics))
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    model.evaluate(x, y, verbose=0)
    model.predict(x, verbose=0)


@_family("dense", "Dense layers (relu, tanh, sigmoid, softmax, linear), the usual losses, Adam and SGD")
def _dense(fd, rng, dtype):
    x = rng.standard_normal((8, 6)).astype(dtype)
    labels = rng.integers(0, 3, 8)

    def mlp(hidden, output):
        return fd.Sequential([fd.layers.Dense(5, activation=hidden, input_shape=(6,)), fd.layers.Dense(3, activation=output)])

    # float64 inputs, as NumPy and scikit-learn make them: their validation has kernels of its own
    _fit_once(mlp("relu", "softmax"), x.astype(np.float64), labels, "sparse_categorical_crossentropy")
    _fit_once(mlp("tanh", "softmax"), x, fd.utils.to_categorical(labels, 3).astype(dtype), "categorical_crossentropy", "sgd")
    _fit_once(mlp("relu", "sigmoid"), x, (x[:, :3] > 0).astype(dtype), "binary_crossentropy")
    _fit_once(mlp("sigmoid", "linear"), x, x[:, :3], "mse", metrics=("mae",))


@_family("activations", "the other activations (leaky_relu, elu, softplus, gelu, silu; also as Activation layers) "
         "and the losses on probabilities rather than logits (mae too)")
def _activations(fd, rng, dtype):
    x = rng.standard_normal((8, 6)).astype(dtype)
    labels = rng.integers(0, 3, 8)
    for name in ("leaky_relu", "elu", "softplus", "gelu", "silu", "linear"):
        if name != "linear":
            model = fd.Sequential([fd.layers.Dense(5, activation=name, input_shape=(6,)), fd.layers.Dense(3)])
            _fit_once(model, x, x[:, :3], "mse", metrics=())
        model = fd.Sequential([fd.layers.Dense(5, input_shape=(6,)), fd.layers.Activation(name), fd.layers.Dense(3)])
        _fit_once(model, x, x[:, :3], "mae", metrics=())
    probabilities = fd.Sequential([fd.layers.Dense(3, activation="sigmoid", input_shape=(6,))])
    _fit_once(probabilities, x, labels, "sparse_categorical_crossentropy")
    _fit_once(probabilities, x, fd.utils.to_categorical(labels, 3).astype(dtype), "categorical_crossentropy")
    softmax = fd.Sequential([fd.layers.Dense(3, activation="softmax", input_shape=(6,))])
    _fit_once(softmax, x, (x[:, :3] > 0).astype(dtype), "binary_crossentropy")


@_family("merging", "functional models with Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate, Dot")
def _merging(fd, rng, dtype):
    x = rng.standard_normal((8, 6)).astype(dtype)
    labels = rng.integers(0, 3, 8)
    merges = (fd.layers.Add(), fd.layers.Subtract(), fd.layers.Multiply(), fd.layers.Average(), fd.layers.Maximum(),
              fd.layers.Minimum(), fd.layers.Concatenate(), fd.layers.Dot(axes=1), fd.layers.Dot(axes=1, normalize=True))
    for merge in merges:
        inputs = fd.Input((6,))
        merged = merge([fd.layers.Dense(4)(inputs), fd.layers.Dense(4, activation="tanh")(inputs)])
        _fit_once(fd.Model(inputs, fd.layers.Dense(3, activation="softmax")(merged)), x, labels, "sparse_categorical_crossentropy")


@_family("optimizers", "every optimizer (SGD with momentum and Nesterov, Adagrad, RMSprop, Adadelta, Adam) and "
         "their clipping and weight decay")
def _optimizers(fd, rng, dtype):
    x = rng.standard_normal((8, 6)).astype(dtype)
    labels = rng.integers(0, 3, 8)
    for optimizer in ("sgd", fd.optimizers.SGD(momentum=0.9), fd.optimizers.SGD(momentum=0.9, nesterov=True),
                      "adagrad", "rmsprop", "adadelta", "adam", fd.optimizers.SGD(clipnorm=1.0, weight_decay=0.01),
                      fd.optimizers.Adam(clipvalue=0.5), fd.optimizers.Adam(global_clipnorm=1.0)):
        model = fd.Sequential([fd.layers.Dense(3, activation="softmax", input_shape=(6,))])
        _fit_once(model, x, labels, "sparse_categorical_crossentropy", optimizer)


@_family("conv", "Conv1D and Conv2D with max and average pooling, global pooling, Flatten")
def _conv(fd, rng, dtype):
    labels = rng.integers(0, 3, 8)
    images = rng.standard_normal((8, 6, 6, 2)).astype(dtype)
    model = fd.Sequential([
        fd.layers.Conv2D(4, 3, activation="relu", padding="same", input_shape=(6, 6, 2)),
        fd.layers.MaxPooling2D(2),
        fd.layers.Conv2D(4, 2, activation="relu"),
        fd.layers.AveragePooling2D(2),
        fd.layers.Flatten(),
        fd.layers.Dense(3, activation="softmax"),
    ])
    _fit_once(model, images, labels, "sparse_categorical_crossentropy")
    # one input channel (grey images, as MNIST's): the first convolution runs by padded planes
    model = fd.Sequential([fd.layers.Conv2D(4, 3, activation="relu", padding="same", input_shape=(6, 6, 1)), fd.layers.MaxPooling2D(2),
                           fd.layers.Flatten(), fd.layers.Dense(3, activation="softmax")])
    _fit_once(model, images[..., :1].copy(), labels, "sparse_categorical_crossentropy")
    model = fd.Sequential([fd.layers.Conv2D(4, 3, activation="relu", input_shape=(6, 6, 2)), fd.layers.GlobalAveragePooling2D(),
                           fd.layers.Dense(3, activation="softmax")])
    _fit_once(model, images, labels, "sparse_categorical_crossentropy")
    series = rng.standard_normal((8, 10, 2)).astype(dtype)
    model = fd.Sequential([
        fd.layers.Conv1D(4, 3, activation="relu", input_shape=(10, 2)),
        fd.layers.MaxPooling1D(2),
        fd.layers.Conv1D(4, 2, activation="relu"),
        fd.layers.GlobalMaxPooling1D(),
        fd.layers.Dense(3, activation="softmax"),
    ])
    _fit_once(model, series, labels, "sparse_categorical_crossentropy")


@_family("recurrent", "SimpleRNN, LSTM and GRU (with and without return_sequences), Embedding")
def _recurrent(fd, rng, dtype):
    labels = rng.integers(0, 3, 8)
    series = rng.standard_normal((8, 5, 2)).astype(dtype)
    for layer in (fd.layers.SimpleRNN, fd.layers.LSTM, fd.layers.GRU):
        model = fd.Sequential([layer(4, return_sequences=True, input_shape=(5, 2)), layer(4), fd.layers.Dense(3, activation="softmax")])
        _fit_once(model, series, labels, "sparse_categorical_crossentropy")
    tokens = rng.integers(0, 20, (8, 5))
    model = fd.Sequential([fd.layers.Embedding(20, 4, input_shape=(5,)), fd.layers.LSTM(4), fd.layers.Dense(3, activation="softmax")])
    _fit_once(model, tokens, labels, "sparse_categorical_crossentropy")


@_family("regularization", "Dropout and BatchNormalization (trained and frozen)")
def _regularization(fd, rng, dtype):
    x = rng.standard_normal((8, 6)).astype(dtype)
    labels = rng.integers(0, 3, 8)
    model = fd.Sequential([
        fd.layers.Dense(5, activation="relu", input_shape=(6,)),
        fd.layers.BatchNormalization(),
        fd.layers.Dropout(0.5, seed=0),
        fd.layers.Dense(3, activation="softmax"),
    ])
    _fit_once(model, x, labels, "sparse_categorical_crossentropy")
    frozen = fd.layers.BatchNormalization(trainable=False)  # normalizes with its moving statistics in training too
    model = fd.Sequential([fd.layers.Dense(5, activation="relu", input_shape=(6,)), frozen, fd.layers.Dense(3, activation="softmax")])
    _fit_once(model, x, labels, "sparse_categorical_crossentropy")


def family_names():
    return list(FAMILIES)


def compile_ahead(families=DEFAULT_FAMILIES, dtypes=None, progress=print):
    """Train each family's tiny models once; return ``[(family, dtype, kernels compiled, seconds)]``.

    ``dtypes``: float types to compile for (default: ``fd.config.floatx()`` alone). ``progress`` is
    called with one line per family (``None``: silent). fastdnn's generator is left as it was (the
    models draw from a seeded one, ``fd.random.seeded``).
    """
    import fastdnn as fd
    from numba.core.event import install_recorder

    unknown = [name for name in families if name not in FAMILIES]
    if unknown:
        raise ValueError(f"families: expected names among {family_names()}, received {unknown}")
    dtypes = [fd.config.floatx()] if dtypes is None else [np.dtype(dtype).name for dtype in dtypes]
    bad = [dtype for dtype in dtypes if dtype not in ("float32", "float64")]
    if bad:
        raise ValueError(f"dtypes: expected float32 and/or float64, received {bad}")
    rows = []
    previous = fd.config.floatx()
    try:
        for dtype in dtypes:
            fd.config.set_floatx(dtype)
            for name in families:
                start = time.perf_counter()
                # numba reports each real compilation (not a load from its disk cache) as a "numba:compile" event
                with install_recorder("numba:compile") as compilations, fd.random.seeded(0):
                    FAMILIES[name][1](fd, np.random.default_rng(0), dtype)
                compiled = sum(1 for _, event in compilations.buffer if event.is_start)
                rows.append((name, dtype, compiled, time.perf_counter() - start))
                if progress:
                    progress(f"  {name:15s} {dtype}: {compiled:3d} kernels compiled in {rows[-1][3]:5.1f} s")
    finally:
        fd.config.set_floatx(previous)
    return rows


def cache_location():
    """Where numba writes fastdnn's compiled kernels (``NUMBA_CACHE_DIR``, or next to the modules)."""
    from fastdnn.kernels.cpu import data

    return getattr(getattr(data.all_finite, "_cache", None), "_cache_path", None)
