"""Fixed-window rate limits whose counters live in the database, so they hold across workers and hosts.

A fixed window lets a client send up to twice the limit around a window edge; that is the usual
trade for one atomic upsert per request instead of a sorted log per client.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from .db import Store
from .keys import digest


@dataclass
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    retry_after_s: int


class RateLimiter:
    """``check(kind, ident)`` counts one request of ``ident`` (an IP, a key, an email) and says if it may pass.

    Identifiers are hashed before they become bucket names: the counters table never holds a key or an
    address in clear.
    """

    def __init__(self, store: Store, limits: dict[str, tuple[int, int]], clock=time.time):
        self.store = store
        self.limits = limits  # kind -> (max requests, window seconds); max 0 disables the kind
        self.clock = clock

    def check(self, kind: str, ident: str, conn=None) -> Verdict:
        limit, window = self.limits[kind]
        if limit <= 0:
            return Verdict(True, 0, 0, 0)
        now = self.clock()
        start = int(now // window) * window
        count = self.store.hit(f"{kind}:{digest(ident)[:40]}", start, conn=conn)
        retry = max(1, int(start + window - now + 0.999))
        return Verdict(count <= limit, limit, max(0, limit - count), retry)
