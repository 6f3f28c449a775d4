"""HeartID beat-lda: choose the beat's cut around the R-peak by cross-validation over the training persons.

For each ``--windows`` cut (seconds before and after the R-peak) the median-beat groups are cut as the product cuts
them (the card's preprocessing with ``before_s`` / ``after_s`` replaced), then ``beats.cross_validate_score_norm``
scores the 5 x 3-fold cross-validation over the training persons with several records (single-record persons and
the negatives always in the fit) in the protected domain, as ``verify`` scores: grp-iom under each template owner's
key (stolen-key impostors), adaptive T-norm against the fold's negatives with the card's ``top_k``. Several
permutation seeds, because one seed's folds spread by about half a point of EER. Validation and test persons are
never read. Prints the table; ``--write CARD`` stores it in the card's ``training.beat_window_choice``.

    python tools/heartid_beat_window_cv.py --windows 0.25:0.45,0.3:0.45,0.35:0.45,0.3:0.55 --seeds 6
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def table(data: Path, card, windows, seeds: int, log=print) -> list[dict]:
    """One row per cut: CV EER (mean of folds, mean and sd over seeds), rank-1, and the pooled scores' FRR where
    the pooled impostor scores' FAR is 1 %."""
    from ecgcore.models.heartid.beats import card_fit_persons, cross_validate_score_norm, person_groups
    from ecgcore.models.heartid.metrics import eer

    tr = card.training
    who = card_fit_persons(card, data)
    norm = card.config["verification"]["schemes"]["grp-iom-v1"].get("score_norm") or {}
    top_k = norm.get("top_k", 10)
    name = f"tnorm-top{top_k}"
    cohort = [p for p in who.fixed if p in who.negatives]
    rows = []
    for before, after in windows:
        t = time.time()
        options = {k: v for k, v in card.preprocessing.items() if k != "kind"} | {"before_s": before, "after_s": after}
        groups, product = person_groups(who.fit_records, options, group_strides=(1, int(options["group_stride"])))
        multi = who.multi_record(groups) if tr.get("within", "all") == "multi-record" else None
        eers, hits, gen, imp = [], [], [], []
        for sd in range(seeds):
            r = cross_validate_score_norm(groups, product, who.cv_persons, cohort, int(card.config["n_pca"]), (top_k,),
                                          seed=sd, fixed=who.fixed, within=multi,
                                          shrink=float(card.config.get("shrink", 0.0)))[name]
            eers.append(np.mean(r["eer_folds"]))
            hits.append(r["rank1"])
            gen.append(r["genuine"])
            imp.append(r["impostor"])
        g, i = np.concatenate(gen), np.concatenate(imp)
        row = {"before_s": before, "after_s": after, "cv_eer_mean": round(float(np.mean(eers)), 4),
               "cv_eer_sd_over_seeds": round(float(np.std(eers)), 4), "cv_rank1": round(float(np.mean(hits)), 4),
               "pooled_eer": round(float(eer(g, i)[0]), 4),
               "pooled_frr_at_far_1pct": round(float(np.mean(g < np.quantile(i, 0.99))), 4),
               "n_genuine": int(g.size), "n_impostor": int(i.size)}
        rows.append(row)
        log(f"before {before:.2f} s, after {after:.2f} s: CV EER {row['cv_eer_mean']:.4f} (sd over {seeds} seeds "
            f"{row['cv_eer_sd_over_seeds']:.4f}), rank-1 {row['cv_rank1']:.4f}, pooled FRR at FAR 1 % "
            f"{row['pooled_frr_at_far_1pct']:.4f} [{time.time() - t:.0f} s]", flush=True)
    return rows


def parse_windows(text: str) -> list[tuple[float, float]]:
    out = []
    for part in text.split(","):
        before, sep, after = part.partition(":")
        if not sep:
            raise SystemExit(f"--windows: each cut is BEFORE:AFTER in s, got {part!r}")
        out.append((float(before), float(after)))
    return out


def main(argv=None) -> int:
    from ecgcore.export.card import write_card
    from ecgcore.models.heartid.beats import read_beat_lda_card

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model_dir", type=Path, nargs="?", default=REPO / "python/ecgcore/data/models/heartid-beats",
                    help="a beat-lda model (its split, n_pca, hr_norm and score normalisation are used)")
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("ECGCORE_DATA", REPO.parent / "shared/data")))
    ap.add_argument("--windows", default="0.25:0.45,0.3:0.45,0.35:0.45,0.3:0.55", help="cuts BEFORE:AFTER (s), comma-separated")
    ap.add_argument("--seeds", type=int, default=6, help="permutation seeds of the 5 x 3-fold CV")
    ap.add_argument("--write", action="store_true", help="store the table in the card's training.beat_window_choice")
    a = ap.parse_args(argv)
    t0 = time.time()
    try:
        card = read_beat_lda_card(a.model_dir)
        rows = table(a.data, card, parse_windows(a.windows), a.seeds)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    best = min(rows, key=lambda r: (r["cv_eer_mean"], -r["cv_rank1"]))
    print(f"lowest CV EER: {best['before_s']:g} s before, {best['after_s']:g} s after; {time.time() - t0:.0f} s")
    if a.write:
        card.training = dict(card.training or {})
        card.training["beat_window_choice"] = {
            "rule": "the cut with the lowest mean cross-validated EER of verify's own score over the training persons "
                    f"(5 x 3-fold, {a.seeds} permutation seeds; grp-iom, stolen-key impostors, the card's cohort "
                    "normalisation against the fold's negatives); validation and test persons never read",
            "command": f"python tools/heartid_beat_window_cv.py MODEL --windows {a.windows} --seeds {a.seeds} --write",
            "seconds": round(time.time() - t0), "rows": rows,
            "lowest": {"before_s": best["before_s"], "after_s": best["after_s"]},
            "shipped": {"before_s": card.preprocessing["before_s"], "after_s": card.preprocessing["after_s"]},
            "test_persons": "never read here"}
        write_card(card, a.model_dir / "model.json")
        print(f"wrote training.beat_window_choice into {a.model_dir / 'model.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
