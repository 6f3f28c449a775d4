"""AAMI beat-classification metrics and the evaluation report (SPEC §4.6 ``Evaluator``; EC57 / de Chazal 2004).

All figures come from one (weighted) confusion matrix, so a stratified evaluation subset (all S, V, F, Q and a
known fraction of N, each N sequence weighted by 1 / fraction) gives unbiased estimates of the full-set
counts; ``weights=None`` is the plain, unweighted evaluation.

* per class: sensitivity Se = TP / (TP + FN), positive predictivity +P = TP / (TP + FP), F1;
* macro-F1 over N, S, V, F (Q is left out, as in the inter-patient literature: 7 Q beats in DS2);
* overall accuracy; Cohen's κ; Mondéjar-Guerra et al. 2019's jκ index = κ / 2 + (Se_S + +P_S + Se_V + +P_V) / 8.

The formulas live in :mod:`ecgcore.metrics`; this module arranges them into the family's report.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ... import metrics as M

__all__ = ["CLASS_NAMES", "confusion", "aami_metrics", "format_report", "write_report", "ANCHORS"]

CLASS_NAMES = ("N", "S", "V", "F", "Q")
LONG_NAMES = ("Normal", "SVEB", "VEB", "Fusion", "Unknown")

# Published DS2 results the inter-patient protocol is compared with (issue 8) and the seed's own result.
ANCHORS = {
    "de Chazal 2004 (DS2)": {"accuracy": 0.86},
    "Mondejar-Guerra 2019 (DS2)": {"accuracy": 0.945, "jk_index": 0.773},
    "Niu 2020 (DS2)": {"accuracy": 0.964, "F1_S": 0.766, "F1_V": 0.897},
    "seed Main_Model (its 7-record split)": {"accuracy": 0.60, "macro_f1_all5": 0.26},
}


def confusion(y_true, y_pred, weights=None, n_classes: int = 5) -> np.ndarray:
    """(n_classes, n_classes) float64 confusion matrix, rows = truth, columns = prediction."""
    return M.confusion_matrix(np.asarray(y_true, int), np.asarray(y_pred, int), n_classes=n_classes,
                              sample_weight=weights).astype(np.float64)


def aami_metrics(cm: np.ndarray) -> dict:
    """Metrics of a confusion matrix (see module docstring); NaN where a ratio is undefined."""
    cm = np.asarray(cm, float)
    se, ppv, f1 = M.sensitivity(cm), M.positive_predictivity(cm), M.f1_score(cm)
    out = {"n": float(cm.sum()), "accuracy": M.accuracy(cm), "per_class": {}}
    for i, c in enumerate(CLASS_NAMES[:cm.shape[0]]):
        out["per_class"][c] = {"support": float(cm[i].sum()), "Se": float(se[i]), "+P": float(ppv[i]),
                               "F1": float(f1[i])}
    f1s = [0.0 if np.isnan(v["F1"]) else v["F1"] for v in out["per_class"].values()]
    out["macro_f1_NSVF"] = float(np.mean([f for c, f in zip(out["per_class"], f1s) if c != "Q"]))
    out["macro_f1_all5"] = float(np.mean(f1s))
    out["kappa"] = M.cohen_kappa(cm)
    out["j_index"] = M.j_index(cm, s=1, v=2)
    out["jk_index"] = M.jk_index(cm, s=1, v=2)
    return out


def format_report(m: dict, cm: np.ndarray, *, title: str = "", auc: dict | None = None) -> str:
    """``classification_report.txt``: per-class table, summary figures, the confusion matrix, the anchors."""
    lines = [title, ""] if title else []
    lines.append(f"{'class':<10}{'support':>10}{'Se':>8}{'+P':>8}{'F1':>8}" + (f"{'AUC':>8}" if auc else ""))
    for c, name in zip(CLASS_NAMES, LONG_NAMES):
        if c not in m["per_class"]:
            continue
        v = m["per_class"][c]
        row = f"{c + ' ' + name:<10}"[:10] + f"{v['support']:>10.0f}{v['Se']:>8.3f}{v['+P']:>8.3f}{v['F1']:>8.3f}"
        if auc:
            row += f"{auc.get(c, float('nan')):>8.3f}"
        lines.append(row)
    lines += ["", f"overall accuracy      {m['accuracy']:.4f}", f"macro-F1 (N,S,V,F)    {m['macro_f1_NSVF']:.4f}",
              f"macro-F1 (all 5)      {m['macro_f1_all5']:.4f}", f"Cohen kappa           {m['kappa']:.4f}",
              f"j-index (Se+P S,V)    {m['j_index']:.4f}", f"jk index              {m['jk_index']:.4f}",
              "", "confusion matrix (rows = truth, columns = prediction)",
              "       " + "".join(f"{c:>10}" for c in CLASS_NAMES)]
    for i, c in enumerate(CLASS_NAMES):
        lines.append(f"{c:>7}" + "".join(f"{v:>10.0f}" for v in cm[i]))
    lines += ["", "published anchors"]
    for name, vals in ANCHORS.items():
        lines.append(f"  {name}: " + ", ".join(f"{k} {v}" for k, v in vals.items()))
    return "\n".join(lines) + "\n"


def _plot_confusion(cm, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = cm / np.maximum(cm.sum(1, keepdims=True), 1e-12)
    fig, ax = plt.subplots(figsize=(5, 4.2))
    im = ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, f"{cm[i, j]:.0f}\n{rows[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if rows[i, j] > 0.5 else "black")
    ax.set_xticks(range(5), CLASS_NAMES)
    ax.set_yticks(range(5), CLASS_NAMES)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.colorbar(im, ax=ax, label="row fraction (sensitivity)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_curves(y_true, proba, weights, path_roc, path_pr) -> tuple[dict, dict]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    aucs, aps = {}, {}
    fig_r, ax_r = plt.subplots(figsize=(5, 4.5))
    fig_p, ax_p = plt.subplots(figsize=(5, 4.5))
    for i, c in enumerate(CLASS_NAMES):
        pos = y_true == i
        if not pos.any() or pos.all():
            continue
        fpr, tpr, _ = M.roc_curve(pos, proba[:, i], sample_weight=weights)
        aucs[c] = M.roc_auc(pos, proba[:, i], sample_weight=weights)
        ax_r.plot(fpr, tpr, label=f"{c} AUC {aucs[c]:.3f}")
        prec, rec, _ = M.precision_recall_curve(pos, proba[:, i], sample_weight=weights)
        aps[c] = M.average_precision(pos, proba[:, i], sample_weight=weights)
        ax_p.plot(rec, prec, label=f"{c} AP {aps[c]:.3f}")
    ax_r.plot([0, 1], [0, 1], "k:", lw=0.8)
    for ax, xl, yl in ((ax_r, "false positive rate", "true positive rate"), (ax_p, "recall (Se)", "precision (+P)")):
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        ax.legend(loc="lower right" if ax is ax_r else "lower left", fontsize=8)
        ax.grid(alpha=0.3)
    for fig, path in ((fig_r, path_roc), (fig_p, path_pr)):
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
    return aucs, aps


def write_report(out_dir, y_true, proba, *, weights=None, title: str = "", extra: dict | None = None) -> dict:
    """Write ``metrics.json``, ``classification_report.txt``, ``confusion_matrix.png``, ``roc.png``, ``pr.png``
    and ``raw_predictions.npz`` into ``out_dir``; return the metrics dict.

    Parameters
    ----------
    y_true : (n,) int class indices; proba : (n, 5) probabilities; weights : (n,) or None.
    """
    from ..._fs import write_text
    from ...pipelines.recipes.base import save_npz

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    y_true = np.asarray(y_true, int)
    proba = np.asarray(proba, np.float32)
    y_pred = proba.argmax(1)
    cm = confusion(y_true, y_pred, weights)
    m = aami_metrics(cm)
    aucs, aps = _plot_curves(y_true, proba, weights, out / "roc.png", out / "pr.png")
    _plot_confusion(cm, out / "confusion_matrix.png")
    m.update({"auc": aucs, "average_precision": aps, "confusion_matrix": cm.tolist(),
              "n_sequences_scored": int(len(y_true)), "weighted": weights is not None, **(extra or {})})
    write_text(out / "classification_report.txt", format_report(m, cm, title=title, auc=aucs))
    write_text(out / "metrics.json", json.dumps(m, indent=1, default=float))
    save_npz(out / "raw_predictions.npz", y_true=y_true, proba=proba,
             weights=np.ones(len(y_true)) if weights is None else np.asarray(weights, float))
    return m
