"""Biometric verification, identification and cancelability metrics (NumPy only).

Scores are similarities (higher = more alike). FAR(t) = P(impostor >= t), FRR(t) = P(genuine < t).
Unlinkability follows Gomez-Barrero et al., "General framework to evaluate unlinkability in biometric template
protection systems", IEEE TIFS 13(6), 2018 (ISO/IEC 30136): local D(s) from the mated / non-mated score
likelihood ratio, global D_sys = integral of p(s|mated) D(s) ds, 0 = fully unlinkable, 1 = fully linkable.
"""
from __future__ import annotations

import numpy as np

from ... import metrics as M
from ..._fs import atomic_write

eer = M.eer  # (equal error rate, threshold there); the family's modules import it from here


def _rates(genuine: np.ndarray, impostor: np.ndarray):
    """Thresholds (all distinct scores, ascending) with FAR and FRR at each (accept when score >= t)."""
    far, frr, t = M.det_curve(genuine, impostor)
    return t, far, frr


def far_at_frr(genuine, impostor, frr_target: float = 0.01) -> float:
    """Smallest FAR over thresholds whose FRR <= ``frr_target``."""
    t, far, frr = _rates(genuine, impostor)
    ok = frr <= frr_target + 1e-12
    return float(far[ok].min())


def frr_at_far(genuine, impostor, far_target: float = 0.001) -> float:
    """Smallest FRR over thresholds whose FAR <= ``far_target`` (at :func:`threshold_at_far`'s threshold: FRR only
    grows with the threshold)."""
    return threshold_at_far(genuine, impostor, far_target)[2]


def threshold_at_far(genuine, impostor, far_target: float) -> tuple[float, float, float]:
    """The operating point for a FAR target: ``(threshold, far, frr)`` at the lowest threshold whose FAR is at most
    ``far_target`` (accept when score >= threshold), so FRR is the smallest that target allows. The threshold is a
    sample score; ``inf`` (nothing accepted) when the target is below one impostor score's share."""
    t, far, frr = _rates(genuine, impostor)
    k = int(np.flatnonzero(far <= far_target + 1e-12)[0])  # FAR falls with t; t[-1] = inf has FAR 0
    return float(t[k]), float(far[k]), float(frr[k])


def accept_rate(scores, threshold: float) -> float:
    s = np.asarray(scores, np.float64)
    return float((s >= threshold).mean()) if s.size else float("nan")


def rank1(scores: np.ndarray, truth: np.ndarray) -> float:
    """(n_probes, n_gallery) similarity matrix + true gallery index per probe -> rank-1 identification rate."""
    scores = np.asarray(scores)
    return float((scores.argmax(axis=1) == np.asarray(truth)).mean())


def unlinkability(mated, non_mated, bins: int | None = None, omega: float = 1.0) -> dict:
    """Global ``D_sys`` (0 unlinkable .. 1 linkable) and the local D(s) curve from histogram densities.

    ``bins`` defaults to the reference implementation's (dasec/unlinkability-metric) ``min(n_mated / 10, 100)``
    (at least 10): sparse histograms would otherwise inflate the likelihood ratios.
    """
    m = np.asarray(mated, np.float64)
    n = np.asarray(non_mated, np.float64)
    if m.size == 0 or n.size == 0:
        raise ValueError("unlinkability needs mated and non-mated scores")
    if bins is None:
        bins = int(max(10, min(100, m.size // 10)))
    lo, hi = min(m.min(), n.min()), max(m.max(), n.max())
    if hi <= lo:
        hi = lo + 1e-9
    edges = np.linspace(lo, hi, bins + 1)
    pm = np.histogram(m, edges)[0] / m.size
    pn = np.histogram(n, edges)[0] / n.size
    with np.errstate(divide="ignore", invalid="ignore"):
        lr = np.where(pn > 0, pm / pn, np.inf)
    x = omega * lr
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.where(x > 1, 1.0 - 2.0 / (1.0 + x), 0.0)  # = 2 x / (1 + x) - 1, and 1 where x is infinite
    d = np.where(pm > 0, d, 0.0)
    return {"d_sys": float((pm * d).sum()), "centers": ((edges[:-1] + edges[1:]) / 2).tolist(), "d_local": d.tolist()}


def det_points(genuine, impostor) -> tuple[np.ndarray, np.ndarray]:
    """(FAR, FRR) arrays over all thresholds, for a DET plot (:func:`ecgcore.metrics.det_curve`)."""
    far, frr, _ = M.det_curve(genuine, impostor)
    return far, frr


def plot_det(curves: dict[str, tuple], path, title: str = "HeartID DET") -> None:
    """DET curves (normal-deviate axes) for ``{label: (genuine, impostor)}`` written to a PNG atomically."""
    from statistics import NormalDist

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nd = NormalDist()
    clip = lambda p: np.clip(p, 1e-4, 1 - 1e-4)  # noqa: E731
    ppf = np.vectorize(nd.inv_cdf)
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for label, (g, i) in curves.items():
        far, frr = det_points(g, i)
        e, _ = eer(g, i)
        ax.plot(ppf(clip(far)), ppf(clip(frr)), label=f"{label} (EER {100 * e:.1f} %)")
    ticks = np.array([0.001, 0.01, 0.05, 0.2, 0.5, 0.8])
    ax.set_xticks(ppf(ticks), [f"{100 * t:g}" for t in ticks])
    ax.set_yticks(ppf(ticks), [f"{100 * t:g}" for t in ticks])
    lim = ppf(np.array([5e-4, 0.9]))
    ax.set_xlim(*lim)
    ax.set_ylim(*lim)
    ax.plot(lim, lim, color="0.8", lw=0.8)
    ax.set_xlabel("FAR (%)")
    ax.set_ylabel("FRR (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_write(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
