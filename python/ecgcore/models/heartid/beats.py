"""HeartID ``beat-lda``: an identity embedding of the median heartbeat, fitted in MLX (issue 23's biometrics).

The seed's network pools three convolutions and a frame-averaged spectrum over a 5-s window: its features do not
align heartbeats, so the morphology that carries identity (P wave, QRS shape, T wave) is blurred by phase and
heart rate. On ECG-ID persons never used in training it reaches rank-1 ≈ 0.68. This embedding aligns beats first:

1. **Beats** (:func:`record_beat_groups`): the record's lead, band-passed 1-40 Hz (order 4, zero-phase) at its own
   rate, resampled to 250 Hz; ecgcore's R-peaks; each beat from 0.25 s before to 0.45 s after its R-peak (174
   samples; ``window_s`` / ``--beat-window`` sets another cut: the bundled model's starts 0.30 s before, 187
   samples; with ``hr_norm`` cut on to 0.75 s for the warp below), its median removed and scaled to unit peak
   amplitude (both taken over the configured -before..+after part).
2. **Groups**: the element-wise median of ``group`` consecutive beats every ``group_stride`` beats (10 and 5:
   a 20-s ECG-ID record gives 3-4 groups), re-normalised the same way. The median removes ectopic and noisy beats.
   A record with fewer than ``group`` beats (but at least ``min_beats``) forms one group. Heart-rate
   normalisation (``hr_norm``, models fitted since issue 23's HR work): past 50 ms after the R-peak each group is
   read on a time axis stretched by ``(RR / 0.8 s)^0.6``, RR its median RR interval, so the T wave sits in the same
   place at any heart rate (the QT interval follows the RR interval); the cut's samples (174 by default) are the group.
3. **Embedding**: ``(g - mean) @ P``, a linear map fitted in closed form (:func:`fit_lda`, MLX on the CPU stream):
   PCA to ``n_pca`` components, then Fisher's linear discriminant analysis over the training persons (within-person
   scatter whitened, the between-person directions kept). The template is the direction of the mean unit group
   embedding; the default protection scheme (GRP-IoM, :mod:`.protect`) hashes it.

Fitting is closed-form: there is no learning curve, only the choice of ``n_pca``, made by k-fold cross-validation
over the training persons (:func:`cross_validate`; rank-1 and EER of record-vs-record matching, folds of persons).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np

# The per-record transform lives with the heartid recipe (``ecgcore infer`` imports no model package); re-exported.
from ...pipelines.recipes.heartid import (BEAT_OPTIONS, INPUT, beat_groups, beat_length, beat_options,  # noqa: F401
                                           check_window)

__all__ = ["BEAT_OPTIONS", "INPUT", "WITHIN_RULES", "beat_groups", "record_beat_groups", "person_groups", "fit_lda",
           "embed", "cross_validate", "cross_validate_score_norm", "FitPersons", "fit_persons", "card_fit_persons",
           "read_beat_lda_card", "build_onnx",
           "train_beat_lda", "beat_options"]

def record_beat_groups(path, options: dict | None = None, fs: float | None = None, workers: int | None = None):
    """A WFDB record / ``.npy`` / ``.csv`` -> (n, L) median-beat groups (:func:`beat_groups`); ``ValueError`` when the
    record holds too few beats."""
    from .preprocess import read_lead

    x, rate, p = read_lead(path, options or BEAT_OPTIONS, fs)
    g = beat_groups(x, rate, options, workers=workers)[0]
    if len(g) == 0:
        o = options or BEAT_OPTIONS
        raise ValueError(f"{p}: fewer than {o['min_beats']} detectable heartbeats; cannot build a biometric template")
    return g


def person_groups(records: dict[str, list], options: dict | None = None, group_strides=(1,)) -> list[dict]:
    """For each stride of ``group_strides``: ``{person: [(n_i, L) groups of each record]}``, consecutive groups every
    that many beats (training draws every window of ``group`` beats, stride 1; the product's groups use the options'
    stride). Each record's beats are detected once for all strides; records with too few beats give empty arrays."""
    from ...pipelines.recipes.heartid import aligned_beats, group_beats
    from .preprocess import read_lead

    o = BEAT_OPTIONS if options is None else options
    out = [{} for _ in group_strides]
    for person, recs in records.items():
        for d in out:
            d[person] = []
        for r in recs:
            x, rate, _ = read_lead(r, o, None)
            beats, p = aligned_beats(x, rate, o)
            for d, s in zip(out, group_strides):
                d[person].append(group_beats(beats, p, o, s)[0])
    return out


def fit_lda(X: np.ndarray, y: np.ndarray, n_pca: int, within=None, shrink: float = 0.0
            ) -> tuple[np.ndarray, np.ndarray]:
    """(mean (L,), projection (L, d)) of PCA to ``n_pca`` components then Fisher LDA over the labels ``y``, fitted in
    MLX (float32, CPU stream). Every person weighs the same, whatever their number of groups (a 30-min MIT-BIH
    record gives ~2,000 groups, a 20-s ECG-ID record ~15): the mean, the PCA covariance and the within-person
    covariance are averages over persons of each person's own. The projection whitens the within-person
    covariance and keeps the between-person directions with non-zero eigenvalues, largest first
    (d = min(n_pca, persons - 1)).

    ``within``: the labels whose groups estimate the within-person covariance (default: every label). The
    product compares records made on different days, so :func:`train_beat_lda` passes the persons with two or
    more records: their scatter holds the session-to-session change that one record (a single MIT-BIH or PTB-XL
    ECG) does not show. The other persons still shape the mean, the PCA and the between-person directions.

    ``shrink`` (0 ≤ s < 1; 0: plain LDA, the models before it): the within-person covariance is shrunk towards a
    multiple of the identity before it is whitened, ``(1 - s)·Sw + s·(tr Sw / n_pca)·I`` (regularised discriminant
    analysis, Friedman 1989; Ledoit & Wolf 2004). Sw is estimated from a few dozen persons with two or more records;
    its smallest eigenvalues are the least certain and whitening divides by their square roots, so without shrinkage
    the embedding leans on the directions the estimate knows least."""
    import mlx.core as mx

    X = np.asarray(X, np.float32)
    classes, yi = np.unique(np.asarray(y), return_inverse=True)
    C = classes.size
    if C < 2:
        raise ValueError("LDA needs at least two persons")
    if n_pca < 1 or n_pca > min(X.shape):
        raise ValueError(f"n_pca must be in 1..{min(X.shape)}, got {n_pca}")
    shrink = float(shrink)
    if not 0.0 <= shrink < 1.0:
        raise ValueError(f"shrink must be in [0, 1), got {shrink}")
    if within is None:
        in_w = np.ones(C, bool)
    else:
        want = set(np.asarray(list(within)).tolist())
        unknown = want - set(classes.tolist())
        if unknown or not want:
            raise ValueError(f"`within` names labels that are not among the fitted persons: {sorted(unknown)[:5]}"
                             if unknown else "`within` is empty")
        in_w = np.array([c in want for c in classes.tolist()])
    cpu = mx.cpu
    counts = np.bincount(yi, minlength=C).astype(np.float32)
    w = mx.array(1.0 / (C * counts[yi]))[:, None]  # sums to 1, each person 1/C
    ww = mx.array(np.where(in_w[yi], 1.0 / (in_w.sum() * counts[yi]), 0.0).astype(np.float32))[:, None]
    Xm = mx.array(X)
    mu = (w * Xm).sum(axis=0)
    Xc = Xm - mu
    cov = (w * Xc).T @ Xc
    _, V = mx.linalg.eigh(cov, stream=cpu)
    Vp = V[:, ::-1][:, :n_pca]  # top components
    Z = Xc @ Vp
    # per-person means by a segment sum (a dense one-hot would be groups x persons: gigabytes for all of PTB-XL)
    sums = np.zeros((C, int(Z.shape[1])), np.float64)
    np.add.at(sums, yi, np.array(Z, np.float64))
    means = mx.array((sums / counts[:, None]).astype(np.float32))
    R = Z - means[mx.array(yi)]
    Sw = (ww * R).T @ R
    if shrink:
        Sw = (1.0 - shrink) * Sw + (shrink * mx.trace(Sw) / n_pca) * mx.eye(n_pca)
    ew, Ew = mx.linalg.eigh(Sw, stream=cpu)
    Wh = Ew / mx.sqrt(mx.maximum(ew, 1e-12 * mx.max(ew)))[None, :]  # Sw^-1/2 (up to rotation)
    Mb = (means - means.mean(axis=0)) @ Wh
    Sb = (Mb.T @ Mb) / C
    _, Eb = mx.linalg.eigh(Sb, stream=cpu)
    d = min(n_pca, C - 1)
    P = Vp @ Wh @ Eb[:, ::-1][:, :d]
    mx.eval(mu, P)
    return np.array(mu, np.float32), np.array(P, np.float32)


def embed(groups: np.ndarray, mean: np.ndarray, projection: np.ndarray) -> np.ndarray:
    return (np.asarray(groups, np.float32) - mean) @ projection


def _record_scores(model, data: dict[str, list[np.ndarray]], persons: list[str]) -> dict:
    """Record-vs-record matching of ``persons`` (enrol the first record, probe each later one; cosine of the mean
    unit group embeddings): rank-1 hits and genuine / impostor scores."""
    _, T, probes, owner = _enrol_and_probes(model, data, persons)
    gen, imp, hits = [], [], []
    for x, i in zip(probes, owner):
        s = T @ x
        hits.append(int(np.argmax(s)) == i)
        gen.append(s[i])
        imp += list(np.delete(s, i))
    return {"hits": np.asarray(hits), "genuine": np.asarray(gen), "impostor": np.asarray(imp)}


def _enrol_and_probes(model, data: dict[str, list[np.ndarray]], persons: list[str]):
    """The record-vs-record protocol's vectors under ``model`` (mean, projection): the persons with a first record
    and a later one, their templates (the unit direction of the first record's mean group embedding, (p, d)), and
    every later record's vector with the index of its owner."""
    ps = [p for p in persons if len(data[p]) > 1 and len(data[p][0])]
    T = np.stack([_record_vec(model, data[p][0]) for p in ps])
    probes, owner = [], []
    for i, p in enumerate(ps):
        for g in data[p][1:]:
            if len(g):
                probes.append(_record_vec(model, g))
                owner.append(i)
    return ps, T, probes, owner


def _record_vec(model, groups: np.ndarray) -> np.ndarray:
    """One record's vector under ``model`` (mean, projection): the unit direction of its mean group embedding."""
    from ._evaluate import _unit, template

    return _unit(template(embed(groups, *model), "cosine"))


def _xy(train_data: dict[str, list[np.ndarray]], persons: list[str]) -> tuple[np.ndarray, np.ndarray]:
    X, y = [], []
    for i, p in enumerate(persons):
        for g in train_data[p]:
            if len(g):
                X.append(g)
                y.append(np.full(len(g), i))
    return np.concatenate(X), np.concatenate(y)


def _within(persons: list[str], multi: set[str] | None):
    """The labels (indices into ``persons``, as :func:`_xy` numbers them) of the within-scatter persons."""
    return None if multi is None else [i for i, p in enumerate(persons) if p in multi]


def _person_folds(persons: list[str], folds: int, repeats: int, seed: int) -> list[list[str]]:
    """The held-out persons of each fold: ``repeats`` seeded permutations, each cut into ``folds`` folds."""
    splits = []
    for r in range(repeats):
        perm = np.random.default_rng([seed, r, len(persons)]).permutation(len(persons))
        splits += [[persons[i] for i in perm[k::folds]] for k in range(folds)]
    return splits


def cross_validate(train_data: dict, eval_data: dict, persons: list[str], n_pca_grid, folds: int = 3,
                   repeats: int = 5, seed: int = 0, fixed: list[str] = (), within: set[str] | None = None,
                   shrink: float = 0.0) -> list[dict]:
    """Repeated k-fold cross-validation over ``persons`` (folds of persons, ``repeats`` permutations): fit on the
    other folds' training groups (``train_data``: every window of ``group`` beats) plus ``fixed`` persons (always
    in training: e.g. single-record MIT-BIH persons, who cannot be probed), score the held-out fold
    record-vs-record (``eval_data``: the product's groups). ``within``: the persons whose scatter is the
    within-person covariance (:func:`fit_lda`; None = all), ``shrink`` its shrinkage (:func:`fit_lda`). One row per
    ``n_pca``: pooled rank-1, mean and per-fold EER."""
    from .metrics import eer

    splits = _person_folds(persons, folds, repeats, seed)
    rows = []
    for n_pca in n_pca_grid:
        hits, eers = [], []
        for held in splits:
            tr = [p for p in persons if p not in held] + list(fixed)
            model = fit_lda(*_xy(train_data, tr), int(n_pca), _within(tr, within), shrink)
            r = _record_scores(model, eval_data, held)
            hits.append(r["hits"])
            eers.append(float(eer(r["genuine"], r["impostor"])[0]))
        h = np.concatenate(hits)
        rows.append({"n_pca": int(n_pca), "rank1": float(h.mean()), "n_probes": int(h.size),
                     "eer_mean": float(np.mean(eers)), "eer_folds": [round(e, 4) for e in eers]})
    return rows


def cross_validate_score_norm(train_data: dict, eval_data: dict, persons: list[str], cohort: list[str], n_pca: int,
                              top_ks=(10, 20, 50, 100, None), folds: int = 3, repeats: int = 5, seed: int = 0,
                              fixed: list[str] = (), within: set[str] | None = None, shrink: float = 0.0) -> dict:
    """:func:`cross_validate`'s folds in the protected domain, as ``verify`` scores: each held-out person's first
    record hashed (GRP-IoM, :mod:`.protect`) under a key of their own is the template; every later record of every
    held-out person, hashed under the **template owner's** key (stolen-key impostors), is a probe. Scores: the raw
    share of equal indices and its adaptive T-norm for each ``top_ks`` (:func:`.protect.cohort_normalise`) against
    ``cohort`` — fitted persons (e.g. the negatives) whose first-record embeddings, hashed under the same key, are
    the cohort (as the product's cohort file holds them); ``shrink`` as :func:`fit_lda`. Returns ``{"raw" | "tnorm-top<K>": {"eer_folds": [...],
    "rank1": float, "genuine": array, "impostor": array}}`` (scores pooled over folds)."""
    from .metrics import eer
    from .protect import cohort_shares, iom_hash, iom_similarity, projections, top_stats

    rng = np.random.default_rng([seed, 24745, len(persons)])
    out: dict = {}
    for held in _person_folds(persons, folds, repeats, seed):
        tr = [p for p in persons if p not in held] + list(fixed)
        mean, P = fit_lda(*_xy(train_data, tr), int(n_pca), _within(tr, within), shrink)
        ps, T, probes, owner = _enrol_and_probes((mean, P), eval_data, held)
        X, owner = np.stack(probes), np.asarray(owner)
        C = np.stack([_record_vec((mean, P), eval_data[p][0]) for p in cohort
                      if p in tr and len(eval_data[p]) and len(eval_data[p][0])])
        S = {"raw": np.empty((len(ps), len(X)))} | {f"tnorm-top{t}": np.empty((len(ps), len(X))) for t in top_ks}
        for i in range(len(ps)):  # template i's owner key hashes its template, every probe and the cohort
            bits = rng.integers(0, 2, 100).astype(np.uint8)
            bits[rng.integers(100)] = 1
            W = projections(bits, T.shape[1])
            hp = iom_hash(X, W=W)
            raw = iom_similarity(iom_hash(T[i], W=W)[None, :], hp)
            shares = cohort_shares(hp, iom_hash(C, W=W))  # once for every top-K
            S["raw"][i] = raw
            for t in top_ks:
                mu, sd = top_stats(shares, t, hp.shape[1])
                S[f"tnorm-top{t}"][i] = (raw - mu) / sd
        mated = np.zeros((len(ps), len(X)), bool)
        mated[owner, np.arange(len(X))] = True
        for name, M in S.items():
            o = out.setdefault(name, {"eer_folds": [], "hits": [], "genuine": [], "impostor": []})
            o["eer_folds"].append(float(eer(M[mated], M[~mated])[0]))
            o["hits"].append(np.argmax(M, axis=0) == owner)
            o["genuine"].append(M[mated])
            o["impostor"].append(M[~mated])
    return {name: {"eer_folds": o["eer_folds"], "rank1": float(np.concatenate(o["hits"]).mean()),
                   "genuine": np.concatenate(o["genuine"]), "impostor": np.concatenate(o["impostor"])}
            for name, o in out.items()}


def build_onnx(mean: np.ndarray, projection: np.ndarray):
    """``onnx.ModelProto``: input ``ecg`` (N, L) median-beat groups -> ``embedding`` (N, d) = (ecg - mean) @ P."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    L, d = projection.shape
    inits = [numpy_helper.from_array(np.asarray(mean, np.float32), "beat_mean"),
             numpy_helper.from_array(np.asarray(projection, np.float32), "projection")]
    nodes = [helper.make_node("Sub", ["ecg", "beat_mean"], ["centred"], name="centre"),
             helper.make_node("MatMul", ["centred", "projection"], ["embedding"], name="project")]
    graph = helper.make_graph(nodes, "heartid_beat_lda",
                              [helper.make_tensor_value_info("ecg", TensorProto.FLOAT, ["N", L])],
                              [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", d])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="ecgcore")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


WITHIN_RULES = ("multi-record", "all")


class FitPersons(NamedTuple):
    """Who :func:`train_beat_lda` fits and cross-validates (:func:`fit_persons`)."""
    records: dict  # {person: [record paths]} of the data folders
    negatives: dict  # the same for the negatives folders (fit only)
    split: dict  # the person-disjoint train / val / test split
    train: list  # the training persons
    fit_records: dict  # training persons and negatives: every record the fit reads
    cv_persons: list  # training persons with two or more records: the CV folds are cut from them
    fixed: list  # the other training persons and the negatives: always in the fit

    def multi_record(self, windows: dict) -> set:
        """The fitted persons with two or more usable records in ``windows`` (``within='multi-record'``)."""
        return {p for p in self.fit_records if sum(len(g) > 0 for g in windows[p]) >= 2}


def fit_persons(raw_dirs, negatives=(), test_fraction: float = 0.3, val_fraction: float = 0.1,
                seed: int = 0) -> FitPersons:
    """The persons of raw record folders as :func:`train_beat_lda` splits and cross-validates them: ``{person:
    [record paths]}`` for ``raw_dirs`` and for ``negatives`` (clear ``ValueError`` for too few persons, an empty
    negatives folder, or negatives that repeat a data record), the person-disjoint :func:`~.data.split_subjects`
    split, and the CV sets (:class:`FitPersons`)."""
    from ...pipelines.recipes.heartid import _subjects
    from .data import split_subjects

    def persons_of(dirs):
        recs, db = {}, {}
        for d in dirs:
            d = Path(d)
            for subj, rs in _subjects(d).items():
                pid = f"{d.name}:{subj}"
                recs[pid] = [d / r for r in rs]
                db[pid] = d.name
        return recs, db

    records, db_of = persons_of(raw_dirs)
    if len(records) < 4:
        raise ValueError(f"{len(records)} persons found in {', '.join(map(str, raw_dirs))}; need at least 4")
    neg_records, _ = persons_of(negatives)
    for d in negatives:
        if not any(p.startswith(f"{Path(d).name}:") for p in neg_records):
            raise ValueError(f"--negatives {d}: no persons found (expected person folders, a flat WFDB folder or a "
                             f"PTB-XL folder with ptbxl_database.csv and its records)")

    def files(recs):
        return {Path(r).resolve() for rs in recs.values() for r in rs}

    clash = sorted(files(neg_records) & files(records))
    if clash:
        raise ValueError(f"negatives repeat records of the data folders ({', '.join(map(str, clash[:3]))} ...): "
                         "test persons would join the fit")

    class _S:  # split_subjects needs .id and .database
        def __init__(self, i):
            self.id, self.database = i, db_of[i]

    split = split_subjects([_S(i) for i in records], test_fraction, val_fraction, seed)
    train = [p for p in split["train"] if len(records[p]) >= 1]
    cv_persons = [p for p in train if len(records[p]) >= 2]
    return FitPersons(records, neg_records, split, train, {p: records[p] for p in train} | neg_records, cv_persons,
                      [p for p in train if p not in cv_persons] + list(neg_records))


def read_beat_lda_card(model_dir):
    """The card (``model.json``) of the beat-lda model in ``model_dir``; a clear ``ValueError`` for another kind."""
    from ...export.card import read_card

    card = read_card(Path(model_dir) / "model.json")
    if card.config.get("arch") != "beat-lda":
        raise ValueError(f"{model_dir}: not a beat-lda model")
    return card


def card_fit_persons(card, data_dir) -> FitPersons:
    """The persons a beat-lda ``card``'s fit split and cross-validated (:func:`fit_persons` with the card's folders,
    found by name under ``data_dir``, and its fractions and seed); ``ValueError`` when the reproduced test persons
    are not the card's (another split, other data)."""
    tr, cfg, data_dir = card.training, card.config, Path(data_dir)
    who = fit_persons([data_dir / Path(d).name for d in tr["data"]],
                      [data_dir / Path(d).name for d in tr.get("negatives", [])],
                      float(cfg["test_fraction"]), float(cfg["val_fraction"]), int(cfg["seed"]))
    if sorted(who.split["test"]) != sorted(tr["test_subjects"]):
        raise ValueError("the reproduced test persons differ from the card's: not this model's split")
    return who


def train_beat_lda(raw_dirs, run_dir, *, negatives=(), within: str = "multi-record",
                   n_pca_grid=(10, 15, 20, 30, 40, 60), folds: int = 3, repeats: int = 5, test_fraction: float = 0.3,
                   val_fraction: float = 0.1, seed: int = 0, hr_norm: bool = True, shrink: float = 0.0,
                   window_s: tuple[float, float] | None = None, log=print) -> dict:
    """Fit a ``beat-lda`` HeartID model on raw record folders (ECG-ID layout: one folder per person).

    Persons of ``raw_dirs`` are split as :func:`~.data.split_subjects` splits them (the seed-network run's rule, so
    the test persons are the same). ``negatives``: further folders (e.g. PTB-XL, one ECG per patient) whose persons
    all join the fit - the mean, the PCA and the between-person directions - and are never validated or tested.
    ``within``: ``"multi-record"`` (default) estimates the within-person covariance from the training persons with
    two or more records (session-to-session change, what enroll/verify meet); ``"all"`` from every person (the
    first bundled model). ``n_pca`` is chosen by :func:`cross_validate` over the training persons with several
    records (the others always in the fit), then the model is fitted on all of them. Writes ``beat_lda.npz``
    (mean, projection), ``run.json`` (split, the CV table, the choice, timing) into ``run_dir``. ``hr_norm=False``
    cuts groups without heart-rate normalisation (:data:`BEAT_OPTIONS`' ``hr_norm``; the models before it).
    ``shrink``: shrinkage of the within-person covariance (:func:`fit_lda`), the same in the CV and the final fit
    (chosen outside, under the product's protected score: ``tools/heartid_shrink_cv.py``). ``window_s``: the
    beat's cut (before, after) the R-peak in s (:func:`beat_options`; chosen outside: ``tools/heartid_beat_window_cv.py``)."""
    import time

    if within not in WITHIN_RULES:
        raise ValueError(f"within must be one of {WITHIN_RULES}, got {within!r}")
    shrink = float(shrink)
    if not 0.0 <= shrink < 1.0:
        raise ValueError(f"shrink must be in [0, 1), got {shrink}")
    if window_s is not None:
        window_s = check_window(window_s)
    t0 = time.time()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    who = fit_persons(raw_dirs, negatives, test_fraction, val_fraction, seed)
    records, neg_records, split, train = who.records, who.negatives, who.split, who.train
    log(f"beat-lda: {len(records)} persons ({len(train)} train, {len(split['val'])} validation, "
        f"{len(split['test'])} test) + {len(neg_records)} negatives (fit only); cutting beats")
    options = beat_options(None if hr_norm else 0.0, window_s)
    windows, product = person_groups(who.fit_records, options, group_strides=(1, int(options["group_stride"])))
    multi = who.multi_record(windows) if within == "multi-record" else None
    if multi is not None and not multi:
        raise ValueError("within='multi-record' needs training persons with two or more usable records")
    rows = cross_validate(windows, product, who.cv_persons, n_pca_grid, folds=folds, repeats=repeats, seed=seed,
                          fixed=who.fixed, within=multi, shrink=shrink)
    for r in rows:
        log(f"  n_pca {r['n_pca']:3d}: CV rank-1 {r['rank1']:.4f} over {r['n_probes']} probes, EER "
            f"{r['eer_mean']:.4f} (mean of {len(r['eer_folds'])} folds)")
    best = min(rows, key=lambda r: (round(r["eer_mean"], 4), -r["rank1"], r["n_pca"]))
    everyone = train + list(neg_records)
    mean, P = fit_lda(*_xy(windows, everyone), best["n_pca"], _within(everyone, multi), shrink)
    np.savez(run_dir / "beat_lda.npz", mean=mean, projection=P)
    n_groups = int(sum(len(g) for v in windows.values() for g in v))
    run = {"arch": "beat-lda", "data": [str(d) for d in raw_dirs], "negatives": [str(d) for d in negatives],
           "within": within, "within_persons": None if multi is None else len(multi), "shrink": shrink,
           "test_fraction": float(test_fraction), "val_fraction": float(val_fraction),
           "split": split, "options": options,
           "n_pca_grid": list(map(int, n_pca_grid)), "folds": folds, "repeats": repeats, "seed": seed,
           "cross_validation": rows, "n_pca": best["n_pca"], "embedding_size": int(P.shape[1]),
           "train_groups": n_groups, "train_persons": len(train), "negative_persons": len(neg_records),
           "fit_seconds": round(time.time() - t0, 1)}
    (run_dir / "run.json").write_text(json.dumps(run, indent=1))
    log(f"chose n_pca {best['n_pca']} (lowest CV EER); embedding {P.shape[1]} dims from {n_groups} groups of "
        f"{len(train)} persons + {len(neg_records)} negatives in {run['fit_seconds']} s -> {run_dir / 'beat_lda.npz'}")
    return run


BUNDLED_NAME = "heartid-beats"


def export_beat_lda(run_dir, out_dir, *, name: str = BUNDLED_NAME, command: str | None = None) -> dict:
    """``out_dir/model.onnx`` + ``model.json`` of a ``beat-lda`` run, checked in onnxruntime against the NumPy
    embedding on real groups of the run's test persons (|diff| <= 1e-5). The grp-iom threshold and the
    product-protocol figures are added by ``tools/heartid_scheme_card.py`` (validation persons, then test).
    Returns ``{"onnx", "card", "parity"}``."""
    import onnx

    from ..._fs import atomic_write
    from ...export import ModelCard, write_card
    from ...export.onnx_check import onnx_parity
    from ...pipelines.recipes.heartid import _subjects

    run_dir, out_dir = Path(run_dir), Path(out_dir)
    run = json.loads((run_dir / "run.json").read_text())
    if run.get("arch") != "beat-lda":
        raise ValueError(f"{run_dir} is not a beat-lda run (run.json arch {run.get('arch')!r})")
    with np.load(run_dir / "beat_lda.npz") as z:
        mean, P = z["mean"], z["projection"]
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / "model.onnx"
    with atomic_write(onnx_path) as tmp:
        onnx.save(build_onnx(mean, P), str(tmp))
    # parity on real groups of the first test persons' records
    groups = []
    for d in run["data"]:
        d = Path(d)
        for subj, recs in _subjects(d).items():
            if f"{d.name}:{subj}" in run["split"]["test"] and len(groups) < 8:
                groups.append(record_beat_groups(d / recs[0], run["options"]))
    g = np.concatenate(groups)
    ref = embed(g, mean, P)
    tol = 1e-5 * max(1.0, float(np.abs(ref).max()))  # float32 rounding grows with the embedding's scale
    try:
        diff = onnx_parity(onnx_path, {"ecg": g}, ref, atol=tol, rtol=0.0)
    except AssertionError as exc:
        raise ValueError(f"onnxruntime differs from the NumPy embedding: {exc}") from None
    parity = {"max_abs_diff": diff, "n_groups": int(len(g)), "tolerance": tol,
              "tolerance_rule": "1e-5 x max(1, largest |embedding value|)"}
    L, d = P.shape
    split = run["split"]
    window = (float(run["options"]["before_s"]), float(run["options"]["after_s"]))
    fractions = (float(run.get("test_fraction", 0.3)), float(run.get("val_fraction", 0.1)))  # runs before: defaults
    cfg = {"arch": "beat-lda", "input_size": int(L), "embedding_size": int(d), "n_pca": run["n_pca"],
           "shrink": float(run.get("shrink", 0.0)),
           "key_size": 100, "seed": run["seed"], "test_fraction": fractions[0], "val_fraction": fractions[1],
           "verification": {"score": "cosine", "template": "direction of the mean unit group embedding",
                            "default_scheme": "grp-iom-v1", "schemes": {}}}
    training = {"data": run["data"], "arch": "beat-lda", "hardware": "2-core CPU (no GPU), MLX CPU stream",
                "protocol": "person-disjoint split per database (train/val/test = 60/10/30 %, data.split_subjects, "
                            "the seed-network run's rule: same test persons); n_pca by 3-fold cross-validation over "
                            "the training persons; closed-form fit (PCA + Fisher LDA in MLX) on all training persons"
                            + (" plus every person of the negatives folders (fit only, never validated or tested)"
                               if run.get("negatives") else "")
                            + ("; within-person covariance from the fitted persons with two or more records"
                               if run.get("within", "all") == "multi-record" else "")
                            + (f", shrunk towards the identity by {run['shrink']:g} (regularised LDA)"
                               if run.get("shrink") else ""),
                "negatives": run.get("negatives", []), "negative_persons": run.get("negative_persons", 0),
                "within": run.get("within", "all"), "within_persons": run.get("within_persons"),
                "n_subjects": {k: len(split[k]) for k in ("train", "val", "test")}, "test_subjects": split["test"],
                "validation_subjects": split["val"], "cross_validation": run["cross_validation"],
                "train_groups": run["train_groups"], "train_seconds": run["fit_seconds"],
                "command": command or (f"ecgcore train heartid --arch beat-lda {' '.join(run['data'])}"
                                       + "".join(f" --negatives {d}" for d in run.get("negatives", []))
                                       + f" --within {run.get('within', 'all')}"
                                       + (f" --shrink {run['shrink']:g}" if run.get("shrink") else "")
                                       + ("" if run["options"].get("hr_norm") else " --no-hr-norm")
                                       + ("" if window == (BEAT_OPTIONS["before_s"], BEAT_OPTIONS["after_s"])
                                          else f" --beat-window {window[0]:g} {window[1]:g}")
                                       + ("" if fractions == (0.3, 0.1)
                                          else f" --test-fraction {fractions[0]:g} --val-fraction {fractions[1]:g}")
                                       + ("" if int(run["seed"]) == 0 else f" --seed {int(run['seed'])}") + " -o RUN")}
    card = ModelCard(
        name=name, task="embedding", framework="mlx",
        inputs=[{"name": "ecg", "shape": [None, int(L)], "dtype": "float32"}],
        outputs=[{"name": "embedding", "shape": [None, int(d)], "dtype": "float32"}],
        fs=float(run["options"]["fs"]), preprocessing={"kind": "heartid", **run["options"]},
        metrics={"onnx_parity": parity}, training=training, config=cfg,
        description="HeartID beat-lda: median heartbeats of 10 consecutive beats (lead I / MLII, 250 Hz, "
                    f"-{window[0]:g}..+{window[1]:g} s around ecgcore's R-peaks"
                    + (", the ST-T read at the group's heart rate: hr_norm" if run["options"].get("hr_norm") else "")
                    + ") -> a linear identity embedding (PCA + Fisher LDA fitted in MLX). "
                    "Default model of enroll/verify (scheme grp-iom: the template is the keyed IoM hash of the "
                    "mean unit embedding).")
    write_card(card, out_dir / "model.json")
    return {"onnx": onnx_path, "card": out_dir / "model.json", "parity": parity}
