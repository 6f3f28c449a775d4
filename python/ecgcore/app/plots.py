"""PNG figures of one analysed ECG (matplotlib's object API, no pyplot state: safe in server threads).

Every function returns PNG bytes; the same bytes go into the results page (base64) and the PDF.
"""
from __future__ import annotations

import io

import numpy as np
from matplotlib.figure import Figure

__all__ = ["CLASS_COLOURS", "plot_strip", "plot_rate", "plot_template", "plot_segments", "plot_attention",
           "plot_superclass", "plot_leads", "plot_quality", "png_bytes"]

CLASS_COLOURS = {"N": "#2ca02c", "S": "#ff7f0e", "V": "#d62728", "F": "#9467bd", "Q": "#7f7f7f",
                 "Normal": "#2ca02c", "Abnormal": "#d62728"}
_DPI = 100
_UNUSABLE = "#d9d9d9"


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) of each run of True in a 1-D bool array (end exclusive)."""
    edges = np.diff(np.r_[0, mask.astype(np.int8), 0])
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def png_bytes(fig: Figure) -> bytes:
    buf = io.BytesIO()
    # Constrained layout, not bbox_inches="tight": one draw pass instead of two (the server is CPU-bound).
    fig.savefig(buf, format="png", dpi=_DPI)
    return buf.getvalue()


def plot_strip(x: np.ndarray, fs: float, r_peaks: np.ndarray, *, beat_labels: dict[int, str] | None = None,
               start_s: float = 0.0, duration_s: float = 10.0, lead: str = "", unit: str = "mV",
               title: str = "", usable: np.ndarray | None = None) -> bytes:
    """A rhythm strip with the detected beats marked, and the beat class above each when known.

    Parameters
    ----------
    x : (n_samples,) one lead
    r_peaks : (n_beats,) sample indices
    beat_labels : {sample: class} from the beat classifier
    usable : (n_samples,) bool from the signal-quality check; unusable stretches are shaded grey
    """
    i0 = max(0, int(start_s * fs))
    i1 = min(x.size, i0 + int(duration_s * fs))
    t = np.arange(i0, i1) / fs
    fig = Figure(figsize=(11, 2.8), layout="constrained")
    ax = fig.add_subplot()
    if usable is not None and i1 > i0:
        for k, (a, b) in enumerate(_runs(~np.asarray(usable[i0:i1], dtype=bool))):
            ax.axvspan((i0 + a) / fs, (i0 + b) / fs, color=_UNUSABLE, zorder=0,
                       label="signal quality too low" if k == 0 else None)
    ax.plot(t, x[i0:i1], lw=0.8, color="#1f3b73")
    sel = r_peaks[(r_peaks >= i0) & (r_peaks < i1)]
    if sel.size:
        ax.plot(sel / fs, x[sel], "v", ms=5, color="#444", label="detected R-peak")
    if beat_labels:
        top = np.nanmax(x[i0:i1]) if i1 > i0 else 0.0
        for s, c in beat_labels.items():
            if i0 <= s < i1:
                ax.text(s / fs, top, c, ha="center", va="bottom", fontsize=8, fontweight="bold",
                        color=CLASS_COLOURS.get(c, "k"))
    ax.set_xlabel("time (s)")
    ax.set_ylabel(f"{lead} ({unit})" if lead else unit)
    ax.set_xlim(i0 / fs, max(i1, i0 + 1) / fs)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper right", fontsize=7)
    ax.set_title(title or f"Rhythm strip, {duration_s:g} s from {start_s:g} s", fontsize=10)
    return png_bytes(fig)


def plot_rate(r_peaks: np.ndarray, fs: float, *, starts: np.ndarray | None = None,
              usable: np.ndarray | None = None) -> bytes:
    """Beat-to-beat heart rate over time and the RR-interval histogram.

    With the signal-quality windows (``starts`` in samples, ``usable`` per window) an interval is drawn only
    between beats of usable windows that follow each other, and the curve breaks at unusable stretches.
    """
    fig = Figure(figsize=(11, 2.8), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [2.2, 1]})
    if r_peaks.size >= 2:
        rr = np.diff(r_peaks) / fs
        valid = np.ones(rr.size, dtype=bool)
        if starts is not None and usable is not None:
            win = np.searchsorted(starts, r_peaks, side="right") - 1
            valid = usable[win[:-1]] & usable[win[1:]] & (np.diff(win) <= 1)
        hr = np.where(valid, 60.0 / rr, np.nan)
        ax1.plot(r_peaks[1:] / fs, hr, ".-", ms=2, lw=0.6, color="#1f3b73")
        if valid.any():
            ax2.hist(rr[valid] * 1000.0, bins=min(40, max(5, int(valid.sum()) // 4)), color="#6b8fd6",
                     histtype="stepfilled")
    ax1.set_xlabel("time (s)")
    ax1.set_ylabel("heart rate (bpm)")
    ax1.set_title("Beat-to-beat heart rate", fontsize=10)
    ax1.grid(alpha=0.3)
    ax2.set_xlabel("RR interval (ms)")
    ax2.set_ylabel("beats")
    ax2.set_title("RR-interval distribution", fontsize=10)
    return png_bytes(fig)


def plot_template(template: np.ndarray | None, r_index: int | None, fiducials: dict, fs: float,
                  lead: str = "") -> bytes:
    """The median beat with the wave boundaries used for PR, QRS and QT.

    Only the boundaries in ``fiducials`` are drawn: :func:`ecgcore.app.measure.measure_record` keeps a
    boundary there only when its interval is reported, so no marker stands for a value shown as "-".
    """
    fig = Figure(figsize=(5.5, 3.2), layout="constrained")
    ax = fig.add_subplot()
    if template is not None:
        t = (np.arange(template.size) - r_index) / fs * 1000.0
        ax.plot(t, template, color="#1f3b73")
        marks = {"p_on": ("P on", "#ff7f0e"), "qrs_on": ("QRS on", "#d62728"), "qrs_off": ("QRS off", "#d62728"),
                 "t_end": ("T end", "#9467bd")}
        for key, (name, colour) in marks.items():
            if key in fiducials:
                ax.axvline(t[fiducials[key]], color=colour, lw=0.9, ls="--")
                ax.text(t[fiducials[key]], np.max(template), name, rotation=90, va="top", ha="right",
                        fontsize=7, color=colour)
        if "iso" in fiducials:
            ax.axhline(fiducials["iso"], color="#999", lw=0.6)
    else:
        ax.text(0.5, 0.5, "too few beats for a median beat", ha="center", transform=ax.transAxes)
    ax.set_xlabel("time from R (ms)")
    ax.set_ylabel(lead or "amplitude")
    ax.set_title("Median beat (0.5-40 Hz)", fontsize=10)
    ax.grid(alpha=0.3)
    return png_bytes(fig)


def plot_segments(rows: list[dict], duration_s: float, window_s: float = 10.0, positive: str = "Abnormal") -> bytes:
    """Probability of ``positive`` per segment along the record (threshold 0.5 dashed)."""
    fig = Figure(figsize=(11, 2.4), layout="constrained")
    ax = fig.add_subplot()
    key = f"prob_{positive}"
    for r in rows:
        p = float(r.get(key, 0.0))
        t0 = float(r.get("time_s", 0.0))
        ax.bar(t0 + window_s / 2, p, width=window_s * 0.48, color=CLASS_COLOURS.get(r.get("class"), "#888"),
               alpha=0.8)
    ax.axhline(0.5, color="k", ls="--", lw=0.8)
    ax.set_ylim(0, 1)
    ax.set_xlim(0, max(duration_s, window_s))
    ax.set_xlabel("time (s)")
    ax.set_ylabel(f"P({positive})")
    ax.set_title(f"{positive} probability per {window_s:g} s segment", fontsize=10)
    ax.grid(alpha=0.3)
    return png_bytes(fig)


def plot_attention(signal: np.ndarray, attention: np.ndarray, fs: float, title: str = "") -> bytes:
    """A segment with its attention weights: the weights upsampled to the signal and the top 5 % shaded.

    Uses ``ecgcore.models.attention.plots.plot_attention`` (the model's own figure) when that module is
    installed, else the same drawing here.
    """
    try:
        from ..models.attention.plots import plot_attention as model_plot
    except ImportError:
        model_plot = None
    fig = Figure(figsize=(11, 2.8), layout="constrained")
    ax = fig.add_subplot()
    if model_plot is not None:
        # The seed's view (top 5 % shaded): the attention each step receives is close to uniform (about
        # 1/900), so a curve on a zero-based axis shows nothing; the percentile shading shows where it peaks.
        model_plot(signal, attention, fs, ax, style="shade")
    else:
        n = signal.size
        att = np.interp(np.linspace(0, attention.size - 1, n), np.arange(attention.size), attention)
        t = np.arange(n) / fs
        ax.plot(t, signal, lw=0.8, color="#1f3b73")
        thr = np.quantile(att, 0.95)
        lo, hi = float(np.min(signal)), float(np.max(signal))
        ax.fill_between(t, lo, hi, where=att >= thr, color="#d62728", alpha=0.25, label="top 5 % attention")
        ax2 = ax.twinx()
        ax2.plot(t, att, color="#ff7f0e", lw=0.8, alpha=0.8)
        ax2.set_ylabel("attention")
        ax.legend(loc="upper right", fontsize=7)
        ax.set_xlabel("time (s)")
    ax.set_title(title or "Attention over the most abnormal segment", fontsize=10)
    return png_bytes(fig)


def plot_superclass(probs: dict[str, float], threshold: float = 0.5) -> bytes:
    """Horizontal bars of the 12-lead superclass probabilities."""
    names = list(probs)
    vals = [probs[n] for n in names]
    fig = Figure(figsize=(5.5, 0.45 * len(names) + 1.0))
    ax = fig.add_subplot()
    ax.barh(names, vals, color=["#d62728" if v > threshold else "#6b8fd6" for v in vals])
    ax.axvline(threshold, color="k", ls="--", lw=0.8)
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set_xlabel("probability")
    ax.set_title("12-lead diagnostic superclass", fontsize=10)
    return png_bytes(fig)


def plot_leads(signal: np.ndarray, fs: float, leads: list[str], duration_s: float = 10.0) -> bytes:
    """Every lead, stacked, over the first ``duration_s`` seconds."""
    n = min(signal.shape[0], int(duration_s * fs))
    k = signal.shape[1]
    fig = Figure(figsize=(11, 0.75 * k + 0.8), layout="constrained")
    axes = fig.subplots(k, 1, sharex=True, squeeze=False)[:, 0]
    t = np.arange(n) / fs
    for i, ax in enumerate(axes):
        ax.plot(t, signal[:n, i], lw=0.6, color="#1f3b73")
        ax.set_ylabel(leads[i], rotation=0, ha="right", fontsize=8)
        ax.set_yticks([])
    axes[-1].set_xlabel("time (s)")
    axes[0].set_title(f"All {k} leads, first {n / fs:.1f} s", fontsize=10)
    return png_bytes(fig)


def plot_quality(usable: np.ndarray, start_s: np.ndarray, end_s: np.ndarray, leads: list[str],
                 analysed: int | None = None) -> bytes:
    """One row per lead, one cell per signal-quality window: usable (green) or not (grey).

    Parameters
    ----------
    usable : (n_leads, n_windows) bool
    start_s, end_s : (n_windows,) window bounds in seconds
    analysed : index of the lead the measurements come from (its name is marked with "*")
    """
    usable = np.atleast_2d(usable)
    k = usable.shape[0]
    fig = Figure(figsize=(11, 0.32 * k + 1.0), layout="constrained")
    ax = fig.add_subplot()
    for i in range(k):
        for u, spans in ((True, "#2ca02c"), (False, "#bdbdbd")):
            bars = [(float(a), float(b - a)) for a, b, ok in zip(start_s, end_s, usable[i]) if bool(ok) == u]
            if bars:
                ax.broken_barh(bars, (k - 1 - i + 0.1, 0.8), facecolors=spans)
    names = [(leads[i] if i < len(leads) else str(i)) + (" *" if i == analysed else "") for i in range(k)]
    ax.set_yticks(np.arange(k) + 0.5, names[::-1], fontsize=7)
    ax.set_ylim(0, k)
    ax.set_xlim(0, float(end_s[-1]) if len(end_s) else 1.0)
    ax.set_xlabel("time (s)")
    share = 100.0 * usable.mean()
    ax.set_title(f"Signal quality per window: green usable, grey not ({share:.0f} % of lead-windows usable; "
                 f"* analysed lead)", fontsize=10)
    return png_bytes(fig)
