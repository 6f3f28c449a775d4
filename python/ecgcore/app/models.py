"""The one place where the app touches models: ``ecgcore.infer.Scorer`` over the bundled ONNX models.

Each model is optional. When ``ecgcore.infer`` or a bundled model is missing, or a model fails on a
record, the app still shows the measurements and says which model is missing and why
(:meth:`ModelSuite.status`, per-record ``errors``). Only ONNX Runtime runs here: never a training
framework.

Models (bundled names):

* ``beats-aami``: one AAMI class (N, S, V, F, Q) per beat;
* ``segments-abnormal``: Normal/Abnormal per 10 s segment (and its attention when the graph exports it);
* ``hubert-ptbxl-super``: PTB-XL diagnostic superclass probabilities of a 12-lead ECG.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

import numpy as np

from ..export.card import card_warnings, headline_metrics
from ..io import Record

__all__ = ["BEATS_MODEL", "SEGMENTS_MODEL", "SUPERCLASS_MODEL", "ModelSuite", "ModelOutputs", "single_lead_view"]


log = logging.getLogger("ecgcore.app")

BEATS_MODEL = "beats-aami"
SEGMENTS_MODEL = "segments-abnormal"
SUPERCLASS_MODEL = "hubert-ptbxl-super"


@dataclass
class ModelOutputs:
    """What the models said about one record (None where a model did not run)."""

    beats: list[dict] | None = None          # one row per beat: sample, time_s, class, prob_<class>
    beat_classes: list[str] = field(default_factory=list)
    segments: list[dict] | None = None       # one row per segment: sample, time_s, class, prob_<class>
    segment_classes: list[str] = field(default_factory=list)
    attention: dict[int, np.ndarray] = field(default_factory=dict)  # segment row index -> (n,) weights
    segment_signal: dict[int, np.ndarray] = field(default_factory=dict)  # the model's input for that row
    superclass: dict[str, float] | None = None
    superclass_rows: list[dict] | None = None
    errors: dict[str, str] = field(default_factory=dict)   # model name -> why it did not run here


def single_lead_view(record: Record, lead: int) -> Record:
    """The record with ``lead`` moved first: the single-lead models read channel 0 (MLII in training)."""
    order = [lead] + [i for i in range(record.n_leads) if i != lead]
    return Record(signal=np.ascontiguousarray(record.signal[:, order]), fs=record.fs,
                  leads=[record.leads[i] for i in order], units=[record.units[i] for i in order],
                  name=record.name, path=record.path, annotations=record.annotations,
                  adc_gain=None if record.adc_gain is None else np.asarray(record.adc_gain)[order],
                  baseline=None if record.baseline is None else np.asarray(record.baseline)[order],
                  comments=record.comments)


class ModelSuite:
    """Lazily opened scorers, one ONNX Runtime session per model reused across requests.

    Parameters
    ----------
    beats, segments, superclass : the model for each role (bundled name, model folder or ``.onnx``);
        None leaves the role out
    threads : intra-op threads per session (the app is shared by concurrent requests)
    max_memory : memory budget of one batch in bytes (default 512 MiB; batch sizes from each card)
    """

    def __init__(self, beats: str | None = BEATS_MODEL, segments: str | None = SEGMENTS_MODEL,
                 superclass: str | None = SUPERCLASS_MODEL, threads: int | None = 1, max_memory: int | None = None):
        # role -> model (bundled name, folder or .onnx path); None switches a role off.
        self.roles = {"beats": beats, "segments": segments, "superclass": superclass}
        self.names = tuple(str(m) for m in self.roles.values() if m is not None)
        self.threads = threads
        self.max_memory = max_memory
        self._scorers: dict[str, object] = {}
        self._missing: dict[str, str] = {}
        self._lock = threading.Lock()

    def _scorer(self, name: str):
        with self._lock:
            if name in self._scorers:
                return self._scorers[name]
            if name in self._missing:
                return None
            try:
                from ..infer import Scorer
            except ImportError as exc:
                self._missing[name] = f"ecgcore.infer is not available ({exc})"
                return None
            try:
                scorer = Scorer(name, threads=self.threads, max_memory=self.max_memory)
            except FileNotFoundError as exc:
                self._missing[name] = f"model {name!r} is not installed ({exc})"
                return None
            except ValueError as exc:
                # resolve_model's "unknown model" (no such bundled name) vs a graph/card that does not load.
                word = "is not installed" if str(exc).startswith("unknown model") else "could not be loaded"
                self._missing[name] = f"model {name!r} {word} ({exc})"
                return None
            except Exception as exc:  # noqa: BLE001 - e.g. onnxruntime cannot load a corrupt graph
                log.exception("model %s could not be loaded", name)
                self._missing[name] = f"model {name!r} could not be loaded ({exc})"
                return None
            self._scorers[name] = scorer
            return scorer

    def status(self) -> dict[str, dict]:
        """``{name: {"available": bool, "reason": str, "classes": [...], "description": str}}``."""
        out = {}
        for name in self.names:
            scorer = self._scorer(name)
            if scorer is None:
                out[name] = {"available": False, "reason": self._missing.get(name, "unavailable"), "classes": []}
            else:
                card = scorer.card
                out[name] = {"available": True, "reason": "", "classes": list(card.classes),
                             "description": card.description, "fs": card.fs,
                             "metrics": headline_metrics(card), "warnings": card_warnings(card)}
        return out

    def predict(self, record: Record, lead: int) -> ModelOutputs:
        """Run every available model that fits the record (the 12-lead model only on 12-lead input)."""
        out = ModelOutputs()
        # Beats and segments come from the models' own R-peak detection, never from uploaded reference
        # annotations (those are shown beside the model's counts for comparison, not fed to it).
        view = single_lead_view(record, lead)
        view.annotations = None
        beats, segments, superclass = (self.roles[k] for k in ("beats", "segments", "superclass"))
        if beats is not None:
            scorer = self._scorer(beats)
            if scorer is None:
                out.errors[beats] = self._missing[beats]
            else:
                try:
                    pred = scorer.predict_record(view)
                    out.beats = list(pred.rows)
                    out.beat_classes = list(scorer.card.classes)
                except Exception as exc:  # noqa: BLE001 - one model failing must not take the page down
                    out.errors[beats] = _failure(beats, exc)
        if segments is not None:
            scorer = self._scorer(segments)
            if scorer is None:
                out.errors[segments] = self._missing[segments]
            else:
                try:
                    pred = scorer.predict_record(view)
                    out.segments = list(pred.rows)
                    out.segment_classes = list(scorer.card.classes)
                    _segment_attention(scorer, view, out)
                except Exception as exc:  # noqa: BLE001 - one model failing must not take the page down
                    out.errors[segments] = _failure(segments, exc)
        if superclass is not None:
            if record.n_leads != 12:
                out.errors[superclass] = (f"needs a 12-lead ECG; this one has {record.n_leads} "
                                          f"lead{'s' if record.n_leads != 1 else ''}")
            else:
                scorer = self._scorer(superclass)
                if scorer is None:
                    out.errors[superclass] = self._missing[superclass]
                else:
                    try:
                        pred = scorer.predict_record(record)
                        rows = list(pred.rows)
                        classes = list(scorer.card.classes)
                        out.superclass_rows = rows
                        # Several windows of a long ECG: the mean probability per class.
                        out.superclass = {c: float(np.mean([r[f"prob_{c}"] for r in rows])) for c in classes
                                          if rows and f"prob_{c}" in rows[0]}
                    except Exception as exc:  # noqa: BLE001 - one model failing must not take the page down
                        out.errors[superclass] = _failure(superclass, exc)
        return out


def _failure(name: str, exc: Exception) -> str:
    """The page's note for a model that failed on a record; the traceback goes to the server log."""
    if not isinstance(exc, ValueError):
        log.exception("model %s failed", name)
    return f"failed on this ECG: {exc}"


def _segment_attention(scorer, record: Record, out: ModelOutputs) -> None:
    """Attention of the most abnormal segment, when the segment model has an attention graph (the card's
    ``attention.onnx``; or, for older exports, an ``attention`` output of the model graph itself).

    Only that one segment is run (batch 1) for the attention map; it is reduced to one weight per time
    step (the mean over query positions when the graph returns the full matrix), and the overlay is drawn
    on the record's own samples of that segment.
    """
    if not out.segments:
        return
    positive = next((c for c in out.segment_classes if c != "Normal"), None)
    if positive is None:
        return
    session = getattr(scorer, "session", None)
    att_name = None if session is None else next(
        (o.name for o in session.get_outputs() if "att" in o.name.lower()), None)
    if getattr(scorer, "attention_graph", None) is None and att_name is None:
        return
    # segments in unusable stretches carry no probability (None): never pick one of those
    probs = np.array([r.get(f"prob_{positive}") if r.get(f"prob_{positive}") is not None else -1.0
                      for r in out.segments], dtype=np.float64)
    if probs.size == 0 or probs.max() < 0:
        return
    i = int(np.argmax(probs))
    prep = scorer.prepare(record)
    x = np.asarray(prep.inputs[0][i:i + 1], dtype=np.float32)
    if getattr(scorer, "attention_graph", None) is not None:
        att = np.asarray(scorer.attention(x)[0], dtype=np.float64)
    else:
        inp = session.get_inputs()[0]
        if isinstance(inp.shape[0], int) and inp.shape[0] > 1:
            x = np.concatenate([x, np.zeros((inp.shape[0] - 1, *x.shape[1:]), np.float32)])
        att = np.asarray(session.run([att_name], {inp.name: x})[0][0], dtype=np.float64)
    if att.ndim == 2:
        att = att.mean(axis=0)
    start = int(out.segments[i]["sample"])
    end = int(out.segments[i].get("end_sample", start + int(10 * record.fs)))
    out.attention[i] = att.reshape(-1)
    out.segment_signal[i] = np.asarray(record.signal[start:end, 0], dtype=np.float64)
