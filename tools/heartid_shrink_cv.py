"""HeartID beat-lda: choose the within-person covariance shrinkage by cross-validation over the training persons,
under the score ``verify`` uses.

For each ``shrink`` (:func:`ecgcore.models.heartid.beats.fit_lda`: ``(1 - s)·Sw + s·(tr Sw / n)·I`` before the
whitening) ``beats.cross_validate_score_norm`` refits the embedding on the folds of ``train_beat_lda``'s
cross-validation (5 x 3-fold over the training persons with several records; the single-record persons and the
negatives always in the fit) for ``--seeds`` permutation seeds, and scores the held-out persons in the protected
domain: each first record hashed (GRP-IoM) under a key of its owner, every later record hashed under the template
owner's key (stolen-key impostors), raw shares and adaptive T-norm against the fold's negatives. Validation and test
persons are never read.

Plain cosine (``train_beat_lda``'s n_pca criterion) is not the score users get: shrinkage lowers the T-norm EER while
it raises the plain-cosine one, so the choice is made here. Prints the table; ``--write CARD`` stores it in the
card's ``training.shrink_choice``.

    python tools/heartid_shrink_cv.py --shrink 0,0.05,0.1,0.2 --seeds 6 --write python/ecgcore/data/models/heartid-beats/model.json
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def table(data: Path, shrinks, seeds: int, n_pca: int, top_k: int, log=print, window_s=None) -> list[dict]:
    """One row per shrink: mean per-fold EER (and its spread over seeds) and rank-1 of the raw IoM share and of
    adaptive T-norm top-``top_k``, and the per-seed T-norm EERs."""
    from ecgcore.models.heartid.beats import beat_options, cross_validate_score_norm, fit_persons, person_groups

    who = fit_persons([data / "ecgiddb", data / "mitdb"], [data / "ptbxl"])
    o = beat_options(None, window_s)
    windows, product = person_groups(who.fit_records, o, group_strides=(1, int(o["group_stride"])))
    multi = who.multi_record(windows)
    cohort = [p for p in who.fixed if p in who.negatives]
    rows = []
    for s in shrinks:
        t = time.time()
        per = {"raw": [], f"tnorm-top{top_k}": []}
        for sd in range(seeds):
            r = cross_validate_score_norm(windows, product, who.cv_persons, cohort, n_pca, (top_k,), seed=sd,
                                          fixed=who.fixed, within=multi, shrink=s)
            for name in per:
                per[name].append((float(np.mean(r[name]["eer_folds"])), float(r[name]["rank1"])))
        raw, tn = np.asarray(per["raw"]), np.asarray(per[f"tnorm-top{top_k}"])
        rows.append({"shrink": float(s), "n_pca": int(n_pca),
                     "raw_cv_eer_mean": round(float(raw[:, 0].mean()), 4),
                     "tnorm_cv_eer_mean": round(float(tn[:, 0].mean()), 4),
                     "tnorm_cv_eer_sd_over_seeds": round(float(tn[:, 0].std()), 4),
                     "tnorm_cv_eer_per_seed": [round(float(v), 4) for v in tn[:, 0]],
                     "tnorm_cv_rank1": round(float(tn[:, 1].mean()), 4)})
        r = rows[-1]
        log(f"shrink {s:g}: raw {r['raw_cv_eer_mean']:.4f}, T-norm top {top_k} {r['tnorm_cv_eer_mean']:.4f} "
            f"(sd {r['tnorm_cv_eer_sd_over_seeds']:.4f}), rank-1 {r['tnorm_cv_rank1']:.4f} [{time.time() - t:.0f} s]",
            flush=True)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("ECGCORE_DATA", REPO.parent / "shared/data")))
    ap.add_argument("--shrink", default="0,0.05,0.1,0.2", help="comma-separated shrinkage values in [0, 1)")
    ap.add_argument("--seeds", type=int, default=6, help="permutation seeds of the 5 x 3-fold CV")
    ap.add_argument("--n-pca", type=int, default=40)
    ap.add_argument("--top-k", type=int, default=10, help="adaptive T-norm cohort size (the shipped score's)")
    ap.add_argument("--beat-window", type=float, nargs=2, metavar=("BEFORE", "AFTER"), default=None,
                    help="the beat's cut in s (default BEAT_OPTIONS': 0.25 0.45); --write needs the card's")
    ap.add_argument("--write", type=Path, default=None, help="a beat-lda model.json to store the table in")
    a = ap.parse_args(argv)
    t0 = time.time()
    shrinks = [float(v) for v in a.shrink.split(",")]
    if any(not 0.0 <= s < 1.0 for s in shrinks):
        raise SystemExit("--shrink values must lie in [0, 1)")
    rows = table(a.data, shrinks, a.seeds, a.n_pca, a.top_k, window_s=a.beat_window)
    best = min(rows, key=lambda r: (r["tnorm_cv_eer_mean"], -r["tnorm_cv_rank1"]))
    print(f"lowest T-norm CV EER: shrink {best['shrink']:g}; {time.time() - t0:.0f} s")
    if a.write:
        from ecgcore.export.card import read_card, write_card
        from ecgcore.models.heartid.beats import beat_options

        card = read_card(a.write)
        cfg, pre, cut = card.config or {}, card.preprocessing or {}, beat_options(None, a.beat_window)
        if cfg.get("arch") != "beat-lda" or int(cfg.get("n_pca", -1)) != a.n_pca or \
                (card.training or {}).get("within", "all") != "multi-record" or \
                bool(pre.get("hr_norm")) != bool(cut.get("hr_norm")) or \
                (pre.get("before_s"), pre.get("after_s")) != (cut["before_s"], cut["after_s"]):
            raise SystemExit(f"{a.write}: not a fit this table describes (beat-lda, n_pca {a.n_pca}, within "
                             f"multi-record, hr_norm as BEAT_OPTIONS, beats cut {cut['before_s']}..{cut['after_s']} s "
                             "around R: --beat-window)")
        card.training = dict(card.training or {})
        card.training["shrink_choice"] = {
            "rule": f"the shrinkage with the lowest mean per-fold EER of adaptive T-norm top {a.top_k} in the "
                    f"protected domain (grp-iom under each template owner's key, stolen-key impostors), 5 x 3-fold "
                    f"over the training persons, {a.seeds} permutation seeds, n_pca {a.n_pca}; validation and test "
                    "persons never read",
            "command": f"python tools/heartid_shrink_cv.py --shrink {a.shrink} --seeds {a.seeds} --n-pca {a.n_pca} "
                       f"--top-k {a.top_k} "
                       + (f"--beat-window {cut['before_s']:g} {cut['after_s']:g} " if a.beat_window else "")
                       + "--write MODEL/model.json",
            "seconds": round(time.time() - t0), "rows": rows, "lowest": best["shrink"],
            "shipped": float((card.config or {}).get("shrink", 0.0))}
        write_card(card, a.write)
        print(f"wrote training.shrink_choice into {a.write}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
