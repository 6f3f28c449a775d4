"""Attention and evaluation plots for the attention classifier: NumPy + matplotlib only, no torch.

:func:`plot_attention` is reusable by the diagnosis app: give it one 3600-sample window and a 900-
(model resolution) or 3600-long attention vector, e.g. a row of the ONNX model's ``attention`` output.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline"):
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path) -> Path:
    """Save atomically (temp file in the same folder + rename) and close the figure."""
    from ..._fs import atomic_write

    path = Path(path)
    try:
        with atomic_write(path) as tmp:
            fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    finally:
        _pyplot().close(fig)
    return path


def attention_profiles(weights) -> dict[str, np.ndarray]:
    """The two 900-long views of one (900, 900) head-averaged attention matrix (rows = queries).

    ``query0``: row 0, the attention *from* the first step (what the seed plots);
    ``mean``: the attention each key step receives, averaged over all queries (sums to 1).
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 2 or w.shape[0] != w.shape[1]:
        raise ValueError(f"attention weights must be a square (steps, steps) matrix, got shape {w.shape}")
    return {"query0": w[0], "mean": w.mean(axis=0)}


def upsample_attention(attention, n: int, method: str = "fourier") -> np.ndarray:
    """Bring a (steps,) attention vector to ``n`` samples.

    ``"fourier"`` is ``scipy.signal.resample`` (the seed's choice; via ecgcore's C++ FFT), which can ring
    below zero; ``"repeat"`` holds each step over its ``n / steps`` samples (exact for the 4× pooling).
    """
    a = np.asarray(attention, dtype=np.float64).ravel()
    if a.size == n:
        return a
    if method == "fourier":
        from ...dsp import resample

        return np.asarray(resample(a, n))
    if method == "repeat":
        if n % a.size:
            raise ValueError(f"cannot repeat {a.size} steps onto {n} samples (not a multiple)")
        return np.repeat(a, n // a.size)
    raise ValueError(f"method must be 'fourier' or 'repeat', got {method!r}")


def plot_attention(signal, attention, fs: float = 360.0, path_or_ax=None, *, style: str = "overlay",
                   percentile: float = 95.0, title: str | None = None, method: str | None = None):
    """Draw one ECG window with its attention.

    Parameters
    ----------
    signal : (n,) the window (e.g. 3600 samples at 360 Hz, standardised or in mV).
    attention : (steps,) attention vector, 900 (model resolution) or n long.
    fs : sampling rate of ``signal`` (Hz), for the time axis.
    path_or_ax : a PNG path (the figure is written there), a matplotlib ``Axes`` to draw into, or
        ``None`` (a new figure is returned).
    style : ``"shade"`` — the seed's view: shade the samples whose upsampled attention exceeds the
        ``percentile``-th percentile (top 5 % by default); ``"overlay"`` — the attention as a filled curve
        on a second y axis over the trace.
    method : upsampling (:func:`upsample_attention`); default ``"fourier"`` for ``shade`` (the seed's) and
        ``"repeat"`` for ``overlay`` (no negative ringing).

    Returns
    -------
    The PNG path, or the ``Axes`` drawn into.
    """
    x = np.asarray(signal, dtype=np.float64).ravel()
    if x.size == 0:
        raise ValueError("signal is empty")
    if style not in ("shade", "overlay"):
        raise ValueError(f"style must be 'shade' or 'overlay', got {style!r}")
    a = upsample_attention(attention, x.size, method or ("fourier" if style == "shade" else "repeat"))
    t = np.arange(x.size) / float(fs)
    plt = _pyplot()
    fig = None
    if path_or_ax is None or isinstance(path_or_ax, (str, os.PathLike)):
        fig, ax = plt.subplots(figsize=(12, 3))
    else:
        ax = path_or_ax
    ax.plot(t, x, color="black", lw=0.7, label="ECG")
    if style == "shade":
        thr = np.percentile(a, percentile)
        ax.fill_between(t, x.min(), x.max(), where=a > thr, color="red", alpha=0.3, step="mid",
                        label=f"attention > {percentile:g}th percentile")
        ax.legend(loc="upper right", fontsize=8)
    else:
        ax2 = ax.twinx()
        # Scaled to the vector's own range: a near-uniform attention (≈ 1/900 everywhere) still shows its shape.
        lo, hi = float(a.min()), float(a.max())
        pad = 0.05 * (hi - lo) if hi > lo else max(abs(hi), 1e-12)
        ax2.fill_between(t, lo - pad, a, color="tab:orange", alpha=0.35, step="mid")
        ax2.plot(t, a, color="tab:orange", lw=0.8)
        ax2.set_ylim(lo - pad, hi + pad)
        ax2.set_ylabel("attention")
    ax.set_xlim(t[0], t[-1])
    ax.set_xlabel("time (s)")
    ax.set_ylabel("amplitude")
    if title:
        ax.set_title(title, fontsize=9)
    if fig is not None and path_or_ax is not None:
        return _save(fig, path_or_ax)
    return ax if fig is None else fig


def plot_attention_panels(signal, weights, fs: float, path, *, title: str = "") -> Path:
    """Two panels for one window and its (900, 900) weights: the seed's query-0 top-5 % shading, and the
    mean attention (over queries) overlaid."""
    prof = attention_profiles(weights)
    plt = _pyplot()
    fig, axes = plt.subplots(2, 1, figsize=(12, 5.5), sharex=True)
    plot_attention(signal, prof["query0"], fs, axes[0], style="shade",
                   title=f"{title} — attention from query step 0 (seed view), top 5 % shaded")
    plot_attention(signal, prof["mean"], fs, axes[1], style="overlay", title="mean attention received per step")
    axes[0].set_xlabel("")
    return _save(fig, path)


def plot_confusion_matrix(cm, classes, path, *, title: str = "") -> Path:
    """Heat map of a confusion matrix (rows = true class), counts and row percentages."""
    cm = np.asarray(cm)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.imshow(cm, cmap="Blues")
    rows = cm.sum(axis=1, keepdims=True)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            pct = 100.0 * cm[i, j] / rows[i, 0] if rows[i, 0] else 0.0
            ax.text(j, i, f"{cm[i, j]}\n{pct:.1f} %", ha="center", va="center",
                    color="white" if cm[i, j] > cm.max() / 2 else "black")
    ax.set_xticks(range(len(classes)), classes)
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or "confusion matrix", fontsize=9)
    return _save(fig, path)


def plot_roc(fpr, tpr, auc: float, path, *, title: str = "") -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot(fpr, tpr, lw=1.5, label=f"AUC = {auc:.4f}")
    ax.plot([0, 1], [0, 1], "--", color="grey", lw=0.8)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate (Abnormal)")
    ax.set_title(title or "ROC", fontsize=9)
    ax.legend(loc="lower right")
    return _save(fig, path)
