"""API keys and verification tokens: generated with ``secrets``, stored only as SHA-256 digests.

A plain (unsalted, fast) hash is enough here because both are 256-bit random strings: there is no
dictionary to attack, and a fast hash keeps the per-request key lookup a single indexed equality.
"""
from __future__ import annotations

import hashlib
import re
import secrets

KEY_BYTES = 32  # token_urlsafe(32) -> 43 URL-safe characters, like the seed's keys
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def new_api_key() -> str:
    """A fresh API key (43 URL-safe characters). It is shown once, in the key email, and never stored."""
    return secrets.token_urlsafe(KEY_BYTES)


def new_token() -> str:
    """A fresh single-use verification token for the email link."""
    return secrets.token_urlsafe(KEY_BYTES)


def digest(secret: str) -> str:
    """Hex SHA-256 of a key or token: what the database holds and is searched by."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def normalize_email(value) -> str:
    """Lower-cased, trimmed address, as the seed does before any check."""
    return str(value).strip().lower()


def valid_email(email: str) -> bool:
    """Seed rule (contains "@" and a "."), tightened to one "@" with text on both sides and no spaces."""
    return bool(_EMAIL.match(email)) and len(email) <= 254
