"""Triplet losses over the five embeddings of the Siamese wrapper (SPEC §1.3-1.4).

``a`` = (anchor, k1), ``p1`` = (positive, k1), ``p2`` = (positive, k2), ``n1`` = (negative, k1),
``n2`` = (negative, k2); all (B, D). Distances are Euclidean.
"""
from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn


def _dist(u: mx.array, v: mx.array) -> mx.array:
    # the epsilon keeps the gradient of the norm finite when two embeddings coincide
    return mx.sqrt(((u - v) ** 2).sum(axis=-1) + 1e-12)


def heartid_loss(a, p1, p2, n1, n2, margin: float = 1.0) -> mx.array:
    """The seed's 4-term loss: both positives (same and other key) closer than both negatives.

    ``relu(dP1-dN1+m) + relu(dP1-dN2+m) + relu(dP2-dN1+m) + relu(dP2-dN2+m)``, batch mean. It pulls the same
    identity under another key towards the anchor, i.e. it trains the key out of the embedding (not cancelable).
    """
    dp1, dp2, dn1, dn2 = _dist(a, p1), _dist(a, p2), _dist(a, n1), _dist(a, n2)
    terms = [nn.relu(dp - dn + margin) for dp in (dp1, dp2) for dn in (dn1, dn2)]
    return (terms[0] + terms[1] + terms[2] + terms[3]).mean()


def securetl_loss(a, p1, p2, n1, n2, margin: float = 1.0) -> mx.array:
    """The original Secure Triplet Loss (Pinto et al., jtrpinto/SecureTL ``losses.py``).

    Only the same identity under the same key is positive; the same identity under a different key counts as
    a negative: ``relu(dSP - min(dSN, dDP, dDN) + m)``, batch mean.
    """
    dsp, ddp, dsn, ddn = _dist(a, p1), _dist(a, p2), _dist(a, n1), _dist(a, n2)
    return nn.relu(dsp - mx.minimum(mx.minimum(dsn, ddp), ddn) + margin).mean()


LOSSES = {"heartid": heartid_loss, "securetl": securetl_loss}
