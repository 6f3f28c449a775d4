"""Template protection for HeartID (issue 23): keyed Index-of-Max hashing, and how to measure it.

The seed's cancelable scheme feeds the key into the network, ``e = x·W_x + k·W_k + b``: the key enters linearly,
so anyone holding the model links two enrolments of one person under different keys (``T1 − T2`` lies almost in
the row space of ``W_k``), and a same-key pair compares exactly as without a key. ecgcore's default scheme puts a
standard template-protection transform on top of a key-*independent* biometric embedding instead:

**GRP-IoM** (Gaussian-random-projection Index-of-Max hashing; Jin, Hwang, Lai, Kim & Teoh, IEEE TIFS 2018). The
subject's secret key (the key file's random bits, :mod:`secrets`) seeds ``m`` Gaussian matrices ``W_i`` of shape
(q, d); the protected template of a unit embedding ``x`` is the ``m`` indices ``argmax_j (W_i x)_j`` ∈ {0 … q−1}.
Two templates are compared by the share of equal indices. Only indices are stored: the magnitude of every
projection is discarded (non-invertible by construction: many embeddings give one template), a new key gives
independent projections (renewable; templates under different keys are unlinkable), and without the key the
projections — hence the meaning of every index — are unknown.

**Score normalisation** (optional, per model card: ``score_norm``). A raw IoM score says how many indices agree,
but how many agree *by chance* depends on the probe: a probe near the population's average shape agrees with many
templates. Adaptive T-norm (the cohort normalisation of speaker verification: Auckenthaler, Carey & Lloyd-Thomas,
DSP 2000; top-K cohort selection after Sturim & Reynolds, ICASSP 2005) divides it out at verification time:
``(s − μ_K) / σ_K``, where μ_K and σ_K are the mean and standard deviation of the probe's K highest similarities
to a public *cohort* (embeddings of people outside the system, shipped with the model) hashed under the **same
key** (:func:`cohort_normalise`). It needs nothing stored beside the template, so templates, unlinkability and
renewal are unchanged; the score becomes "how far above the probe's best cohort matches".

Measuring it (Gomez-Barrero et al., "General framework to evaluate unlinkability in biometric template protection
systems", IEEE TIFS 13(6), 2018): :func:`unlinkability` (:mod:`.metrics`) gives the local D↔(s) and the global D↔sys ∈ [0, 1] from
mated (same subject, different keys) and non-mated linkage scores — 0: fully unlinkable, 1: fully linkable.
:func:`linear_key_linkage` is the attack on the seed's scheme described above; :func:`hill_climb` the inversion
attempt from a template when the key is stolen.
"""
from __future__ import annotations

import hashlib

import numpy as np

from ._evaluate import _unit as unit
from .metrics import unlinkability  # Gomez-Barrero et al. (2018): D↔(s) and D↔sys

__all__ = ["SCHEME", "IOM_M", "IOM_Q", "projections", "iom_hash", "iom_similarity", "unit", "unlinkability",
           "score_description", "cohort_shares", "top_stats", "cohort_stats",
           "cohort_normalise", "linear_key_linkage", "hill_climb"]

SCHEME = "grp-iom-v1"
IOM_M = 512   # hash functions (template length)
IOM_Q = 16    # projections per hash (indices 0..15)


def projections(bits, dim: int, m: int = IOM_M, q: int = IOM_Q) -> np.ndarray:
    """(m, q, dim) float64 Gaussian matrices derived from the key ``bits`` (SHA-256 → PCG64 seed)."""
    b = np.asarray(bits, np.uint8).reshape(-1)
    if not b.any():
        raise ValueError("an all-zero key")
    seed = hashlib.sha256(SCHEME.encode() + np.packbits(b, bitorder="little").tobytes()
                          + f"|{dim}|{m}|{q}".encode()).digest()
    rng = np.random.Generator(np.random.PCG64(int.from_bytes(seed, "little")))
    return rng.standard_normal((m, q, dim))


def iom_hash(emb: np.ndarray, bits=None, *, m: int = IOM_M, q: int = IOM_Q, W: np.ndarray | None = None) -> np.ndarray:
    """Protected template(s): (..., d) embeddings → (..., m) uint8 indices of the max projection per hash."""
    x = unit(emb)
    W = projections(bits, x.shape[-1], m, q) if W is None else W
    return np.argmax(np.einsum("mqd,...d->...mq", W, x), axis=-1).astype(np.uint8)


def iom_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Share of equal indices, row-wise over the last axis (1: identical, 1/q: unrelated)."""
    return np.mean(np.asarray(a) == np.asarray(b), axis=-1)


def score_description(norm: dict | None) -> str:
    """What a grp-iom score is, for cards: the raw share, or its cohort normalisation ``norm`` (a card's
    ``score_norm``)."""
    if norm is None:
        return "share of equal IoM indices"
    return ("share of equal IoM indices, cohort-normalised (adaptive T-norm): (s - mean) / sd of the probe's "
            f"top-{norm.get('top_k')} shares against the cohort hashed under the same key")


def cohort_shares(probes: np.ndarray, cohort: np.ndarray) -> np.ndarray:
    """(n, c) shares of equal indices of each probe (n, m) against each cohort member (c, m), all hashed under the
    probes' key."""
    probes, cohort = np.atleast_2d(np.asarray(probes)), np.atleast_2d(np.asarray(cohort))
    if probes.shape[-1] != cohort.shape[-1]:
        raise ValueError(f"cohort hashes have length {cohort.shape[-1]}, probes {probes.shape[-1]}")
    c = np.empty((probes.shape[0], cohort.shape[0]))
    for i, p in enumerate(probes):  # row by row: (c, m) at a time, whatever the number of probes
        c[i] = np.mean(cohort == p[None, :], axis=1)
    return c


def top_stats(shares: np.ndarray, top_k: int | None, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation (each (n,)) of each row's ``top_k`` highest ``shares`` (None: all); the deviation
    is floored at one index of ``m`` (1/m)."""
    shares = np.atleast_2d(shares)
    k = shares.shape[1] if top_k is None else int(top_k)
    if not 2 <= k <= shares.shape[1]:
        raise ValueError(f"top_k must lie in 2..{shares.shape[1]} (the cohort's size), got {top_k}")
    top = -np.partition(-shares, k - 1, axis=1)[:, :k]
    return top.mean(axis=1), np.maximum(top.std(axis=1), 1.0 / m)


def cohort_stats(probes: np.ndarray, cohort: np.ndarray, top_k: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation (each (n,)) of each probe's ``top_k`` highest shares of equal indices against the
    ``cohort`` (c, m) hashed under the probes' key (None: all c); the deviation is floored at one index (1/m)."""
    return top_stats(cohort_shares(probes, cohort), top_k, np.shape(probes)[-1])


def cohort_normalise(scores, probes: np.ndarray, cohort: np.ndarray, top_k: int | None) -> np.ndarray:
    """Adaptive T-norm of raw IoM scores (module doc): ``scores`` (n,) of ``probes`` (n, m) against their templates,
    ``cohort`` (c, m) the cohort's hashes under the probes' key; ``top_k`` the cohort matches kept per probe (None:
    all). Returns ``(scores − μ_K) / σ_K`` (n,) float64 (:func:`cohort_stats`), in standard deviations of the probe's
    best cohort scores."""
    mu, sd = cohort_stats(probes, cohort, top_k)
    return (np.asarray(scores, np.float64).reshape(-1) - mu) / sd


def linear_key_linkage(t1: np.ndarray, t2: np.ndarray, W_k: np.ndarray) -> np.ndarray:
    """The seed scheme's linkage attack: does ``(t1 − t2)·W_k⁺`` look like a difference of two keys?

    With ``e = x·W_x + k·W_k + b``, two templates of one person under keys k1, k2 differ by ``(k1 − k2)·W_k`` plus
    the small within-person variation, so ``d = (t1 − t2)·W_k⁺`` (``W_k⁺`` the pseudo-inverse, K × D → D × K) is
    close to ``k1 − k2``: a difference of two unit-norm binary vectors, whose entries sit near three levels
    {−c, 0, +c} (c ≈ 1/√(bits set)). Templates of different people add ``(x1 − x2)·W_x·W_k⁺``, which does not.
    Score = − the RMS distance of d's entries to the nearest of {−c, 0, +c} (best c): what the decoded key
    difference leaves unexplained, near 0 for mated pairs. (n, D) pairs → (n,).
    """
    d = np.atleast_2d(np.asarray(t1, np.float64) - np.asarray(t2, np.float64)) @ np.linalg.pinv(
        np.asarray(W_k, np.float64))
    out = np.empty(d.shape[0])
    for i, row in enumerate(d):
        a = np.abs(row)
        best = float(np.mean(row ** 2))
        for c in np.quantile(a, np.linspace(0.5, 1.0, 26)):
            if c <= 0:
                continue
            err = np.minimum(a, np.abs(a - c)) ** 2  # distance to 0 or to ±c
            best = min(best, float(err.mean()))
        out[i] = -np.sqrt(best)
    return out


def hill_climb(target: np.ndarray, W: np.ndarray, dim: int, *, iters: int = 3000, step: float = 0.3,
               seed: int = 0) -> tuple[np.ndarray, float]:
    """Inversion attempt with a stolen key: find an embedding whose hash under projections ``W`` matches the
    protected ``target`` (random-restart-free hill climbing on the share of equal indices, Gaussian steps that
    shrink on failure). Returns (embedding (dim,), its similarity to the target)."""
    rng = np.random.default_rng(seed)
    z = unit(rng.standard_normal(dim))
    best = float(iom_similarity(iom_hash(z, W=W), target))
    s = step
    for _ in range(iters):
        cand = unit(z + s * rng.standard_normal(dim))
        sc = float(iom_similarity(iom_hash(cand, W=W), target))
        if sc >= best:
            z, best = cand, sc
        else:
            s = max(s * 0.995, 0.01)
    return z, best
