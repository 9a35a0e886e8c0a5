"""Failing well: malformed input fuzzed through the public API, threads, memory.

Every fuzzed call must either succeed (leaving finite weights) or raise ValueError/TypeError whose
message starts with the name of the offending argument. ``pytest --hypothesis-show-statistics``
prints how the calls ended (each outcome is an ``event``).
"""

import re
import threading
import tracemalloc

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastdnn as fd

# At least 300 examples, more under a profile that asks for more (HYPOTHESIS_PROFILE=long).
FUZZ = settings(max_examples=max(300, settings().max_examples), deadline=None)

DTYPES = st.sampled_from(["float16", "float32", "float64", "int8", "int64", "uint8", "bool", "complex64", "object", "U3"])


@st.composite
def malformed_arrays(draw, rows=None, columns=None):
    """Arrays that are sometimes right: random dtype, rank, size, NaN/Inf, or plain Python objects."""
    kind = draw(st.sampled_from(["array", "array", "array", "list", "scalar", "none", "string", "ragged"]))
    if kind == "none":
        return None
    if kind == "string":
        return draw(st.text(max_size=5))
    if kind == "scalar":
        return draw(st.one_of(st.floats(), st.integers(-5, 5)))
    if kind == "ragged":
        return [[1.0, 2.0], [3.0]]
    dtype = draw(DTYPES)
    ndim = draw(st.sampled_from([0, 1, 2, 2, 2, 3]))
    shape = []
    for axis in range(ndim):
        if axis == 0 and rows is not None and draw(st.booleans()):
            shape.append(rows)
        elif axis == 1 and columns is not None and draw(st.booleans()):
            shape.append(columns)
        else:
            shape.append(draw(st.integers(0, 6)))
    shape = tuple(shape)
    if dtype == "object":
        array = np.empty(shape, dtype=object)
        array.fill(draw(st.sampled_from([None, "a", 1.5])))
    elif dtype == "U3":
        array = np.full(shape, "abc")
    elif dtype.startswith("float") or dtype.startswith("complex"):
        elements = st.floats(allow_nan=True, allow_infinity=True, width=16 if dtype == "float16" else 32)
        array = draw(hnp.arrays(dtype, shape, elements=elements))
    elif dtype == "bool":
        array = draw(hnp.arrays(dtype, shape))
    else:
        low = 0 if dtype == "uint8" else -3
        array = draw(hnp.arrays(dtype, shape, elements=st.integers(low, 12)))
    return array.tolist() if kind == "list" and array.dtype != object else array


HYPER = st.one_of(
    st.integers(-3, 5),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1e30, -1e30, 2**63, None, "1", True, [1]]),
)


def _ends_well(call, arguments, model=None, outcomes=None, broken=None):
    """Run ``call``; accept success (finite weights) or a ValueError/TypeError naming an argument.

    ``outcomes``, when given, collects ``broken`` (the argument the caller broke) under each outcome."""
    try:
        call()
    except (ValueError, TypeError) as error:
        message = str(error)
        match = re.match(r"^([A-Za-z_][\w\.]*)(\[\d+\])?", message)
        assert match and match.group(1) in arguments, f"{type(error).__name__} does not name an argument: {message}"
        event(f"{type(error).__name__} naming {match.group(1)}")
        if outcomes is not None:
            outcomes.setdefault(f"{type(error).__name__} naming {match.group(1)}", []).append(broken)
        return
    event("succeeded")
    if outcomes is not None:
        outcomes.setdefault("succeeded", []).append(broken)
    if model is not None and model.built:
        assert all(np.all(np.isfinite(w)) for w in model.get_weights()), "non-finite weights after a successful call"


def _model():
    model = fd.Sequential([fd.layers.Dense(4, activation="relu", input_shape=(3,)), fd.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


FIT_ARGUMENTS = {"x", "y", "batch_size", "epochs", "validation_split", "shuffle", "verbose", "learning_rate", "validation_data", "initial_epoch"}


def mostly(valid):
    """Usually a valid value, so that the arguments checked after this one get fuzzed too."""
    return st.one_of(valid, valid, valid, HYPER.filter(lambda v: not (isinstance(v, int) and not isinstance(v, bool) and v > 3)))


#: How each fit argument is broken; all other arguments keep a valid value.
FIT_BREAKERS = {
    "x": malformed_arrays(rows=5, columns=3),
    "y": malformed_arrays(rows=5),
    "batch_size": HYPER,
    "epochs": HYPER.filter(lambda v: not (isinstance(v, int) and v > 3)),
    "validation_split": HYPER,
    "shuffle": HYPER,
    "validation_data": st.one_of(HYPER, st.tuples(malformed_arrays(rows=2, columns=3), malformed_arrays(rows=2))),
    "initial_epoch": HYPER,
}


@st.composite
def fit_arguments(draw):
    """Valid fit arguments, then at most one of them replaced by a malformed value: (broken name, kwargs)."""
    kwargs = {
        "x": draw(hnp.arrays(np.float32, (5, 3), elements=st.floats(-10, 10, width=32))),
        "y": draw(hnp.arrays(np.int64, 5, elements=st.integers(0, 2))),
        "batch_size": draw(st.integers(1, 8)),
        "epochs": draw(st.integers(1, 2)),
        "validation_split": draw(st.sampled_from([0.0, 0.2])),
    }
    broken = draw(st.sampled_from([None, *FIT_BREAKERS]))
    if broken is not None:
        kwargs[broken] = draw(FIT_BREAKERS[broken])
    return broken, kwargs


def test_fuzz_fit():
    """Fit from valid arguments with one broken at a time: each call succeeds with finite weights or names
    what it refuses; a fair share of the calls must succeed, so that the success path is tested too."""
    outcomes = {}

    @FUZZ
    @given(arguments=fit_arguments())
    def one_fit(arguments):
        broken, kwargs = arguments
        model = _model()
        before = len(outcomes.get("succeeded", ()))
        _ends_well(lambda: model.fit(**kwargs, verbose=0), FIT_ARGUMENTS, model, outcomes, broken)
        if broken is None:
            assert len(outcomes.get("succeeded", ())) == before + 1, "valid arguments were refused"

    one_fit()
    calls = sum(len(v) for v in outcomes.values())
    share = len(outcomes.get("succeeded", ())) / calls
    print(f"fit fuzz: {len(outcomes.get('succeeded', ()))} of {calls} calls succeeded ({share:.0%})")
    assert share >= 0.15, outcomes
    for outcome, broken_arguments in outcomes.items():
        named = outcome.rpartition(" ")[2]
        for broken in broken_arguments:  # a refusal names the argument that was broken (x and y name each other)
            assert outcome == "succeeded" or named == broken or {named, broken} <= {"x", "y"}, (outcome, broken)


@FUZZ
@given(x=malformed_arrays(rows=4, columns=3), batch_size=mostly(st.integers(1, 8)))
def test_fuzz_predict_and_evaluate(x, batch_size):
    model = _model()
    _ends_well(lambda: model.predict(x, batch_size=batch_size), {"x", "batch_size"}, model)
    _ends_well(lambda: model.evaluate(x, np.zeros(4, dtype=int), batch_size=batch_size), {"x", "y", "batch_size"}, model)


OPTIMIZER_ARGUMENTS = {
    "learning_rate", "momentum", "nesterov", "rho", "epsilon", "beta_1", "beta_2", "amsgrad", "centered",
    "initial_accumulator_value", "weight_decay", "clipnorm", "clipvalue", "global_clipnorm", "clipping",
}


@FUZZ
@given(
    name=st.sampled_from(["sgd", "adagrad", "rmsprop", "adadelta", "adam"]),
    hyper=st.dictionaries(st.sampled_from(sorted(OPTIMIZER_ARGUMENTS - {"clipping"})), HYPER, max_size=3),
    data=st.data(),
)
def test_fuzz_optimizers_and_training_with_them(name, hyper, data):
    cls = fd.optimizers.registry.lookup(name)
    try:
        optimizer = cls(**hyper)
    except TypeError as error:
        if "unexpected keyword argument" in str(error):  # an option this rule does not have
            event("TypeError: option of another rule")
            return
        raise_if_unnamed(error, OPTIMIZER_ARGUMENTS)
        return
    except ValueError as error:
        raise_if_unnamed(error, OPTIMIZER_ARGUMENTS)
        return
    model = fd.Sequential([fd.layers.Dense(3, activation="softmax", input_shape=(2,))])
    try:
        model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    except ValueError as error:  # a value finite in float64 but infinite in float32
        raise_if_unnamed(error, OPTIMIZER_ARGUMENTS)
        return
    x = data.draw(hnp.arrays(np.float32, (12, 2), elements=st.floats(-10, 10, width=32)))
    y = data.draw(hnp.arrays(np.int64, 12, elements=st.integers(0, 2)))
    _ends_well(lambda: model.fit(x, y, epochs=2, batch_size=4, verbose=0), FIT_ARGUMENTS, model)


def raise_if_unnamed(error, arguments):
    match = re.match(r"^([A-Za-z_]\w*)", str(error))
    assert match and match.group(1) in arguments, f"{type(error).__name__} does not name an argument: {error}"
    event(f"{type(error).__name__} naming {match.group(1)}")


LAYER_ARGUMENTS = {"units", "activation", "use_bias", "kernel_initializer", "bias_initializer", "input_shape", "name", "trainable"}


@FUZZ
@given(
    units=HYPER,
    activation=st.one_of(st.sampled_from(["relu", "softmax", "nope", None, 3, "leaky_relu"])),
    use_bias=st.sampled_from([True, False, 1, "no", None]),
    initializer=st.sampled_from(["glorot_uniform", "zeros", "nope", 5]),
    input_shape=st.one_of(st.none(), st.tuples(st.integers(-1, 4)), st.sampled_from([(), "3", (2.5,)])),
)
def test_fuzz_layer_arguments(units, activation, use_bias, initializer, input_shape):
    _ends_well(
        lambda: fd.layers.Dense(units, activation=activation, use_bias=use_bias, kernel_initializer=initializer, input_shape=input_shape),
        LAYER_ARGUMENTS,
    )


@FUZZ
@given(
    name=st.sampled_from(fd.losses.registry.names()),
    y_true=malformed_arrays(rows=3, columns=2),
    y_pred=malformed_arrays(rows=3, columns=2),
)
def test_fuzz_losses(name, y_true, y_pred):
    _ends_well(lambda: fd.losses.get(name)(y_true, y_pred), {"y_true", "y_pred"})


@FUZZ
@given(name=st.sampled_from(fd.activations.registry.names()), x=malformed_arrays())
def test_fuzz_activations(name, x):
    _ends_well(lambda: fd.activations.get(name)(x), {"x"})


PREDICT_MODELS = {
    "dense": ((16,), lambda: [fd.layers.Dense(64, activation="tanh", input_shape=(16,))]),
    "lstm": ((6, 4), lambda: [fd.layers.LSTM(8, input_shape=(6, 4))]),
    "conv": ((8, 8, 1), lambda: [fd.layers.Conv2D(3, 3, activation="relu", input_shape=(8, 8, 1)), fd.layers.MaxPooling2D(2),
                                 fd.layers.Conv2D(2, 2), fd.layers.Flatten()]),
}


@pytest.mark.parametrize("kind", list(PREDICT_MODELS))
def test_predict_from_several_threads_matches_serial_calls(kind, plan, rng):
    # under the pool plan, the callers' parts share fastdnn's pool
    shape, body = PREDICT_MODELS[kind]
    model = fd.Sequential([*body(), fd.layers.Dense(5, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    inputs = [rng.normal(size=(n, *shape)).astype(np.float32) for n in (700, 1500, 33, 2048, 900, 1)]
    expected = [model.predict(x, batch_size=64) for x in inputs]
    results = [None] * len(inputs)
    barrier = threading.Barrier(len(inputs))

    def work(i):
        barrier.wait()
        for _ in range(5):
            out = model.predict(inputs[i], batch_size=64)
            if results[i] is None or not np.array_equal(out, results[i]):
                results[i] = out if results[i] is None else "differs"

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for got, want in zip(results, expected):
        assert not isinstance(got, str)
        np.testing.assert_array_equal(got, want)


def test_no_memory_growth_over_many_epochs(rng):
    x = rng.normal(size=(512, 20)).astype(np.float32)
    y = rng.integers(0, 4, 512)
    model = fd.Sequential([fd.layers.Dense(32, activation="relu", input_shape=(20,)), fd.layers.Dense(4, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=3, batch_size=32, validation_split=0.1, verbose=0)
    tracemalloc.start()
    try:
        model.fit(x, y, epochs=5, batch_size=32, validation_split=0.1, verbose=0)
        baseline, _ = tracemalloc.get_traced_memory()
        model.fit(x, y, epochs=60, batch_size=32, validation_split=0.1, verbose=0)
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # 55 more epochs of History (a few floats each) is all that may remain
    assert after - baseline < 64 * 1024
    # the peak of an epoch: the shuffled index, one batch's buffers, the data split: far below the data size x 2
    assert peak - baseline < x.nbytes
