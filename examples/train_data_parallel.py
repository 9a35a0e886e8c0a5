"""Data-parallel training on scikit-learn's digits, the same script with or without MPI.

    python examples/train_data_parallel.py             # one process
    mpirun -n 2 python examples/train_data_parallel.py # two processes, each on half of every batch

Open MPI refuses to start more processes than the machine has cores unless given
``--oversubscribe``, and to run as root (in a container, say) unless given ``--allow-run-as-root``.
``batch_size`` is the global batch: with 2 ranks each process computes the gradient of 64 of the 128
rows, one Allreduce sums them, and every process applies the same Adam step, so the result matches
one process with batch 128.
"""

import argparse

from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import fastdnn as fd

parser = argparse.ArgumentParser(description="data-parallel training on the digits")
parser.add_argument("--epochs", type=int, default=40)
epochs = parser.parse_args().epochs

digits = load_digits()
x_train, x_test, y_train, y_test = train_test_split(digits.data, digits.target, test_size=0.25, random_state=0, stratify=digits.target)
scaler = StandardScaler().fit(x_train)
x_train, x_test = scaler.transform(x_train), scaler.transform(x_test)

fd.set_seed(0)
model = fd.Sequential([fd.layers.Dense(64, activation="relu", input_shape=(64,)), fd.layers.Dense(10, activation="softmax")])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model = fd.distributed.data_parallel(model)  # a no-op without mpirun

model.fit(x_train, y_train, batch_size=128, epochs=epochs, validation_split=0.1, verbose=2,
          callbacks=[fd.callbacks.ModelCheckpoint("digits-best.fdnn", monitor="val_accuracy", save_best_only=True)])
loss, accuracy = model.evaluate(x_test, y_test)
if fd.distributed.rank() == 0:
    print(f"{fd.distributed.size()} process(es): test accuracy {accuracy:.4f}")
