"""The evaluation protocol on held-out subjects: verification, identification, cancelability, unlinkability.

Every subject gets a key ``k``, every probe a second key ``k'`` (seeded, drawn as enrolment would). Templates are
the mean of the L2-normalised embeddings of the enrolment windows under ``k``; a probe is ``probe_windows``
consecutive windows of one later record, reduced the same way. ``score="cosine"``: mean of L2-normalised
embeddings, cosine similarity; ``score="euclidean"`` (the training loss's metric): mean of the raw embeddings,
score = minus their Euclidean distance.

- genuine: probe of s under k_s vs template of s
- impostor ("wrong person", key known to the attacker): probe of t under k_s vs template of s
- impostor, own key (zero effort): probe of t under k_t vs template of s
- mated under different keys (cancelability): probe of s under its own second key k' vs template of s
- unlinkability: mated = the previous scores; non-mated = probe of t under its k' vs template of s
- identification: each probe is embedded under every enrolled subject's key and scored against that template;
  rank-1 = the own template scores highest.
NumPy only: an ``embedder`` provides ``features((n, L)) -> (n, F)`` and ``embed((n, F), (1, K)) -> (n, D)``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from . import metrics
from .keys import generate_key


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


SCORES = ("euclidean", "cosine")


def template(emb: np.ndarray, score: str = "cosine") -> np.ndarray:
    """(n, D) embeddings -> (D,) template / probe vector: mean of the L2-normalised rows (cosine) or of the rows."""
    e = np.asarray(emb, np.float64)
    return (_unit(e) if score == "cosine" else e).mean(axis=0)


def similarity(u: np.ndarray, v: np.ndarray, score: str = "cosine") -> np.ndarray:
    """Row-wise similarity of (..., D) arrays: cosine, or minus the Euclidean distance."""
    u, v = np.asarray(u, np.float64), np.asarray(v, np.float64)
    if score == "cosine":
        return (_unit(u) * _unit(v)).sum(-1)
    if score == "euclidean":
        return -np.sqrt(((u - v) ** 2).sum(-1))
    raise ValueError(f"score must be one of {SCORES}, got {score!r}")


def _pairwise(V: np.ndarray, T: np.ndarray, score: str) -> np.ndarray:
    """(n, D) x (m, D) -> (n, m) similarities."""
    return similarity(V[:, None, :], T[None, :, :], score)


def evaluate_subjects(subjects, embedder, key_size: int = 100, probe_windows: int = 7, seed: int = 1234,
                      max_enrol: int | None = 70, max_groups: int | None = 20, threshold: float | None = None,
                      record_dates: dict | None = None, score: str = "euclidean") -> dict:
    """Scores and metrics for ``subjects`` (list of :class:`~.data.Subject`).

    ``threshold``: operating point for the acceptance rates (default: this set's own EER threshold).
    ``record_dates``: ``{record name: date}``; when given, rank-1 is also split into probes recorded on an
    enrolment day ("close") and on other days ("far").
    Returns ``{"metrics": {...}, "scores": {name: array}}``.
    """
    rng = np.random.default_rng([seed, 24745])
    keys = [generate_key(key_size, rng) for _ in subjects]
    T, P, owner, rec = [], [], [], []
    for si, s in enumerate(subjects):
        e = s.enrol_windows[:max_enrol] if max_enrol else s.enrol_windows
        T.append(template(embedder.embed(embedder.features(e), keys[si]), score))
        for r, g in s.probe_groups(probe_windows, max_groups):
            P.append(embedder.features(g))
            owner.append(si)
            rec.append(r)
    if not P:
        raise ValueError("no probe windows in the evaluation subjects")
    T = np.stack(T)
    owner = np.array(owner)
    sizes = [len(p) for p in P]
    flat = np.concatenate(P)
    splits = np.cumsum(sizes)[:-1]

    def probes_under(key):
        return np.stack([template(x, score) for x in np.split(embedder.embed(flat, key), splits)])

    n_s, n_g = len(subjects), len(P)
    S = np.empty((n_g, n_s))  # probe g under k_t vs template t
    V_own = np.empty((n_g, T.shape[1]))
    V_alt = np.empty_like(V_own)
    for t in range(n_s):
        V = probes_under(keys[t])
        S[:, t] = similarity(V, T[t][None, :], score)
        V_own[owner == t] = V[owner == t]
    # every probe gets its own second key, so mated and non-mated comparisons both span many key pairs
    # (one second key per subject would cluster the mated scores by subject and bias D_sys upwards)
    for g in range(n_g):
        V_alt[g] = template(embedder.embed(P[g], generate_key(key_size, rng)), score)
    other = owner[:, None] != np.arange(n_s)[None, :]
    genuine = S[np.arange(n_g), owner]
    impostor = S[other]
    own_key = _pairwise(V_own, T, score)[other]
    A = _pairwise(V_alt, T, score)
    mated_dk = A[np.arange(n_g), owner]
    nonmated_dk = A[other]

    e, t_eer = metrics.eer(genuine, impostor)
    thr = t_eer if threshold is None else float(threshold)
    m = {
        "score": score, "n_subjects": n_s, "n_probes": n_g, "probe_windows": probe_windows,
        "n_genuine": int(genuine.size), "n_impostor": int(impostor.size),
        "eer": e, "eer_threshold": t_eer, "threshold": thr,
        "far_at_frr_1pct": metrics.far_at_frr(genuine, impostor, 0.01),
        "frr_at_far_0.1pct": metrics.frr_at_far(genuine, impostor, 0.001),
        "far_at_threshold": metrics.accept_rate(impostor, thr),
        "frr_at_threshold": 1.0 - metrics.accept_rate(genuine, thr),
        "far_own_key_at_threshold": metrics.accept_rate(own_key, thr),
        "eer_own_key": metrics.eer(genuine, own_key)[0],
        "mated_different_keys_accept": metrics.accept_rate(mated_dk, thr),
        "eer_genuine_vs_mated_different_keys": metrics.eer(genuine, mated_dk)[0],
        "d_sys": metrics.unlinkability(mated_dk, nonmated_dk)["d_sys"],
        "rank1": metrics.rank1(S, owner),
    }
    if record_dates:
        enrol_days = []
        for s in subjects:
            e_recs = set(s.record[~s.probe])
            enrol_days.append({record_dates.get(r) for r in e_recs} - {None})
        known = np.array([r in record_dates for r in rec])
        close = known & np.array([record_dates.get(r) in enrol_days[o] for r, o in zip(rec, owner)])
        far = known & ~close
        hit = S.argmax(axis=1) == owner
        m["rank1_close"] = float(hit[close].mean()) if close.any() else None
        m["rank1_far"] = float(hit[far].mean()) if far.any() else None
        m["n_probes_close"], m["n_probes_far"] = int(close.sum()), int(far.sum())
    return {"metrics": m, "scores": {"genuine": genuine, "impostor": impostor, "impostor_own_key": own_key,
                                     "mated_different_keys": mated_dk, "non_mated_different_keys": nonmated_dk}}


def ecgid_record_dates(raw_dir) -> dict:
    """``{"Person_01/rec_1": "07.12.2004", ...}`` from the ``# ECG date:`` header comments of ECG-ID."""
    from pathlib import Path

    out = {}
    for hea in Path(raw_dir).glob("Person_*/rec_*.hea"):
        for line in hea.read_text(errors="replace").splitlines():
            if line.startswith("#") and "date" in line.lower():
                out[f"{hea.parent.name}/{hea.stem}"] = line.split(":", 1)[1].strip()
    return out


def run_files(run_dir, weights: str = "best"):
    """(config, split, weights path) of a ``ecgcore train heartid`` run; ``weights`` = ``"best"`` (lowest
    validation EER, falling back to the last epoch's) or ``"last"``."""
    from .config import HeartIDConfig

    run_dir = Path(run_dir)
    for f in ("config.json", "split.json"):
        if not (run_dir / f).is_file():
            raise FileNotFoundError(f"{run_dir / f} not found: is {run_dir} a `ecgcore train heartid` run?")
    w = run_dir / ("best_model.npz" if weights == "best" else "heartid_model.npz")
    if weights == "best" and not w.is_file():
        w = run_dir / "heartid_model.npz"
    if not w.is_file():
        raise FileNotFoundError(f"{w} not found")
    saved = json.loads((run_dir / "config.json").read_text())
    cfg = HeartIDConfig.from_dict(saved.get("config", saved))
    split = json.loads((run_dir / "split.json").read_text())
    return cfg, split, w


def default_ecgid_raw() -> Path | None:
    """The raw ECG-ID folder under ``$ECGCORE_DATA`` (for rank-1 by recording day), if there is one."""
    from ...datasets import locate

    try:
        return locate("ecgiddb")
    except (ValueError, FileNotFoundError):
        return None


def evaluate(run_dir, data_dir=None, *, weights: str = "best", ecgid_raw=None, progress=None) -> dict:
    """Validation threshold + test metrics of one run; writes ``metrics.json``, ``det.png``, ``scores.npz`` there.

    ``data_dir`` (the ``heartid`` dataset folders) defaults to the run's; ``ecgid_raw`` (raw ECG-ID, for rank-1
    close / far apart in time) to ``$ECGCORE_DATA/ecgiddb``.
    """
    from ..._fs import write_json, write_npz
    from .data import load_subjects
    from .metrics import plot_det
    from .model import MLXEmbedder
    from .model import HeartIDNet

    run_dir = Path(run_dir)
    cfg, split, w = run_files(run_dir, weights)
    if len(split["val"]) < 2 or len(split["test"]) < 2:
        raise ValueError(f"{run_dir}: evaluation needs at least 2 validation and 2 test subjects "
                         f"(got {len(split['val'])} and {len(split['test'])}); train with larger fractions")
    dirs = split["data_dirs"] if data_dir is None else ([data_dir] if isinstance(data_dir, (str, Path)) else data_dir)
    subjects = {s.id: s for s in load_subjects(dirs)}
    model = HeartIDNet(cfg)
    model.load_weights(str(w), strict=True)
    emb = MLXEmbedder(model, cache=True)
    ecgid_raw = ecgid_raw if ecgid_raw is not None else default_ecgid_raw()
    dates = ecgid_record_dates(ecgid_raw) if ecgid_raw else None
    out = {"run": str(run_dir), "weights": w.name, "loss": cfg.loss, "score": cfg.score, "results": {}}
    curves, saved = {}, {}
    for pw in (cfg.probe_windows, 1):
        val = evaluate_subjects([subjects[i] for i in split["val"]], emb, cfg.key_size, pw, seed=cfg.seed + 1,
                                score=cfg.score)["metrics"]
        thr = val["eer_threshold"]
        res = {"validation": val}
        dbs = list(dict.fromkeys(i.split(":", 1)[0] for i in split["test"]))
        for db in dbs + ["all"]:
            ids = [i for i in split["test"] if db == "all" or i.startswith(db + ":")]
            r = evaluate_subjects([subjects[i] for i in ids], emb, cfg.key_size, pw, seed=cfg.seed + 2,
                                  threshold=thr, record_dates=dates, score=cfg.score)
            res[db] = r["metrics"]
            # pooled "all" mixes in easy cross-database impostors, so the plot shows each database
            if db != "all":
                curves[f"{db}, {pw}-window probes"] = (r["scores"]["genuine"], r["scores"]["impostor"])
            saved.update({f"{db}_w{pw}_{k}": v for k, v in r["scores"].items()})
            if progress:
                progress(f"{cfg.loss} probes of {pw} window(s) {db}: EER {100 * r['metrics']['eer']:.2f} %")
        out["results"][f"probe_windows_{pw}"] = res
    plot_det(curves, run_dir / "det.png", title=f"HeartID DET, test subjects ({cfg.loss} loss)")
    write_npz(run_dir / "scores.npz", **saved)
    write_json(run_dir / "metrics.json", out)
    return out


def format_table(results: list[dict]) -> str:
    """One line per run, probe length and test database: EER, operating points, rank-1, cancelability."""
    head = (f"{'loss':<9} {'probe':>5} {'test set':<8} {'EER%':>6} {'FAR@FRR1%':>9} {'FRR@FAR.1%':>10} "
            f"{'rank-1%':>7} {'close%':>6} {'far%':>6} {'FAR@thr':>7} {'FRR@thr':>7} {'mated-k2%':>9} {'Dsys':>5}")
    lines = [head]
    f = lambda v: "-" if v is None else f"{100 * v:.1f}"  # noqa: E731
    for out in results:
        for pw, res in out["results"].items():
            for db, m in res.items():
                if db == "validation":
                    continue
                lines.append(f"{out['loss']:<9} {m['probe_windows']:>5} {db:<8} {100 * m['eer']:>6.2f} "
                             f"{f(m['far_at_frr_1pct']):>9} {f(m['frr_at_far_0.1pct']):>10} {f(m['rank1']):>7} "
                             f"{f(m.get('rank1_close')):>6} {f(m.get('rank1_far')):>6} "
                             f"{f(m['far_at_threshold']):>7} {f(m['frr_at_threshold']):>7} "
                             f"{f(m['mated_different_keys_accept']):>9} {m['d_sys']:>5.2f}")
    return "\n".join(lines)
