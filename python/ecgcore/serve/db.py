"""Storage of API keys, verification tokens and rate-limit counters (SQLAlchemy 2; SQLite or PostgreSQL).

Every state change is one short transaction whose outcome the database decides, so that several
threads, several ``--workers`` processes or several hosts on one PostgreSQL never lose an update:

* a key is authenticated and its usage counted by one ``UPDATE ... RETURNING`` (no read-modify-write);
* a token is consumed by a conditional ``UPDATE`` (``used_at IS NULL AND expires_at > now``): exactly one
  caller wins a replay race;
* a partial unique index allows at most one active key per email, whatever the interleaving;
* rate-limit counters are ``INSERT ... ON CONFLICT DO UPDATE count = count + 1 RETURNING count``.

On SQLite every transaction starts with ``BEGIN IMMEDIATE``: writers queue on the busy timeout instead of
failing with "database is locked" when two deferred transactions try to upgrade their locks at once.
"""
from __future__ import annotations

import random
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import (BigInteger, Boolean, DateTime, Index, Integer, String, create_engine, delete, event,
                        select, text, update)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from .keys import digest, new_api_key, new_token


def utcnow() -> datetime:
    """Naive UTC: SQLite has no time zones, so both back-ends store naive UTC timestamps."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    email: Mapped[str] = mapped_column(String(254), index=True, nullable=False)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    last_used: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    deactivated_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    request_count: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)

    __table_args__ = (
        Index("uq_api_keys_one_active_per_email", "email", unique=True,
              sqlite_where=text("active"), postgresql_where=text("active")),
    )


class VerificationToken(Base):
    __tablename__ = "verification_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    email: Mapped[str] = mapped_column(String(254), index=True, nullable=False)
    action: Mapped[str] = mapped_column(String(16), nullable=False)  # "generate" | "deactivate"
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class RateCounter(Base):
    __tablename__ = "rate_counters"

    bucket: Mapped[str] = mapped_column(String(96), primary_key=True)
    window_start: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


@dataclass
class TokenResult:
    status: str  # "ok" | "unknown" | "expired" | "used"
    email: str = ""
    action: str = ""


@dataclass
class KeyOwner:
    id: int
    email: str
    request_count: int


def make_engine(url: str) -> Engine:
    """An engine for ``url``; an SQLite file's folder is created, PostgreSQL goes through psycopg 3."""
    u = make_url(url)
    if u.drivername in ("postgresql", "postgres"):
        u = u.set(drivername="postgresql+psycopg")
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:":
            _private_sqlite_file(Path(u.database).expanduser())
        engine = create_engine(u, connect_args={"timeout": 30, "check_same_thread": False}, pool_size=8,
                               max_overflow=16)

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn, _record):
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see the module docstring)
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    if u.get_backend_name() != "postgresql":
        raise ValueError(f"database URL {u.render_as_string(hide_password=True)!r}: only sqlite:/// and "
                         f"postgresql:// are supported")
    return create_engine(u, pool_size=10, max_overflow=20, pool_pre_ping=True)


def _private_sqlite_file(path: Path) -> None:
    """Create the database file readable by its owner only (0600; its folder 0700 when we create it): it holds
    email addresses and key digests. SQLite gives its -wal/-shm files the database file's mode."""
    import os

    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        st = os.fstat(fd)
        if st.st_uid == os.geteuid() and st.st_mode & 0o077:
            os.fchmod(fd, 0o600)  # a file made by an older version (0644): tighten it
    finally:
        os.close(fd)


class Store:
    """All database operations of the API (each method is one transaction)."""

    def __init__(self, url: str):
        self.engine = make_engine(url)
        self.dialect = self.engine.dialect.name

    def create_schema(self) -> None:
        Base.metadata.create_all(self.engine)

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()

    # ---- keys ---------------------------------------------------------------------------------------------
    def has_active_key(self, email: str) -> bool:
        with self.engine.begin() as conn:
            return conn.execute(select(ApiKey.id).where(ApiKey.email == email, ApiKey.active)).first() is not None

    def issue_key(self, email: str) -> tuple[str, int] | None:
        """Create the active key of ``email``; returns (key, row id), or None when it already has one.

        A mailbox holds at most one active key: a second generation link followed after the first one was
        verified does not rotate the key (the user deactivates it first, as the API's 409 says). Two
        verifications racing for one address: one wins, the other gets None. On PostgreSQL a
        transaction-scoped advisory lock on the address serialises them (SQLite's BEGIN IMMEDIATE already
        does); the partial unique index is the backstop.
        """
        key = new_api_key()
        now = utcnow()
        try:
            with self.engine.begin() as conn:
                if self.dialect == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:e, 0))"), {"e": email})
                if conn.execute(select(ApiKey.id).where(ApiKey.email == email, ApiKey.active)).first() is not None:
                    return None
                row_id = conn.execute(ApiKey.__table__.insert().values(
                    key_hash=digest(key), email=email, active=True, created_at=now, request_count=0)
                    .returning(ApiKey.id)).scalar_one()
            return key, row_id
        except IntegrityError:  # the unique index caught a concurrent insert: that one is the active key
            return None

    def deactivate_active_key(self, email: str) -> bool:
        with self.engine.begin() as conn:
            res = conn.execute(update(ApiKey).where(ApiKey.email == email, ApiKey.active)
                               .values(active=False, deactivated_at=utcnow()))
            return res.rowcount > 0

    def deactivate_key_id(self, row_id: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(ApiKey).where(ApiKey.id == row_id).values(active=False, deactivated_at=utcnow()))

    def transaction(self):
        """``with store.transaction() as conn``: several operations below (``conn=``) in one commit."""
        return self.engine.begin()

    def _tx(self, conn):
        return nullcontext(conn) if conn is not None else self.engine.begin()

    def authenticate(self, key: str, conn=None) -> KeyOwner | None:
        """The owner of an active ``key``, counting the call and stamping ``last_used`` atomically."""
        with self._tx(conn) as conn:
            row = conn.execute(update(ApiKey).where(ApiKey.key_hash == digest(key), ApiKey.active)
                               .values(last_used=utcnow(), request_count=ApiKey.request_count + 1)
                               .returning(ApiKey.id, ApiKey.email, ApiKey.request_count)).first()
        return None if row is None else KeyOwner(row.id, row.email, row.request_count)

    def key_rows(self, email: str) -> list[dict]:
        """Every key row of ``email`` (hashes included): for tests and administration."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(ApiKey.__table__).where(ApiKey.email == email).order_by(ApiKey.id)).mappings().all()
        return [dict(r) for r in rows]

    # ---- tokens -------------------------------------------------------------------------------------------
    def create_token(self, email: str, action: str, ttl_s: int) -> str:
        token = new_token()
        now = utcnow()
        with self.engine.begin() as conn:
            conn.execute(VerificationToken.__table__.insert().values(
                token_hash=digest(token), email=email, action=action, created_at=now,
                expires_at=now + timedelta(seconds=ttl_s)))
            # expired tokens are useless; drop them now and then so the table stays small
            if random.random() < 0.05:
                conn.execute(delete(VerificationToken).where(VerificationToken.expires_at < now - timedelta(days=1)))
        return token

    def delete_token(self, token: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(VerificationToken).where(VerificationToken.token_hash == digest(token)))

    def consume_token(self, token: str) -> TokenResult:
        """Use ``token`` once. Exactly one of any number of concurrent callers gets ``status == "ok"``."""
        h = digest(token)
        now = utcnow()
        with self.engine.begin() as conn:
            tok = conn.execute(select(VerificationToken.__table__).where(VerificationToken.token_hash == h)).first()
            if tok is None:
                return TokenResult("unknown")
            if tok.used_at is not None:
                return TokenResult("used", tok.email, tok.action)
            if tok.expires_at <= now:
                return TokenResult("expired", tok.email, tok.action)
            res = conn.execute(update(VerificationToken)
                               .where(VerificationToken.token_hash == h, VerificationToken.used_at.is_(None),
                                      VerificationToken.expires_at > now)
                               .values(used_at=now))
            if res.rowcount != 1:
                return TokenResult("used", tok.email, tok.action)
            return TokenResult("ok", tok.email, tok.action)

    def expire_token_now(self, token: str) -> None:
        """Backdate a token's expiry (tests of the expired path use it instead of waiting 24 h)."""
        with self.engine.begin() as conn:
            conn.execute(update(VerificationToken).where(VerificationToken.token_hash == digest(token))
                         .values(expires_at=utcnow() - timedelta(seconds=1)))

    # ---- rate limits --------------------------------------------------------------------------------------
    def hit(self, bucket: str, window_start: int, conn=None) -> int:
        """Count one request in ``(bucket, window_start)`` and return the window's count so far."""
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        stmt = insert(RateCounter).values(bucket=bucket, window_start=window_start, count=1)
        stmt = stmt.on_conflict_do_update(index_elements=[RateCounter.bucket, RateCounter.window_start],
                                          set_={"count": RateCounter.count + 1}).returning(RateCounter.count)
        with self._tx(conn) as conn:
            count = conn.execute(stmt).scalar_one()
            if random.random() < 0.01:
                conn.execute(delete(RateCounter).where(RateCounter.window_start < window_start - 7200))
        return int(count)
