"""Export of a trained run to ``model.onnx`` (dynamic batch axis) + ``model.json`` card, checked in onnxruntime.

The graph takes z-scored 1300-sample chunks ``noisy (batch, 1, 1300) float32`` and returns
``denoised (batch, 1, 1300)`` in the same z-score units; z-scoring, chunking and the scale restore live in
:mod:`.processing` (NumPy only), which ``ecgcore infer`` reuses, as the card's ``preprocessing`` says.
"""
from __future__ import annotations

import json
import logging
import time
import warnings
from pathlib import Path

import numpy as np

from ..._fs import atomic_write
from ...export import ModelCard, onnx_parity, write_card
from ...export.onnx_check import strip_trace_metadata
from .config import CHUNK_SIZE, FS
from .data import load_split, normalize_pairs, read_dataset_meta

__all__ = ["export", "real_parity_inputs"]

INPUT_NAME, OUTPUT_NAME = "noisy", "denoised"


def real_parity_inputs(dataset_dir, n: int = 16, seed: int = 0) -> np.ndarray:
    """``(n, 1, 1300)`` z-scored noisy test windows (all noise types / SNRs mixed) for parity checks."""
    splits, _ = read_dataset_meta(dataset_dir)
    pairs = load_split(dataset_dir, "test", records=splits["test"][:2])
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(pairs.n_pairs, size=min(n, pairs.n_pairs), replace=False))
    noisy, clean = pairs.pairs(idx)
    x, _, _, _ = normalize_pairs(noisy, clean)
    return x[:, None]


def _onnx_export(model, path: Path, example) -> None:
    import torch

    # The exporter logs/warns about optional torchvision ops and its own internal deprecations; none of
    # them concern this graph, so keep them out of the user's terminal (and out of -W error test runs).
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prog = torch.onnx.export(model, (example,), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                 dynamic_shapes=({0: torch.export.Dim("batch")},), opset_version=18,
                                 dynamo=True, verbose=False)
        with atomic_write(path) as tmp:
            prog.save(str(tmp), external_data=False)
    strip_trace_metadata(path)  # the exporter's stack traces hold this machine's paths


def _public_config(cfg: dict) -> dict:
    """The run's config for the card, without this machine's paths: an ``extra_clean`` folder becomes ``EXTRA``,
    an ``init_from`` path its folder's name (a bundled name stays as it is)."""
    cfg = dict(cfg)
    if cfg.get("extra_clean"):
        cfg["extra_clean"] = "EXTRA"
    if cfg.get("init_from"):
        from .weights import public_model_name

        cfg["init_from"] = public_model_name(cfg["init_from"])
    return cfg


def _unrecorded_steps(sessions: list[dict], steps: int) -> list[list[int]]:
    """The step ranges ``[start, end)`` no recorded session covers (a session killed before it recorded itself)."""
    gaps, at = [], 0
    for s in sorted(sessions, key=lambda s: int(s.get("start_step", 0))):
        start = int(s.get("start_step", 0))
        if start > at:
            gaps.append([at, start])
        at = max(at, int(s.get("end_step", start)))
    if steps > at and sessions:
        gaps.append([at, steps])
    return gaps


def _public_training(training: dict, cfg: dict, run_dir: Path) -> dict:
    """The training summary for the card with this machine's folders named as in the docs: the dataset
    ``DENOISE_PAIRS``, an ``extra_clean`` folder ``EXTRA``, the run folder ``RUN`` (in the summary and in every
    session's command line)."""
    subs = []
    for value, name in ((training.get("dataset"), "DENOISE_PAIRS"), (cfg.get("extra_clean"), "EXTRA"),
                        (str(run_dir), "RUN")):
        if value:
            subs += [(str(Path(value).resolve()), name), (str(value), name)]
    subs.sort(key=lambda kv: -len(kv[0]))  # the longest first: a path inside another is replaced whole

    def scrub(text):
        if not isinstance(text, str):
            return text
        for old, new in subs:
            text = text.replace(old, new)
        return text

    out = {k: scrub(v) for k, v in training.items() if k != "history"}
    out["sessions"] = [{k: scrub(v) for k, v in s.items()} for s in training.get("sessions", [])]
    out["init_from"] = _public_config({"init_from": training.get("init_from")}).get("init_from")
    gaps = _unrecorded_steps(training.get("sessions", []), int(training.get("steps") or 0))
    if gaps:
        recorded = sum(float(s.get("wall_s") or 0.0) for s in training.get("sessions", []))
        out["unrecorded_sessions"] = {
            "steps": gaps, "seconds": round(max(float(training.get("elapsed_s") or 0.0) - recorded, 0.0), 1),
            "why": "a session killed before it could record itself (a signal; SIGTERM now ends a session cleanly): "
                   "its steps and time are in the run's totals, its command line is not"}
    if training.get("init_from") and not training.get("init_training"):
        # a run begun before runs recorded it: the starting model's card as it is now (export before replacing it)
        from .weights import init_training

        try:
            out["init_training"] = init_training(training["init_from"]) | {"read": "at export"}
        except (FileNotFoundError, ValueError):  # that model is gone: say so rather than refuse the export
            out["init_training"] = {"model": out["init_from"], "read": "at export",
                                    "unavailable": "the starting model's card was not found"}
        out["total_elapsed_s"] = round(float(training.get("elapsed_s") or 0.0)
                                       + float(out["init_training"].get("total_elapsed_s") or 0.0), 1)
    return out


def export(run_dir, out_dir=None, *, data_dir=None, name: str = "denoiser", parity_pairs: int = 16,
           atol: float = 1e-4) -> dict:
    """Export ``RUN_DIR/best.pt`` to ``OUT_DIR/model.onnx`` + ``OUT_DIR/model.json`` and check parity.

    Parameters
    ----------
    run_dir : training run folder (``best.pt``, ``metrics.json``)
    out_dir : destination (default ``run_dir``)
    data_dir : denoise-pairs dataset for the real parity inputs and the card's preprocessing options
        (default: the dataset the run was trained on)
    parity_pairs : real test windows run through both PyTorch and onnxruntime
    atol : parity tolerance (absolute, plus the same relative)

    Returns
    -------
    ``{"onnx", "card", "parity_max_abs_diff", "parity_pairs", "size_bytes"}``
    """
    import torch

    from ._train import load_model
    from .model import count_parameters

    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir is not None else run_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    model, ckpt = load_model(run_dir, device="cpu")
    mpath = run_dir / "metrics.json"
    metrics = json.loads(mpath.read_text()) if mpath.is_file() else {}
    training = metrics.get("training", {})
    from ._evaluate import _run_data_dir

    dataset_dir = data_dir if data_dir is not None else _run_data_dir(run_dir)
    _, meta = read_dataset_meta(dataset_dir)
    x = real_parity_inputs(dataset_dir, n=parity_pairs)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    onnx_path = out_dir / "model.onnx"
    t0 = time.monotonic()
    _onnx_export(model, onnx_path, torch.from_numpy(x[:2]))
    worst = onnx_parity(onnx_path, {INPUT_NAME: x}, expected, atol=atol)
    ev = metrics.get("evaluation", {})
    card_metrics = {"parity_max_abs_diff": worst, "parity_pairs": int(x.shape[0])}
    if ev:
        card_metrics.update(summary=ev.get("summary"), pairs=ev.get("pairs"), records=ev.get("records"),
                            max_windows_per_record=ev.get("max_windows"),
                            rpeak_reference=ev.get("rpeak_reference"), methods=ev.get("methods"),
                            rows=[r for r in ev.get("rows", []) if r["noise"] == "all"],
                            deepfilter_protocol=ev.get("deepfilter_protocol"))
    card = ModelCard(
        name=name, task="denoising", framework="pytorch",
        inputs=[{"name": INPUT_NAME, "shape": [None, 1, CHUNK_SIZE], "dtype": "float32"}],
        outputs=[{"name": OUTPUT_NAME, "shape": [None, 1, CHUNK_SIZE], "dtype": "float32"}],
        fs=FS,
        preprocessing={"kind": "denoise-pairs", **meta["options"],
                       "zscore": "per input signal: (x - mean) / std, population std, std 0 -> 1",
                       "chunk_size": CHUNK_SIZE, "pad": "zero-pad the last chunk, crop after",
                       "restore_scale": True,
                       **({"prefilter": {"highpass_hz": float(ckpt["config"]["prefilter_hz"]), "order": 3}}
                          if (ckpt.get("config") or {}).get("prefilter_hz") else {})},
        metrics=card_metrics,
        training=(public := _public_training(training, ckpt.get("config") or {}, run_dir)) | {
            "checkpoint_step": int(ckpt.get("step", 0)),
            "command": public.get("command") or "ecgcore train denoiser DATASET_DIR RUN_DIR (see sessions)"},
        config=_public_config(ckpt.get("config", {})),
        description=f"Heartify Attention U-Net (SPEC §2.1, {count_parameters(model):,} parameters"
                    + (f": the seed's {count_parameters(model) - count_parameters(model.context):,} and a "
                       f"{count_parameters(model.context):,}-parameter global-context block" if model.context_kind else "")
                    + "): z-scored 10 s "
                    "chunks at 130 Hz in, denoised chunks (z-score units) out; restore the input scale with "
                    "y * std + mean (ecgcore.models.denoiser.processing)."
                    + (" Residual form (not the seed's): the graph returns its input plus the network's "
                       "correction." if model.residual else "")
                    + (" With a global-context block after the bottleneck (not the seed's: a Transformer block over "
                       "the window's 82 bottleneck steps, so every output sample can draw on the whole 10 s)."
                       if model.context_kind else ""),
    )
    write_card(card, out_dir / "model.json")
    return {"onnx": str(onnx_path), "card": str(out_dir / "model.json"), "parity_max_abs_diff": worst,
            "parity_pairs": int(x.shape[0]), "size_bytes": onnx_path.stat().st_size,
            "export_s": round(time.monotonic() - t0, 1)}
