"""Metrics of a model on the CUDA device, counted where the predictions are.

A built-in metric names the count it accumulates (`fastdnn.metrics.Metric.device_count`, laid out as
its ``counts()``). Those counts stay in a float64 device vector per metric, and the host reads them (a
few numbers) only when a value is shown: at the end of an epoch or evaluation, or per batch when a
progress bar or a callback asks for batch logs. So an epoch with resident data moves only the batch
order and the logged scalars between host and device. A metric without a device count (a subclass
that overrides ``update``) gets the batch predictions copied to the host, as its ``update`` needs.
"""

import numpy as np


def _device_count(metric, sparse):
    """The metric's device count, unless a subclass overrides ``update`` below the class that
    declared it (then the count would not be what that ``update`` adds)."""
    owner = next(cls for cls in type(metric).__mro__ if "device_count" in vars(cls))
    if type(metric).update is not owner.update:
        return None
    return metric.device_count(sparse)


class DeviceMetrics:
    """The metrics of one pass (an epoch or an evaluation) on the device.

    Parameters
    ----------
    engine : backend.CudaEngine
        Gives the kernels (``engine.k``) and the buffer pool.
    metrics : list of fastdnn.metrics.Metric
        Reset by the caller; `publish` sets their state from the device counts.
    sparse : bool
        Whether the targets are integer labels.
    """

    def __init__(self, engine, metrics, sparse):
        from numba import cuda

        self.engine = engine
        self.on_device = []  # (metric, kind, threshold, device counts)
        self.on_host = []
        for metric in metrics:
            count = _device_count(metric, sparse)
            if count is None:
                self.on_host.append(metric)
            else:
                kind, threshold = count
                counts = cuda.to_device(np.zeros(engine.k.metric.width(kind)))
                self.on_device.append((metric, kind, threshold, counts))

    def update(self, y_pred, targets, host_targets):
        """Add a batch: device predictions ``y_pred`` (n, d) and device ``targets`` in kernel form;
        ``host_targets()`` gives the host targets, called only when a metric runs on the host."""
        metric_kernels = self.engine.k.metric
        for _, kind, threshold, counts in self.on_device:
            rows = self.engine._pool.get(("metric rows", kind), (y_pred.shape[0], metric_kernels.width(kind)), np.float64)
            metric_kernels.add_counts(kind, y_pred, targets, threshold, rows, counts)
        if self.on_host:
            predictions = y_pred.copy_to_host()
            truth = host_targets()
            for metric in self.on_host:
                metric.update(predictions, truth)

    def publish(self):
        """Bring the device counts to the metric objects (their ``result()`` is then current)."""
        for metric, _, _, counts in self.on_device:
            metric.set_counts(counts.copy_to_host())
