"""Where the reference databases are: one folder, ``$ECGCORE_DATA``, holding them under their PhysioNet names.

``$ECGCORE_DATA/mitdb``, ``nstdb``, ``qtdb``, ``ecgiddb``, ``ptbxl``, ... as PhysioNet distributes them. The library
has no default location: code that needs a database takes its folder as an argument and, where it may fall back
to the usual one, asks :func:`locate`, which names the variable when it is unset or the folder is missing.
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DATA_ENV", "DATABASES", "locate"]

DATA_ENV = "ECGCORE_DATA"

#: The reference databases ecgcore's recipes, models and tests use, by folder name.
DATABASES = {
    "mitdb": "MIT-BIH Arrhythmia Database",
    "nstdb": "MIT-BIH Noise Stress Test Database",
    "qtdb": "QT Database",
    "ecgiddb": "ECG-ID Database",
    "ptbxl": "PTB-XL",
}


def locate(name: str) -> Path:
    """The folder of reference database ``name`` (``"mitdb"``, ``"nstdb"``, ``"ecgiddb"``, ``"ptbxl"``, ...):
    ``$ECGCORE_DATA/<name>``.

    Raises
    ------
    FileNotFoundError : ``ECGCORE_DATA`` is unset, or it holds no folder ``name``.
    ValueError : ``name`` is not a plain folder name.
    """
    if not name or name in (".", "..") or "/" in name or os.sep in name:
        raise ValueError(f"a reference database is named by its folder (e.g. {', '.join(DATABASES)}), got {name!r}")
    what = DATABASES.get(name, name)
    root = os.environ.get(DATA_ENV)
    if not root:
        raise FileNotFoundError(f"{what}: set {DATA_ENV} to the folder that holds the reference databases "
                                f"({DATA_ENV}/{name}, ...); ecgcore has no default location")
    folder = Path(root).expanduser() / name
    if not folder.is_dir():
        raise FileNotFoundError(f"{what} not found: {folder} is not a folder ({DATA_ENV}={root})")
    return folder
