"""Every fused path against the unfused composition: the loss that fit and evaluate report equals the
registered loss applied to predict(x), for every output activation x loss a user can compile,
including targets that are multi-hot or whose rows do not sum to 1 (soft labels, all-zero rows)."""

import numpy as np
import pytest

import fastdnn as fd

N, WIDTH = 6, 3


def _targets(rng, name):
    """(label, targets) pairs for a loss: the awkward kinds included."""
    if name == "sparse_categorical_crossentropy":
        return [("labels", rng.integers(0, WIDTH, N))]
    if name in ("mean_squared_error", "mean_absolute_error"):
        return [("real", rng.normal(size=(N, WIDTH)))]
    one_hot = np.eye(WIDTH)[rng.integers(0, WIDTH, N)]
    multi_hot = (rng.uniform(size=(N, WIDTH)) < 0.5).astype(float)
    soft = rng.uniform(0.0, 1.0, (N, WIDTH))  # rows do not sum to 1
    padded = one_hot.copy()
    padded[::2] = 0.0  # all-zero padding rows
    return [("one-hot", one_hot), ("multi-hot", multi_hot), ("soft, rows not summing to 1", soft), ("all-zero rows", padded)]


def _pairs():
    for activation in fd.activations.registry.names():
        for name, cls in fd.losses.registry.canonical_items():
            for from_logits in ([False, True] if cls.logits_kernel is not None else [False]):
                probabilities = issubclass(cls, fd.losses._ProbabilityLoss) and not from_logits
                if probabilities and activation not in ("softmax", "sigmoid"):
                    continue  # refused at compile (tested in test_model)
                yield activation, name, from_logits


@pytest.mark.parametrize("activation, name, from_logits", list(_pairs()))
def test_reported_loss_equals_the_registered_loss_of_the_predictions(rng, activation, name, from_logits):
    fd.set_seed(0)
    model = fd.Sequential([fd.Input((4,)), fd.layers.Dense(WIDTH, activation=activation)])
    loss = {"name": name, "from_logits": True} if from_logits else name
    model.compile(optimizer=fd.optimizers.SGD(learning_rate=0.0), loss=loss)
    x = rng.normal(size=(N, 4)).astype(np.float32)
    registered = fd.losses.get(loss)
    for label, y in _targets(rng, name):
        expected = registered(y, model.predict(x))
        assert model.evaluate(x, y) == pytest.approx(expected, rel=2e-5, abs=1e-6), label
        fitted = model.fit(x, y, batch_size=N, epochs=1, verbose=0, shuffle=False).history["loss"][0]
        assert fitted == pytest.approx(expected, rel=2e-5, abs=1e-6), label
