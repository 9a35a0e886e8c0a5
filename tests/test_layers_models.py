"""The new layer kinds inside models: end-to-end gradients, saving and loading, summaries, reproducibility."""

import numpy as np
import pytest

import fastdnn as fd
from fastdnn.verify import check_model

L = fd.layers


def _cnn():
    return fd.Sequential(
        [
            L.Input((6, 5, 2)),
            L.Conv2D(3, 3, padding="same", activation="tanh"),
            L.MaxPooling2D(2, padding="same"),
            L.Conv2D(4, 2, activation="sigmoid"),
            L.AveragePooling2D(1),
            L.BatchNormalization(),
            L.Flatten(),
            L.Dense(3, activation="softmax"),
        ]
    )


def _sequence_model():
    return fd.Sequential(
        [
            L.Input((7,)),
            L.Embedding(9, 4),
            L.GRU(3, return_sequences=True),
            L.Conv1D(4, 2, padding="causal", activation="tanh"),
            L.LSTM(3, return_sequences=True),
            L.GlobalAveragePooling1D(),
            L.Reshape((3, 1)),
            L.SimpleRNN(2),
            L.Dense(2, activation="softmax"),
        ]
    )


def test_end_to_end_gradients_of_a_cnn(rng):
    model = _cnn()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = rng.normal(size=(6, 6, 5, 2))
    result = check_model(model, x, rng.integers(0, 3, 6))
    assert result.passed, str(result)
    assert set(result.per_layer()) == {layer.name for layer in model.layers if layer.params}


def test_end_to_end_gradients_of_a_sequence_model(rng):
    model = _sequence_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    result = check_model(model, rng.integers(0, 9, (5, 7)), rng.integers(0, 2, 5))
    assert result.passed, str(result)


def test_sequence_outputs_with_a_per_step_loss(rng):
    # return_sequences into a Dense: the model flattens (n, steps, classes) outputs for the loss.
    model = fd.Sequential([L.Input((5, 3)), L.LSTM(4, return_sequences=True), L.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    y = np.eye(2)[rng.integers(0, 2, (6, 5))]
    assert check_model(model, rng.normal(size=(6, 5, 3)), y).passed
    model.fit(rng.normal(size=(6, 5, 3)), y, epochs=1, verbose=0)
    assert model.predict(rng.normal(size=(2, 5, 3))).shape == (2, 5, 2)


@pytest.mark.parametrize("make, x", [(_cnn, "images"), (_sequence_model, "tokens")])
def test_save_and_load_round_trip(make, x, rng, tmp_path):
    data = rng.normal(size=(16, 6, 5, 2)).astype(np.float32) if x == "images" else rng.integers(0, 9, (16, 7))
    y = rng.integers(0, 2, 16)
    fd.set_seed(0)
    model = make()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(data, y, batch_size=4, epochs=2, verbose=0)
    path = tmp_path / "model.fdnn"
    model.save(str(path))
    loaded = fd.load_model(str(path))
    assert [type(a) for a in loaded.layers] == [type(b) for b in model.layers]
    assert [a.get_config() for a in loaded.layers] == [b.get_config() for b in model.layers]
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)  # includes the moving statistics of batch normalization
    np.testing.assert_allclose(loaded.predict(data), model.predict(data), rtol=1e-6)


def test_summary_lists_every_kind():
    model = fd.Sequential(
        [
            L.Input((12, 12, 3)),
            L.Conv2D(8, 3, activation="relu"),  # 3*3*3*8 + 8 = 224
            L.BatchNormalization(),  # 4 * 8 = 32 (16 non-trainable)
            L.MaxPooling2D(),
            L.Dropout(0.25),
            L.Reshape((25, 8)),
            L.LSTM(6, return_sequences=True),  # 4 * 6 * (8 + 6 + 1) = 360
            L.GRU(5),  # 3 * 5 * (6 + 5 + 2) = 195
            L.Dense(2),  # 12
        ]
    )
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    for shape, count in [
        ("(None, 10, 10, 8)", "224"), ("(None, 10, 10, 8)", "32"), ("(None, 5, 5, 8)", "0"), ("(None, 25, 8)", "0"),
        ("(None, 25, 6)", "360"), ("(None, 5)", "195"), ("(None, 2)", "12"),
    ]:
        assert any(shape in line and line.rstrip().endswith(" " + count) for line in lines), (shape, count, text)
    assert "Total params: 823" in text and "Non-trainable params: 16" in text


def test_seeded_training_with_every_kind_is_reproducible(rng):
    x = rng.normal(size=(24, 6, 5, 2)).astype(np.float32)
    y = rng.integers(0, 3, 24)

    def train():
        fd.set_seed(7)
        model = fd.Sequential(
            [L.Input((6, 5, 2)), L.Conv2D(4, 3, activation="relu"), L.BatchNormalization(), L.MaxPooling2D(),
             L.Dropout(0.3), L.Flatten(), L.Dense(3, activation="softmax")]
        )
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(x, y, batch_size=8, epochs=2, verbose=0)
        return model.get_weights()

    for a, b in zip(train(), train()):
        np.testing.assert_array_equal(a, b)
