"""Card-driven preprocessing for ``ecgcore infer``: the recipes' own per-record transforms, nothing re-implemented.

A model card's ``preprocessing`` is ``{"kind": <recipe name>, **<that recipe's options as trained>}``. For each
kind this module calls the very function the ``ecgcore preprocess`` recipe calls in ``run()``
(``beats_scalograms.transform``, ``segments.transform``, ``denoise_pairs.to_model_rate``,
``heartid.record_windows``, ``hubert.standardize``), then applies the training loader's last steps that the
recipes leave to the model (normalisation statistics from the card, beat sequences, channel axes).

Card keys read per kind, besides the recipe's own options (defaults: the recipe's ``default_options()``):

``beats-scalograms``
    ``peaks``: ``"auto"`` (reference annotations when the record has them, else ``detect_r_peaks``; default),
    ``"annotations"`` or ``"detect"``. ``sequence_length`` (default 3; 1 = single beats) and ``stride`` 1;
    ``normalization``: ``{"mean": [187], "scale": [187]}`` per time column (the seed's StandardScaler) or null;
    ``rr_features``: ``{"function": NAME, "mean", "scale"}`` feeds ``fn(r_peaks, fs=fs)`` (functions in
    ``beats_scalograms.NEEDS_SIGNAL`` also get ``signal=`` the card's lead at the card's rate), ``fn`` the
    training's own function looked up by name in ``beats_scalograms.RR_FEATURE_FUNCTIONS`` (nothing is imported
    from the card), normalised, as (n_seq, length, k) to the graph input named ``rr`` (k = the card's feature count).
    Sequence i is scored on its last beat (the seed's labelling); the first ``length - 1`` beats of a record
    get sequences padded with copies of the first beat so every beat is scored.
``segments``
    the recipe's options; with ``seed_compat`` the training StandardScaler as ``scaler_mean`` / ``scaler_scale``
    (3600 values each; or ``scaler: {"mean", "scale"}``), applied in float32 like the training loader.
``denoise-pairs``
    ``fs``/``length`` (130 Hz / 1300); ``normalization``: ``"signal"`` (z-score of the whole signal, the seed's
    inference; default), ``"window"`` (each chunk) or ``"none"``.
``heartid``
    the recipe's options (windows z-scored per window).
``hubert-features``
    ``hubert_inputs.build_input`` (the recipe's transform, then the HuBERT model-input step of the training);
    one item per record.

Every kind resamples a record whose rate differs from the card's ``fs`` first (polyphase), and reports
sample indices at the record's own rate.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..export.card import ModelCard
from ..io import Annotations, Record

__all__ = ["Prepared", "Sequences", "KINDS", "prepare", "recipe_options", "at_rate"]

KINDS = ("beats-scalograms", "segments", "denoise-pairs", "heartid", "hubert-features")


@dataclass
class Prepared:
    """Network inputs of one record and where each item sits in it.

    Attributes
    ----------
    inputs : {0: the main input, name: further graph inputs by name (e.g. ``"rr"``)}, (n, ...) float32.
    sample : (n,) int64 sample index of each item at the record's own rate (R-peak, window start).
    end : (n,) int64 exclusive end sample of each item (record rate), or None for beats.
    reference : (n,) int64 reference class index (-1 unknown) when the record has annotations, else None.
    kind : "beat", "segment", "window" or "record".
    """

    inputs: dict[Any, np.ndarray]
    sample: np.ndarray
    end: np.ndarray | None = None
    reference: np.ndarray | None = None
    kind: str = "beat"
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.sample.size)


class Sequences:
    """Beat sequences gathered batch by batch (``items[idx[i]]``), so a record's (n, length, 32, 187) tensor is
    never materialised: each beat's scalogram is stored once, not ``length`` times."""

    def __init__(self, items: np.ndarray, idx: np.ndarray, shape=None, *, squeeze: bool = False, what: str = ""):
        self.items, self.idx, self.graph_shape, self.squeeze, self.what = items, idx, shape, squeeze, what
        first = self._fit(items[idx[:1]] if len(idx) else np.zeros((0, *idx.shape[1:2], *items.shape[1:]),
                                                                   items.dtype))
        self.shape = (len(idx), *first.shape[1:])
        self.dtype = np.dtype(np.float32)

    def _fit(self, x: np.ndarray) -> np.ndarray:
        if self.squeeze:
            x = x[:, 0]
        return _fit_shape(np.ascontiguousarray(x, dtype=np.float32), self.graph_shape, self.what)

    def __len__(self) -> int:
        return len(self.idx)

    def __getitem__(self, sl) -> np.ndarray:
        return self._fit(self.items[self.idx[sl]])

    def __array__(self, dtype=None, copy=None):
        out = self[:]
        return out if dtype is None else out.astype(dtype)


def recipe_options(card: ModelCard, threads: int | None = 0) -> dict:
    """The recipe's default options updated with the card's (the ``kind`` key dropped), plus ``_threads``."""
    from ..pipelines.recipes import get_recipe

    kind = card.preprocessing["kind"]
    if kind not in KINDS:
        raise ValueError(f"model card {card.name!r}: unknown preprocessing kind {kind!r}; ecgcore infer knows "
                         f"{', '.join(KINDS)}")
    opts = dict(get_recipe(kind).default_options())
    opts.update({k: v for k, v in card.preprocessing.items() if k != "kind"})
    opts["_threads"] = 0 if threads is None else int(threads)
    return opts


def at_rate(rec: Record, fs: float, threads: int | None = 0) -> tuple[Record, float]:
    """``rec`` resampled to ``fs`` (polyphase, every lead; annotations moved) and the factor fs / rec.fs."""
    if abs(rec.fs - fs) < 1e-9:
        return rec, 1.0
    from ..dsp import resample_poly, resample_ratio

    up, down = resample_ratio(rec.fs, fs)
    sig = resample_poly(np.ascontiguousarray(rec.signal.T), up, down, workers=threads).T
    ann = None
    if rec.annotations is not None:
        a = rec.annotations
        samp = np.round(a.sample * (fs / rec.fs)).astype(np.int64)
        ann = Annotations(samp, a.symbol, a.aux_note, extension=a.extension, fs=fs)
    out = Record(signal=np.ascontiguousarray(sig), fs=float(fs), leads=rec.leads, units=rec.units,
                 name=rec.name, path=rec.path, annotations=ann)
    return out, fs / rec.fs


def _to_record_rate(sample: np.ndarray, ratio: float) -> np.ndarray:
    return sample.astype(np.int64) if ratio == 1.0 else np.round(sample / ratio).astype(np.int64)


def _fit_shape(x: np.ndarray, shape, what: str) -> np.ndarray:
    """Bring (n, ...) to the graph input's per-item shape: a reshape when it is static (adds channel axes),
    else one channel axis where the graph has one more axis of size 1; None/str dims are free."""
    if not shape:
        return x
    tail = list(shape[1:])
    if tail and all(isinstance(d, int) and d > 0 for d in tail):
        if int(np.prod(tail)) != int(np.prod(x.shape[1:])):
            raise ValueError(f"{what}: the model takes items of shape {tuple(tail)}, the card's preprocessing "
                             f"gives {x.shape[1:]}")
        return x.reshape((x.shape[0], *tail))
    if len(tail) == x.ndim:
        if tail[-1] == 1:
            return x[..., None]
        if tail[0] == 1:
            return x[:, None]
    return x


EXTRA_INPUTS = ("rr", "key", "qrs_width")  # graph inputs fed by name, besides the main one


def _input_shapes(card: ModelCard, graph_inputs: list | None) -> dict:
    """{"main": shape of the main input, <extra name>: shape} from the graph (or the card's ``inputs``)."""
    pairs = graph_inputs or [(i.get("name", str(k)), i.get("shape")) for k, i in enumerate(card.inputs)]
    pairs = [p if isinstance(p, tuple) else (str(k), p) for k, p in enumerate(pairs)]
    shapes = {name: shape for name, shape in pairs if name in EXTRA_INPUTS}
    main = [shape for name, shape in pairs if name not in EXTRA_INPUTS]
    shapes["main"] = main[0] if main else None
    return shapes


PEAK_SOURCES = ("auto", "annotations", "detect")


def prepare(rec: Record, card: ModelCard, *, threads: int | None = 0, graph_inputs: list | None = None,
            peaks: str | None = None) -> Prepared:
    """Run the card's preprocessing on one record; see the module docstring.

    ``graph_inputs``: the ONNX graph's ``(name, shape)`` inputs, used to shape each array (channel axes);
    the card's ``inputs`` otherwise. ``peaks`` (beat models): where the beats come from, overriding the card's
    ``peaks`` (``"auto"``, ``"annotations"``, ``"detect"``); with ``"detect"`` on an annotated record each
    detected beat's reference class is that of the annotated beat it matches (EC57, 150 ms), -1 for none.
    """
    kind = card.preprocessing.get("kind")
    opts = recipe_options(card, threads)
    if peaks is not None:
        if peaks not in PEAK_SOURCES:
            raise ValueError(f"peaks must be one of {', '.join(PEAK_SOURCES)}, got {peaks!r}")
        if kind != "beats-scalograms":
            raise ValueError(f"model card {card.name!r} ({kind}) takes no beat positions: peaks applies to beat "
                             f"models only")
        opts["peaks"] = peaks
    shapes = _input_shapes(card, graph_inputs)
    fs = float(opts.get("fs", card.fs)) if kind in ("denoise-pairs", "heartid") else float(card.fs)
    if kind == "beats-scalograms":
        return _beats(rec, card, opts, shapes)
    if kind == "segments":
        return _segments(rec, card, opts, shapes)
    if kind == "heartid":
        return _heartid(rec, opts, shapes, fs)
    if kind == "hubert-features":
        return _hubert(rec, card, opts, shapes)
    if kind == "denoise-pairs":
        raise ValueError(f"model {card.name!r} is a denoiser: use denoise_signal / Scorer.denoise, not prepare")
    raise ValueError(f"model card {card.name!r}: unknown preprocessing kind {kind!r}")


def _beats(rec: Record, card: ModelCard, opts: dict, shapes: dict) -> Prepared:
    from ..dsp import rr_features
    from ..pipelines.recipes.beats_scalograms import RR_FEATURE_FUNCTIONS, beat_side_features, transform

    r, ratio = at_rate(rec, float(card.fs), opts["_threads"])
    t = transform(r, opts, peaks=opts.get("peaks", "auto"))
    scal = t["scalograms"].astype(np.float32)
    norm = opts.get("normalization")
    if norm:
        mean = np.asarray(norm["mean"], dtype=np.float32)
        scale = np.asarray(norm["scale"], dtype=np.float32)
        if mean.shape[-1] != scal.shape[-1] or scale.shape[-1] != scal.shape[-1]:
            raise ValueError(f"model card {card.name!r}: normalisation vectors of length {mean.shape[-1]}, "
                             f"beats of {scal.shape[-1]} samples")
        # Same float32 arithmetic as the training loader ((x - mean) / scale per time column).
        scal = (scal - mean) / scale
    length = int(opts.get("sequence_length", 3))
    stride = int(opts.get("sequence_stride", opts.get("stride", 1)))
    if stride != 1:
        raise ValueError(f"model card {card.name!r}: inference scores every beat, sequence stride must be 1")
    n = scal.shape[0]
    pad = min(length - 1, n)
    # Sequence i ends on beat i; the first length-1 beats borrow copies of beat 0 as their context.
    idx = np.maximum(np.arange(n)[:, None] - (length - 1) + np.arange(length)[None, :], 0)
    inputs = {0: Sequences(scal, idx, shapes["main"], squeeze=length == 1, what=card.name)}
    rr_card = opts.get("rr_features")
    if rr_card:
        # The card names the function its training computed RR features with (one implementation, by name).
        if isinstance(rr_card, dict) and rr_card.get("function"):
            rr_fn = RR_FEATURE_FUNCTIONS.get(rr_card["function"])
            if rr_fn is None:
                raise ValueError(f"model card {card.name!r}: unknown RR-feature function {rr_card['function']!r}; "
                                 f"ecgcore infer knows {', '.join(RR_FEATURE_FUNCTIONS)}")
            width = len(rr_card.get("mean") or ()) or 4  # the card's normalisation names the feature count
            rr = (np.asarray(beat_side_features(rr_card["function"], t["r_peaks"], fs=r.fs,
                                                signal=r.signal[:, int(opts.get("lead", 0))]), np.float64)
                  if n >= 2 else np.zeros((n, width)))
        else:
            rr = rr_features(t["r_peaks"], fs=r.fs) if n else np.zeros((0, 4))
        if isinstance(rr_card, dict) and "mean" in rr_card:
            rr = (rr - np.asarray(rr_card["mean"])) / np.asarray(rr_card["scale"])
        rseq = rr[idx] if n else np.zeros((0, length, rr.shape[1] if rr.ndim == 2 else 4))
        inputs["rr"] = _fit_shape(rseq.astype(np.float32), shapes.get("rr"), card.name)
    ref = t["labels"].astype(np.int64) if t["peaks"] == "annotations" else None
    if ref is None and r.annotations is not None and n:
        # Detected beats of an annotated record: the class of the reference beat each one matches (EC57, 150 ms).
        from ..datasets.mitdb import label_detected_beats

        _, aami, _, _ = label_detected_beats(t["r_peaks"], r.annotations.sample, r.annotations.symbol,
                                             fs=r.fs, variant=opts.get("variant", "aami"))
        lookup = {c: i for i, c in enumerate(card.classes or [])}
        ref = np.array([lookup.get(str(a), -1) for a in aami], np.int64)
    return Prepared(inputs=inputs, sample=_to_record_rate(t["r_peaks"], ratio), reference=ref, kind="beat",
                    info={"peaks": t["peaks"], "padded_context": int(pad)})


def _segments(rec: Record, card: ModelCard, opts: dict, shapes: dict) -> Prepared:
    from ..pipelines.recipes.segments import transform

    r, ratio = at_rate(rec, float(card.fs), opts["_threads"])
    t = transform(r, opts)
    seg = t["segments"].astype(np.float32)
    if opts["seed_compat"]:
        sc = opts.get("scaler") or {}
        mean, scale = sc.get("mean", opts.get("scaler_mean")), sc.get("scale", opts.get("scaler_scale"))
        if mean is None or scale is None:
            raise ValueError(f"model card {card.name!r}: seed_compat segments need the training StandardScaler "
                             "in the card ('scaler_mean' and 'scaler_scale', 3600 values each)")
        # float32, as the training loader standardises the stored float32 windows.
        seg = (seg - np.asarray(mean, np.float32)) / np.asarray(scale, np.float32)
    inputs = {0: np.ascontiguousarray(_fit_shape(seg, shapes["main"], card.name))}
    qw = opts.get("qrs_width")
    if qw:
        # A model with a QRS-width prior (attention prior="qrs-width") takes each window's median QRS width (ms),
        # measured on the window it classifies, as its second input.
        from ..dsp.qrs import qrs_width

        inputs["qrs_width"] = qrs_width(seg.reshape(len(seg), -1), fs=float(card.fs), frac=float(qw["frac"]),
                                        half_window=float(qw["half_window"]), smooth=float(qw["smooth"]),
                                        workers=opts["_threads"] or None).astype(np.float32)
    start = t["start"]
    return Prepared(inputs=inputs, sample=_to_record_rate(start, ratio),
                    end=_to_record_rate(start + t["size"], ratio), reference=t["labels"], kind="segment")


def _heartid(rec: Record, opts: dict, shapes: dict, fs: float) -> Prepared:
    from ..pipelines.recipes.heartid import record_windows

    ratio = fs / rec.fs
    if opts.get("input") == "beat-groups":  # a beat-lda model: median-beat groups (models.heartid.beats)
        from ..pipelines.recipes.heartid import beat_groups

        lead = int(opts.get("lead", 0))
        if lead >= rec.n_leads:
            raise ValueError(f"lead {lead} requested but the record has {rec.n_leads} lead(s)")
        w, st, en = beat_groups(rec.signal[:, lead], rec.fs, opts, workers=opts.get("_threads", 0))
    else:
        w, st = record_windows(rec, opts)
        en = st + int(opts["window"])
    x = _fit_shape(w, shapes["main"], "heartid")
    end = np.minimum(_to_record_rate(en, ratio), rec.n_samples)  # a slow last beat-group may read zero padding
    return Prepared(inputs={0: np.ascontiguousarray(x, dtype=np.float32)}, sample=_to_record_rate(st, ratio),
                    end=end, kind="window")


def _hubert(rec: Record, card: ModelCard, opts: dict, shapes: dict) -> Prepared:
    # The model input the HuBERT training builds (framework-free, with the recipes).
    from ..pipelines.recipes.hubert_inputs import build_input

    x = build_input(rec.signal.T, rec.fs, leads=rec.leads, preprocessing=card.preprocessing, workers=opts["_threads"])
    x = np.asarray(x, dtype=np.float32)[None]  # one item per record
    x = _fit_shape(x, shapes["main"], card.name)
    return Prepared(inputs={0: np.ascontiguousarray(x)}, sample=np.zeros(1, np.int64),
                    end=np.full(1, rec.n_samples, np.int64), kind="record")
