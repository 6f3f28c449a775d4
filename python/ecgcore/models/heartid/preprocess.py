"""The ``heartid`` recipe's per-record transform, reusable on one record at enrolment/verification time.

``ecgcore.pipelines.recipes.heartid.HeartIDWindows.run`` inlines this transform over a subject's records and
offers no per-record function, so it is restated here step for step (band-pass 0.5-40 Hz order 4 zero-phase
on the record's own rate, polyphase resampling to ``fs``, windows of ``window`` every ``stride``, per-window
z-score); ``tests/models/test_heartid.py`` checks that both give identical windows on ECG-ID records.
NumPy + C++ core only: no training framework.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ...pipelines.recipes.heartid import lead_at_rate

RECIPE = "heartid"


def recipe_options(**overrides) -> dict:
    """The ``heartid`` recipe's default options (fs 200, window 1000, stride 500, lead 0, band 0.5-40 Hz)."""
    from ...pipelines.recipes.heartid import HeartIDWindows

    opts = HeartIDWindows().default_options()
    opts.update({k: v for k, v in overrides.items() if v is not None})
    return opts


def signal_windows(x: np.ndarray, fs: float, options: dict | None = None, workers: int | None = None) -> np.ndarray:
    """One lead's signal -> windows exactly as the ``heartid`` recipe cuts them.

    Parameters
    ----------
    x : (n_samples,) one ECG lead in physical units at ``fs`` Hz.
    fs : its sampling rate.
    options : recipe options (:func:`recipe_options` when None).

    Returns
    -------
    (n_windows, window) float32 z-scored windows (empty first axis when the signal is too short).
    """
    o = recipe_options() if options is None else options
    win, stride, out_fs = int(o["window"]), int(o["stride"]), float(o["fs"])
    # NaN gaps would spread into every window: refused with a clear message
    x = lead_at_rate(x, fs, o["band"], out_fs, what="windows", workers=workers)
    if x.size < win:
        return np.zeros((0, win), np.float32)
    st = np.arange(0, x.size - win + 1, stride)
    w = x[st[:, None] + np.arange(win)]
    sd = w.std(axis=1, keepdims=True)
    w = (w - w.mean(axis=1, keepdims=True)) / np.where(sd > 0, sd, 1.0)
    return w.astype(np.float32)


def read_lead(path: str | Path, options: dict, fs: float | None = None) -> tuple[np.ndarray, float, Path]:
    """(one lead's samples, its rate, the path) of a WFDB record / ``.npy`` / ``.csv`` (``options["lead"]``).

    ``fs`` is required for ``.npy``/``.csv`` files (they carry no rate). Raises ``FileNotFoundError`` for a
    missing record and ``ValueError`` for a missing lead.
    """
    from ...io import read_record

    p = Path(path)
    is_array = p.suffix.lower() in (".npy", ".csv")
    if is_array and fs is None:
        raise ValueError(f"{p}: a .npy/.csv record carries no sampling rate; pass --fs")
    if is_array and not p.is_file():
        raise FileNotFoundError(f"record {p} not found")
    if not is_array and not (p.with_suffix(".hea").is_file() or Path(str(p) + ".hea").is_file() or p.is_file()):
        raise FileNotFoundError(f"record {p} not found (expected a WFDB record, .npy or .csv)")
    rec = read_record(p, fs=fs) if is_array else read_record(p, annotator=None)
    lead = int(options.get("lead", 0))
    if lead >= rec.n_leads:
        raise ValueError(f"{p}: lead {lead} requested but the record has {rec.n_leads} lead(s)")
    return rec.signal[:, lead], float(rec.fs), p


def record_windows(path: str | Path, options: dict | None = None, fs: float | None = None,
                   workers: int | None = None) -> np.ndarray:
    """Read a WFDB record / ``.npy`` / ``.csv`` and cut it into ``heartid`` windows (see :func:`signal_windows`),
    or into median-beat groups when ``options["input"]`` is ``"beat-groups"`` (a ``beat-lda`` model's card;
    :func:`~.beats.record_beat_groups`).

    ``fs`` is required for ``.npy``/``.csv`` files (they carry no rate). Raises ``FileNotFoundError`` for a
    missing record and ``ValueError`` when the record is too short for one window.
    """
    o = recipe_options() if options is None else options
    if o.get("input") == "beat-groups":
        from .beats import record_beat_groups

        return record_beat_groups(path, o, fs=fs, workers=workers)
    x, rate, p = read_lead(path, o, fs)
    w = signal_windows(x, rate, o, workers=workers)
    if len(w) == 0:
        need = int(o["window"]) / float(o["fs"])
        raise ValueError(f"{p}: {len(x) / rate:.1f} s is shorter than one {need:g} s biometric window")
    return w
