"""Data-parallel training on GPUs: one device per rank, and the per-step sum of the device gradients.

A model compiled with ``device="cuda"`` and made data-parallel (`fastdnn.distributed.data_parallel`)
trains on one GPU per MPI rank. When ``fit`` starts, after the ranks agreed on model, data and
arguments, `bind` picks this rank's GPU:

- each rank its own: the GPU of its *local* rank (its rank among the ranks of its host, from
  ``MPI.COMM_TYPE_SHARED``), or GPU 0 when the launcher gave every rank of the host its own
  ``CUDA_VISIBLE_DEVICES``;
- a host with more ranks than GPUs is an error that says so, on every rank, unless ``FASTDNN_SHARE_GPUS=1``
  lets ranks share GPUs (round robin; slower, meant for tests: CI's simulator has one GPU).

Each training step then sums the ranks' gradient buffers (with this rank's share of the loss in one extra
slot, as on the CPU) in ONE ``Allreduce``, by one of two transports (`GradientReduction`):

- ``"cuda-aware"``: the MPI library reads and writes the device buffer itself (CUDA-aware MPI). Chosen
  when the library says it can (`cuda_aware_mpi`) or ``FASTDNN_CUDA_AWARE_MPI=1`` forces it;
- ``"staged"``: the device buffer is copied to a page-locked host buffer, reduced there and copied back.

Either way the traffic between host and device per step is the gradient buffer and a few scalars.
"""

import ctypes
import os
import socket
import sys

import numpy as np

SHARE_GPUS = "FASTDNN_SHARE_GPUS"
CUDA_AWARE = "FASTDNN_CUDA_AWARE_MPI"
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


def _flag(name):
    """An on/off environment variable: True, False, or None when unset; anything else is refused by name."""
    value = os.environ.get(name)
    if value is None:
        return None
    if value.strip().lower() in _TRUE:
        return True
    if value.strip().lower() in _FALSE:
        return False
    raise ValueError(f"{name}: expected 1 or 0 (true/false, yes/no, on/off), received {value!r}")


def choose_gpu(rank, size, local_rank, gpus, own_visible_devices, share):
    """The GPU index of one rank, or a ValueError that says which rank and why.

    ``local_rank``: this rank's position among the ranks of its host; ``gpus``: how many GPUs it sees;
    ``own_visible_devices``: whether every rank of the host has its own ``CUDA_VISIBLE_DEVICES``;
    ``share``: whether ranks may share a GPU.
    """
    where = f"rank {rank} of {size} (local rank {local_rank} on host {socket.gethostname()})"
    if gpus == 0:
        raise ValueError(f"device: {where} sees no GPU (CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}); every rank needs one for device='cuda'")
    if own_visible_devices:
        return 0  # the launcher bound one GPU (set) per rank: the first it shows is this rank's
    if local_rank < gpus:
        return local_rank
    if share:
        return local_rank % gpus
    raise ValueError(
        f"device: {where} has no GPU of its own: this host runs more ranks than its {gpus} GPU(s). Start at most "
        f"{gpus} rank(s) per host, give each rank its own GPU with CUDA_VISIBLE_DEVICES, or set {SHARE_GPUS}=1 to let "
        f"ranks share GPUs (slower; meant for tests)"
    )


def several_ranks():
    """Whether this process is one of several started by an MPI launcher (Open MPI's or a PMI one's
    environment, or an initialized mpi4py world of more than one), without starting MPI."""
    for name in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"):
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 1:
            return True
    mpi4py = sys.modules.get("mpi4py.MPI")
    return bool(mpi4py is not None and mpi4py.Is_initialized() and not mpi4py.Is_finalized() and mpi4py.COMM_WORLD.Get_size() > 1)


def local_rank(parallel):
    """This rank's position among the ranks of its host (a collective call on first use, then cached)."""
    if getattr(parallel, "_node", None) is None:
        mpi = parallel._mpi
        parallel._node = parallel.comm.Split_type(mpi.COMM_TYPE_SHARED, key=parallel.rank)
    return parallel._node


def bind(parallel):
    """Select this rank's GPU (see the module docstring); every rank raises the same error if one cannot.

    Called by ``fit`` on every rank, after the ranks agreed to train on ``device="cuda"``.
    """
    from fastdnn import backend

    node = local_rank(parallel)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    reason = backend.cuda_unavailable_reason()
    if reason is None:
        from numba import cuda

        gpus = len(cuda.gpus)
    else:
        gpus = 0
    # every rank of this host gives its CUDA_VISIBLE_DEVICES: distinct non-empty values mean one GPU set each
    views = node.allgather(visible)
    own = all(views) and len(set(views)) == len(views) and node.Get_size() > 1

    def select():
        if reason is not None:
            raise ValueError(f"device: rank {parallel.rank} of {parallel.size} cannot use CUDA: {reason}")
        share = _flag(SHARE_GPUS)
        cuda_aware_mpi()  # a malformed FASTDNN_CUDA_AWARE_MPI is refused here, on every rank, not mid-epoch
        index = choose_gpu(parallel.rank, parallel.size, node.Get_rank(), gpus, own, bool(share))
        from numba import cuda

        try:
            cuda.select_device(index)
        except RuntimeError as error:  # numba: "Cannot switch CUDA-context."
            raise ValueError(
                f"device: rank {parallel.rank} of {parallel.size} is to train on GPU {index}, but this process already "
                f"works on another GPU ({error}); apply fd.distributed.data_parallel before any device work (predict, "
                f"evaluate or fit on device='cuda')"
            ) from None
        return index

    return parallel.agree("device", select, lambda index: None)


def cuda_aware_mpi():
    """``(supported, how we know)``: whether MPI may be handed device buffers.

    ``FASTDNN_CUDA_AWARE_MPI=1`` / ``0`` decides; otherwise the library is asked: MPI 4.1's
    ``mpi_memory_alloc_kinds`` info key (Open MPI 5, MPICH 4.2) listing ``cuda``, then Open MPI's
    ``MPIX_Query_cuda_support()``. A library that answers neither is taken as not CUDA-aware.
    """
    forced = _flag(CUDA_AWARE)
    if forced is not None:
        return forced, f"{CUDA_AWARE}={os.environ[CUDA_AWARE]}"
    from mpi4py import MPI

    try:
        kinds = MPI.COMM_WORLD.Get_info().Get("mpi_memory_alloc_kinds")
    except Exception:  # an MPI before 4.1 may not know the key
        kinds = None
    if kinds:
        return any(kind.strip().startswith("cuda") for kind in kinds.split(",")), f"mpi_memory_alloc_kinds={kinds}"
    try:
        query = ctypes.CDLL(None).MPIX_Query_cuda_support  # Open MPI's extension, in the libmpi mpi4py loaded
    except (AttributeError, OSError):
        return False, "the MPI library does not say (no mpi_memory_alloc_kinds, no MPIX_Query_cuda_support)"
    query.restype = ctypes.c_int
    return bool(query()), f"MPIX_Query_cuda_support()={query()}"


def _mpi_view(device_array):
    """What MPI is handed for a device buffer: the array itself (``__cuda_array_interface__``) on a GPU; in
    numba's simulator, the host array that stands in for device memory there (so CI runs this path too)."""
    from fastdnn import backend

    return device_array._ary if backend.simulating() else device_array


class GradientReduction:
    """The step's sum over ranks of the flat device buffer ``reduction`` (gradients, then one loss slot).

    Parameters
    ----------
    parallel : fastdnn.distributed.MPIDataParallel
    reduction : device array of shape (P + 1,)
        The gradients, already scaled by each rank's share of the global batch, and a free last slot.
    direct : bool
        Hand the device buffer to MPI (CUDA-aware) instead of staging it through host memory.
    """

    def __init__(self, parallel, reduction, direct):
        from numba import cuda

        self._cuda = cuda
        self.parallel = parallel
        self.reduction = reduction
        self.kind = "cuda-aware" if direct else "staged"
        if direct:
            self._device = _Buffer(_mpi_view(reduction))
            self._zeros = None
        else:
            # page-locked: the copies in both directions run at full bus speed and without an extra bounce
            self._host = _Buffer(cuda.pinned_array(reduction.shape, dtype=reduction.dtype))

    def step(self, loss_value, n_local, n_global):
        """Sum the gradients of every rank into ``reduction[:-1]``; returns the global batch's mean loss.

        A rank without rows in this batch (``n_local == 0``) contributes zeros.
        """
        reduction = self.reduction
        if self.kind == "staged":
            host = self._host.reduction
            if n_local:
                reduction[:-1].copy_to_host(host[:-1])
            else:
                host[:-1] = 0
            loss = self.parallel.reduce_step(self._host, loss_value, n_local, n_global)
            reduction[:-1].copy_to_device(host[:-1])
            return loss
        if not n_local:
            if self._zeros is None:
                self._zeros = np.zeros(reduction.shape[0] - 1, dtype=reduction.dtype)
            reduction[:-1].copy_to_device(self._zeros)
        self._cuda.synchronize()  # the kernels that wrote the gradients have finished before MPI reads them
        loss = self.parallel.reduce_step(self._device, loss_value, n_local, n_global)
        return loss


class _Buffer:
    """The one attribute `fastdnn.distributed.MPIDataParallel.reduce_step` reads of a parameter store."""

    def __init__(self, reduction):
        self.reduction = reduction
