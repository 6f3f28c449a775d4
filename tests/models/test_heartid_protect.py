"""HeartID template protection (ecgcore.models.heartid.protect): GRP-IoM hashing, the unlinkability metric, and the
attacks — the linear key attack breaks the seed's key-in-the-network scheme and finds nothing in IoM templates."""
from __future__ import annotations

import numpy as np
import pytest

from ecgcore.models.heartid.keys import random_bits
from ecgcore.models.heartid.protect import (IOM_Q, hill_climb, iom_hash, iom_similarity, linear_key_linkage,
                                            projections, unit, unlinkability)


def test_iom_is_keyed_deterministic_and_scale_free():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(100)
    k1, k2 = random_bits(100), random_bits(100)
    t = iom_hash(x, k1)
    assert t.shape == (512,) and t.dtype == np.uint8 and t.max() < IOM_Q
    np.testing.assert_array_equal(t, iom_hash(3.7 * x, k1))          # only the direction matters
    np.testing.assert_array_equal(projections(k1, 100), projections(k1.copy(), 100))
    assert iom_similarity(t, iom_hash(x, k2)) < 0.15                  # another key: unrelated indices (1/16 expected)
    near = x + 0.2 * rng.standard_normal(100) * np.linalg.norm(x) / 10
    assert iom_similarity(t, iom_hash(near, k1)) > 0.6               # a close embedding under the same key matches
    far = rng.standard_normal(100)
    assert iom_similarity(t, iom_hash(far, k1)) < 0.2
    with pytest.raises(ValueError, match="all-zero"):
        projections(np.zeros(100, np.uint8), 100)


def test_unlinkability_metric_bounds():
    rng = np.random.default_rng(1)
    same = unlinkability(rng.normal(0, 1, 20000), rng.normal(0, 1, 20000), bins=50)["d_sys"]
    assert same < 0.05
    apart = unlinkability(rng.normal(10, 1, 5000), rng.normal(0, 1, 5000), bins=50)["d_sys"]
    assert apart > 0.99
    half = unlinkability(rng.normal(1.0, 1, 20000), rng.normal(0, 1, 20000), bins=50)["d_sys"]
    assert 0.2 < half < 0.6
    with pytest.raises(ValueError):
        unlinkability([], [1.0])


def _seed_like(n_people=40, d_in=60, d=100, k=100, noise=0.05, key_scale=10.0, seed=2):
    """A linear key-in-the-network embedder e = x W_x + s · key W_k, the shape of the seed's last layer (the bundled
    model trains with a key gain: SecureTL needs the key's offset to stand out of the identity spread)."""
    rng = np.random.default_rng(seed)
    W_x, W_k = rng.standard_normal((d_in, d)) / np.sqrt(d_in), rng.standard_normal((k, d)) / np.sqrt(k)
    people = rng.standard_normal((n_people, d_in))

    def embed(p, bits):
        key = bits / np.linalg.norm(bits)
        return (people[p] + noise * rng.standard_normal(d_in)) @ W_x + key_scale * key @ W_k

    return embed, W_k, W_x


def test_linear_attack_links_the_seed_scheme_and_not_iom():
    embed, W_k, W_x = _seed_like()
    n = 40
    keys_a = [random_bits(100) for _ in range(n)]
    keys_b = [random_bits(100) for _ in range(n)]
    store_a = np.stack([embed(p, keys_a[p]) for p in range(n)])      # enrolment 1 of every person, own key
    store_b = np.stack([embed(p, keys_b[p]) for p in range(n)])      # enrolment 2, a renewed key
    scores = linear_key_linkage(store_a[:, None, :].repeat(n, 1).reshape(-1, 100),
                                store_b[None, :, :].repeat(n, 0).reshape(-1, 100), W_k).reshape(n, n)
    mated, non_mated = np.diag(scores), scores[~np.eye(n, dtype=bool)]
    seed_d = unlinkability(mated, non_mated, bins=20)["d_sys"]
    assert seed_d > 0.9 and (scores.argmax(1) == np.arange(n)).mean() > 0.9   # the attacker links nearly everyone
    # IoM over the key-independent part (the embedding under one fixed public key), each enrolment its own key
    pub = np.ones(100, np.uint8)
    xa = np.stack([embed(p, pub) for p in range(n)])
    xb = np.stack([embed(p, pub) for p in range(n)])
    ta = np.stack([iom_hash(xa[p], keys_a[p]) for p in range(n)])
    tb = np.stack([iom_hash(xb[p], keys_b[p]) for p in range(n)])
    sim = iom_similarity(ta[:, None, :], tb[None, :, :])
    iom_d = unlinkability(np.diag(sim), sim[~np.eye(n, dtype=bool)], bins=10)["d_sys"]
    assert iom_d < 0.3 and abs(np.diag(sim).mean() - 1 / IOM_Q) < 0.03
    # the same templates under one key are of course linkable: renewability needs the new key
    same_key = np.stack([iom_hash(xb[p], keys_a[p]) for p in range(n)])
    assert np.diag(iom_similarity(ta[:, None, :], same_key[None, :, :])).mean() > 0.8


def test_hill_climb_with_a_stolen_key_reaches_the_template_but_not_a_renewed_one():
    rng = np.random.default_rng(3)
    x = unit(rng.standard_normal(100))
    k_old, k_new = random_bits(100), random_bits(100)
    W_old = projections(k_old, 100, m=128)
    target = iom_hash(x, W=W_old)
    z, sim = hill_climb(target, W_old, 100, iters=600, seed=4)
    start = float(iom_similarity(iom_hash(unit(np.random.default_rng(4).standard_normal(100)), W=W_old), target))
    assert sim > start + 0.2                                         # the attack does climb
    # after revocation the template is renewed under a new key; the pre-image found for the old one is then
    # scored like any other embedding close to the person's
    W_new = projections(k_new, 100, m=128)
    renewed = iom_hash(x, W=W_new)
    s_new = float(iom_similarity(iom_hash(z, W=W_new), renewed))
    assert s_new <= sim + 1e-9


def test_attacker_with_the_model_and_two_stores(data_dir):
    """Issue 23's attacker on real unseen persons (8 ECG-ID test persons of the bundled card, bounded sizes): holds
    the shipped model, the code and two template stores (rec_1 under one key, rec_2 under another), no key.
    The seed scheme's templates link (plain score comparison finds the same person far above chance); grp-iom
    templates do not (rank-1 linkage at chance, D↔sys at the estimator's own floor); a template inverted with a
    stolen key does not open the person's renewed template."""
    from ecgcore.export import resolve_model
    from ecgcore.models.heartid.product import Verifier
    from ecgcore.models.heartid.scheme_eval import attacks, person_records

    _, card = resolve_model("heartid")
    ids = [s.split(":", 1)[1] for s in card.training["test_subjects"] if s.startswith("ecgid:")]
    recs = person_records(data_dir / "ecgiddb", ids)
    recs = dict(list({p: r for p, r in recs.items() if len(r) >= 2}.items())[:8])
    r = attacks(Verifier("heartid", scheme="seed"), Verifier("heartid"), recs, hill_iters=400)
    n = r["n_persons"]
    assert n == 8
    seed_link, iom_link = r["seed_score_linkage"], r["iom_score_linkage"]
    assert seed_link["rank1_linkage"] >= 3 / n, seed_link
    assert iom_link["rank1_linkage"] <= 2 / n, iom_link
    assert iom_link["d_sys"] <= iom_link["d_sys_estimator_floor"] + 0.15, iom_link
    assert seed_link["d_sys"] - seed_link["d_sys_estimator_floor"] > iom_link["d_sys"] - iom_link["d_sys_estimator_floor"]
    inv = r["iom_inversion_hill_climb"]
    assert inv["accepted_after_renewal"] == 0.0, inv


def test_product_protocol_other_key_and_two_factor(data_dir):
    """enroll/verify's protocol on 6 unseen persons: under grp-iom a renewed key never accepts the same person,
    and zero-effort impostors (their own key) are all rejected."""
    from ecgcore.export import resolve_model
    from ecgcore.models.heartid.product import Verifier
    from ecgcore.models.heartid.scheme_eval import person_records, scheme_scores, summarise

    _, card = resolve_model("heartid")
    ids = [s.split(":", 1)[1] for s in card.training["test_subjects"] if s.startswith("ecgid:")]
    recs = person_records(data_dir / "ecgiddb", ids)
    recs = dict(list({p: r for p, r in recs.items() if len(r) >= 2}.items())[:6])
    ver = Verifier("heartid")
    sc = scheme_scores(ver, recs, rank1=False, other_keys=2)
    s = summarise(sc, ver.threshold)
    assert s["same_person_other_key_accepted"] == 0.0 and s["far_two_factor_at_threshold"] == 0.0, s
    assert abs(np.mean(sc["mated_other_key"]) - 1 / 16) < 0.03  # independent projections: chance agreement
    assert np.mean(sc["genuine"]) > np.mean(sc["impostor_stolen_key"]) + 0.1


def test_cohort_normalise_by_definition():
    """Adaptive T-norm: (s - mean) / sd of each probe's top-K shares against the cohort, row by row."""
    from ecgcore.models.heartid.protect import cohort_normalise

    rng = np.random.default_rng(5)
    k = random_bits(100)
    cohort = iom_hash(rng.standard_normal((30, 40)), k)
    probes = iom_hash(rng.standard_normal((4, 40)), k)
    raw = rng.uniform(0, 1, 4)
    got = cohort_normalise(raw, probes, cohort, 5)
    for i in range(4):
        shares = np.sort([np.mean(c == probes[i]) for c in cohort])[::-1][:5]
        assert got[i] == pytest.approx((raw[i] - shares.mean()) / shares.std(), rel=1e-12)
    every = cohort_normalise(raw, probes, cohort, None)
    shares = np.array([[np.mean(c == p) for c in cohort] for p in probes])
    np.testing.assert_allclose(every, (raw - shares.mean(1)) / shares.std(1), rtol=1e-12)
    # the same raw score counts for less from a probe that matches many cohort people well (a "popular" probe)
    popular = cohort.copy()
    popular[:3] = probes[0]
    popular[3:6, :256] = probes[0][:256]
    a, b = cohort_normalise([0.5, 0.5], probes[:2], popular, 5)
    assert a < 0 < b
    # an all-equal cohort (sd 0) is floored at one index (1/512), not a division by zero
    flat = cohort_normalise([0.5], probes[0], np.repeat(cohort[:1], 5, 0), 5)[0]
    assert flat == pytest.approx((0.5 - np.mean(cohort[0] == probes[0])) * 512, rel=1e-12)
    with pytest.raises(ValueError, match="top_k"):
        cohort_normalise(raw, probes, cohort, 31)
    with pytest.raises(ValueError, match="top_k"):
        cohort_normalise(raw, probes, cohort, 1)
    with pytest.raises(ValueError, match="length"):
        cohort_normalise(raw, probes[:, :100], cohort, 5)


def test_cross_validate_score_norm_scores_in_the_protected_domain():
    """The fold protocol on synthetic persons (one direction each, records = noisy copies; a cohort of other
    persons always in the fit): every fold's probes are scored against every held-out template, genuine and
    impostor scores are pooled as counted, the T-norm rows are the raw row's scores normalised, and well-separated
    persons are told apart."""
    from ecgcore.models.heartid.beats import cross_validate_score_norm

    rng = np.random.default_rng(11)
    L = 30

    def person(n_records):
        c = rng.standard_normal(L)
        return [c + 0.15 * rng.standard_normal((4, L)) for _ in range(n_records)]

    data = {f"p{i}": person(3) for i in range(9)} | {f"c{i}": person(1) for i in range(12)}
    cv = [f"p{i}" for i in range(9)]
    cohort = [f"c{i}" for i in range(12)]
    r = cross_validate_score_norm(data, data, cv, cohort, n_pca=10, top_ks=(3, None), folds=3, repeats=2,
                                  fixed=cohort)
    assert set(r) == {"raw", "tnorm-top3", "tnorm-topNone"}
    # 6 folds of 3 held-out persons, each with 2 later records: 6 genuine and 6 * 3 * 2 - 6 impostor scores a fold
    for v in r.values():
        assert len(v["eer_folds"]) == 6 and v["genuine"].size == 36 and v["impostor"].size == 72
    raw = r["raw"]
    assert np.all((raw["genuine"] >= 0) & (raw["genuine"] <= 1)) and raw["genuine"].mean() > 0.6
    assert raw["impostor"].mean() < 0.3 and np.mean(raw["eer_folds"]) < 0.1 and raw["rank1"] > 0.9
    for name in ("tnorm-top3", "tnorm-topNone"):  # normalised: in cohort standard deviations, still separated
        t = r[name]
        assert t["genuine"].mean() > t["impostor"].mean() + 3 and np.mean(t["eer_folds"]) < 0.1
