"""HeartID beat-lda: choose the heart-rate normalisation exponent by cross-validation over the training persons.

For each ``alpha`` the median-beat groups are cut as the product cuts them (``BEAT_OPTIONS`` with ``hr_norm.alpha``
set, 0 = no normalisation; ``--beat-window`` for another cut than BEAT_OPTIONS'), then ``beats.cross_validate``
(5 x 3-fold over the training persons with several records, the single-record persons and the negatives always in
the fit) runs with several permutation seeds, because one seed's 15 folds of ~12 persons spread by ±0.5 point of EER.
Validation and test persons are never read. Prints the table; ``--write CARD`` stores it in the card's
``training.hr_norm_choice`` (the card must cut beats as the table did).

    python tools/heartid_hr_norm_cv.py --write python/ecgcore/data/models/heartid-beats/model.json
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np


def table(data: Path, alphas, seeds: int, n_pca, log=print, window_s=None) -> list[dict]:
    from ecgcore.models.heartid.beats import beat_options, cross_validate, fit_persons, person_groups

    who = fit_persons([data / "ecgiddb", data / "mitdb"], [data / "ptbxl"])
    rows = []
    for a in alphas:
        t = time.time()
        o = beat_options(a, window_s)
        windows, product = person_groups(who.fit_records, o, group_strides=(1, int(o["group_stride"])))
        multi = who.multi_record(windows)
        per = {n: ([], []) for n in n_pca}
        for sd in range(seeds):
            for r in cross_validate(windows, product, who.cv_persons, n_pca, fixed=who.fixed, within=multi, seed=sd):
                per[r["n_pca"]][0].append(r["rank1"])
                per[r["n_pca"]][1].append(r["eer_mean"])
        for n in n_pca:
            row = {"alpha": float(a), "n_pca": int(n), "cv_rank1": round(float(np.mean(per[n][0])), 4),
                   "cv_eer_mean": round(float(np.mean(per[n][1])), 4),
                   "cv_eer_sd_over_seeds": round(float(np.std(per[n][1])), 4)}
            rows.append(row)
            log(f"alpha {a:<5g} n_pca {n:3d}: CV rank-1 {row['cv_rank1']:.4f}, EER {row['cv_eer_mean']:.4f} "
                f"(sd over {seeds} seeds {row['cv_eer_sd_over_seeds']:.4f}) [{time.time() - t:.0f} s]", flush=True)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("ECGCORE_DATA", "../shared/data")))
    ap.add_argument("--alphas", default="0,0.4,0.5,0.6,0.75,1.0")
    ap.add_argument("--seeds", type=int, default=6, help="permutation seeds of the 5 x 3-fold CV")
    ap.add_argument("--n-pca", default="30,40", help="the n_pca values compared (the product's CV picks among them)")
    ap.add_argument("--beat-window", type=float, nargs=2, metavar=("BEFORE", "AFTER"), default=None,
                    help="the beat's cut in s (default BEAT_OPTIONS': 0.25 0.45); --write needs the card's")
    ap.add_argument("--write", type=Path, help="a beat-lda card: store the table as training.hr_norm_choice")
    a = ap.parse_args(argv)
    t = time.time()
    alphas = [float(v) for v in a.alphas.split(",")]
    from ecgcore.models.heartid.beats import beat_options

    cut = beat_options(None, a.beat_window)
    if a.write:
        from ecgcore.export.card import read_card

        pre = read_card(a.write).preprocessing or {}
        if (pre.get("before_s"), pre.get("after_s")) != (cut["before_s"], cut["after_s"]):
            raise SystemExit(f"{a.write} cuts beats {pre.get('before_s')}..{pre.get('after_s')} s around R, this "
                             f"table {cut['before_s']}..{cut['after_s']} s: pass --beat-window")
    rows = table(a.data, alphas, a.seeds, [int(v) for v in a.n_pca.split(",")], window_s=a.beat_window)
    best = min(rows, key=lambda r: (r["cv_eer_mean"], -r["cv_rank1"]))
    print(f"lowest CV EER: alpha {best['alpha']:g} (n_pca {best['n_pca']}); {time.time() - t:.0f} s")
    if a.write:
        from ecgcore.export.card import read_card, write_card

        card = read_card(a.write)
        card.training = dict(card.training or {})
        shipped = (card.preprocessing or {}).get("hr_norm") or {}
        card.training["hr_norm_choice"] = {
            "rule": "the exponent with the lowest mean cross-validated EER over the training persons (5 x 3-fold, "
                    f"{a.seeds} permutation seeds, n_pca {a.n_pca}); validation and test persons never read. The "
                    "model's own n_pca is chosen afterwards by train_beat_lda's CV (seed 0, its grid)",
            "command": f"python tools/heartid_hr_norm_cv.py --alphas {a.alphas} --seeds {a.seeds} --n-pca {a.n_pca} "
                       + (f"--beat-window {cut['before_s']:g} {cut['after_s']:g} " if a.beat_window else "")
                       + "--write MODEL/model.json",
            "seconds": round(time.time() - t), "rows": rows,
            "lowest": {"alpha": best["alpha"], "n_pca": best["n_pca"]},
            "shipped_alpha": shipped.get("alpha", 0.0),
            "test_persons": "never read here; the card's test figures (tools/heartid_scheme_card.py) are of the "
                            "shipped alpha only"}
        write_card(card, a.write)
        print(f"wrote training.hr_norm_choice into {a.write}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
