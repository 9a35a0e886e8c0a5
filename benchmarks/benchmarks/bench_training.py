"""Whole training steps and epochs of MLPs, and ``predict`` throughput.

Every model is a ReLU MLP with a softmax output, sparse categorical crossentropy and Adam, the
configuration of the performance targets; "mnist" is 60000 x 784 -> 512 -> 256 -> 10.
"""

import numpy as np

from .common import MODELS, model_and_data, warm_fit


class TrainStep:
    """Forward, fused softmax + crossentropy, backward and the Adam step on one gathered batch."""

    params = (list(MODELS), [32, 128, 1024])
    param_names = ["model", "batch"]

    def setup(self, label, batch):
        self.model, x, y = model_and_data(label, n=max(batch, 2048))
        warm_fit(self.model, x, y, batch)
        xb, targets = self.model._data(x[:batch], y[:batch])
        self.xb = np.ascontiguousarray(xb)
        self.tb = self.model._kernel_targets(targets)
        self.model._train_step(self.xb, self.tb)

    def time_train_step(self, label, batch):
        self.model._train_step(self.xb, self.tb)


class TrainEpoch:
    """``model.fit(x, y, batch_size, epochs=1)``: shuffle, gathers, steps, loss bookkeeping.

    ``peakmem_epoch`` is the process's peak resident memory, which includes the data
    (60000 x 784 float32 = 188 MB for mnist).
    """

    params = (["digits 64-64-10", "mnist 784-512-256-10"], [32, 128, 1024])
    param_names = ["model", "batch"]
    timeout = 300

    def setup(self, label, batch):
        self.model, self.x, self.y = model_and_data(label)
        self.batch = batch
        warm_fit(self.model, self.x, self.y, batch)

    def time_epoch(self, label, batch):
        self.model.fit(self.x, self.y, batch_size=self.batch, epochs=1, verbose=0)

    def peakmem_epoch(self, label, batch):
        self.model.fit(self.x, self.y, batch_size=self.batch, epochs=1, verbose=0)


class Predict:
    """``model.predict`` on 10000 samples in its default chunks of 1024 rows (samples/s = 10000 / time)."""

    params = [["digits 64-64-10", "mnist 784-512-256-10"]]
    param_names = ["model"]

    def setup(self, label):
        self.model, self.x, _ = model_and_data(label, n=10000)
        self.model.predict(self.x[:2000])

    def time_predict(self, label):
        self.model.predict(self.x)

    def peakmem_predict(self, label):
        self.model.predict(self.x)
