"""HeartID as ``ecgcore enroll`` / ``verify`` run it, under either protection scheme, and the attacks (issue 23).

Protocol (ECG-ID persons never used in training): each person enrols their first record (``rec_1``, about 20 s) and
every later record (other minutes or other days) is one probe, all through :class:`~.product.Verifier` (the
exported ONNX graph, the card's preprocessing, the scheme's template and score). Keys are drawn from a seeded
generator (the product draws them with :mod:`secrets`). Scores:

- ``genuine``: a later record of s under s's key, against s's template.
- ``impostor_stolen_key``: a record of another person t under **s's** key against s's template (the attacker has
  stolen s's key; the biometric alone must reject).
- ``impostor_two_factor``: a record of t under t's own key against s's template (zero-effort impostor).
- ``mated_other_key``: a later record of s under a fresh key of s (a renewed enrolment) against s's template: a
  cancelable scheme must reject it; ``non_mated_other_key``: t under a fresh key, against s's template (both as
  ``verify`` scores them). Their ``*_raw`` twins (``Verifier.raw_compare``: no cohort normalisation, which needs a
  key) give the Gomez-Barrero D↔sys of two template stores (the attacker compares templates made under different
  keys, with every tool of the scheme but the keys).
- identification (rank-1): each probe under every enrolled person's key, against that person's template.

:func:`attacks` adds what an attacker who holds the model, the code and two template stores can do: the linear
key attack on the seed scheme (the network's key layer recovered from the graph itself), score-based linkage
of IoM templates across stores, and inversion by hill climbing from a stolen key + template: the recovered
embedding presented against the stolen template itself (why a key must stay secret), against another enrolment
of the person under the same key (``rec_2``), and against the person's *renewed* template (new key, renewability).
D↔sys comes with its estimator floor (two samples of one distribution at the same sizes).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from . import metrics
from .keys import bits_to_key

__all__ = ["person_records", "scheme_scores", "summarise", "calibrate", "attacks", "scheme_card",
           "dataset_iom_threshold"]


def person_records(raw_dir, persons) -> dict[str, list[Path]]:
    """``{person: [rec_1, rec_2, ...]}`` (WFDB paths without suffix, numeric order) of ECG-ID persons."""
    out = {}
    for p in persons:
        recs = sorted((Path(raw_dir) / p).glob("rec_*.hea"), key=lambda f: int(re.sub(r"\D", "", f.stem) or 0))
        if recs:
            out[p] = [r.with_suffix("") for r in recs]
    return out


def _bits(rng, k):
    while True:
        b = rng.integers(0, 2, size=k).astype(np.uint8)
        if b.any():
            return b


def scheme_scores(ver, records: dict[str, list[Path]], *, seed: int = 0, rank1: bool = True,
                  other_keys: int = 4) -> dict:
    """The protocol's score sets (arrays) for the persons of ``records`` with ``ver``'s scheme (module doc);
    ``other_keys`` fresh keys per person for the other-key (cancelability, unlinkability) scores."""
    rng = np.random.default_rng([seed, 24745])
    persons = [p for p, r in records.items() if len(r) >= 2]
    if len(persons) < 2:
        raise ValueError("the protocol needs at least two persons with two or more records")
    win = {(p, i): ver.windows(r) for p in persons for i, r in enumerate(records[p])}
    keys = {p: _bits(rng, ver.key_size) for p in persons}
    fresh = [{p: _bits(rng, ver.key_size) for p in persons} for _ in range(other_keys)]
    cache, protected = {}, {}

    def vec(p, i, bits):
        key = (p, i, bits.tobytes())
        if key not in protected:  # each (record, key) is protected once, however many templates it meets
            kb = key[2] if ver.scheme == "seed" else b""  # the IoM scheme's embedding does not depend on the key
            if (p, i, kb) not in cache:
                cache[(p, i, kb)] = ver.embed(win[(p, i)], bits_to_key(bits) if ver.scheme == "seed" else None)
            protected[key] = ver.protect(cache[(p, i, kb)], bits)
        return protected[key]

    T = {p: vec(p, 0, keys[p]) for p in persons}
    if getattr(ver, "score_norm", None):  # cohort-normalised: each probe's statistics, computed key by key (the
        for b in keys.values():           # cohort is hashed once per key), then remembered by the Verifier
            for t in persons:
                for i in range(1, len(records[t])):
                    ver.probe_norm(vec(t, i, b), b)
        for f in fresh:
            for t in persons:
                for i in range(1, len(records[t])):
                    ver.probe_norm(vec(t, i, f[t]), f[t])
    out = {k: [] for k in ("genuine", "impostor_stolen_key", "impostor_two_factor", "mated_other_key",
                           "non_mated_other_key", "mated_other_key_raw", "non_mated_other_key_raw")}
    hits = []
    for s in persons:
        for i in range(1, len(records[s])):
            out["genuine"].append(ver.compare(T[s], vec(s, i, keys[s]), keys[s]))
            out["mated_other_key"] += [ver.compare(T[s], vec(s, i, f[s]), f[s]) for f in fresh]
            out["mated_other_key_raw"] += [ver.raw_compare(T[s], vec(s, i, f[s])) for f in fresh]
        for t in persons:
            if t == s:
                continue
            for i in range(1, len(records[t])):
                out["impostor_stolen_key"].append(ver.compare(T[s], vec(t, i, keys[s]), keys[s]))
                out["impostor_two_factor"].append(ver.compare(T[s], vec(t, i, keys[t]), keys[t]))
                out["non_mated_other_key"] += [ver.compare(T[s], vec(t, i, f[t]), f[t]) for f in fresh]
                out["non_mated_other_key_raw"] += [ver.raw_compare(T[s], vec(t, i, f[t])) for f in fresh]
    if rank1:
        for s in persons:
            for i in range(1, len(records[s])):
                sc = {c: ver.compare(T[c], vec(s, i, keys[c]), keys[c]) for c in persons}
                hits.append(max(sc, key=sc.get) == s)
    res = {k: np.asarray(v, np.float64) for k, v in out.items()}
    res["rank1_hits"] = np.asarray(hits, bool)
    res["persons"] = persons
    return res


def calibrate(scores: dict) -> float:
    """The accept threshold: the EER point of genuine vs stolen-key impostor scores (the harder impostor)."""
    return float(metrics.eer(scores["genuine"], scores["impostor_stolen_key"])[1])


def _null_d_sys(non_mated: np.ndarray, n: int, draws: int = 20, seed: int = 0) -> float:
    """Mean D↔sys of ``n`` non-mated scores against the other non-mated ones: what the histogram estimator reports
    for two sets of the same distribution at these sizes (its bias; a truly unlinkable scheme measures about
    this)."""
    from .protect import unlinkability

    rng = np.random.default_rng(seed)
    if non_mated.size < 2 * n:
        return float("nan")
    out = []
    for _ in range(draws):
        perm = rng.permutation(non_mated.size)
        out.append(unlinkability(non_mated[perm[:n]], non_mated[perm[n:]])["d_sys"])
    return float(np.mean(out))


def summarise(scores: dict, threshold: float) -> dict:
    """EERs, FAR/FRR at ``threshold``, other-key acceptance, D↔sys and rank-1 of :func:`scheme_scores`."""
    from .protect import unlinkability

    g, st, tf = scores["genuine"], scores["impostor_stolen_key"], scores["impostor_two_factor"]
    mo, nmo = scores["mated_other_key"], scores["non_mated_other_key"]
    # unlinkability: the comparison a holder of two template stores can make without keys (raw scores; a
    # cohort-normalised score needs the probe's key)
    lmo, lnmo = scores.get("mated_other_key_raw", mo), scores.get("non_mated_other_key_raw", nmo)
    return {"n_persons": len(scores["persons"]), "n_genuine": int(g.size), "n_impostor": int(st.size),
            "eer_stolen_key": float(metrics.eer(g, st)[0]), "eer_two_factor": float(metrics.eer(g, tf)[0]),
            "threshold": float(threshold),
            "frr_at_threshold": float(np.mean(g < threshold)),
            "far_stolen_key_at_threshold": float(np.mean(st >= threshold)),
            "far_two_factor_at_threshold": float(np.mean(tf >= threshold)),
            "same_person_other_key_accepted": float(np.mean(mo >= threshold)),
            "d_sys": float(unlinkability(lmo, lnmo)["d_sys"]),
            "d_sys_estimator_floor": _null_d_sys(lnmo, lmo.size),
            "rank1": float(np.mean(scores["rank1_hits"])) if scores["rank1_hits"].size else None}


def attacks(ver_seed, ver_iom, records: dict[str, list[Path]], *, seed: int = 0, hill_iters: int = 3000) -> dict:
    """Success of the attacks of the module doc, on the persons of ``records`` (enrolment ``rec_1`` in store A,
    ``rec_2`` in store B under independent keys; the attacker holds the model but no key except where stated)."""
    from .protect import hill_climb, iom_hash, iom_similarity, linear_key_linkage, projections, unit, unlinkability
    from ._evaluate import template

    rng = np.random.default_rng([seed, 2018])
    persons = [p for p, r in records.items() if len(r) >= 2]
    n, K = len(persons), ver_seed.key_size
    wa = [ver_seed.windows(records[p][0]) for p in persons]
    wb = [ver_seed.windows(records[p][1]) for p in persons]
    # -- seed scheme: W_k read off the shipped graph (the key enters its last layer linearly)
    x0 = wa[0][:1]
    base = ver_seed.embed(x0, np.zeros((1, K), np.float32))
    W_k = np.concatenate([ver_seed.embed(x0, np.eye(K, dtype=np.float32)[i:i + 1]) - base for i in range(K)])
    ka, kb = [_bits(rng, K) for _ in persons], [_bits(rng, K) for _ in persons]
    ta = np.stack([template(ver_seed.embed(w, bits_to_key(k)), ver_seed.score) for w, k in zip(wa, ka)])
    tb = np.stack([template(ver_seed.embed(w, bits_to_key(k)), ver_seed.score) for w, k in zip(wb, kb)])
    sc = linear_key_linkage(np.repeat(ta, n, 0), np.tile(tb, (n, 1)), W_k).reshape(n, n)
    eye = np.eye(n, dtype=bool)
    seed_lin = {"d_sys": float(unlinkability(sc[eye], sc[~eye])["d_sys"]),
                "d_sys_estimator_floor": _null_d_sys(sc[~eye], n),
                "rank1_linkage": float(np.mean(sc.argmax(1) == np.arange(n)))}
    sc2 = np.array([[ver_seed.compare(a, b) for b in tb] for a in ta])  # plain score-based linkage
    seed_score = {"d_sys": float(unlinkability(sc2[eye], sc2[~eye])["d_sys"]),
                  "d_sys_estimator_floor": _null_d_sys(sc2[~eye], n),
                  "rank1_linkage": float(np.mean(sc2.argmax(1) == np.arange(n)))}
    # -- IoM: score-based linkage across stores, and the linear attack has no key layer to invert
    # the IoM scheme's own network inputs (a beat-lda model reads median-beat groups, not the seed's windows)
    ea = [unit(template(ver_iom.embed(ver_iom.windows(records[p][0])), "cosine")) for p in persons]
    eb = [unit(template(ver_iom.embed(ver_iom.windows(records[p][1])), "cosine")) for p in persons]
    ia = [iom_hash(e, _bits(rng, K)) for e in ea]
    ib = [iom_hash(e, _bits(rng, K)) for e in eb]
    s3 = np.array([[float(iom_similarity(a, b)) for b in ib] for a in ia])
    iom_link = {"d_sys": float(unlinkability(s3[eye], s3[~eye])["d_sys"]),
                "d_sys_estimator_floor": _null_d_sys(s3[~eye], n),
                "rank1_linkage": float(np.mean(s3.argmax(1) == np.arange(n)))}
    # -- inversion from a stolen key + template (store A), presented against the renewed template (store B)
    rec_cos, stolen, accepted_same, accepted_renewed = [], [], [], []
    for i in range(n):
        k_old, k_new = _bits(rng, K), _bits(rng, K)
        W_old = projections(k_old, ea[i].size)
        target = iom_hash(ea[i], W=W_old)
        z, _ = hill_climb(target, W_old, ea[i].size, iters=hill_iters, seed=i)
        # each forgery is scored as verify scores it (the card's score, cohort-normalised where it says so)
        forged_old, forged_new = iom_hash(z, W=W_old), iom_hash(z, k_new)
        stolen.append(ver_iom.compare(target, forged_old, k_old) >= ver_iom.threshold)
        rec_cos.append(float(unit(z) @ ea[i]))
        accepted_same.append(ver_iom.compare(iom_hash(eb[i], W=W_old), forged_old, k_old) >= ver_iom.threshold)
        accepted_renewed.append(ver_iom.compare(iom_hash(eb[i], k_new), forged_new, k_new) >= ver_iom.threshold)
    inversion = {"cosine_to_true_embedding_mean": float(np.mean(rec_cos)),
                 "accepted_by_the_stolen_template": float(np.mean(stolen)),
                 "accepted_by_another_enrolment_under_the_stolen_key": float(np.mean(accepted_same)),
                 "accepted_after_renewal": float(np.mean(accepted_renewed)), "iters": hill_iters}
    return {"n_persons": n, "seed_linear_key_attack": seed_lin, "seed_score_linkage": seed_score,
            "iom_score_linkage": iom_link, "iom_inversion_hill_climb": inversion}


def scheme_card(model, raw_dir, val_persons, test_persons, *, seed: int = 0, hill_iters: int = 3000,
                seed_model=None, other_keys: int = 64, threshold: float | None = None,
                threshold_chosen_on: str | None = None) -> dict:
    """Everything a card says about the schemes of a HeartID model: the grp-iom threshold chosen on the validation
    persons (:func:`calibrate`), both schemes' product-protocol figures on the test persons (the seed scheme at
    its card threshold), and :func:`attacks` on the test persons. ``{"verification_schemes", "metrics"}``.
    ``other_keys``: fresh keys per person for grp-iom's other-key scores (D↔sys): the histogram estimator's bias
    falls with the number of mated scores (4 keys: about 300 on the 18 test persons, bias ~0.06; 64 keys: ~5,000,
    bias ~0.015); the seed scheme, linkable by orders of magnitude more, keeps 4 (each of its keys costs a network
    pass per record).
    ``seed_model``: the network the seed scheme runs on (default ``model``; a ``beat-lda`` model takes no key, so
    its card compares with the bundled seed network). ``threshold``: grp-iom's accept threshold when it was chosen
    elsewhere (``threshold_chosen_on`` says where: e.g. the training persons' cross-validation of a cohort-normalised
    score, ``tools/heartid_score_norm.py``); the validation persons are then scored at it, not calibrated on. The
    model card's ``score_norm`` (if any) is applied throughout and kept in the scheme entry."""
    from .product import Verifier
    from .protect import IOM_M, IOM_Q, SCHEME, score_description

    val, test = person_records(raw_dir, val_persons), person_records(raw_dir, test_persons)
    iom = Verifier(model, scheme="grp-iom", threshold=0.0)
    val_scores = scheme_scores(iom, val, seed=seed, other_keys=other_keys)
    thr = calibrate(val_scores) if threshold is None else float(threshold)
    iom.threshold = thr
    seed_ver = Verifier(model if seed_model is None else seed_model, scheme="seed")
    out = {SCHEME: {"validation": summarise(val_scores, thr),
                    "test": summarise(scheme_scores(iom, test, seed=seed + 1, other_keys=other_keys), thr)},
           "seed": {"test": summarise(scheme_scores(seed_ver, test, seed=seed + 1), seed_ver.threshold)}}
    norm = iom.score_norm
    schemes = {SCHEME: {"threshold": thr, "score": score_description(norm), "m": IOM_M, "q": IOM_Q,
                        "embedding": ("network output under the all-zero key (its key-independent part); template = "
                                      "direction of the mean unit window embedding") if iom.has_key_input else
                                     "beat-lda embedding of each median-beat group; template = direction of the mean "
                                     "unit group embedding",
                        "threshold_chosen_on": threshold_chosen_on if threshold is not None else
                                               f"EER point (genuine vs stolen-key impostors) of the validation "
                                               f"persons {sorted(val)}, enrol rec_1, probe each later record"}}
    if norm is not None:
        schemes[SCHEME]["score_norm"] = dict(norm)
    return {"verification_schemes": schemes,
            "metrics": {"protocol": "ECG-ID persons never used in training: enrol rec_1 through the product path, "
                                    "probe every later record (scheme_eval module doc)",
                        "other_keys_per_person": {SCHEME: other_keys, "seed": 4},
                        "schemes": out,
                        "attacks": attacks(seed_ver, iom, test, seed=seed + 2, hill_iters=hill_iters)}}


def dataset_iom_threshold(onnx_path, subjects, probe_windows: int = 7, *, max_enrol: int = 70,
                          max_groups: int = 20, seed: int = 0) -> dict:
    """The grp-iom accept threshold of a freshly exported model, from ``heartid`` dataset subjects (the run's
    validation subjects): template = IoM hash of the enrolment windows (first ``max_enrol``), probes = groups of
    ``probe_windows`` later windows, all under the subject's key; EER point of genuine vs stolen-key impostor
    probes (the training evaluation's protocol, with the product's template). ``{"threshold", "eer", ...}``."""
    import onnxruntime as ort

    from ._evaluate import template
    from .protect import iom_hash, iom_similarity, projections

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    k = int(sess.get_inputs()[1].shape[-1]) if isinstance(sess.get_inputs()[1].shape[-1], int) else 100
    zero = np.zeros((1, k), np.float32)

    def emb(w):
        return sess.run(None, {"ecg": np.ascontiguousarray(w, np.float32), "key": zero})[0]

    rng = np.random.default_rng([seed, 24745])
    subs = [s for s in subjects if len(s.enrol_windows) and s.probe_groups(probe_windows, max_groups)]
    if len(subs) < 2:
        raise ValueError("the grp-iom threshold needs at least two validation subjects with probes")
    d = emb(subs[0].enrol_windows[:1]).shape[-1]
    W = [projections(_bits(rng, k), d) for _ in subs]
    T = [iom_hash(template(emb(s.enrol_windows[:max_enrol]), "cosine"), W=w) for s, w in zip(subs, W)]
    P = [[template(emb(g), "cosine") for _, g in s.probe_groups(probe_windows, max_groups)] for s in subs]
    gen, imp = [], []
    for i, (t, w) in enumerate(zip(T, W)):
        for j, probes in enumerate(P):
            for p in probes:
                (gen if i == j else imp).append(float(iom_similarity(t, iom_hash(p, W=w))))
    eer, thr = metrics.eer(np.asarray(gen), np.asarray(imp))
    return {"threshold": float(thr), "eer": float(eer), "n_subjects": len(subs), "n_genuine": len(gen),
            "n_impostor": len(imp), "probe_windows": probe_windows}
