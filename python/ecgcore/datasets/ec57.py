"""Beat-by-beat QRS detection evaluation as ANSI/AAMI EC57 and WFDB's ``bxb`` define it.

Rules (EC57:2012 §4.2, ``bxb`` defaults):

* Only beat annotations count (``N L R B A a J S V r F e j n E / f Q ?``, WFDB's ``isqrs``); rhythm,
  noise and artefact marks (``+ ~ | " x !`` ...) are ignored in the reference and in the test set.
* A reference beat and a detection match when they are at most 150 ms apart; each annotation is
  matched at most once, the nearest pair first.
* Ventricular flutter/fibrillation episodes (between ``[`` and ``]``) are not scored.
* By default the first 5 minutes are a learning period and are not scored (``bxb``'s default start
  time); ``start_s=0`` scores the whole record. Both figures are reported by ``ecgcore peaks evaluate``.

Sensitivity ``Se = TP / (TP + FN)``, positive predictivity ``+P = TP / (TP + FP)``,
``F1 = 2 TP / (2 TP + FN + FP)``; gross statistics pool TP/FN/FP over records.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

__all__ = ["BEAT_SYMBOLS", "QrsStats", "beat_mask", "scored_mask", "match_beats", "evaluate_qrs", "gross",
           "format_table"]

# WFDB isqrs(): the beat annotation codes (ecgcodes.h NORMAL .. PACESP, plus UNKNOWN and LEARN).
BEAT_SYMBOLS = frozenset("NLRBAaJSVrFejnE/fQ?")


def beat_mask(symbols: Sequence[str]) -> np.ndarray:
    """True where an annotation symbol is a beat (counts for QRS detection)."""
    return np.fromiter((s in BEAT_SYMBOLS for s in symbols), dtype=bool, count=len(symbols))


def scored_mask(samples, symbols, positions, *, start: int = 0, stop: int | None = None) -> np.ndarray:
    """True for the ``positions`` that are scored: at or after ``start``, before ``stop``, outside VF episodes.

    ``samples``/``symbols`` are the reference annotations that carry the ``[``/``]`` episode marks.
    """
    positions = np.asarray(positions, dtype=np.int64)
    keep = positions >= start
    if stop is not None:
        keep &= positions < stop
    samples = np.asarray(samples, dtype=np.int64)
    onsets = [int(s) for s, y in zip(samples, symbols) if y == "["]
    offsets = [int(s) for s, y in zip(samples, symbols) if y == "]"]
    for on in onsets:
        later = [off for off in offsets if off >= on]
        off = min(later) if later else np.iinfo(np.int64).max
        keep &= ~((positions >= on) & (positions <= off))
    return keep


def match_beats(reference, detected, *, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Pair sorted reference and detected beat positions at most ``window`` samples apart.

    Each annotation is used at most once; when two pairings compete, the closer one wins (a detection
    nearer to the next reference beat is left for it, as ``bxb`` does).

    Returns
    -------
    ref_match : (n_reference,) int64, index into ``detected`` of the matched detection or -1
    det_match : (n_detected,) int64, index into ``reference`` of the matched beat or -1
    """
    ref = np.asarray(reference, dtype=np.int64)
    det = np.asarray(detected, dtype=np.int64)
    if ref.ndim != 1 or det.ndim != 1:
        raise ValueError("reference and detected must be 1-D arrays of sample indices")
    if np.any(np.diff(ref) < 0) or np.any(np.diff(det) < 0):
        raise ValueError("reference and detected sample indices must be sorted")
    if window < 0:
        raise ValueError(f"the match window must be non-negative, got {window}")
    ref_match = np.full(ref.size, -1, dtype=np.int64)
    det_match = np.full(det.size, -1, dtype=np.int64)
    r = ref.tolist()
    d = det.tolist()
    i = j = 0
    while i < len(r) and j < len(d):
        dt = d[j] - r[i]
        if dt < -window:
            j += 1
            continue
        if dt > window:
            i += 1
            continue
        # Within the window: defer if the next detection fits this beat better, or this detection
        # fits the next beat better.
        if j + 1 < len(d) and abs(d[j + 1] - r[i]) < abs(dt) and \
                (i + 1 >= len(r) or abs(d[j + 1] - r[i]) <= abs(d[j + 1] - r[i + 1])):
            j += 1
            continue
        if i + 1 < len(r) and abs(d[j] - r[i + 1]) < abs(dt) and \
                (j + 1 >= len(d) or abs(d[j] - r[i + 1]) <= abs(d[j + 1] - r[i + 1])):
            i += 1
            continue
        ref_match[i] = j
        det_match[j] = i
        i += 1
        j += 1
    return ref_match, det_match


@dataclass
class QrsStats:
    """Beat-by-beat QRS detection counts of one record (or pooled over records)."""

    record: str
    tp: int
    fn: int
    fp: int

    @property
    def n_beats(self) -> int:
        return self.tp + self.fn

    @property
    def se(self) -> float:
        """Sensitivity TP / (TP + FN), in percent."""
        return 100.0 * self.tp / (self.tp + self.fn) if self.tp + self.fn else float("nan")

    @property
    def ppv(self) -> float:
        """Positive predictivity TP / (TP + FP), in percent."""
        return 100.0 * self.tp / (self.tp + self.fp) if self.tp + self.fp else float("nan")

    @property
    def f1(self) -> float:
        """F1 = 2 TP / (2 TP + FN + FP), in percent."""
        d = 2 * self.tp + self.fn + self.fp
        return 100.0 * 2 * self.tp / d if d else float("nan")


def evaluate_qrs(ref_sample, ref_symbol, detected, *, fs: float, record: str = "", start_s: float = 300.0,
                 window_s: float = 0.150) -> QrsStats:
    """Score detected R-peaks against reference annotations of one record, as ``bxb`` does.

    Parameters
    ----------
    ref_sample, ref_symbol : reference annotation samples and symbols (all annotations of the record;
        non-beats are dropped here, ``[``/``]`` mark unscored VF episodes)
    detected : (n_detections,) sorted sample indices
    fs : sampling rate in Hz
    start_s : scoring starts here (EC57 learning period: 300 s; 0 scores everything)
    window_s : match window (EC57: 0.150 s)
    """
    if fs <= 0:
        raise ValueError(f"fs must be positive, got {fs}")
    ref_sample = np.asarray(ref_sample, dtype=np.int64)
    ref_symbol = np.asarray(ref_symbol)
    if ref_sample.shape != ref_symbol.shape:
        raise ValueError("reference samples and symbols must have the same length")
    detected = np.sort(np.asarray(detected, dtype=np.int64))
    start = int(round(start_s * fs))
    beats = ref_sample[beat_mask(ref_symbol)]
    ref = beats[scored_mask(ref_sample, ref_symbol, beats, start=start)]
    det = detected[scored_mask(ref_sample, ref_symbol, detected, start=start)]
    window = int(round(window_s * fs))
    ref_match, det_match = match_beats(ref, det, window=window)
    tp = int(np.count_nonzero(ref_match >= 0))
    return QrsStats(record, tp=tp, fn=int(ref.size - tp), fp=int(np.count_nonzero(det_match < 0)))


def gross(stats: Iterable[QrsStats], name: str = "gross") -> QrsStats:
    """TP, FN and FP pooled over records (EC57 gross statistics)."""
    stats = list(stats)
    return QrsStats(name, sum(s.tp for s in stats), sum(s.fn for s in stats), sum(s.fp for s in stats))


def format_table(stats: Sequence[QrsStats], title: str = "") -> str:
    """The per-record table with the gross line, as text."""
    lines = [title] if title else []
    lines.append(f"{'record':<10}{'beats':>8}{'TP':>8}{'FN':>6}{'FP':>6}{'Se %':>9}{'+P %':>9}{'F1 %':>9}")
    for s in list(stats) + [gross(stats)]:
        lines.append(f"{s.record:<10}{s.n_beats:>8}{s.tp:>8}{s.fn:>6}{s.fp:>6}"
                     f"{s.se:>9.3f}{s.ppv:>9.3f}{s.f1:>9.3f}")
    return "\n".join(lines)
