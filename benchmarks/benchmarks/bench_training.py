"""Whole training steps and epochs of MLPs, and ``predict`` throughput.

Every model is a ReLU MLP with a softmax output, sparse categorical crossentropy and Adam, the
configuration of the performance targets; "mnist" is 60000 x 784 -> 512 -> 256 -> 10.
"""

import numpy as np

from .common import MODELS, SEQUENCE_AND_IMAGE_MODELS, BusyProcesses, model_and_data, sequence_or_image_model, warm_fit


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
    """``model.fit(x, y, batch_size, epochs=1)``: validation, shuffle, gathers, steps, loss bookkeeping.

    The mnist model trains on a fifth of MNIST's 60000 samples, to keep the quick run short; its full
    epochs are timed side by side with other libraries by ``benchmarks/peers.py``.
    """

    params = (["digits 64-64-10", "mnist 784-512-256-10"], [32, 128, 1024])
    param_names = ["model", "batch"]
    samples = {"digits 64-64-10": 1347, "mnist 784-512-256-10": 12000}
    timeout = 300

    def setup(self, label, batch):
        self.model, self.x, self.y = model_and_data(label, n=self.samples[label])
        warm_fit(self.model, self.x, self.y, batch)

    def time_epoch(self, label, batch):
        self.model.fit(self.x, self.y, batch_size=batch, epochs=1, verbose=0)


class TrainEpochLoaded(TrainEpoch):
    """`TrainEpoch` with one busy process beside it (``while True: pass``), as on a machine doing
    other work: on 2 cores, a fair share is half the machine, so the time should at most double.
    A threading policy that stalls under load (OpenBLAS's static split with two threads, one of
    them descheduled) shows here as a jump of many times.
    """

    def setup(self, label, batch):
        super().setup(label, batch)
        self.load = BusyProcesses(1).start()

    def teardown(self, label, batch):
        self.load.stop()


class SequenceAndImageEpoch:
    """One epoch of LeNet-5 and of an LSTM(128) over 50 steps at batch 128, whose convolutions,
    pooling and recurrent steps run as parts of the batch when fastdnn chooses its pool."""

    params = list(SEQUENCE_AND_IMAGE_MODELS)
    param_names = ["model"]
    timeout = 300

    def setup(self, label):
        self.model, self.x, self.y = sequence_or_image_model(label)
        warm_fit(self.model, self.x, self.y, 128)

    def time_epoch(self, label):
        self.model.fit(self.x, self.y, batch_size=128, epochs=1, verbose=0)


class SequenceAndImageEpochLoaded(SequenceAndImageEpoch):
    """`SequenceAndImageEpoch` with one busy process beside it (see `TrainEpochLoaded`)."""

    def setup(self, label):
        super().setup(label)
        self.load = BusyProcesses(1).start()

    def teardown(self, label):
        self.load.stop()


class EpochMemory:
    """Peak resident memory of the process over a full epoch (batch 1024), data included. For mnist:
    60000 x 784 float32 is 188 MB, the model with Adam's state 8.6 MB, one batch's activations 6.4 MB.
    """

    params = (["digits 64-64-10", "mnist 784-512-256-10"], [1024])
    param_names = ["model", "batch"]
    timeout = 300

    def setup(self, label, batch):
        self.model, self.x, self.y = model_and_data(label)
        warm_fit(self.model, self.x, self.y, batch)

    def peakmem_epoch(self, label, batch):
        self.model.fit(self.x, self.y, batch_size=batch, epochs=1, verbose=0)


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
