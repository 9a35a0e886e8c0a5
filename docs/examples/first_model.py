import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import fastdnn as fd

fd.set_seed(0)                                    # reproducible weights and shuffling
digits = load_digits()
x = (digits.data / 16.0).astype(np.float32)       # pixels scaled to [0, 1]
x_train, x_test, y_train, y_test = train_test_split(x, digits.target, test_size=0.2, random_state=0)

model = fd.Sequential([
    fd.layers.Dense(64, activation="relu", input_shape=(64,)),
    fd.layers.Dense(10, activation="softmax"),
])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.summary()
history = model.fit(x_train, y_train, batch_size=32, epochs=20, validation_split=0.1, verbose=2)
loss, accuracy = model.evaluate(x_test, y_test)
probabilities = model.predict(x_test)             # (360, 10), rows sum to 1
