"""HeartID beat-lda (issue 23): choose grp-iom's score normalisation by cross-validation over the training persons,
and give the model its cohort.

What it does, training persons only (validation and test persons are never read):

1. ``beats.cross_validate_score_norm``: the card's fit (n_pca, hr_norm, negatives, within rule, shrink) refitted on the
   folds of ``train_beat_lda``'s cross-validation (5 x 3-fold over the training persons with several records, the
   others and the negatives always in the fit), ``--seeds`` permutation seeds. Each held-out person's first record
   is a template hashed under a key of their own; every later record of every held-out person, hashed under the
   template owner's key, is a probe (genuine or stolen-key impostor), as ``verify`` scores them. Raw IoM shares and
   adaptive T-norm for each ``--top-k`` against the fold's negatives as the cohort.
2. The normalisation with the lowest mean per-fold EER is kept if it beats the raw score; the accept threshold is
   the EER point of its scores pooled over all folds and seeds (hundreds of genuine probes, where the validation
   persons give 14), or with ``--far-target F`` the operating point: the lowest threshold at which the pooled
   stolen-key impostor scores are accepted at most at rate F; the normalisation is then the one with the lowest
   pooled FRR there (ties: mean per-fold EER), kept if below the raw score's.
3. The cohort file: each negative person's first record through the product path (``Verifier``: the card's
   preprocessing, the exported graph), the direction of its mean group embedding; ``cohort.npy`` beside the graph.

Writes ``config.verification.schemes["grp-iom-v1"]`` (``score_norm``, ``threshold``, how it was chosen) and
``training.score_norm_choice`` (the table) into the card; ``tools/heartid_scheme_card.py`` then scores the
validation and test persons at that threshold.

    python tools/heartid_score_norm.py python/ecgcore/data/models/heartid-beats --write
"""
from __future__ import annotations

import argparse
import hashlib
import io
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
COHORT_FILE = "cohort.npy"


def cv_table(data: Path, card, seeds: int, top_ks, log=print, options: dict | None = None,
             far_target: float = 0.01) -> tuple[list[dict], dict]:
    """Rows ``{"score", "top_k", "cv_eer_mean", "cv_eer_sd_over_seeds", "cv_rank1", "pooled_eer",
    "pooled_threshold", "pooled_frr_at_far_1pct", "threshold_at_far_target", ...}`` and what the table was computed
    over (``meta``: the CV persons, the cohort, the negatives). ``options``: preprocessing values that replace the
    card's (e.g. the beat cut, ``tools/heartid_beat_window_cv.py``); ``far_target``: the FAR of the rows'
    operating point (``metrics.threshold_at_far`` on the pooled scores)."""
    from ecgcore.models.heartid.beats import card_fit_persons, cross_validate_score_norm, person_groups
    from ecgcore.models.heartid.metrics import eer, threshold_at_far

    tr = card.training
    who = card_fit_persons(card, data)
    options = {k: v for k, v in card.preprocessing.items() if k != "kind"} | dict(options or {})
    windows, product = person_groups(who.fit_records, options, group_strides=(1, int(options["group_stride"])))
    multi = who.multi_record(windows) if tr.get("within", "all") == "multi-record" else None
    cohort = [p for p in who.fixed if p in who.negatives]
    per_seed, pooled = {}, {}
    for sd in range(seeds):
        t = time.time()
        r = cross_validate_score_norm(windows, product, who.cv_persons, cohort, int(card.config["n_pca"]), top_ks,
                                      seed=sd, fixed=who.fixed, within=multi,
                                      shrink=float(card.config.get("shrink", 0.0)))
        for name, v in r.items():
            per_seed.setdefault(name, []).append((np.mean(v["eer_folds"]), v["rank1"]))
            g, i = pooled.setdefault(name, ([], []))
            g.append(v["genuine"])
            i.append(v["impostor"])
        log(f"seed {sd}: " + ", ".join(f"{n} {np.mean(v['eer_folds']):.4f}" for n, v in r.items())
            + f" [{time.time() - t:.0f} s]", flush=True)
    rows = []
    for name, v in per_seed.items():
        a = np.asarray(v)
        g, i = np.concatenate(pooled[name][0]), np.concatenate(pooled[name][1])
        e, thr = eer(g, i)
        op_thr, op_far, op_frr = threshold_at_far(g, i, far_target)
        top = None if name == "raw" else name.split("top", 1)[1]
        rows.append({"score": "raw" if name == "raw" else "adaptive-t-norm",
                     "top_k": None if top in (None, "None") else int(top),
                     "cv_eer_mean": round(float(a[:, 0].mean()), 4),
                     "cv_eer_sd_over_seeds": round(float(a[:, 0].std()), 4),
                     "cv_rank1": round(float(a[:, 1].mean()), 4), "pooled_eer": round(float(e), 4),
                     "pooled_threshold": float(thr), "n_genuine": int(g.size), "n_impostor": int(i.size),
                     "frr_at_pooled_threshold": round(float(np.mean(g < thr)), 4),
                     "pooled_frr_at_far_1pct": round(threshold_at_far(g, i, 0.01)[2], 4),
                     "far_at_pooled_threshold": round(float(np.mean(i >= thr)), 4),
                     "far_target": far_target, "threshold_at_far_target": op_thr,
                     "far_at_far_target": round(op_far, 4), "frr_at_far_target": round(op_frr, 4)})
    meta = {"cv_persons": len(who.cv_persons), "cohort_persons_in_the_folds": len(cohort),
            "negatives": who.negatives}
    return rows, meta


def choice_key(row: dict, far_target: float | None) -> tuple:
    """How the table's rows are ranked (lowest first): mean per-fold EER then rank-1; with a FAR target, the pooled
    FRR at that operating point first."""
    key = (row["cv_eer_mean"], -row["cv_rank1"])
    return key if far_target is None else (row["frr_at_far_target"], *key)


def build_cohort(model_dir: Path, negatives: dict) -> tuple[np.ndarray, list[str], list[str]]:
    """(c, d) float32 unit embeddings of each negative person's first record through the product path; the persons
    used and those skipped (too few beats)."""
    from ecgcore.models.heartid._evaluate import _unit, template
    from ecgcore.models.heartid.product import Verifier

    ver = Verifier(model_dir, threshold=0.0, score_norm=False)  # works whatever cohort the card names now
    rows, used, skipped = [], [], []
    for p in sorted(negatives):
        try:
            rows.append(_unit(template(ver.embed(ver.windows(negatives[p][0])), "cosine")))
            used.append(p)
        except ValueError:
            skipped.append(p)
    return np.stack(rows).astype(np.float32), used, skipped


def main(argv=None) -> int:
    from ecgcore._fs import atomic_write
    from ecgcore.export.card import write_card
    from ecgcore.models.heartid.beats import read_beat_lda_card
    from ecgcore.models.heartid.protect import score_description

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model_dir", type=Path, nargs="?", default=REPO / "python/ecgcore/data/models/heartid-beats")
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("ECGCORE_DATA", REPO.parent / "shared/data")))
    ap.add_argument("--seeds", type=int, default=6, help="permutation seeds of the 5 x 3-fold CV")
    ap.add_argument("--top-k", default="10,20,50,100,all", help="cohort matches kept per probe ('all': no selection)")
    ap.add_argument("--far-target", type=float, default=None, metavar="F",
                    help="threshold at the operating point where the pooled CV stolen-key FAR is at most F "
                         "(e.g. 0.01) instead of the pooled EER point")
    ap.add_argument("--write", action="store_true", help="write cohort.npy and the card (else print the table)")
    a = ap.parse_args(argv)
    if a.far_target is not None and not 0.0 < a.far_target < 1.0:
        ap.error("--far-target must lie in (0, 1)")
    t0 = time.time()
    top_ks = [None if k == "all" else int(k) for k in a.top_k.split(",")]
    try:
        card = read_beat_lda_card(a.model_dir)
        rows, meta = cv_table(a.data, card, a.seeds, top_ks, far_target=a.far_target or 0.01)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    for r in sorted(rows, key=lambda r: r["cv_eer_mean"]):
        print(f"{r['score']:16s} top_k {str(r['top_k']):5s} CV EER {r['cv_eer_mean']:.4f} (sd {r['cv_eer_sd_over_seeds']:.4f}) "
              f"rank-1 {r['cv_rank1']:.4f}; pooled EER {r['pooled_eer']:.4f} at {r['pooled_threshold']:.4f}; "
              f"FAR {r['far_at_far_target']:.4f} / FRR {r['frr_at_far_target']:.4f} at {r['threshold_at_far_target']:.4f}")
    raw = next(r for r in rows if r["score"] == "raw")
    best = min((r for r in rows if r["score"] != "raw"), key=lambda r: choice_key(r, a.far_target))
    if choice_key(best, a.far_target)[0] >= choice_key(raw, a.far_target)[0]:
        print("no normalisation beats the raw score in cross-validation: card left as it is")
        return 0
    threshold = best["pooled_threshold"] if a.far_target is None else best["threshold_at_far_target"]
    where = ("the EER point" if a.far_target is None else
             f"the lowest threshold whose pooled stolen-key FAR is at most {a.far_target:g} (the operating point)")
    print(f"chosen: adaptive T-norm, top {best['top_k']}; threshold {threshold:.4f} at {where} "
          f"[{time.time() - t0:.0f} s]")
    if not a.write:
        return 0
    if not np.isfinite(threshold):
        raise SystemExit(f"--far-target {a.far_target:g} is below one impostor score's share of the pooled CV "
                         f"({best['n_impostor']} scores): no finite threshold; card left as it is")
    cohort, used, skipped = build_cohort(a.model_dir, meta["negatives"])
    path = a.model_dir / COHORT_FILE
    buf = io.BytesIO()
    np.save(buf, cohort, allow_pickle=False)
    sha = hashlib.sha256(buf.getvalue()).hexdigest()
    cfg = dict(card.config)
    ver = dict(cfg["verification"])
    schemes = dict(ver.get("schemes", {}))
    entry = dict(schemes.get("grp-iom-v1", {}))
    entry.update({
        "threshold": threshold,
        "score_norm": {"kind": "adaptive-t-norm", "top_k": best["top_k"], "cohort": COHORT_FILE,
                       "cohort_sha256": sha, "cohort_persons": len(used),
                       "cohort_from": "the negatives of the fit (PTB-XL patients: fit only, never validated or "
                                      "tested): each one's first record through the product path, the direction of "
                                      "its mean group embedding",
                       "cohort_skipped": skipped},
        "threshold_chosen_on": f"{where} of the cohort-normalised scores of the training persons' cross-validation "
                               f"(5 x 3-fold x {a.seeds} seeds, pooled: {best['n_genuine']} genuine, "
                               f"{best['n_impostor']} stolen-key impostor scores; training.score_norm_choice); "
                               "validation and test persons not read"})
    entry["score"] = score_description(entry["score_norm"])
    schemes["grp-iom-v1"] = entry
    ver["schemes"] = schemes
    cfg["verification"] = ver
    card.config = cfg
    card.training = dict(card.training or {})
    card.training["score_norm_choice"] = {
        "rule": ("the normalisation with the lowest mean per-fold EER" if a.far_target is None else
                 f"the normalisation with the lowest pooled FRR at pooled FAR {a.far_target:g} (ties: mean per-fold "
                 "EER)") + " of the training persons' cross-validation (grp-iom under each template owner's key, "
                "stolen-key impostors; the fold's negatives as the cohort), kept only if below the raw score's; "
                f"threshold at {where} of its pooled scores",
        "far_target": a.far_target,
        "command": f"python tools/heartid_score_norm.py MODEL --seeds {a.seeds} --top-k {a.top_k}"
                   + ("" if a.far_target is None else f" --far-target {a.far_target:g}") + " --write",
        "cv_persons": meta["cv_persons"], "cohort_persons_in_the_folds": meta["cohort_persons_in_the_folds"],
        "seconds": round(time.time() - t0), "rows": rows,
        "chosen": {"top_k": best["top_k"], "threshold": threshold},
        "test_persons": "never read here"}
    write_card(card, a.model_dir / "model.json")
    with atomic_write(path) as tmp:  # after the card: a run cut short leaves the previous cohort, which this tool
        Path(tmp).write_bytes(buf.getvalue())  # reads around (score_norm=False) when run again
    print(f"wrote {path} ({len(used)} persons, {len(skipped)} skipped) and the card's score_norm")
    return 0


if __name__ == "__main__":
    sys.exit(main())
