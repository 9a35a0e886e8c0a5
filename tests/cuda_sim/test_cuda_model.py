"""Training on the (simulated) device: the same history and weights as the CPU, NumPy results out."""

import numpy as np
import pytest

import fastdnn as fd
from fastdnn import config
from tests.cuda_sim.twins import assert_same as _assert_same
from tests.cuda_sim.twins import fit_both as _fit_both
from tests.cuda_sim.twins import pair as _pair


def _data(n=24, features=6, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype(np.float32)
    return x, rng.integers(0, classes, size=n)


def _mlp():
    return [fd.layers.Dense(5, activation="relu", input_shape=(6,)), fd.layers.Dense(3, activation="softmax")]


def test_mlp_trains_on_the_device_like_on_the_cpu():
    x, y = _data()
    models = _pair(_mlp, optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    histories = _fit_both(models, x, y, batch_size=8, epochs=2, validation_split=0.25)
    assert set(histories[1]) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    _assert_same(models, histories)
    cpu, gpu = models
    prediction = gpu.predict(x, batch_size=10)
    assert isinstance(prediction, np.ndarray) and prediction.shape == (24, 3)
    np.testing.assert_allclose(prediction, cpu.predict(x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gpu.evaluate(x, y), cpu.evaluate(x, y), rtol=1e-5)
    assert gpu.optimizer.iterations == cpu.optimizer.iterations == 6
    assert isinstance(next(iter(gpu.optimizer.state.values())), np.ndarray)  # host state between epochs


@pytest.mark.parametrize(
    "optimizer",
    [
        fd.optimizers.SGD(0.1, momentum=0.9, nesterov=True, clipnorm=0.5),
        fd.optimizers.RMSprop(0.01, momentum=0.5, centered=True, global_clipnorm=1.0),
        fd.optimizers.Adagrad(0.05, clipvalue=0.1),
        fd.optimizers.Adadelta(1.0, weight_decay=0.01),
        fd.optimizers.Adam(0.01, amsgrad=True),
    ],
    ids=lambda o: o.name,
)
def test_every_optimizer_steps_on_the_device(optimizer):
    x = np.random.default_rng(1).normal(size=(16, 6)).astype(np.float32)
    y = (x[:, :2] * 0.5).astype(np.float32)

    def layers():
        return [fd.layers.Dense(4, activation="tanh", input_shape=(6,)), fd.layers.Dense(2)]

    cpu, gpu = (fd.optimizers.get(optimizer.get_config()) for _ in range(2))
    models = []
    for device, opt in (("cpu", cpu), ("cuda", gpu)):
        fd.set_seed(3)
        model = fd.Sequential(layers())
        model.compile(optimizer=opt, loss="mse", device=device)
        models.append(model)
    _assert_same(models, _fit_both(models, x, y, batch_size=8, epochs=2))


@pytest.mark.parametrize(
    "loss, output, targets",
    [
        ("binary_crossentropy", "sigmoid", "binary"),
        ("categorical_crossentropy", "softmax", "onehot"),
        (fd.losses.CategoricalCrossentropy(from_logits=True), None, "onehot"),
        ("mean_absolute_error", "elu", "real"),
    ],
)
def test_losses_and_output_layers_on_the_device(loss, output, targets):
    x, labels = _data(n=16)
    y = {"binary": (labels[:, None] == np.arange(3)).astype(np.float32), "onehot": np.eye(3, dtype=np.float32)[labels], "real": x[:, :3]}[targets]

    def layers():
        return [
            fd.layers.Dense(4, activation="gelu", input_shape=(6,)),
            fd.layers.Dense(3),
            fd.layers.Activation(output or "linear"),
        ]

    models = _pair(layers, optimizer="sgd", loss=loss)
    _assert_same(models, _fit_both(models, x, y, batch_size=8, epochs=1))


def test_data_too_large_for_the_device_is_streamed(monkeypatch):
    monkeypatch.setattr(config, "CUDA_RESIDENT_BYTES", 0, raising=False)
    x, y = _data(n=12)

    def layers():
        return [fd.layers.Flatten(input_shape=(2, 3)), fd.layers.Dense(3, activation="softmax")]

    models = _pair(layers, optimizer="sgd", loss="sparse_categorical_crossentropy")
    _assert_same(models, _fit_both(models, x.reshape(12, 2, 3), y, batch_size=5, epochs=1))
    assert models[1]._cuda._resident is None


def test_the_training_set_is_copied_once_per_fit_and_freed_after(monkeypatch):
    from numba import cuda

    x, y = _data(n=24)
    (gpu,) = (m for m in _pair(_mlp, optimizer="sgd", loss="sparse_categorical_crossentropy") if m._device == "cuda")
    copies, resident = [], []
    real = cuda.to_device

    def counting(array, *args, **kwargs):
        if getattr(array, "ndim", 0) == 2 and array.shape[0] == 24:
            copies.append(array.shape)
        return real(array, *args, **kwargs)

    monkeypatch.setattr(cuda, "to_device", counting)
    watch = fd.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: resident.append(gpu._cuda._resident is not None))
    gpu.fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=[watch])
    assert copies == [(24, 6), (24, 1)]  # inputs and targets, once for the three epochs
    assert resident == [True, True, True] and gpu._cuda._resident is None
    gpu.fit(x * 0, y, batch_size=8, epochs=1, verbose=0)  # new values, new copy
    assert len(copies) == 4


def test_weights_set_on_the_host_reach_the_device():
    x, y = _data(n=8)
    cpu, gpu = _pair(_mlp, optimizer="sgd", loss="sparse_categorical_crossentropy")
    gpu.predict(x)
    gpu.set_weights([w * 0 for w in gpu.get_weights()])
    np.testing.assert_allclose(gpu.predict(x), 1.0 / 3.0, rtol=1e-6)


def test_every_registered_layer_runs_on_the_device():
    from fastdnn import device_layers
    from fastdnn.layers.base import registry

    classes = {registry.lookup(name).__name__ for name in registry.names()} - {"InputLayer"}
    assert classes <= set(device_layers.supported_names()), classes - set(device_layers.supported_names())


def test_a_layer_without_a_device_handler_is_named():
    class Doubling(fd.layers.Layer):  # a user's own layer: CPU code only
        def forward(self, x, training=False):
            return 2 * x

        def backward(self, dLdY):
            return 2 * dLdY

    model = fd.Sequential([fd.layers.Dense(4, input_shape=(6,)), Doubling(name="twice"), fd.layers.Dense(2)])
    with pytest.raises(ValueError, match=r"device: 'cuda' runs .*; this model also has twice \(Doubling\); compile with device='cpu'"):
        model.compile(optimizer="sgd", loss="mse", device="cuda")


def test_gradcheck_cli_on_the_device(capsys):
    from fastdnn.verify.cli import main

    assert main(["--device", "cuda", "--quiet", "--only", "adam"]) == 0
    assert "all agree" in capsys.readouterr().out


def test_a_callback_may_predict_between_batches():
    x, y = _data(n=16)
    seen = []

    class Peek(fd.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(self.model.predict(x[:2]))

    cpu, gpu = _pair(_mlp, optimizer="adam", loss="sparse_categorical_crossentropy")
    fd.set_seed(11)
    gpu.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[Peek()])
    fd.set_seed(11)
    cpu.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert len(seen) == 2 and not np.allclose(seen[0], seen[1])  # the second sees the first step
    for a, b in zip(cpu.get_weights(), gpu.get_weights()):
        np.testing.assert_allclose(b, a, rtol=2e-5, atol=2e-5)


def test_sample_and_class_weights_are_refused_on_the_device_by_name():
    x, y = _data()
    model = fd.Sequential(_mlp())
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", device="cuda")
    start = model.get_weights()
    for arguments, name in (({"sample_weight": np.ones(24)}, "sample_weight"), ({"class_weight": {0: 2.0}}, "class_weight"),
                            ({"validation_data": (x, y, np.ones(24))}, "validation_data\\[2\\]")):
        with pytest.raises(ValueError, match=rf"^{name}: fit with weighted samples is not supported on device='cuda'.*compile with device='cpu'"):
            model.fit(x, y, verbose=0, **arguments)
    with pytest.raises(ValueError, match=r"^sample_weight: evaluate with weighted samples is not supported on device='cuda'"):
        model.evaluate(x, y, sample_weight=np.ones(24))
    for a, b in zip(start, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    model.fit(x, y, verbose=0, epochs=1)  # unweighted training runs on the device
    np.testing.assert_array_equal(model.predict(x, verbose=0), model.predict(x))
