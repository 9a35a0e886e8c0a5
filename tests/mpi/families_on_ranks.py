"""Run under mpirun by tests/test_distributed.py: every layer family trains data parallel in ONE launch.

usage: families_on_ranks.py OUT_DIR [RESUME_CHECKPOINT]

Each rank writes OUT_DIR/{family}-rank{r}.npz (weights, history as JSON), and per-shard-rank{r}.npz
for the batch_norm family with ``synchronized=False`` (per-shard statistics). The "graph" family also
trains 4 epochs with a checkpoint per epoch (rank 0 writes OUT_DIR/ckpt-{epoch}.fdnn). With
RESUME_CHECKPOINT (a checkpoint of another launch, with another rank count), the ranks resume it to
epoch 4 (OUT_DIR/resumed-rank{r}.npz). Then the ranks disagree on purpose on BatchNormalization's
``synchronized`` and record the error each one raised (OUT_DIR/disagree-rank{r}.txt).
"""

import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import families  # noqa: E402

import fastdnn as fd  # noqa: E402

out = sys.argv[1]
rank = fd.distributed.rank()


def record(name, model, history):
    np.savez(f"{out}/{name}-rank{rank}.npz", *model.get_weights(), history=json.dumps(history))


for name in families.FAMILIES:
    record(name, *families.train(name, parallel=True))
record("per-shard", *families.train("batch_norm", parallel=True, synchronized=False))
checkpoint = fd.callbacks.ModelCheckpoint(os.path.join(out, "ckpt-{epoch}.fdnn"))
record("graph-4-epochs", *families.train("graph", parallel=True, epochs=4, callbacks=[checkpoint]))
if len(sys.argv) > 2:
    _, x, y = families.build("graph")
    record("resumed", *families.resume(sys.argv[2], x, y, parallel=True))

model, x, y = families.build("batch_norm", parallel=True)
if rank == 1:
    model.layers[1].synchronized = False
try:
    model.fit(x, y, batch_size=families.BATCH, epochs=1, verbose=0)
    message = "no error"
except ValueError as error:
    message = str(error)
with open(f"{out}/disagree-rank{rank}.txt", "w") as handle:
    handle.write(message)
