"""The one place the API touches models: ONNX Runtime through ``ecgcore.infer`` (never a training framework).

Models are loaded once per process at start-up. A model that fails to load does not stop the server
(as in the seed): its routes answer 500/503 with the reason, and ``/health`` shows it.
"""
from __future__ import annotations

import logging
import threading

import numpy as np

log = logging.getLogger("ecgcore.serve")


class ModelUnavailable(RuntimeError):
    pass


class ServeModels:
    """Denoiser (``/api/v1/denoising``) and the two classifiers of ``/predict``.

    Parameters
    ----------
    denoise, segments, beats : bundled model names or model folders (``model.onnx`` + ``model.json``).
    threads, predict_threads : onnxruntime intra-op threads of the denoiser / of the two classifiers
        (0: all cores).
    max_memory : memory budget of one batch in bytes (batch sizes from each card's memory per item).
    """

    def __init__(self, denoise: str = "denoiser", segments: str = "segments-abnormal", beats: str = "beats-aami",
                 threads: int = 0, predict_threads: int = 0, max_memory: int | None = None):
        self.names = {"denoise": denoise, "segments": segments, "beats": beats}
        self.max_memory = max_memory
        self.threads = {"denoise": int(threads) or None, "segments": int(predict_threads) or None,
                        "beats": int(predict_threads) or None}
        self._scorers: dict[str, object] = {}
        self._errors: dict[str, str] = {}
        self._window: tuple[float, int] | None = None
        self._window_read = False
        self._lock = threading.Lock()

    def load(self) -> None:
        """Load every model; failures are remembered (and logged), not raised."""
        for role in self.names:
            self._get(role, raise_=False)

    def _get(self, role: str, raise_: bool = True):
        with self._lock:
            if role not in self._scorers and role not in self._errors:
                try:
                    from ecgcore.infer import Scorer

                    self._scorers[role] = Scorer(self.names[role], threads=self.threads[role],
                                                 max_memory=self.max_memory)
                except Exception as exc:  # any load failure is reported per model, the server keeps running
                    self._errors[role] = f"{self.names[role]}: {type(exc).__name__}: {exc}"
                    log.warning("model for %s not available: %s", role, self._errors[role])
            if role in self._scorers:
                return self._scorers[role]
        if raise_:
            raise ModelUnavailable(self._errors[role])
        return None

    def status(self) -> dict[str, dict]:
        out = {}
        for role, name in self.names.items():
            s = self._scorers.get(role)
            if s is not None:
                out[role] = {"model": name, "status": "ready", "version": str(getattr(s.card, "version", ""))}
            else:
                out[role] = {"model": name, "status": "unavailable", "reason": self._errors.get(role, "not loaded")}
        return out

    def cards(self) -> list[dict]:
        out = []
        for role in self.names:
            s = self._get(role, raise_=False)
            if s is None:
                continue
            c = s.card
            out.append({"route": {"denoise": "/api/v1/denoising"}.get(role, "/predict"), "role": role,
                        "name": c.name, "version": c.version, "task": c.task, "framework": c.framework,
                        "fs": c.fs, "classes": list(c.classes), "inputs": c.inputs, "outputs": c.outputs,
                        "preprocessing": {"kind": c.preprocessing.get("kind")}, "metrics": c.metrics,
                        "description": c.description})
        return out

    def denoise_window(self) -> tuple[float, int] | None:
        """(rate in Hz, samples) of one denoising request: the denoiser card's model rate and window, i.e. its
        ``denoise-pairs`` options ``fs`` and ``chunk_size`` (or ``length``), the recipe's defaults where the card
        is silent: 130 Hz and 1300 samples (10 s) for the bundled model. None when no card can be read."""
        if not self._window_read:
            from ..export.card import resolve_model
            from ..infer.preprocess import recipe_options

            self._window_read = True
            scorer = self._scorers.get("denoise")
            try:
                card = scorer.card if scorer is not None else resolve_model(self.names["denoise"])[1]
                opts = recipe_options(card)
                self._window = (float(opts["fs"]), int(opts.get("chunk_size", opts["length"])))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("denoiser %s: no readable card for the request window: %s", self.names["denoise"], exc)
        return self._window

    def denoise(self, signal: np.ndarray, *, restore_scale: bool = False) -> np.ndarray:
        """Denoise one window of ECG at the model's rate (:meth:`denoise_window`: 1300 samples at 130 Hz).

        The seed z-scores the request (population std, 1 when flat) and returns the network output in
        those z-score units; ``restore_scale`` maps it back to the request's mean and scale. The adapter
        does the z-scoring itself, so the result does not depend on how the model's own scaling is set.

        Parameters
        ----------
        signal : (n,) float array, finite; n the window's samples.

        Returns
        -------
        (n,) float32 array.
        """
        scorer = self._get("denoise")
        window = self.denoise_window()
        if window is None:
            raise ModelUnavailable(f"{self.names['denoise']}: the model card gives no request window (fs, length)")
        fs, n = window
        x = np.asarray(signal, dtype=np.float64)
        if x.shape != (n,):
            raise ValueError(f"the denoiser takes {n} samples at {fs:g} Hz, got shape {x.shape}")
        # mean and std of x / max|x|, scaled back: values near the float limit (±1e308) do not overflow
        peak = float(np.abs(x).max(initial=0.0)) or 1.0
        xs = x / peak
        mean_s, std_s = float(xs.mean()), float(xs.std())
        mean, std = mean_s * peak, (std_s * peak if std_s > 0 else 1.0)
        z = (xs - mean_s) / std_s if std_s > 0 else xs - mean_s
        # Scorer.denoise is what ecgcore.infer.denoise_signal runs; calling it on our own Scorer keeps one
        # onnxruntime session per process instead of a second cached one.
        # The Heartify API answers the network's own output (the seed's contract): the window z-scored as it came,
        # without the card's input pre-filter or filter guard.
        out = np.asarray(scorer.denoise(z, fs, guard=False, prefilter=False), dtype=np.float64)
        with np.errstate(over="ignore", invalid="ignore"):
            if restore_scale:
                out = out * std + mean
            out = out.astype(np.float32)
        if not np.isfinite(out).all():
            raise ValueError("the denoised signal does not fit in float32 in the request's scale; send samples "
                             "in mV or ADC units (or ask for output=zscore)")
        return out

    def predict(self, record) -> dict:
        """Normal/Abnormal per 10 s segment and AAMI class per beat for one ``ecgcore.Record``.

        Returns ``{"segments": {...} | None, "beats": {...} | None, "errors": {role: reason}}`` where each
        section holds ``model``, ``rows`` (one dict per segment/beat with probabilities) and ``summary``.
        Raises ModelUnavailable when neither classifier is available.
        """
        from ecgcore.infer.core import release_memory

        out, errors = {}, {}
        try:
            for role in ("segments", "beats"):
                scorer = self._get(role, raise_=False)
                if scorer is None:
                    out[role] = None
                    errors[role] = self._errors.get(role, "not loaded")
                    continue
                pred = scorer.predict_record(record)
                out[role] = {"model": scorer.card.name, "version": str(scorer.card.version),
                             "classes": list(scorer.card.classes), "rows": _jsonable(pred.rows),
                             "summary": _jsonable(pred.summary)}
                del pred
        finally:
            release_memory()  # the request's batches, freed, back to the system (also when scoring failed)
        if out["segments"] is None and out["beats"] is None:
            raise ModelUnavailable("; ".join(errors.values()))
        out["errors"] = errors
        return out


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj
