"""ecgcore: a fast ECG toolkit with a C++ signal core.

Records in -> signals -> beats/segments -> features -> datasets -> models -> ONNX -> scores.
Training frameworks (torch, tensorflow, mlx) are optional extras and are never imported here.
"""
from ._version import __version__
from . import cluster, datasets, dsp, features, io
from .io import Record, read_record

__all__ = ["__version__", "cluster", "datasets", "dsp", "features", "io", "Record", "read_record"]
