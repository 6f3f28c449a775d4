"""HeartID (issue 23): the GRP-IoM template length m against accuracy and the stolen-key inversion, training persons only.

    python tools/heartid_iom_length.py [--m 512,256,128,64,32,16] [--seeds 2]

For each m (hash functions per template; the shipped scheme uses ``protect.IOM_M`` = 512), on the bundled
``heartid-beats`` model's training persons (validation and test persons are never read):

* accuracy: ``tools/heartid_score_norm.py``'s cross-validation (the fit's 5 x 3-fold over the training persons,
  ``--seeds`` permutation seeds; raw shares and adaptive T-norm top 10, stolen-key impostors) with m-long templates;
* the attack: for each training person with two records, their first record's template under a stolen key is inverted
  by ``protect.hill_climb`` (3,000 steps); the forgery is presented against the person's second record enrolled under
  a new key, accepted when its raw share reaches the raw score's pooled CV EER point for that m.

The projections of every m come from ``protect.projections`` with that m (the function is wrapped for the run), so
the keys, hashing and scores are the product's. Prints one JSON line per m. The README's table comes from this tool.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))


def main(argv=None) -> int:
    import heartid_score_norm as hsn

    import ecgcore.models.heartid.protect as protect
    from ecgcore.models.heartid._evaluate import _unit, template
    from ecgcore.models.heartid.beats import card_fit_persons, read_beat_lda_card
    from ecgcore.models.heartid.product import Verifier

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model_dir", type=Path, nargs="?", default=REPO / "python/ecgcore/data/models/heartid-beats")
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("ECGCORE_DATA", REPO.parent / "shared/data")))
    ap.add_argument("--m", default="512,256,128,64,32,16", help="template lengths to measure")
    ap.add_argument("--seeds", type=int, default=2, help="permutation seeds of the 5 x 3-fold CV")
    ap.add_argument("--iters", type=int, default=3000, help="hill-climbing steps per attack")
    a = ap.parse_args(argv)

    try:
        card = read_beat_lda_card(a.model_dir)
        who = card_fit_persons(card, a.data)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    ver = Verifier(a.model_dir, threshold=0.0, score_norm=False)
    emb = {p: [_unit(template(ver.embed(ver.windows(r)), "cosine")) for r in who.fit_records[p][:2]]
           for p in who.cv_persons if len(who.fit_records[p]) >= 2}
    original = protect.projections
    try:
        for m in (int(v) for v in a.m.split(",")):
            protect.projections = lambda bits, dim, m_=None, q=protect.IOM_Q, _m=m: original(bits, dim, m=_m, q=q)
            t = time.time()
            rows, _ = hsn.cv_table(a.data, card, a.seeds, (10,), log=lambda *x, **k: None)
            row = {r["score"]: r for r in rows}
            thr = row["raw"]["pooled_threshold"]
            rng = np.random.default_rng(7)
            renewed, stolen, cos = [], [], []
            for i, (ea, eb) in enumerate(emb.values()):
                old_bits, new_bits = (np.r_[1, rng.integers(0, 2, 99)].astype(np.uint8) for _ in range(2))
                W_old, W_new = protect.projections(old_bits, ea.size), protect.projections(new_bits, ea.size)
                z, best = protect.hill_climb(protect.iom_hash(ea, W=W_old), W_old, ea.size, iters=a.iters, seed=i)
                cos.append(float(_unit(z) @ ea))
                stolen.append(best >= thr)
                renewed.append(float(protect.iom_similarity(protect.iom_hash(eb, W=W_new),
                                                            protect.iom_hash(z, W=W_new))) >= thr)
            print(json.dumps({"m": m, "persons": len(emb), "cv_eer_raw": row["raw"]["cv_eer_mean"],
                              "cv_eer_tnorm10": row["adaptive-t-norm"]["cv_eer_mean"],
                              "cv_rank1_tnorm10": row["adaptive-t-norm"]["cv_rank1"], "raw_threshold": thr,
                              "inversion_cosine": round(float(np.mean(cos)), 3),
                              "forgery_accepted_by_the_stolen_template": float(np.mean(stolen)),
                              "forgery_accepted_after_renewal": float(np.mean(renewed)),
                              "seconds": round(time.time() - t)}), flush=True)
    finally:
        protect.projections = original
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
