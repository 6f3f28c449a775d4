"""Dataset conventions: MIT-BIH splits and AAMI classes (``mitdb``), EC57 QRS evaluation (``ec57``), noise mixing,
PTB-XL's table (``ptbxl``), and where the reference databases are (:func:`locate`, under ``$ECGCORE_DATA``)."""
from . import ec57, mitdb, noise, ptbxl
from .reference import DATA_ENV, locate

__all__ = ["DATA_ENV", "ec57", "locate", "mitdb", "noise", "ptbxl"]
