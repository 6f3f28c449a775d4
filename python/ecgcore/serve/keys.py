"""API keys and verification tokens: generated with ``secrets``, stored only as SHA-256 digests.

A plain (unsalted, fast) hash is enough here because both are 256-bit random strings: there is no
dictionary to attack, and a fast hash keeps the per-request key lookup a single indexed equality.
"""
from __future__ import annotations

import hashlib
import re
import secrets

KEY_BYTES = 32  # token_urlsafe(32) -> 43 URL-safe characters, like the seed's keys
# One plain RFC 5322 addr-spec: a dot-atom local part (no quoted strings, no comments, no lists) and a DNS
# host name with a top-level label of letters (or an IDNA "xn--" label). What a mail server would parse as
# a comment ("(1)victim@x.io"), a group or a second recipient ("a@x.io,victim@x.io") is refused outright:
# each of those reaches the same mailbox under another spelling, which would bypass the per-address limit.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_EMAIL = re.compile(rf"^{_ATEXT}+(?:\.{_ATEXT}+)*@(?:{_LABEL}\.)+(?:[A-Za-z]{{2,63}}|xn--[A-Za-z0-9-]{{1,59}})$")


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
    """Trimmed, lower-cased address, as the seed does before any check: one spelling per mailbox, so the
    per-address limits and the one-active-key rule see one identity."""
    return str(value).strip().lower()


def valid_email(email: str) -> bool:
    """One plain addr-spec (``local@host.tld``): dot-atom local part of at most 64 characters, a DNS host
    name, 254 characters in all. No comments, quoted strings, display names, groups or lists."""
    if len(email) > 254 or not _EMAIL.match(email):
        return False
    return len(email.rsplit("@", 1)[0]) <= 64
