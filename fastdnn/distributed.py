"""Data-parallel training over MPI (the optional ``mpi`` extra: mpi4py on an MPI library).

The pattern of Horovod and PyTorch DDP: every rank holds the whole model and the same data; each
global batch of ``batch_size`` rows is split into near-equal shards, one per rank; each rank computes
the gradient of its shard; ONE ``Allreduce`` of the flat gradient buffer per step sums the
contributions (each pre-scaled by its share of the batch, so the sum is the gradient of the global
batch's mean loss); every rank then applies the same optimizer step to identical weights.

    import fastdnn as fd
    model = fd.Sequential([...]); model.compile(...)
    model = fd.distributed.data_parallel(model)   # under mpirun: all ranks; otherwise: unchanged
    model.fit(x, y, batch_size=256, epochs=10)    # batch_size is the global batch

    $ mpirun -n 4 python train.py

Weights (and optimizer state, and the dropout layers' random streams) are broadcast from rank 0 when
``fit`` starts, the shuffling order is rank 0's, metrics and validation are reduced across ranks, and
only rank 0 prints progress and writes checkpoints or CSV logs. Layers that see the whole batch get a
`Shard` from ``fit``: BatchNormalization sums its statistics over the ranks with `allreduce_sum`
(``synchronized``), and Dropout hashes each row's global position, so N ranks train like one
process. Ranks that disagree on the model, the data or the ``fit`` arguments get the same clear
error together; an exception on one rank during training aborts the whole job (with the
traceback printed) instead of leaving the others waiting forever.
"""

import json
import sys
import traceback

import numpy as np


class SingleProcess:
    """The default: one process, nothing to split or reduce."""

    rank = 0
    size = 1
    is_root = True

    def shard(self, start, stop):
        return start, stop

    def share(self, n_local, n_global):
        return 1.0

    def reduce_step(self, store, loss_value, n_local, n_global):
        return loss_value

    def reduce_sums(self, values):
        return values

    def allreduce_sum(self, values):
        """Elementwise sum over ranks of a host float array, in place; one process: ``values`` unchanged."""
        return values

    def broadcast_order(self, order):
        return order

    def broadcast_variables(self, model):
        pass

    def agree(self, what, check, what_of=None):
        return check()

    def guard(self, run):
        return run()


class MPIDataParallel(SingleProcess):
    """Data parallelism over an MPI communicator (``MPI.COMM_WORLD`` by default)."""

    def __init__(self, comm):
        from mpi4py import MPI

        self._mpi = MPI
        self.comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        self.is_root = self.rank == 0

    def shard(self, start, stop):
        """This rank's rows of the global batch ``[start, stop)``: ``np.array_split`` sizes, in rank order."""
        total = stop - start
        base, extra = divmod(total, self.size)
        lo = start + self.rank * base + min(self.rank, extra)
        return lo, lo + base + (1 if self.rank < extra else 0)

    def share(self, n_local, n_global):
        """Weight of this rank's mean gradient in the global mean."""
        return n_local / n_global

    def reduce_step(self, store, loss_value, n_local, n_global):
        """ONE Allreduce of the flat gradients, with this rank's share of the loss in the slot after them.

        The gradients were already scaled by ``n_local / n_global``; returns the global batch's mean loss.
        """
        buffer = store.reduction
        buffer[-1] = loss_value * (n_local / n_global) if n_local else 0.0
        self.comm.Allreduce(self._mpi.IN_PLACE, buffer, op=self._mpi.SUM)
        return float(buffer[-1])

    def reduce_sums(self, values):
        """Elementwise sum of a float64 vector over ranks (epoch totals: loss, metric counts)."""
        return self.allreduce_sum(np.ascontiguousarray(values, dtype=np.float64))

    def allreduce_sum(self, values):
        """Elementwise sum over ranks of the contiguous host float array ``values``, in place; returns it.

        The collective of the layers that need the whole batch (synchronized batch normalization's
        per-feature sums); every rank must call it with an array of the same size and dtype.
        """
        if not isinstance(values, np.ndarray) or values.dtype.kind != "f" or not values.flags.c_contiguous:
            received = (
                f"{'an' if values.flags.c_contiguous else 'a non-contiguous'} array of dtype {values.dtype}"
                if isinstance(values, np.ndarray) else type(values).__name__
            )
            raise TypeError(f"values: expected a contiguous float NumPy array, received {received}")
        self.comm.Allreduce(self._mpi.IN_PLACE, values, op=self._mpi.SUM)
        return values

    def broadcast_order(self, order):
        """Rank 0's shuffling order, so that every rank walks the same global batches."""
        self.comm.Bcast(order, root=0)
        return order

    def broadcast_variables(self, model):
        """Rank 0's weights, layer state and optimizer state on every rank."""
        for layer in model.layers:
            for value in layer.variables.values():
                self.comm.Bcast(value, root=0)
        for value in model.optimizer.state.values():
            self.comm.Bcast(value, root=0)
        model.optimizer.iterations = self.comm.bcast(model.optimizer.iterations, root=0)
        # the counter-based random streams (Dropout): rank 0's keys and step counts, so that every rank
        # draws the masks one process would draw for its rows
        streams = [layer.random_stream for layer in model.layers if getattr(layer, "random_stream", None) is not None]
        for stream, state in zip(streams, self.comm.bcast([stream.get_state() for stream in streams], root=0)):
            stream.set_state(state)

    def agree(self, what, check, what_of=lambda result: result):
        """Run ``check()`` (validation that may raise) on every rank and compare ``what_of(result)``.

        If any rank raised, or the ranks' results differ, every rank raises the same error, so that no
        rank goes on to wait for the others in a collective that will never come.
        """
        try:
            result = check()
            description, error = json.dumps(what_of(result), sort_keys=True, default=str), None
        except (ValueError, TypeError) as raised:
            result, description, error = None, None, (type(raised).__name__, str(raised))
        gathered = self.comm.allgather((description, error))
        failures = [(rank, error) for rank, (_, error) in enumerate(gathered) if error]
        if failures:
            rank, (kind, message) = failures[0]
            raise (TypeError if kind == "TypeError" else ValueError)(f"{message} [on rank {rank} of {self.size}]")
        if len({entry for entry, _ in gathered}) > 1:
            views = [json.loads(entry) for entry, _ in gathered]
            keys = sorted(key for key in views[0] if any(view.get(key) != views[0].get(key) for view in views))
            details = []
            for key in keys:
                path, values = _first_difference(key, [view.get(key) for view in views])
                details.append(f"{path}: " + ", ".join(f"rank {r} has {_short(value)}" for r, value in enumerate(values)))
            detail = "; ".join(details)
            raise ValueError(f"{what}: the {self.size} ranks disagree on {detail}. Every rank must run the same model on the same data")
        return result

    def guard(self, run):
        """Run ``run()``; any exception on this rank prints its traceback and aborts every rank."""
        try:
            return run()
        except BaseException as error:  # noqa: B036 - a rank that stops alone would hang the others
            if getattr(error, "raised_on_every_rank", False):
                raise  # (TrainingDivergedError) every rank sees the same reduced loss and raises together
            sys.stderr.write(f"fastdnn.distributed: rank {self.rank} of {self.size} failed; aborting the job\n")
            traceback.print_exc(file=sys.stderr)
            sys.stderr.flush()
            self.comm.Abort(1)
            raise


class Shard:
    """What a layer that depends on the whole batch sees of a data-parallel training step.

    ``parallel``: the model's strategy (`SingleProcess` or `MPIDataParallel`), whose `allreduce_sum`
    synchronized batch normalization calls; ``first_row``: where this process's rows begin in the
    global batch (0 in one process), so that a row's dropout mask is the one it gets in one process.
    ``fit`` hands one Shard to every layer with a ``shard`` attribute (BatchNormalization, Dropout)
    and moves ``first_row`` every step; outside ``fit`` layers hold a one-process Shard.
    """

    def __init__(self, parallel=None):
        self.parallel = SingleProcess() if parallel is None else parallel
        self.first_row = 0


def _first_difference(path, values):
    """The deepest named place where ``values`` (one per rank, JSON-like) first differ, and the values
    there: ``model.layers[1].config.synchronized`` rather than two whole model configs."""
    first = values[0]
    if all(isinstance(v, dict) for v in values) and all(set(v) == set(first) for v in values):
        for key in first:
            if any(v[key] != first[key] for v in values):
                return _first_difference(f"{path}.{key}", [v[key] for v in values])
    if all(isinstance(v, list) for v in values) and all(len(v) == len(first) for v in values):
        for index in range(len(first)):
            if any(v[index] != first[index] for v in values):
                if not all(isinstance(v[index], dict) for v in values):
                    break  # a list of numbers (a shape): shown whole
                return _first_difference(f"{path}[{index}]", [v[index] for v in values])
    return path, values


def _short(value, limit=80):
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def world():
    """`MPIDataParallel` over ``MPI.COMM_WORLD`` when mpi4py is installed and more than one rank runs;
    otherwise `SingleProcess`.
    """
    try:
        from mpi4py import MPI
    except (ImportError, RuntimeError, OSError):  # no mpi4py, or no MPI library for it to load
        return SingleProcess()
    if MPI.COMM_WORLD.Get_size() == 1:
        return SingleProcess()
    return MPIDataParallel(MPI.COMM_WORLD)


def rank():
    """This process's rank among the processes of ``mpirun`` (``MPI.COMM_WORLD``); 0 without MPI.

    As ``horovod.rank()``: lets a script print or write files on one process only::

        if fd.distributed.rank() == 0:
            print(f"{fd.distributed.size()} process(es)")
    """
    return world().rank


def size():
    """The number of processes started by ``mpirun`` (``MPI.COMM_WORLD``); 1 without MPI."""
    return world().size


def data_parallel(model, comm=None):
    """Make ``model.fit`` data-parallel over ``comm`` (default: every rank of ``mpirun``).

    Returns ``model``. Without MPI, or with a single rank, the model trains as a single process, so
    the same script runs unchanged under ``python`` and ``mpirun``.
    """
    # Any model with a strategy slot (fastdnn.Model and Sequential): no import of the model from here.
    if not hasattr(model, "_parallel") or not callable(getattr(model, "fit", None)):
        raise TypeError(f"model: expected a fastdnn.Model or Sequential, received {type(model).__name__}")
    if comm is None:
        model._parallel = world()
    else:
        model._parallel = MPIDataParallel(comm) if comm.Get_size() > 1 else SingleProcess()
    return model
