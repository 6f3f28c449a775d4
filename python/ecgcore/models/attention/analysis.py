"""Does the attention look at the abnormal beats? (issue 21)

For a window holding both abnormal and normal beats (the seed's symbol sets, :data:`ecgcore.dsp.segment.ATTENTION_*`),
the head-averaged attention (900 × 900, rows = query steps, one step = 4 samples) is averaged over the query steps:
the attention each key step *receives*, a distribution over the window that sums to 1. Per window:

* ``near_abnormal``: the mass within ±100 ms of the annotated abnormal beats, divided by their number (mass per beat);
* ``near_normal``: the same for the normal beats;
* ``ratio = near_abnormal / near_normal`` (> 1: an abnormal beat draws more attention than a normal one);
* ``uniform``: the mass a flat distribution gives a ±100 ms zone (about 0.02 of a 10 s window), for scale.

Zones of neighbouring beats that overlap are counted once per class (the union of each class's zones). The summary
gives the mean and median of each over the windows, the share of windows with ``ratio > 1``, and a binomial sign
test of that share against 1/2.
"""
from __future__ import annotations

import math

import numpy as np

from ...dsp.segment import ATTENTION_ABNORMAL, ATTENTION_NORMAL

__all__ = ["received_attention", "window_attention_stats", "summarise", "beats_in_window"]


def received_attention(att: np.ndarray) -> np.ndarray:
    """(..., L, L) head-averaged weights (rows = queries) → (..., L) mean over queries (sums to 1)."""
    return np.asarray(att, np.float64).mean(axis=-2)


def beats_in_window(ann_sample, ann_symbol, start: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(abnormal, normal) beat positions relative to the window start, by the seed's symbol sets."""
    s = np.asarray(ann_sample, np.int64)
    sym = np.asarray(ann_symbol)
    inside = (s >= start) & (s < start + size)
    s, sym = s[inside] - start, sym[inside]
    ab = np.array([x in ATTENTION_ABNORMAL for x in sym], bool)
    no = np.array([x in ATTENTION_NORMAL for x in sym], bool)
    return s[ab], s[no]


def _zone_mass(recv: np.ndarray, beats: np.ndarray, half: int, step: int) -> float:
    mask = np.zeros(recv.shape[-1], bool)
    for b in beats:
        lo, hi = max(0, (b - half) // step), min(recv.shape[-1], (b + half) // step + 1)
        mask[lo:hi] = True
    return float(recv[mask].sum())


def window_attention_stats(att: np.ndarray, abnormal: np.ndarray, normal: np.ndarray, *, fs: float = 360.0,
                           step: int = 4, zone_s: float = 0.100) -> dict | None:
    """Stats of one window (see the module doc); None unless it holds both classes of beats."""
    if len(abnormal) == 0 or len(normal) == 0:
        return None
    recv = received_attention(att)
    half = int(round(zone_s * fs))
    ab = _zone_mass(recv, abnormal, half, step) / len(abnormal)
    no = _zone_mass(recv, normal, half, step) / len(normal)
    uniform = min(1.0, (2 * half / step + 1) / recv.shape[-1])
    return {"near_abnormal": ab, "near_normal": no, "ratio": ab / no if no > 0 else math.inf, "uniform": uniform,
            "n_abnormal": int(len(abnormal)), "n_normal": int(len(normal))}


def summarise(stats: list[dict]) -> dict:
    """Means, medians, share of windows with ratio > 1 and its two-sided sign-test p-value."""
    stats = [s for s in stats if s is not None]
    if not stats:
        return {"windows": 0}
    out = {"windows": len(stats)}
    for k in ("near_abnormal", "near_normal", "ratio", "uniform"):
        v = np.array([s[k] for s in stats], np.float64)
        v = v[np.isfinite(v)]
        out[f"{k}_mean"] = float(v.mean()) if v.size else float("nan")
        out[f"{k}_median"] = float(np.median(v)) if v.size else float("nan")
    wins = sum(s["ratio"] > 1 for s in stats)
    out["share_ratio_above_1"] = wins / len(stats)
    n = len(stats)
    k = min(wins, n - wins)
    p = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n * 2
    out["sign_test_p"] = float(min(1.0, p))
    return out


def analyse_run(run_dir, records_dir, *, data_dir=None, split: str = "test", batch_size: int = 16,
                n_plots: int = 4, max_windows: int | None = None, progress: bool = True) -> dict:
    """The analysis over every ``split`` window of a run that holds both classes of beats; writes
    ``attention_analysis.json`` and ``attention_analysis_<k>.png`` (the seed's shaded view above the overlay, beats
    marked: red abnormal, grey normal) into ``run_dir``, and returns the summary."""
    import json
    from pathlib import Path

    import torch
    from tqdm.auto import tqdm

    from ..._fs import write_text
    from ...io import read_annotations
    from . import plots
    from ._evaluate import load_run
    from .data import config_splits

    run_dir = Path(run_dir)
    model, saved = load_run(run_dir, "cpu")
    cfg = model.config
    data_dir = Path(data_dir or saved["data_dir"])
    data = config_splits(data_dir, cfg)[split]
    anns = {r: read_annotations(Path(records_dir) / r, "atr") for r in sorted(set(data.record.tolist()))}
    size = data.x.shape[-1]
    picks = []
    for i in range(len(data)):
        a = anns[data.record[i]]
        ab, no = beats_in_window(a.sample, a.symbol, int(data.start[i]), size)
        if len(ab) and len(no):
            picks.append((i, ab, no))
    if max_windows is not None:
        picks = picks[:max_windows]
    stats, per_window = [], []
    model.eval()
    step = size // cfg.seq_len
    with torch.no_grad():
        for b in tqdm(range(0, len(picks), batch_size), desc="attention analysis", disable=not progress):
            part = picks[b:b + batch_size]
            x = torch.from_numpy(np.ascontiguousarray(data.x[[i for i, _, _ in part]]))
            logits, att = model(x, need_weights=True)
            prob = torch.softmax(logits, 1)[:, 1].numpy()
            for k, (i, ab, no) in enumerate(part):
                s = window_attention_stats(att[k].numpy(), ab, no, step=step)
                stats.append(s)
                per_window.append({"record": str(data.record[i]), "start": int(data.start[i]),
                                   "label": int(data.y[i]), "p_abnormal": float(prob[k]), **s})
                if len(per_window) <= n_plots:
                    _plot(plots, data.x[i, 0], att[k].numpy(), ab, no,
                          run_dir / f"attention_analysis_{len(per_window) - 1}.png",
                          f"record {data.record[i]} @ {data.start[i] / 360:.0f} s · label "
                          f"{cfg.classes[int(data.y[i])]} · p(Abnormal) {prob[k]:.2f} · ratio {s['ratio']:.2f}")
    summary = {"split": split, "zone_s": 0.1, **summarise(stats),
               "windows_in_split": int(len(data)),
               "definition": "attention received per key step (mean over query steps); mass within ±100 ms of the "
                             "annotated abnormal vs normal beats, per beat; ratio = abnormal / normal"}
    write_text(run_dir / "attention_analysis.json", json.dumps({"summary": summary, "windows": per_window}, indent=1))
    return summary


def _plot(plots, signal, att, abnormal, normal, path, title):
    plt = plots._pyplot()
    fig, axes = plt.subplots(2, 1, figsize=(12, 5.5), sharex=True)
    recv = received_attention(att)
    plots.plot_attention(signal, recv, 360.0, axes[0], style="shade", title=title)
    plots.plot_attention(signal, recv, 360.0, axes[1], style="overlay")
    for ax in axes:
        for b in abnormal:
            ax.axvline(b / 360.0, color="red", lw=0.8, alpha=0.6)
        for b in normal:
            ax.axvline(b / 360.0, color="grey", lw=0.5, alpha=0.5, ls="--")
    plots._save(fig, path)
