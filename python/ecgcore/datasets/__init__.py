"""Dataset conventions: MIT-BIH splits and AAMI classes (``mitdb``), EC57 QRS evaluation (``ec57``), noise mixing."""
from . import ec57, mitdb, noise

__all__ = ["ec57", "mitdb", "noise"]
