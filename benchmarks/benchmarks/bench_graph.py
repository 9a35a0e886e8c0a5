"""The graph engine against the chain: one ``fit`` epoch of the MNIST-sized MLP built as
``fd.Model(inputs, outputs)`` and as ``fd.Sequential``, Adam, batch 128 (the target: within 3%).

Both run the same engine; the functional model goes through the general graph plan (value slots,
consumer counts) exactly as a residual network would. It trains on 6000 of MNIST's 60000 samples
(47 steps), enough for a ratio, short enough for the quick run.
"""

from .common import MODELS, classification_data, functional_mlp, mlp, warm_fit

LABEL = "mnist 784-512-256-10"


class GraphVsSequentialEpoch:
    params = (["sequential", "functional"], [128])
    param_names = ["kind", "batch"]
    samples = 6000
    timeout = 300

    def setup(self, kind, batch):
        sizes, _ = MODELS[LABEL]
        self.model = (mlp if kind == "sequential" else functional_mlp)(sizes)
        self.x, self.y = classification_data(self.samples, sizes[0], sizes[-1])
        warm_fit(self.model, self.x, self.y, batch)

    def time_epoch(self, kind, batch):
        self.model.fit(self.x, self.y, batch_size=batch, epochs=1, verbose=0)
