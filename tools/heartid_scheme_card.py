"""Add the template-protection schemes to the bundled HeartID card (issue 23).

    python tools/heartid_scheme_card.py [MODEL_DIR] [--ecgid DATA/ecgiddb]

Reproduces the model's subject split (``split_subjects`` with the card's seed and fractions over ECG-ID persons
1-60; the test list must equal the card's), chooses the grp-iom threshold on the ECG-ID validation persons (unless
the card's grp-iom entry has a ``score_norm``: its threshold comes from ``tools/heartid_score_norm.py``'s
cross-validation over the training persons and is kept; the validation persons are then scored at it), and
writes ``config.verification.schemes``, ``metrics["template protection (issue 23)"]`` (both schemes on the test
persons through the product path, and the attacks), the headline and the warnings.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from ecgcore.export.card import read_card, write_card
from ecgcore.models.heartid.scheme_eval import scheme_card

TARGETS = {"eer_stolen_key": 0.03, "frr_at_threshold": 0.05, "far_stolen_key_at_threshold": 0.01,
           "same_person_other_key_accepted": 0.01, "d_sys": 0.05, "rank1": 0.95}
REPO = Path(__file__).resolve().parents[1]


def ecgid_split(card, n_persons: int = 60) -> tuple[list[str], list[str]]:
    """(validation, test) ECG-ID persons of the model's split (``data.split_subjects``' permutation rule)."""
    cfg = card.config
    ids = [f"Person_{i:02d}" for i in range(1, n_persons + 1)]
    perm = np.random.default_rng([int(cfg["seed"]), len(ids)]).permutation(len(ids))
    n_test, n_val = int(round(len(ids) * cfg["test_fraction"])), int(round(len(ids) * cfg["val_fraction"]))
    test, val = [ids[i] for i in perm[:n_test]], [ids[i] for i in perm[n_test:n_test + n_val]]
    card_test = [s.split(":", 1)[1] for s in card.training["test_subjects"] if s.split(":", 1)[0] in ("ecgid", "ecgiddb")]
    if test != card_test:
        raise SystemExit("the reproduced ECG-ID test persons differ from the card's; not the model's split")
    return val, test


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model_dir", type=Path, nargs="?", default=REPO / "python/ecgcore/data/models/heartid")
    ap.add_argument("--ecgid", type=Path,
                    default=Path(os.environ.get("ECGCORE_DATA", REPO.parent / "shared/data")) / "ecgiddb")
    ap.add_argument("--hill-iters", type=int, default=3000)
    ap.add_argument("--other-keys", type=int, default=64,
                    help="fresh keys per person for grp-iom's other-key scores (D_sys sample size)")
    ap.add_argument("--seed-model", default=None,
                    help="Network for the seed scheme and its attacks (default: MODEL_DIR; a beat-lda model has no "
                         "key input: pass the bundled seed network, heartid)")
    a = ap.parse_args()
    card = read_card(a.model_dir / "model.json")
    val, test = ecgid_split(card)
    # a cohort-normalised score carries its threshold from the training persons' cross-validation
    # (tools/heartid_score_norm.py): kept, and the validation persons are scored at it
    entry = card.config.get("verification", {}).get("schemes", {}).get("grp-iom-v1", {})
    keep = entry if "score_norm" in entry else {}
    r = scheme_card(a.model_dir, a.ecgid, val, test, hill_iters=a.hill_iters, seed_model=a.seed_model,
                    other_keys=a.other_keys, threshold=keep.get("threshold"),
                    threshold_chosen_on=keep.get("threshold_chosen_on"))
    cfg = dict(card.config)
    ver = dict(cfg.get("verification", {}))
    ver["schemes"] = r["verification_schemes"]
    ver["default_scheme"] = "grp-iom-v1"
    cfg["verification"] = ver
    card.config = cfg
    metrics = dict(card.metrics)
    metrics["template protection (issue 23)"] = dict(
        r["metrics"], targets=TARGETS, command=" ".join(["python", "tools/heartid_scheme_card.py", *sys.argv[1:]]))
    card.metrics = metrics
    t = r["metrics"]["schemes"]["grp-iom-v1"]["test"]
    card.headline = {"ECG-ID unseen persons, grp-iom: EER stolen key": round(t["eer_stolen_key"], 4),
                     "ECG-ID unseen persons, grp-iom: EER two-factor": round(t["eer_two_factor"], 4),
                     "ECG-ID unseen persons, grp-iom: rank-1": round(t["rank1"], 4),
                     "grp-iom unlinkability D_sys": round(t["d_sys"], 4)}
    warn = ["the seed scheme (--scheme seed, on the seed network) is not cancelable: the key enters the embedding linearly, so a holder "
            "of the model links two enrolments of one person under different keys "
            f"(linear attack rank-1 linkage {r['metrics']['attacks']['seed_linear_key_attack']['rank1_linkage']:.2f})"]
    for k, target in TARGETS.items():
        v = t[k]
        worse = v < target if k == "rank1" else v > target
        if worse:
            warn.append(f"grp-iom on unseen ECG-ID persons misses the issue-23 target: {k} {v:.4f} "
                        f"({'<' if k == 'rank1' else '>'} {target})")
    inv = r["metrics"]["attacks"]["iom_inversion_hill_climb"]
    if inv["accepted_after_renewal"] > 0.01:
        warn.append(f"an attacker holding a stolen key AND its template recovers the embedding by hill climbing "
                    f"(cosine {inv['cosine_to_true_embedding_mean']:.3f} to the true one) and is accepted against "
                    f"the person's renewed template in {inv['accepted_after_renewal']:.0%} of cases: with this "
                    f"low-dimensional embedding, renewal does not protect a person whose key and template were both "
                    f"stolen (it does when only one was)")
    card.warnings = warn
    if card.config.get("arch") == "beat-lda":
        write_card(card, a.model_dir / "model.json")
        print(json.dumps(r["metrics"], indent=1))
        return
    card.description = ("HeartID ECG biometrics: 5 s lead-I/MLII windows -> 100-dim embedding (SPEC §1). Default "
                        "template protection grp-iom: the embedding under the all-zero key, hashed by the subject's "
                        "keyed Gaussian-random-projection Index-of-Max transform (512 indices, threshold "
                        "config.verification.schemes); --scheme seed: the seed's key-in-the-network template "
                        "(config.verification.threshold), linkable.")
    write_card(card, a.model_dir / "model.json")
    print(json.dumps(r["metrics"], indent=1))


if __name__ == "__main__":
    main()
