"""ecgcore.metrics against scikit-learn (random and tied inputs, weighted and not), tolerance 1e-12."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ecgcore import metrics as M

skm = pytest.importorskip("sklearn.metrics")

TOL = 1e-12
_PKG_PARENT = str(Path(M.__file__).resolve().parents[1])


def _scores(seed: int, n: int = 400, tied: bool = False, weighted: bool = False):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(int)
    s = 0.4 * y + rng.random(n)
    if tied:
        s = s.round(1)  # ~14 distinct values: many ties across both classes
    w = rng.choice([0.0, 0.5, 1.0, 3.25], n) if weighted else None
    return y, s, w


CASES = [pytest.param(seed, tied, weighted, id=f"seed{seed}-{'tied' if tied else 'distinct'}"
                                               f"{'-weighted' if weighted else ''}")
         for seed in (0, 1) for tied in (False, True) for weighted in (False, True)]


def _classes(seed: int, n: int = 2000, k: int = 5):
    rng = np.random.default_rng(seed)
    y = rng.choice(k, n, p=[0.7, 0.1, 0.1, 0.07, 0.03][:k])
    pred = np.where(rng.random(n) < 0.7, y, rng.integers(0, k, n))
    return y, pred, rng.choice([0.5, 1.0, 4.0], n)


# --------------------------------------------------------------------------------------------- confusion matrix

@pytest.mark.parametrize("weighted", [False, True])
def test_confusion_matrix_matches_sklearn(weighted):
    y, pred, w = _classes(0)
    w = w if weighted else None
    ref = skm.confusion_matrix(y, pred, sample_weight=w)
    got = M.confusion_matrix(y, pred, sample_weight=w)
    assert got.dtype == ref.dtype
    np.testing.assert_allclose(got, ref, rtol=0, atol=TOL)
    np.testing.assert_array_equal(M.confusion_matrix(y, pred, n_classes=5, sample_weight=w), got)
    # labels pick and order rows/columns; samples with other labels are left out
    labels = [3, 0, 1]
    np.testing.assert_allclose(M.confusion_matrix(y, pred, labels=labels, sample_weight=w),
                               skm.confusion_matrix(y, pred, labels=labels, sample_weight=w), rtol=0, atol=TOL)


def test_confusion_matrix_string_labels_and_errors():
    y, p = ["N", "S", "V", "N"], ["N", "N", "V", "S"]
    np.testing.assert_array_equal(M.confusion_matrix(y, p), skm.confusion_matrix(y, p))
    with pytest.raises(ValueError, match="not both"):
        M.confusion_matrix([0], [0], n_classes=2, labels=[0, 1])
    with pytest.raises(ValueError, match="3 labels"):
        M.confusion_matrix([0, 1, 1], [0, 1])


@pytest.mark.parametrize("weighted", [False, True])
def test_per_class_scores_match_sklearn(weighted):
    y, pred, w = _classes(1)
    w = w if weighted else None
    cm = M.confusion_matrix(y, pred, sample_weight=w)
    prec, rec, f1, _ = skm.precision_recall_fscore_support(y, pred, sample_weight=w, zero_division=np.nan)
    np.testing.assert_allclose(M.sensitivity(cm), rec, rtol=0, atol=TOL)
    np.testing.assert_allclose(M.positive_predictivity(cm), prec, rtol=0, atol=TOL)
    np.testing.assert_allclose(M.f1_score(cm), f1, rtol=0, atol=TOL)
    spec = [skm.recall_score(y != c, pred != c, sample_weight=w) for c in range(5)]  # Sp = recall of "not c"
    np.testing.assert_allclose(M.specificity(cm), spec, rtol=0, atol=TOL)
    assert M.accuracy(cm) == pytest.approx(skm.accuracy_score(y, pred, sample_weight=w), abs=TOL)
    assert M.cohen_kappa(cm) == pytest.approx(skm.cohen_kappa_score(y, pred, sample_weight=w), abs=TOL)


def test_undefined_ratios_follow_zero_division():
    cm = M.confusion_matrix([0, 0, 1], [0, 0, 0], n_classes=3)  # class 1 never predicted, class 2 absent
    assert np.isnan(M.positive_predictivity(cm)[1]) and np.isnan(M.sensitivity(cm)[2])
    assert M.positive_predictivity(cm, zero_division=0.0)[1] == 0.0
    np.testing.assert_allclose(M.f1_score(cm, zero_division=0.0),
                               skm.f1_score([0, 0, 1], [0, 0, 0], labels=[0, 1, 2], average=None, zero_division=0))
    assert np.isnan(M.accuracy(np.zeros((2, 2)))) and np.isnan(M.cohen_kappa(np.zeros((2, 2))))


def test_jk_index_is_mondejar_guerra_formula():
    y, pred, _ = _classes(2)
    cm = M.confusion_matrix(y, pred)
    rec = skm.recall_score(y, pred, average=None)
    prec = skm.precision_score(y, pred, average=None)
    j = rec[1] + rec[2] + prec[1] + prec[2]  # Se_S + Se_V + +P_S + +P_V
    assert M.j_index(cm) == pytest.approx(j, abs=TOL)
    # the authors' evaluation_AAMI.py: Ijk = 0.5 * kappa + 0.125 * Ij
    assert M.jk_index(cm) == pytest.approx(0.5 * skm.cohen_kappa_score(y, pred) + 0.125 * j, abs=TOL)


def test_family_report_keeps_its_values():
    from ecgcore.models.conformer.metrics import aami_metrics, confusion

    y, pred, w = _classes(3)
    m = aami_metrics(confusion(y, pred, w))
    cm = M.confusion_matrix(y, pred, sample_weight=w)
    assert m["jk_index"] == M.jk_index(cm) and m["kappa"] == M.cohen_kappa(cm)
    assert m["per_class"]["S"]["Se"] == M.sensitivity(cm)[1]


# --------------------------------------------------------------------------------------------- curves

@pytest.mark.parametrize("seed, tied, weighted", CASES)
@pytest.mark.parametrize("drop", [True, False])
def test_roc_curve_matches_sklearn(seed, tied, weighted, drop):
    y, s, w = _scores(seed, tied=tied, weighted=weighted)
    got = M.roc_curve(y, s, sample_weight=w, drop_intermediate=drop)
    ref = skm.roc_curve(y, s, sample_weight=w, drop_intermediate=drop)
    for a, b in zip(got, ref):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=0, atol=TOL)


@pytest.mark.parametrize("seed, tied, weighted", CASES)
def test_roc_auc_matches_sklearn(seed, tied, weighted):
    y, s, w = _scores(seed, tied=tied, weighted=weighted)
    assert M.roc_auc(y, s, sample_weight=w) == pytest.approx(skm.roc_auc_score(y, s, sample_weight=w), abs=TOL)
    assert M.roc_auc(y.astype(bool), s, sample_weight=w) == M.roc_auc(y, s, sample_weight=w)


def test_roc_auc_ties_count_half():
    # Mann-Whitney: one positive tied with one negative, one positive above both → (1 + 0.5) / 2
    assert M.roc_auc([1, 0, 1], [0.5, 0.5, 0.9]) == pytest.approx(0.75, abs=TOL)


@pytest.mark.parametrize("seed, tied, weighted", CASES)
@pytest.mark.parametrize("drop", [True, False])
def test_precision_recall_curve_matches_sklearn(seed, tied, weighted, drop):
    y, s, w = _scores(seed, tied=tied, weighted=weighted)
    got = M.precision_recall_curve(y, s, sample_weight=w, drop_intermediate=drop)
    ref = skm.precision_recall_curve(y, s, sample_weight=w, drop_intermediate=drop)
    for a, b in zip(got, ref):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=0, atol=TOL)


@pytest.mark.parametrize("seed, tied, weighted", CASES)
def test_average_precision_matches_sklearn(seed, tied, weighted):
    y, s, w = _scores(seed, tied=tied, weighted=weighted)
    ref = skm.average_precision_score(y, s, sample_weight=w)
    assert M.average_precision(y, s, sample_weight=w) == pytest.approx(ref, abs=TOL)
    assert M.pr_auc is M.average_precision


def test_undefined_curves_are_nan_and_bad_targets_are_refused():
    assert np.isnan(M.roc_auc([1, 1, 1], [0.1, 0.2, 0.3]))
    assert np.isnan(M.roc_auc([0, 0], [0.1, 0.2]))
    fpr, tpr, _ = M.roc_curve([0, 0], [0.1, 0.2])
    assert np.isnan(tpr).all() and fpr[-1] == 1.0
    assert np.isnan(M.average_precision([0, 0, 0], [0.1, 0.2, 0.3]))
    with pytest.raises(ValueError, match="binary"):
        M.roc_auc([0, 1, 2], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="NaN"):
        M.roc_auc([0, 1], [0.1, np.nan])


# --------------------------------------------------------------------------------------------- verification

def _genuine_impostor(seed: int, tied: bool):
    rng = np.random.default_rng(seed)
    g, i = rng.normal(1.5, 1.0, 300), rng.normal(0.0, 1.0, 900)
    return (g.round(1), i.round(1)) if tied else (g, i)


@pytest.mark.parametrize("seed, tied", [(0, False), (1, True), (2, True)])
def test_det_curve_matches_sklearn(seed, tied):
    g, i = _genuine_impostor(seed, tied)
    far, frr, t = M.det_curve(g, i)
    assert np.all(np.diff(t) > 0) and t[-1] == np.inf and far[-1] == 0.0 and frr[-1] == 1.0
    y = np.r_[np.ones(g.size), np.zeros(i.size)]
    ref_far, ref_frr, ref_t = skm.det_curve(y, np.r_[g, i])
    k = np.searchsorted(t, ref_t)  # sklearn keeps a subset of the thresholds
    np.testing.assert_array_equal(t[k], ref_t)
    np.testing.assert_allclose(far[k], ref_far, rtol=0, atol=TOL)
    np.testing.assert_allclose(frr[k], ref_frr, rtol=0, atol=TOL)


def _eer_reference(g, i):
    """Plain transcription: FAR/FRR by counting at each candidate threshold, the first threshold where FAR <= FRR,
    linear interpolation of the mean error rate between it and the one before."""
    ts = sorted(set(g) | set(i)) + [np.inf]
    far = [sum(x >= t for x in i) / len(i) for t in ts]
    frr = [sum(x < t for x in g) / len(g) for t in ts]
    k = next(n for n in range(len(ts)) if far[n] - frr[n] <= 0)
    if k == 0:
        return (far[0] + frr[0]) / 2
    d0, d1 = far[k - 1] - frr[k - 1], far[k] - frr[k]
    w = d0 / (d0 - d1) if d0 != d1 else 0.5
    return (1 - w) * (far[k - 1] + frr[k - 1]) / 2 + w * (far[k] + frr[k]) / 2


@pytest.mark.parametrize("seed, tied", [(0, False), (1, True)])
def test_eer_matches_reference(seed, tied):
    g, i = _genuine_impostor(seed, tied)
    rate, thr = M.eer(g, i)
    assert rate == pytest.approx(_eer_reference(g.tolist(), i.tolist()), abs=TOL)
    assert i.min() <= thr <= g.max()
    assert M.eer(g + 100, i)[0] == 0.0  # separable
    with pytest.raises(ValueError, match="genuine"):
        M.eer([], i)


# --------------------------------------------------------------------------------------------- bootstrap

def test_bootstrap_percentile_is_the_quantiles_of_the_resamples():
    y, s, _ = _scores(4, n=200)
    lo, hi = M.bootstrap_ci(M.roc_auc, y, s, n_resamples=200, confidence=0.9, seed=7)
    rng = np.random.default_rng(7)
    ref = [M.roc_auc(y[idx], s[idx]) for idx in (rng.integers(0, 200, 200) for _ in range(200))]
    assert lo == pytest.approx(np.quantile(ref, 0.05), abs=TOL)
    assert hi == pytest.approx(np.quantile(ref, 0.95), abs=TOL)
    assert lo < M.roc_auc(y, s) < hi
    # seeded: same seed same interval, another seed another interval
    assert M.bootstrap_ci(M.roc_auc, y, s, n_resamples=200, confidence=0.9, seed=7) == (lo, hi)
    assert M.bootstrap_ci(M.roc_auc, y, s, n_resamples=200, confidence=0.9, seed=8) != (lo, hi)


def test_bootstrap_basic_reflects_around_the_point():
    y, s, _ = _scores(5, n=200)
    point = M.roc_auc(y, s)
    plo, phi = M.bootstrap_ci(M.roc_auc, y, s, n_resamples=100, seed=1)
    blo, bhi = M.bootstrap_ci(M.roc_auc, y, s, n_resamples=100, seed=1, method="basic")
    assert blo == pytest.approx(2 * point - phi, abs=TOL) and bhi == pytest.approx(2 * point - plo, abs=TOL)


def test_bootstrap_stratified_keeps_class_counts_and_arrays():
    y, s, _ = _scores(6, n=150)
    # the statistic sees the resample: with strata = y the positive count never changes
    lo, hi = M.bootstrap_ci(lambda y, s: np.array([y.sum(), len(y)]), y, s, n_resamples=50, strata=y, seed=0)
    np.testing.assert_array_equal(lo, [y.sum(), len(y)])
    np.testing.assert_array_equal(hi, [y.sum(), len(y)])
    lo, _ = M.bootstrap_ci(lambda y, s: y.sum(), y, s, n_resamples=50, seed=0)
    assert lo < y.sum()  # unstratified: it does
    with pytest.raises(ValueError, match="same length"):
        M.bootstrap_ci(M.roc_auc, y, s[:-1])
    with pytest.raises(ValueError, match="method"):
        M.bootstrap_ci(M.roc_auc, y, s, method="bca")


# --------------------------------------------------------------------------------------------- framework-free

def test_family_metric_modules_run_without_scikit_learn(tmp_path):
    """scikit-learn is only a test extra: the metric modules (and the conformer report with its ROC/PR plots)
    must import and run with it blocked."""
    code = f"""
import sys
sys.modules["sklearn"] = None
import numpy as np
import ecgcore.metrics
from ecgcore.models.attention import metrics as att
from ecgcore.models.conformer import metrics as conf
from ecgcore.models.heartid import metrics as hid
from ecgcore.models.hubert import metrics as hub
rng = np.random.default_rng(0)
y = rng.integers(0, 5, 200)
proba = rng.dirichlet(np.ones(5), 200)
m = conf.write_report({str(tmp_path)!r}, y, proba, weights=np.where(y == 0, 2.0, 1.0))
assert set(m["auc"]) == set("NSVFQ"), m["auc"]
att.classification_metrics(y > 2, rng.random(200))
hub.multilabel_report(np.eye(3)[y % 3], rng.random((200, 3)), list("abc"), n_boot=5)
hid.eer(rng.normal(1, 1, 50), rng.normal(0, 1, 50))
assert "sklearn.metrics" not in sys.modules
print("ok")
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                       env={"PYTHONPATH": _PKG_PARENT, "PATH": "/usr/bin:/bin", "MPLBACKEND": "Agg"})
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr[-3000:]
    assert (tmp_path / "roc.png").is_file() and (tmp_path / "metrics.json").is_file()
