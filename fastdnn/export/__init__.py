"""Models out of Python: ``model.export(path, format="onnx")`` (see `fastdnn.export.onnx`)."""

import os

from fastdnn import validation

FORMATS = ("onnx",)


def export_model(model, filepath, format="onnx"):
    """Write ``model`` to ``filepath`` in ``format`` (only ``"onnx"``: opset 17, runs in onnxruntime).

    Every check (the format, the model being built, each layer having an export) runs before
    anything is written. Needs the ``onnx`` extra: ``pip install 'fastdnn[onnx]'``.
    """
    format = validation.choice(format, "format", FORMATS)
    if not isinstance(filepath, (str, os.PathLike)):
        raise TypeError(f"filepath: expected a path, received {validation.describe(filepath)}")
    from fastdnn.export import onnx

    onnx.save_onnx(model, filepath)
