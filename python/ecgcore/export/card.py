"""The ``model.json`` card that travels with every exported ``model.onnx``.

A card says what the network expects and how it was made, so that ``ecgcore infer`` can reproduce the
training-time preprocessing exactly (through the C++ core) without the training framework:

``preprocessing`` is a dict whose ``kind`` names one of the preprocessing recipes ``ecgcore.infer`` knows
(``"beats-scalograms"``, ``"segments"``, ``"denoise"``, ``"heartid"``, ``"hubert"``); the other keys are that
recipe's parameters (``fs``, ``band``, ``before``/``after``, ``scales``, ``normalization`` arrays as lists, ...),
exactly as the model's training code used them.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._fs import _jsonable, write_text

CARD_VERSION = 1


@dataclass
class ModelCard:
    """Everything a user or ``ecgcore infer`` needs to know about one exported model.

    Attributes
    ----------
    name : bundled/short name, e.g. ``"beats-aami"``, ``"segments-abnormal"``, ``"denoiser"``.
    task : ``"classification"``, ``"multilabel"``, ``"denoising"``, ``"embedding"``.
    framework : the training framework (``"pytorch"``, ``"keras"``, ``"mlx"``).
    inputs / outputs : ``[{"name", "shape" (None for dynamic axes), "dtype"}]`` of the ONNX graph.
    fs : sampling rate the network works at (Hz).
    preprocessing : ``{"kind": ..., **params}`` (see module docstring).
    classes : class names in output order (empty for non-classifiers).
    metrics : evaluation results (free-form, JSON-serialisable).
    training : data, protocol, epochs, command line, seed, duration, hardware.
    config : the model's config dataclass as a dict.
    resources : what one item costs at inference, e.g. ``peak_bytes_per_item`` (measured by
        ``python -m ecgcore.infer.memory``); batch sizes are derived from it.
    headline : the few test-set figures a user should see first (``{"DS2 accuracy": 0.78, ...}``).
    warnings : what the model must not be trusted for (undertrained, below a baseline, known flaws).
    graphs : further ONNX files beside ``model.onnx``, by role. Beat models may ship ``{"encoder": "encoder.onnx",
        "head": "head.onnx"}``: a per-beat encoder and the sequence head, so ``ecgcore infer`` computes each beat once
        per record (``model.onnx`` computes it once per sequence holding it); the two give the same outputs.
    """

    name: str
    task: str
    framework: str
    inputs: list[dict]
    outputs: list[dict]
    fs: float
    preprocessing: dict
    classes: list[str] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    resources: dict = field(default_factory=dict)
    headline: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    graphs: dict = field(default_factory=dict)
    description: str = ""
    version: str = "1"
    card_version: int = CARD_VERSION
    ecgcore_version: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelCard":
        known = {f.name for f in dataclasses.fields(cls)}
        missing = [k for k in ("name", "task", "framework", "inputs", "outputs", "fs", "preprocessing") if k not in d]
        if missing:
            raise ValueError(f"model card lacks required field(s): {', '.join(missing)}")
        if not isinstance(d["preprocessing"], dict) or "kind" not in d["preprocessing"]:
            raise ValueError("model card: 'preprocessing' must be an object with a 'kind'")
        return cls(**{k: v for k, v in d.items() if k in known})


def card_warnings(card: ModelCard) -> list[str]:
    """The card's own warnings, plus what its training record says (stopped by a wall-clock cap, not finished)."""
    out = list(card.warnings or [])
    t = card.training or {}
    if (t.get("finished") is False or t.get("stopped_by_wall_clock") is True or t.get("stop_reason") == "wall_cap"
            or t.get("stopped") in ("wall_clock", "time_limit")) and not any("undertrained" in w for w in out):
        out.append("undertrained: the training was stopped by a time limit before it converged")
    return out


_HEADLINE_LEAVES = ("accuracy", "roc_auc", "auroc", "macro_f1", "f1", "kappa", "jk_index", "eer", "rank1",
                    "snr_improvement_at_0db_mean_over_noise")


def headline_metrics(card: ModelCard, limit: int = 5) -> dict:
    """The card's ``headline`` figures, or else up to ``limit`` test-set scores found in its metrics (accuracy,
    ROC-AUC, F1, kappa, EER, ...; never sample counts, timings or export parity checks)."""
    if card.headline:
        return dict(card.headline)
    found = {}

    def walk(d, path):
        for k, v in d.items():
            if isinstance(v, dict):
                if k not in ("per_class", "per_label", "bootstrap"):
                    walk(v, path + [str(k)])
            elif isinstance(v, (int, float)) and not isinstance(v, bool) and str(k) in _HEADLINE_LEAVES \
                    and "parity" not in k and len(found) < limit:
                found[".".join(path + [str(k)])] = v

    walk(card.metrics or {}, [])
    return found


def write_card(card: ModelCard, path: str | os.PathLike) -> Path:
    """Write ``card`` as JSON to ``path`` (a file or a folder → ``folder/model.json``), atomically."""
    from .._version import __version__

    path = Path(path)
    if path.is_dir():
        path = path / "model.json"
    if not card.ecgcore_version:
        card.ecgcore_version = __version__
    return write_text(path, card_json(card.to_dict()), mode=0o644)  # a public document shipped beside the model


def card_json(d: dict) -> str:
    """Strict JSON (RFC 8259) text of a card: NaN and infinities become ``null`` (an undefined metric, e.g.
    +P of a class the model never predicts), NumPy values become plain numbers. Browsers, ``jq`` and
    every strict parser read the result; Python's ``json.dumps`` alone would write ``NaN``."""
    return json.dumps(_finite(d), indent=2, default=_jsonable, allow_nan=False) + "\n"


def strict_json_value(o):
    """``o`` with NaN/inf floats as None and NumPy values as plain Python: safe for any strict JSON encoder."""
    return _finite(o)


def _finite(o):
    import math

    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    try:
        import numpy as np

        if isinstance(o, np.ndarray):
            return _finite(o.tolist())
        if isinstance(o, np.generic):
            return _finite(o.item())
    except ImportError:  # pragma: no cover
        pass
    return o


def read_card(path: str | os.PathLike) -> ModelCard:
    """Read a card from ``model.json`` or from a folder holding one."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.json"
    if not path.is_file():
        raise FileNotFoundError(f"model card {path} not found")
    try:
        d = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"model card {path} is not valid JSON: {exc}") from None
    return ModelCard.from_dict(d)


def bundled_models_dir() -> Path:
    """Folder of the models shipped inside the package (``ecgcore/data/models/<name>/model.{onnx,json}``)."""
    return Path(__file__).resolve().parent.parent / "data" / "models"


def list_bundled() -> dict[str, Path]:
    """``{name: folder}`` of every bundled model that has both ``model.onnx`` and ``model.json``."""
    root = bundled_models_dir()
    if not root.is_dir():
        return {}
    return {d.name: d for d in sorted(root.iterdir())
            if d.is_dir() and (d / "model.onnx").is_file() and (d / "model.json").is_file()}


def resolve_model(model: str | os.PathLike) -> tuple[Path, ModelCard]:
    """A bundled name, a folder with ``model.onnx`` + ``model.json``, or a ``.onnx`` path → (onnx path, card)."""
    bundled = list_bundled()
    if isinstance(model, str) and model in bundled:
        folder = bundled[model]
        return folder / "model.onnx", read_card(folder)
    p = Path(model)
    if p.is_dir():
        onnx_path, card_path = p / "model.onnx", p / "model.json"
    elif p.suffix == ".onnx":
        onnx_path, card_path = p, p.with_name("model.json") if not p.with_suffix(".json").exists() else p.with_suffix(".json")
    else:
        names = ", ".join(bundled) or "none installed"
        raise ValueError(f"unknown model {str(model)!r}: not a bundled name ({names}) nor a model folder / .onnx file")
    if not onnx_path.is_file():
        raise FileNotFoundError(f"{onnx_path} not found")
    return onnx_path, read_card(card_path)
