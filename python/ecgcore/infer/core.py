"""One onnxruntime session per model, reused for every batch: scoring records and denoising signals.

Nothing here imports torch, tensorflow or mlx: the network is the exported ``model.onnx`` and the
preprocessing is the recipes' own transforms on the C++ core (see :mod:`ecgcore.infer.preprocess`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..export.card import resolve_model
from ..io import Record
from .memory import batch_for_budget
from .preprocess import Prepared, Sequences, prepare, recipe_options

__all__ = ["RecordPrediction", "Scorer", "denoise_signal", "make_session", "release_memory"]


def make_session(onnx_path: str | os.PathLike, providers=None, threads: int | None = None):
    """An ``onnxruntime.InferenceSession`` with all graph optimisations, intra-op threads = ``threads``
    (default: all cores) and the requested execution providers (default CPU; checked, with a clear error)."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if providers is None:
        providers = ["CPUExecutionProvider"]
    elif isinstance(providers, str):
        providers = [p.strip() for p in providers.split(",") if p.strip()]
    # Short names ("cuda", "cpu", "tensorrt") map case-insensitively onto onnxruntime's provider names.
    known = {n.lower().removesuffix("executionprovider"): n for n in ort.get_all_providers()}
    providers = [known.get(p.lower().removesuffix("executionprovider"), p) for p in providers]
    missing = [p for p in providers if p not in available]
    if missing:
        hint = " (install onnxruntime-gpu for CUDA)" if any("CUDA" in p for p in missing) else ""
        raise ValueError(f"onnxruntime execution provider(s) {', '.join(missing)} not available{hint}; "
                         f"this onnxruntime has {', '.join(available)}")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = int(threads) if threads else (os.cpu_count() or 1)
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # No arena: a run's buffers go back to the system when it ends, so a server or a long `infer` does not keep
    # the high-water mark of its largest batch for the rest of its life.
    opts.enable_cpu_mem_arena = False
    try:
        return ort.InferenceSession(str(onnx_path), sess_options=opts, providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ValueError(f"{onnx_path}: onnxruntime cannot load this model: {exc}") from exc


def release_memory() -> None:
    """Give the C heap's free pages back to the system (glibc's ``malloc_trim(0)``; a no-op elsewhere). Servers
    call it after each request: freed batch buffers otherwise stay mapped in the process (glibc keeps them for
    reuse), so a server would hold about the high-water mark of its largest request."""
    if _MALLOC_TRIM[0] is None:
        import ctypes
        import ctypes.util

        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            trim = getattr(libc, "malloc_trim", False)
            if trim:
                trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
            _MALLOC_TRIM[0] = trim
        except OSError:
            _MALLOC_TRIM[0] = False
    if _MALLOC_TRIM[0]:
        _MALLOC_TRIM[0](0)


_MALLOC_TRIM: list = [None]


@dataclass
class RecordPrediction:
    """Predictions for one record.

    Attributes
    ----------
    record : the record's name.
    rows : one dict per beat / segment / window: ``record, sample, time_s, class, prob_<class>...``
        (classifiers; plus ``end_sample``, ``reference`` where known) or ``embedding`` (embedders).
    summary : ``record, n, duration_s, counts {class: n}, burden_pct {class: %}`` (+ ``agreement`` with the
        reference annotations when the record has them).
    probabilities : (n, n_classes) float32 (classifiers) / raw outputs (others).
    signal : the denoised signal (denoisers), else None.
    """

    record: str
    rows: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    probabilities: np.ndarray | None = None
    signal: np.ndarray | None = None


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


QUALITY_KINDS = ("beats-scalograms", "segments")  # single-lead classifiers whose rows are checked first


def _usable_mask(record: Record, lead: int, threads) -> tuple[np.ndarray, np.ndarray, list]:
    """(sample-wise usable mask, window starts, reasons per window) of one lead of ``record``."""
    from ..dsp import signal_quality

    q = signal_quality(np.asarray(record.signal[:, lead], dtype=np.float64), fs=float(record.fs),
                       workers=threads or None)
    return q.sample_mask(), q.starts, list(q.reason)


class Scorer:
    """A bundled or exported model, ready to score records.

    Parameters
    ----------
    model : bundled name (``ecgcore models``), a folder with ``model.onnx`` + ``model.json``, or a ``.onnx`` path.
    providers : onnxruntime execution providers (``["CUDAExecutionProvider", "CPUExecutionProvider"]``,
        ``"cuda,cpu"``); default CPU.
    threads : onnxruntime intra-op threads and C++ preprocessing threads (default: all cores).
    batch_size : items per ``session.run`` (capped by a fixed batch dimension in the graph); default: as many
        as fit ``max_memory`` by the card's measured ``resources.peak_bytes_per_item``.
    max_memory : memory budget of one batch in bytes (default 512 MiB, :data:`ecgcore.infer.memory.DEFAULT_MAX_MEMORY`).
    quality : check the signal first (:func:`ecgcore.dsp.signal_quality` on the model's lead, 10 s windows):
        beats and segments that fall in unusable stretches (noise, flat line, clipping, no QRS) get an empty
        class and no probabilities, their ``quality`` column says why, and they are left out of the counts.
        Single-lead classifiers only (beats, segments); default on.
    peaks : beat models: ``"auto"`` (the card's; reference annotations when the record has them, else
        ecgcore's detector), ``"annotations"`` or ``"detect"`` (ecgcore's R-peaks even on annotated records, each
        beat's ``reference`` the class of the annotated beat it matches within 150 ms, EC57).
    key : HeartID-style embedders with a second ``key`` input: the (K,) key (default: a fixed public unit key).
    precision : ``"fp32"`` (default: the exported graphs) or ``"int8"``: the card's statically quantised graph
        (``graphs["encoder_int8"]`` for split beat models), whose accuracy change the card states; ``ValueError``
        when the model ships none.
    """

    def __init__(self, model, providers=None, threads: int | None = None, batch_size: int | None = None, key=None,
                 max_memory: int | None = None, quality: bool = True, peaks: str | None = None,
                 precision: str = "fp32"):
        self.onnx_path, self.card = resolve_model(model)
        self.session = make_session(self.onnx_path, providers, threads)
        self.threads = threads
        self._inputs = self.session.get_inputs()
        outs = [o.name for o in self.session.get_outputs()]
        self._output = outs[0]
        # A graph that also exports its softmax/sigmoid (e.g. logits, probabilities, attention) is read there.
        self._prob_output = next((o for o in outs if o.lower() in ("probabilities", "probs", "prob")), None)
        dim0 = self._inputs[0].shape[0] if self._inputs[0].shape else None
        if batch_size is None:
            batch_size = batch_for_budget(self.card, max_memory)
        self.batch_size = int(dim0) if isinstance(dim0, int) and dim0 > 0 else max(1, int(batch_size))
        self._attention_session = None
        self.kind = self.card.preprocessing["kind"]
        # Beat models with an encoder + head pair: each beat's encoder runs once per record (issue 24).
        self._split = None
        graphs = getattr(self.card, "graphs", None) or {}
        if precision not in ("fp32", "int8"):
            raise ValueError(f"precision must be 'fp32' or 'int8', got {precision!r}")
        self.precision = precision
        if precision == "int8" and not (self.kind == "beats-scalograms" and {"encoder_int8", "head"} <= set(graphs)):
            raise ValueError(f"model {self.card.name!r} ships no int8 graph; use --precision fp32")
        if self.kind == "beats-scalograms" and {"encoder", "head"} <= set(graphs):
            folder = Path(self.onnx_path).parent
            roles = {"encoder": graphs["encoder_int8" if precision == "int8" else "encoder"], "head": graphs["head"]}
            self._split = {role: make_session(folder / f, providers, threads) for role, f in roles.items()}
        if peaks is not None and self.kind != "beats-scalograms":
            raise ValueError(f"peaks: model {self.card.name!r} ({self.kind}) takes no beat positions")
        self.peaks = peaks
        self.quality = bool(quality) and self.kind in QUALITY_KINDS and self.card.task == "classification"
        self.options = recipe_options(self.card, 0 if threads is None else threads)
        self.key = None
        if len(self._inputs) > 1 and self.kind == "heartid":
            # Cancelable biometrics: embeddings depend on a key (second input). Default: a fixed public unit key
            # (all components equal); pass the user's own key for templates that can be revoked.
            k = self._inputs[1].shape[-1]
            k = int(k) if isinstance(k, int) else int(self.card.config.get("key_size", 100))
            self.key = np.full((1, k), 1.0 / np.sqrt(k), np.float32) if key is None else \
                np.asarray(key, np.float32).reshape(1, -1)
            if self.key.shape[1] != k:
                raise ValueError(f"model {self.card.name!r} takes a key of {k} values, got {self.key.shape[1]}")

    @property
    def name(self) -> str:
        return self.card.name

    @property
    def classes(self) -> list[str]:
        return list(self.card.classes)

    def __repr__(self) -> str:
        return (f"Scorer({self.card.name!r}, kind={self.kind!r}, providers={self.session.get_providers()}, "
                f"batch_size={self.batch_size})")

    # -- raw network -------------------------------------------------------------------------------------
    def run(self, batch, *extra, output: str | None = None) -> np.ndarray:
        """Raw network outputs (the graph's first output, or ``output``) on already-preprocessed input, in batches.

        ``batch``: (n, ...) the graph's first input; ``extra``: its further inputs, same n.
        """
        out_name = output or self._output
        arrays = [a if isinstance(a, Sequences) else np.asarray(a, dtype=np.float32) for a in (batch, *extra)]
        if len(arrays) != len(self._inputs):
            raise ValueError(f"model {self.card.name!r} takes {len(self._inputs)} input(s) "
                             f"({', '.join(i.name for i in self._inputs)}), got {len(arrays)}")
        n = arrays[0].shape[0]
        if any(a.shape[0] not in (n, 1) for a in arrays[1:]):
            raise ValueError("every input needs one row per item (or a single row, broadcast)")
        # A single-row extra input (HeartID's key) is broadcast by the graph: fed whole to every batch.
        whole = [i > 0 and a.shape[0] == 1 and n != 1 for i, a in enumerate(arrays)]
        outs = []
        bs = self.batch_size
        for i in range(0, n, bs):
            feed = {inp.name: (a if w else a[i:i + bs]) for inp, a, w in zip(self._inputs, arrays, whole)}
            if feed[self._inputs[0].name].shape[0] < bs and self._fixed_batch():
                # A graph with a fixed batch dimension: pad the last batch and drop the padding.
                k = feed[self._inputs[0].name].shape[0]
                feed = {inp.name: v if w else np.concatenate([v, np.zeros((bs - k, *v.shape[1:]), v.dtype)])
                        for (inp, w), v in zip(zip(self._inputs, whole), feed.values())}
                outs.append(self.session.run([out_name], feed)[0][:k])
            else:
                outs.append(self.session.run([out_name], feed)[0])
        if not outs:
            shape = self.session.get_outputs()[0].shape
            tail = [d if isinstance(d, int) else 0 for d in (shape[1:] if shape else [])]
            if self.card.classes and tail:
                tail[-1] = len(self.card.classes)
            return np.zeros((0, *tail), np.float32)
        return np.concatenate(outs)

    @property
    def attention_graph(self) -> Path | None:
        """The card's separate attention graph (e.g. segments-abnormal's ``attention.onnx``), if it has one."""
        name = next((o.get("graph") for o in self.card.outputs if o.get("graph")), None)
        path = Path(self.onnx_path).parent / name if name else None
        return path if path is not None and path.is_file() else None

    def attention(self, batch) -> np.ndarray:
        """Attention maps for already-preprocessed items (the graph's input), one item per run so that a
        (900, 900) map per item is all that is held; ``ValueError`` when the model has no attention graph."""
        path = self.attention_graph
        if path is None:
            raise ValueError(f"model {self.card.name!r} has no attention graph")
        if self._attention_session is None:
            self._attention_session = make_session(path, threads=self.threads)
        sess = self._attention_session
        x = np.asarray(batch, dtype=np.float32)
        name = sess.get_inputs()[0].name
        return np.concatenate([sess.run(None, {name: x[i:i + 1]})[0] for i in range(len(x))]) if len(x) else \
            np.zeros((0,), np.float32)

    def _fixed_batch(self) -> bool:
        d = self._inputs[0].shape[0] if self._inputs[0].shape else None
        return isinstance(d, int) and d > 0

    def probabilities(self, raw: np.ndarray) -> np.ndarray:
        """Class probabilities from raw outputs: the card's ``outputs[0]["activation"]`` (softmax / sigmoid /
        none); without one, rows that already sum to 1 are kept and logits get a softmax."""
        raw = np.asarray(raw, dtype=np.float32)
        raw = raw.reshape(raw.shape[0], -1) if raw.size else raw.reshape(0, max(len(self.card.classes), 1))
        act = (self.card.outputs[0].get("activation") if self.card.outputs else None) or ""
        if act == "none" or act == "softmax-applied" or act == "probabilities":
            return raw
        if act == "sigmoid" or (not act and self.card.task == "multilabel"):
            return (1.0 / (1.0 + np.exp(-raw))).astype(np.float32)
        if act == "softmax":
            return _softmax(raw).astype(np.float32)
        if raw.size and np.all(raw >= 0) and np.allclose(raw.sum(axis=1), 1.0, atol=1e-3):
            return raw
        return _softmax(raw).astype(np.float32)

    # -- records -------------------------------------------------------------------------------------------
    def prepare(self, record: Record) -> Prepared:
        """The card's preprocessing of one record (:func:`ecgcore.infer.preprocess.prepare`)."""
        return prepare(record, self.card, threads=self.options["_threads"],
                       graph_inputs=[(i.name, i.shape) for i in self._inputs], peaks=self.peaks)

    def predict_record(self, record: Record) -> RecordPrediction:
        """Score one record: one row per beat / segment / window, and a per-record summary."""
        if self.kind == "denoise-pairs":
            x = record.signal[:, int(self.options.get("lead", 0))]
            y = self.denoise(x, record.fs)
            return RecordPrediction(record=record.name, signal=y,
                                    summary={"record": record.name, "n": int(y.size), "fs": record.fs,
                                             "duration_s": record.duration})
        prep = self.prepare(record)
        if self._split is not None:
            return self._rows(record, prep, self._run_split(prep), probabilities=True)
        feeds = self._feeds(prep)
        if self._prob_output and self.card.classes:
            return self._rows(record, prep, self.run(*feeds, output=self._prob_output), probabilities=True)
        return self._rows(record, prep, self.run(*feeds))

    def _run_split(self, prep: Prepared) -> np.ndarray:
        """Probabilities of every sequence through the encoder (each beat once) and the head (each sequence)."""
        seq = prep.inputs[0]
        if not isinstance(seq, Sequences):
            raise ValueError(f"model {self.card.name!r}: split graphs need beat sequences")
        beats = np.ascontiguousarray(seq.items, dtype=np.float32)
        enc, head = self._split["encoder"], self._split["head"]
        enc_in = enc.get_inputs()
        if len(enc_in[0].shape) == beats.ndim + 1:
            beats = beats[..., None]  # the channel axis
        rr = prep.inputs.get("rr")
        n = beats.shape[0]
        # Beat i's RR features: the last beat of sequence i (whose context indices end on i).
        rr_beats = None if rr is None else np.ascontiguousarray(np.asarray(rr)[:, -1], dtype=np.float32)
        bs = max(1, self.batch_size)  # beats per encoder call: the budget the card measured for sequences
        emb = []
        for i in range(0, n, bs):
            feed = {enc_in[0].name: beats[i:i + bs]}
            if len(enc_in) > 1:
                if rr_beats is None:
                    raise ValueError(f"model {self.card.name!r}: its encoder takes RR features, none prepared")
                feed[enc_in[1].name] = rr_beats[i:i + bs]
            emb.append(enc.run(None, feed)[0])
        if not emb:
            return np.zeros((0, len(self.card.classes)), np.float32)
        emb = np.concatenate(emb)
        h_in = head.get_inputs()[0].name
        out = []
        for i in range(0, len(seq.idx), self.batch_size * 8):  # head rows are small (3 x 128 floats)
            out.append(head.run(None, {h_in: emb[seq.idx[i:i + self.batch_size * 8]]})[0])
        return np.concatenate(out)

    def _feeds(self, prep: Prepared) -> list:
        """The prepared arrays in the graph's input order: extras by name, the main input in the remaining slot."""
        extras = {k: v for k, v in prep.inputs.items() if k != 0}
        if self.key is not None:
            extras.setdefault(self._inputs[1].name, self.key)
        names = [i.name for i in self._inputs]
        feeds, main_used = [], False
        for pos, name in enumerate(names):
            if name in extras:
                feeds.append(extras.pop(name))
            elif not main_used:
                feeds.append(prep.inputs[0])
                main_used = True
            elif extras:
                feeds.append(extras.pop(next(iter(extras))))
            else:
                raise ValueError(f"model {self.card.name!r}: nothing prepared for graph input {name!r}")
        return feeds

    def _rows(self, record: Record, prep: Prepared, raw: np.ndarray, probabilities: bool = False) -> RecordPrediction:
        name = record.name
        fs = float(record.fs)
        summary = {"record": name, "n": len(prep), "duration_s": round(record.duration, 3), "kind": prep.kind}
        if self.card.task == "embedding" or not self.card.classes:
            emb = np.asarray(raw, dtype=np.float32).reshape(len(prep), -1)
            rows = [{"record": name, "sample": int(s), "time_s": round(float(s) / fs, 4),
                     **({"end_sample": int(e)} if prep.end is not None else {}),
                     "embedding": [round(float(v), 6) for v in emb[i]]}
                    for i, (s, e) in enumerate(zip(prep.sample, prep.end if prep.end is not None else prep.sample))]
            return RecordPrediction(record=name, rows=rows, summary=summary, probabilities=emb)
        classes = self.card.classes
        prob = raw.reshape(len(raw), -1).astype(np.float32) if probabilities and raw.size else self.probabilities(raw)
        if prob.shape[1] != len(classes):
            raise ValueError(f"model {self.card.name!r}: {prob.shape[1]} outputs, the card names "
                             f"{len(classes)} classes")
        multilabel = self.card.task == "multilabel"
        thr = float(self.card.preprocessing.get("threshold", 0.5))
        pred = prob.argmax(axis=1) if len(prob) else np.zeros(0, np.int64)
        decision = self.card.preprocessing.get("decision")
        if decision and not multilabel and len(classes) == 2 and len(prob):
            # A two-class card's operating point: its positive class when p >= threshold (e.g. the training
            # prior restored after class-weighted training), else the other class.
            if decision.get("positive") not in classes or not 0.0 <= float(decision.get("threshold", -1)) <= 1.0:
                raise ValueError(f"model {self.card.name!r}: preprocessing.decision needs a 'positive' class among "
                                 f"{classes} and a 'threshold' in [0, 1], got {decision!r}")
            pos = classes.index(decision["positive"])
            pred = np.where(prob[:, pos] >= float(decision["threshold"]), pos, 1 - pos)
        ends = prep.end if prep.end is not None else [None] * len(prep)
        ref = prep.reference
        # Signal quality first: an item in an unusable stretch is not classified (reason in its `quality`).
        bad = np.zeros(len(prep), bool)
        why = [""] * len(prep)
        if self.quality and len(prep) and record.n_samples:
            mask, starts, reasons = _usable_mask(record, int(self.options.get("lead", 0)), self.options["_threads"])
            samples = np.clip(np.asarray(prep.sample, np.int64), 0, mask.size - 1)
            if prep.end is not None:  # a segment: unusable when most of it lies in unusable windows
                cum = np.concatenate([[0], np.cumsum(~mask)])
                e = np.clip(np.asarray(prep.end, np.int64), 0, mask.size)
                bad = (cum[e] - cum[samples]) * 2 > np.maximum(e - samples, 1)
            else:
                bad = ~mask[samples]
            win = np.clip(np.searchsorted(starts, samples, side="right") - 1, 0, len(reasons) - 1)
            why = [reasons[w] or "unusable signal" if b else "" for w, b in zip(win, bad)]
        rows = []
        for i in range(len(prep)):
            s = int(prep.sample[i])
            row = {"record": name, "sample": s, "time_s": round(s / fs, 4)}
            if prep.end is not None:
                row["end_sample"] = int(ends[i])
            if bad[i]:
                row["class"] = ""
            elif multilabel:
                row["class"] = ";".join(c for c, p in zip(classes, prob[i]) if p >= thr)
            else:
                row["class"] = classes[pred[i]]
            for c, p in zip(classes, prob[i]):
                row[f"prob_{c}"] = None if bad[i] else round(float(p), 6)
            if ref is not None:
                row["reference"] = classes[ref[i]] if 0 <= ref[i] < len(classes) else ""
            if self.quality:
                row["quality"] = why[i] or "ok"
            rows.append(row)
        good = ~bad
        if multilabel:
            counts = {c: int(((prob[:, j] >= thr) & good).sum()) for j, c in enumerate(classes)}
        else:
            counts = {c: int(((pred == j) & good).sum()) for j, c in enumerate(classes)}
        if self.quality:
            summary["unusable"] = int(bad.sum())
        n = max(int(good.sum()), 1)
        summary["counts"] = counts
        summary["burden_pct"] = {c: round(100.0 * k / n, 3) for c, k in counts.items()} if len(prep) else \
            {c: 0.0 for c in classes}
        if ref is not None and len(prep) and not multilabel:
            known = (ref >= 0) & good
            summary["agreement"] = round(float((pred[known] == ref[known]).mean()), 4) if known.any() else None
        summary.update({k: v for k, v in prep.info.items()})
        return RecordPrediction(record=name, rows=rows, summary=summary, probabilities=prob)

    # -- denoiser ------------------------------------------------------------------------------------------
    def denoise(self, signal: np.ndarray, fs: float, seed_compat: bool = False, guard: bool = True,
                prefilter: bool = True) -> np.ndarray:
        """See :func:`denoise_signal`."""
        if self.kind != "denoise-pairs":
            raise ValueError(f"model {self.card.name!r} is not a denoiser (preprocessing {self.kind!r})")
        from ..dsp import resample_poly, resample_ratio
        from ..pipelines.recipes.denoise_pairs import to_model_rate

        x = np.asarray(signal, dtype=np.float64)
        if x.ndim != 1 or x.size == 0:
            raise ValueError(f"signal must be a non-empty 1-D array, got shape {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError("signal holds NaN/inf samples; fill gaps before denoising")
        fs = float(fs)
        fs_m = float(self.options["fs"])
        length = int(self.options.get("chunk_size", self.options["length"]))
        # A card may say its model's output stays in z-score units (restore_scale false), as the seed did.
        seed_compat = seed_compat or not self.options.get("restore_scale", True)
        threads = self.options["_threads"]
        resampled = abs(fs - fs_m) > 1e-9
        # Resample around the mean: the polyphase filter pads with zeros, so an offset would ring at both ends.
        offset = float(x.mean()) if resampled else 0.0
        y = to_model_rate(x - offset, fs, fs_m, workers=threads) if resampled else x
        norm = self.options.get("normalization", "signal")
        if norm not in ("signal", "window", "none"):
            raise ValueError(f"model card {self.card.name!r}: normalization must be signal/window/none, got {norm!r}")
        shape = self._inputs[0].shape
        three_d = bool(shape) and len(shape) == 3

        def net(chunks: np.ndarray) -> np.ndarray:  # (b, 1, length) float32 -> same shape
            c = chunks.reshape(chunks.shape[0], -1)
            c = c[:, None, :] if three_d and shape[1] == 1 else c[:, :, None] if three_d else c
            return self.run(c).reshape(chunks.shape)

        if norm == "signal":  # the denoiser's own pre/post-processing (its training's, framework-free)
            from ..pipelines.recipes.denoise_chunks import denoise_array

            res = denoise_array(y, net, seed_compat=seed_compat, batch_size=self.batch_size, size=length,
                                guard=(self.options.get("guard") or None) if guard else None, fs=fs_m,
                                prefilter=(self.options.get("prefilter") or None) if prefilter else None)
        else:
            res = self._denoise_chunks(y, net, norm, length, seed_compat)
        if resampled and not seed_compat:
            up, down = resample_ratio(fs_m, fs)
            res = resample_poly(res, up, down, workers=threads)
            res = res[: x.size] if res.size >= x.size else np.pad(res, (0, x.size - res.size), mode="edge")
            res = res + offset
        return res.astype(np.float64)

    @staticmethod
    def _denoise_chunks(y: np.ndarray, net, norm: str, length: int, seed_compat: bool) -> np.ndarray:
        """z-score (whole signal / each chunk / none), 1300-sample chunks with the last one zero-padded, the
        network, the padding cut, the scale restored unless ``seed_compat`` (SPEC §2.2)."""
        mu, sd = 0.0, 1.0
        if norm == "signal":
            mu, sd = float(y.mean()), float(y.std())
            sd = sd if sd > 0 else 1.0
        z = (y - mu) / sd
        n_chunks = -(-z.size // length)
        chunks = np.zeros((n_chunks, length), np.float64)
        chunks.reshape(-1)[: z.size] = z
        cmu, csd = np.zeros((n_chunks, 1)), np.ones((n_chunks, 1))
        if norm == "window":
            valid = np.arange(n_chunks * length).reshape(n_chunks, length) < z.size
            cnt = valid.sum(axis=1, keepdims=True)
            cmu = (chunks * valid).sum(axis=1, keepdims=True) / cnt
            csd = np.sqrt((((chunks - cmu) * valid) ** 2).sum(axis=1, keepdims=True) / cnt)
            csd = np.where(csd > 0, csd, 1.0)
            chunks = np.where(valid, (chunks - cmu) / csd, 0.0)
        out = net(chunks.astype(np.float32)[:, None, :]).reshape(n_chunks, length).astype(np.float64)
        if norm == "window":
            out = out * csd + cmu
        out = out.reshape(-1)[: z.size]
        return out if seed_compat else out * sd + mu


_DENOISERS: dict[tuple, Scorer] = {}


def denoise_signal(signal: np.ndarray, fs: float, model="denoiser", seed_compat: bool = False,
                   providers=None, threads: int | None = None, guard: bool = True,
                   prefilter: bool = True) -> np.ndarray:
    """Denoise one single-lead ECG with a denoiser model (bundled ``denoiser`` by default).

    Parameters
    ----------
    signal : (n,) samples in any unit at ``fs`` Hz.
    fs : its sampling rate; it is resampled to the model's rate (130 Hz) and back.
    model : bundled name, model folder or ``.onnx`` path of a ``denoise-pairs`` model.
    seed_compat : return what the Heartify seed returned: z-score units at the model's rate, not de-normalised
        (then the length is that of the 130 Hz signal when ``fs`` differs), the network's output without the guard.
    guard : apply the card's filter guard when it has one (``preprocessing.guard``: the network's output blended
        with the 0.5-40 Hz band-pass of the input where the input is nearly clean; a ``kappa`` guard,
        :func:`ecgcore.pipelines.recipes.denoise_chunks.filter_guard`, or a ``logistic`` one,
        :func:`~ecgcore.pipelines.recipes.denoise_chunks.learned_guard`, which also runs the network on the negated
        input and averages the two passes); False gives one pass of the network alone.
    prefilter : apply the card's input high-pass when it has one (``preprocessing.prefilter``: a zero-phase
        Butterworth high-pass at the model's rate before the z-score, see
        :func:`ecgcore.pipelines.recipes.denoise_chunks.highpass_prefilter`); the input's mean is kept either way.

    Returns
    -------
    (n,) float64 denoised signal, same length and scale (unit, offset) as the input.
    """
    key = (str(model), str(providers), threads)
    scorer = _DENOISERS.get(key)
    if scorer is None:
        scorer = _DENOISERS[key] = Scorer(model, providers=providers, threads=threads)
    if seed_compat:
        # seed_compat: no return to the input rate either, exactly the seed's output.
        from ..pipelines.recipes.denoise_pairs import to_model_rate

        fs_m = float(scorer.options["fs"])
        x = np.asarray(signal, dtype=np.float64)
        if abs(float(fs) - fs_m) > 1e-9:
            x = to_model_rate(x - x.mean(), float(fs), fs_m, workers=scorer.options["_threads"])
        return scorer.denoise(x, fs_m, seed_compat=True, guard=False, prefilter=False)
    return scorer.denoise(signal, fs, guard=guard, prefilter=prefilter)
