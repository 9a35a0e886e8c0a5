"""Embedding, Dropout and BatchNormalization on the (simulated) device.

Kernel agreement with the CPU twins, whole models trained like on the CPU (Dropout's device masks
are the CPU's counter-based masks, bit for bit), moving statistics synchronized with the host, and
float64 finite differences through the device kernels.
"""

import numpy as np
import pytest

import fastdnn as fd
from fastdnn import config
from tests.cuda_sim.twins import assert_same as _assert_same
from tests.cuda_sim.twins import fit_both as _fit_both
from tests.cuda_sim.twins import pair as _pair
from fastdnn.verify import agreement, agreement_dropout, agreement_embedding, agreement_normalization, reference

# the simulator runs the dropout hash's uint64 arithmetic as NumPy scalars, which warn when they wrap
pytestmark = [
    pytest.mark.filterwarnings("ignore::numba.core.errors.NumbaWarning"),
    pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning"),
]


def _cuda():
    from numba import cuda

    return cuda


@pytest.fixture(autouse=True)
def few_blocks(monkeypatch):
    # the simulator runs every CUDA thread as a Python thread: cap the grids, so that the kernels'
    # grid-stride loops do the work (and are exercised) with few threads
    from fastdnn.kernels.cuda import _launch, normalization

    monkeypatch.setattr(_launch, "MAX_BLOCKS", 4)
    monkeypatch.setattr(normalization, "MAX_BLOCKS", 2)


# -- kernels against their CPU twins ---------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_kernels_agree_with_their_cpu_twins(dtype):
    from fastdnn import backend

    cpu, gpu = backend.kernels("cpu"), backend.kernels("cuda")
    rng = np.random.default_rng(0)
    results = []
    for module in (agreement_embedding, agreement_dropout, agreement_normalization):
        for name, family, function, args, outputs in module.cases(rng, dtype, 5, 7, 6):
            cpu_fn = getattr(getattr(cpu, family), function)
            gpu_fn = getattr(getattr(gpu, family), function)
            results.append(agreement._compare(name, dtype, cpu_fn, gpu_fn, args, outputs, _cuda()))
    failed = [r for r in results if not r.passed]
    assert not failed, agreement.table(failed)
    names = {r.kernel.split("[")[0] for r in results}
    assert names == {
        "embedding_forward", "embedding_backward", "dropout_forward", "dropout_backward", "batch_norm_train_forward",
        "batch_norm_inference_forward", "batch_norm_frozen_forward", "batch_norm_backward", "batch_norm_shifted_sums",
        "batch_norm_global_forward", "batch_norm_gradient_sums", "batch_norm_global_backward",
    }
    assert len(results) == 39


def test_batch_norm_reduction_with_many_features_and_tiles(monkeypatch):
    # more features than one block's tile and a grid-stride over tiles: 40 features, 4 per tile, 2 blocks
    from fastdnn.kernels.cpu import normalization as cpu_norm
    from fastdnn.kernels.cuda import normalization as gpu_norm

    rng = np.random.default_rng(2)
    x = rng.normal(size=(9, 40))
    args = [x, rng.normal(size=40), rng.normal(size=40), 1.0 / 9, 1e-3, 0.9, rng.normal(size=40), rng.uniform(0.5, 1, 40)]
    args += [np.zeros(40), np.zeros(40), np.zeros((9, 40)), np.zeros((9, 40))]
    result = agreement._compare("batch_norm_train_forward[tiles]", "float64", cpu_norm.batch_norm_train_forward,
                                gpu_norm.batch_norm_train_forward, args, [6, 7, 8, 9, 10, 11], _cuda())
    assert result.passed, agreement.table([result])


# -- dropout's counter-based masks ---------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_device_dropout_masks_are_the_cpu_masks_bit_for_bit(dtype):
    from fastdnn.kernels.cpu import dropout as cpu_dropout
    from fastdnn.kernels.cuda import dropout

    cuda = _cuda()
    n, rate, first = 1000, 0.3, 37  # from element 37: a data-parallel shard's offset
    x = np.random.default_rng(0).uniform(0.5, 1.5, n).astype(dtype)
    stream = fd.random.CounterStream(123).next_word()
    scale = dtype(1 / (1 - rate))
    mask, y = cuda.device_array(n, dtype), cuda.device_array(n, dtype)
    dropout.dropout_forward(cuda.to_device(x), stream, first, dtype(rate), scale, mask, y)
    cpu_mask, cpu_y = np.empty(n, dtype), np.empty(n, dtype)
    cpu_dropout.dropout_forward(x, stream, first, dtype(rate), scale, cpu_mask, cpu_y)
    np.testing.assert_array_equal(mask.copy_to_host(), cpu_mask)
    np.testing.assert_array_equal(y.copy_to_host(), cpu_y)
    dropped = cpu_mask == 0
    assert abs(dropped.mean() - rate) < 0.06  # 4 binomial standard deviations
    np.testing.assert_array_equal(dropped, reference.counter_uniform(123, 0, first, n) < rate)  # the NumPy hash
    g = np.random.default_rng(1).normal(size=n).astype(dtype)
    dX = cuda.device_array(n, dtype)
    dropout.dropout_backward(cuda.to_device(g), mask, dX)
    np.testing.assert_array_equal(dX.copy_to_host(), g * cpu_mask)  # the forward's mask


def _dropout_layers(seed=None):
    return [
        fd.layers.Dense(8, activation="relu", input_shape=(4,)),
        fd.layers.Dropout(0.25, seed=seed),
        fd.layers.Dense(2, activation="softmax"),
    ]


def _dropout_model(device, seed=None):
    model = fd.Sequential(_dropout_layers(seed))
    model.compile(optimizer=fd.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy", device=device)
    return model


def test_dropout_model_trains_on_the_device_like_on_the_cpu():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)  # an easy task
    models = _pair(_dropout_layers, optimizer="adam", loss="sparse_categorical_crossentropy")
    histories = _fit_both(models, x, y, batch_size=8, epochs=2)
    _assert_same(models, histories)  # the same masks on both: the same training
    assert models[0].layers[1].random_stream.get_state() == models[1].layers[1].random_stream.get_state()


def test_a_seeded_dropout_layer_owns_its_device_stream():
    x = np.random.default_rng(1).normal(size=(8, 4)).astype(np.float32)
    y = np.zeros(8, np.int64)
    weights = []
    for global_seed in (1, 2, 2):
        fd.set_seed(3)
        model = _dropout_model("cuda", seed=7 if global_seed == 1 else 8)
        fd.set_seed(global_seed)
        model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
        weights.append(model.get_weights()[0])
    np.testing.assert_array_equal(weights[1], weights[2])
    assert not np.array_equal(weights[0], weights[1])  # another layer seed, another mask


def test_dropout_handler_is_the_identity_in_inference_and_passes_gradients_through_at_rate_0():
    from fastdnn import backend

    cuda = _cuda()
    model = fd.Sequential([fd.layers.Dense(3, input_shape=(4,)), fd.layers.Dropout(0.0), fd.layers.Dropout(0.5)])
    model.compile(optimizer="sgd", loss="mse", device="cuda")
    engine = backend.engine_for(model)
    x = cuda.to_device(np.ones((2, 3), np.float32))
    for handler in engine.handlers[1:]:
        assert handler.forward(x, {}, training=False) is x
    assert engine.handlers[1].forward(x, {}, training=True) is x  # rate 0: nothing to drop
    assert engine.handlers[1].backward(x, {}, {}, False) is x


# -- whole models against the CPU ----------------------------------------------------------------


def _embedding_model():
    return [fd.layers.Embedding(7, 3, input_shape=(4,)), fd.layers.Flatten(), fd.layers.Dense(3, activation="softmax")]


@pytest.mark.parametrize("streamed", [False, True], ids=["resident", "streamed"])
def test_embedding_model_trains_on_the_device_like_on_the_cpu(monkeypatch, streamed):
    if streamed:  # the host gathers each batch: the indices must stay integers on that path too
        monkeypatch.setattr(config, "CUDA_RESIDENT_BYTES", 0, raising=False)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 7, size=(24, 4)).astype(np.int32)  # validated into int64 by the model
    y = x[:, 0] % 3
    models = _pair(_embedding_model, optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    histories = _fit_both(models, x, y, batch_size=8, epochs=2, validation_split=0.25)
    _assert_same(models, histories)
    cpu, gpu = models
    assert gpu._cuda._resident is None  # resident or not during fit, released at its end
    np.testing.assert_allclose(gpu.predict(x, batch_size=10), cpu.predict(x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gpu.evaluate(x, y), cpu.evaluate(x, y), rtol=1e-5)
    with pytest.raises(ValueError, match="indices for Embedding"):
        gpu.predict(np.full((2, 4), 7))


def test_embedding_handler_converts_other_integer_indices_and_refuses_floats():
    from fastdnn import backend

    cuda = _cuda()
    fd.set_seed(0)
    model = fd.Sequential(_embedding_model())
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", device="cuda")
    engine = backend.engine_for(model)
    engine.push_params()
    handler, (params, _, _) = engine.handlers[0], engine.views[id(engine.handlers[0].layer)]
    index = np.array([[0, 6, 2, 2]], np.int32)
    out = handler.forward(cuda.to_device(index), params, training=False).copy_to_host()
    np.testing.assert_array_equal(out, model.layers[0].params["embeddings"][index])
    with pytest.raises(TypeError, match="integer indices"):
        handler.forward(cuda.to_device(index.astype(np.float32)), params, training=False)


def _batch_norm_model(**bn_kwargs):
    def layers():
        return [
            fd.layers.Dense(5, activation="tanh", input_shape=(6,)),
            fd.layers.BatchNormalization(momentum=0.8, **bn_kwargs),
            fd.layers.Dense(3, activation="softmax"),
        ]

    return layers


@pytest.mark.parametrize(
    "bn_kwargs", [{}, {"scale": False, "center": False}, {"trainable": False}], ids=["affine", "plain", "frozen"]
)
def test_batch_norm_model_trains_on_the_device_like_on_the_cpu(bn_kwargs):
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(24, 6)) * 2 + 1).astype(np.float32)
    y = rng.integers(0, 3, size=24)
    metrics = ["accuracy"] if not bn_kwargs else []
    models = _pair(_batch_norm_model(**bn_kwargs), optimizer="adam", loss="sparse_categorical_crossentropy", metrics=metrics)
    cpu, gpu = models
    if bn_kwargs.get("trainable") is False:  # frozen: moving statistics away from (0, 1) to be used
        for model in models:
            model.layers[1].set_weights([np.ones(5), np.zeros(5), np.linspace(-1, 1, 5), np.linspace(0.5, 2, 5)])
    more = {"epochs": 2, "validation_split": 0.25} if not bn_kwargs else {"epochs": 1}
    histories = _fit_both(models, x, y, batch_size=8, **more)
    _assert_same(models, histories)  # get_weights includes the moving statistics
    for name in ("moving_mean", "moving_variance"):
        np.testing.assert_allclose(gpu.layers[1].state[name], cpu.layers[1].state[name], rtol=2e-5, atol=2e-5)
    if bn_kwargs.get("trainable") is False:
        np.testing.assert_array_equal(gpu.layers[1].state["moving_mean"], np.linspace(-1, 1, 5).astype(np.float32))
    else:
        assert not np.allclose(gpu.layers[1].state["moving_mean"], 0)  # updated on the device, pulled back
    np.testing.assert_allclose(gpu.predict(x), cpu.predict(x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gpu.evaluate(x, y), cpu.evaluate(x, y), rtol=1e-5)


def test_moving_statistics_set_on_the_host_reach_the_device():
    x = np.random.default_rng(0).normal(size=(4, 6)).astype(np.float32)
    cpu, gpu = _pair(_batch_norm_model(), optimizer="sgd", loss="sparse_categorical_crossentropy")
    gpu.predict(x)
    for model in (cpu, gpu):
        model.layers[1].set_weights([np.ones(5), np.ones(5), np.full(5, 0.5), np.full(5, 4.0)])
    np.testing.assert_allclose(gpu.predict(x), cpu.predict(x), rtol=1e-5, atol=1e-6)


# -- finite differences on the device ------------------------------------------------------------


def test_finite_differences_through_embedding_and_batch_norm_on_the_device():
    from fastdnn.verify.cases import model_case
    from fastdnn.verify.gradcheck import check_random

    fd.set_seed(0)
    fd.config.set_floatx("float64")
    try:
        model = fd.Sequential([
            fd.layers.Embedding(5, 3, input_shape=(3,)),
            fd.layers.Flatten(),
            fd.layers.BatchNormalization(),
            fd.layers.Dense(3, activation="softmax"),
        ])
        model.compile(optimizer=fd.optimizers.SGD(learning_rate=0.0), loss="sparse_categorical_crossentropy", device="cuda")
    finally:
        fd.config.set_floatx("float32")
    rng = np.random.default_rng(1)
    x = np.array([[0, 1, 1], [2, 4, 1], [3, 0, 0], [1, 1, 2]])  # repeated indices: the scatter adds
    case = model_case("model:embedding|flatten|batchnorm|softmax + sparse CE", model, x, rng.integers(0, 3, 4))
    # the Dense parameters are checked by the CUDA model cases already; the simulator is slow
    case.arguments = {name: value for name, value in case.arguments.items() if not name.startswith("dense")}
    results = check_random(case, rng, directions=1)
    assert len(results) == 3 and all(r.passed for r in results), [r.failure_report() for r in results if not r.passed]
