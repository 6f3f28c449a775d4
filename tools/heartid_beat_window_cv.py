"""HeartID beat-lda: choose the beat's cut around the R-peak by cross-validation over the training persons.

For each ``--windows`` cut (seconds before and after the R-peak) the median-beat groups are cut as the product cuts
them (the card's preprocessing with ``before_s`` / ``after_s`` replaced), then ``heartid_score_norm.cv_table`` scores
the 5 x 3-fold cross-validation over the training persons with several records (single-record persons and the
negatives always in the fit) in the protected domain, as ``verify`` scores: grp-iom under each template owner's key
(stolen-key impostors), adaptive T-norm against the fold's negatives with the card's ``top_k`` (the raw share for a
card without cohort normalisation). Several permutation seeds, because one seed's folds spread by about half a point
of EER. Validation and test persons are never read. Prints the table; ``--write`` stores it in the card's
``training.beat_window_choice``.

    python tools/heartid_beat_window_cv.py --windows 0.25:0.45,0.3:0.45,0.35:0.45,0.3:0.55 --seeds 6
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))


def table(data: Path, card, windows, seeds: int, log=print) -> list[dict]:
    """One row per cut (:func:`heartid_score_norm.cv_table` with the cut replacing the card's): CV EER of verify's
    score (mean of folds; mean and sd over seeds), rank-1, pooled EER, and the pooled scores' FRR where the pooled
    impostor scores' FAR is 1 %."""
    import heartid_score_norm as hsn

    norm = ((card.config.get("verification") or {}).get("schemes") or {}).get("grp-iom-v1", {}).get("score_norm")
    top_k = norm.get("top_k") if norm else None  # a card without cohort normalisation: the raw share
    rows = []
    for before, after in windows:
        t = time.time()
        got, _ = hsn.cv_table(data, card, seeds, (top_k or 10,), log=lambda *a, **k: None,
                              options={"before_s": before, "after_s": after})
        r = next(r for r in got if (r["score"] == "raw") == (norm is None))
        row = {"before_s": before, "after_s": after, "score": r["score"], "top_k": r["top_k"],
               **{k: r[k] for k in ("cv_eer_mean", "cv_eer_sd_over_seeds", "cv_rank1", "pooled_eer",
                                    "pooled_frr_at_far_1pct", "n_genuine", "n_impostor")}}
        rows.append(row)
        log(f"before {before:.2f} s, after {after:.2f} s: CV EER {row['cv_eer_mean']:.4f} (sd over {seeds} seeds "
            f"{row['cv_eer_sd_over_seeds']:.4f}), rank-1 {row['cv_rank1']:.4f}, pooled FRR at FAR 1 % "
            f"{row['pooled_frr_at_far_1pct']:.4f} [{time.time() - t:.0f} s]", flush=True)
    return rows


def parse_windows(text: str) -> list[tuple[float, float]]:
    """``"0.25:0.45,0.3:0.45"`` -> [(0.25, 0.45), (0.3, 0.45)], each cut checked (``check_window``)."""
    from ecgcore.pipelines.recipes.heartid import check_window

    out = []
    for part in text.split(","):
        before, sep, after = part.partition(":")
        if not sep:
            raise SystemExit(f"--windows: each cut is BEFORE:AFTER in s, got {part!r}")
        try:
            out.append(check_window((before, after)))
        except ValueError as exc:
            raise SystemExit(f"--windows: {exc}") from None
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
