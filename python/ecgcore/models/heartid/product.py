"""``ecgcore enroll / verify / revoke``: cancelable ECG verification on onnxruntime + the C++ core (no MLX).

- The template store is an embedded SQLite file (default: ``heartid.sqlite`` in the user's data directory,
  ``$ECGCORE_HEARTID_STORE`` overrides). It holds only key-transformed templates (the mean embedding of the
  enrolment windows under the subject's key), never ECG samples, never keys.
- Keys are 100 random bits from :mod:`secrets`, kept in a key file apart from the store (mode 0600). They are
  never printed or logged.
- ``revoke`` deletes the template (the revocation is recorded) and, with ``--key-file``, replaces the key with a
  fresh one and keeps a salted SHA-256 digest of the old key, so that key is refused from then on (enrol) and
  never accepted (verify); with ``--record`` too it re-enrols at once.
"""
from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import sys
import time
from pathlib import Path

import click
import numpy as np

from ._evaluate import similarity, template
from .keys import bits_to_key, load_or_create_key, random_bits, read_key_file, write_key_file
from .preprocess import record_windows

DEFAULT_MODEL = "heartid"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS templates (
    subject TEXT PRIMARY KEY,
    template BLOB NOT NULL,
    dim INTEGER NOT NULL,
    score TEXT NOT NULL,
    model_sha256 TEXT NOT NULL,
    n_windows INTEGER NOT NULL,
    generation INTEGER NOT NULL,
    enrolled_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS revocations (
    subject TEXT NOT NULL,
    generation INTEGER NOT NULL,
    revoked_at REAL NOT NULL,
    key_salt BLOB,
    key_digest BLOB
);
"""


def default_store() -> Path:
    """``$ECGCORE_HEARTID_STORE``, else ``heartid.sqlite`` in the platform's per-user data folder."""
    env = os.environ.get("ECGCORE_HEARTID_STORE")
    if env:
        return Path(env)
    if sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    elif os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "ecgcore" / "heartid.sqlite"


class TemplateStore:
    """SQLite store of protected templates; each write is one transaction."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(str(self.path))
            self.db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise ValueError(f"{self.path} is not a HeartID template store (SQLite): {exc}") from None

    def close(self):
        self.db.close()

    def get(self, subject: str) -> dict | None:
        row = self.db.execute("SELECT template, dim, score, model_sha256, n_windows, generation, enrolled_at "
                              "FROM templates WHERE subject = ?", (subject,)).fetchone()
        if row is None:
            return None
        return {"template": np.frombuffer(row[0], np.float64).copy(), "dim": row[1], "score": row[2],
                "model_sha256": row[3], "n_windows": row[4], "generation": row[5], "enrolled_at": row[6]}

    def generation(self, subject: str) -> int:
        row = self.db.execute("SELECT MAX(generation) FROM revocations WHERE subject = ?", (subject,)).fetchone()
        return 0 if row[0] is None else int(row[0]) + 1

    def last_revocation(self, subject: str) -> float | None:
        row = self.db.execute("SELECT MAX(revoked_at) FROM revocations WHERE subject = ?", (subject,)).fetchone()
        return row[0]

    def put(self, subject: str, tmpl: np.ndarray, score: str, model_sha: str, n_windows: int) -> int:
        gen = self.generation(subject)
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO templates VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                            (subject, np.asarray(tmpl, np.float64).tobytes(), int(tmpl.size), score, model_sha,
                             int(n_windows), gen, time.time()))
        return gen

    def revoke(self, subject: str, old_bits: np.ndarray | None = None) -> bool:
        """Delete ``subject``'s template; with the old key's bits, remember a salted digest of that key so it
        can never be enrolled or verified again (a 100-bit random key cannot be recovered from it)."""
        cur = self.get(subject)
        if cur is None:
            return False
        salt = digest = None
        if old_bits is not None:
            salt = os.urandom(16)
            digest = _key_digest(salt, old_bits)
        with self.db:
            self.db.execute("DELETE FROM templates WHERE subject = ?", (subject,))
            self.db.execute("INSERT INTO revocations VALUES (?, ?, ?, ?, ?)",
                            (subject, cur["generation"], time.time(), salt, digest))
        return True

    def key_revoked(self, subject: str, bits: np.ndarray) -> bool:
        rows = self.db.execute("SELECT key_salt, key_digest FROM revocations WHERE subject = ? AND "
                               "key_digest IS NOT NULL", (subject,)).fetchall()
        return any(_key_digest(salt, bits) == d for salt, d in rows)


def _key_digest(salt: bytes, bits: np.ndarray) -> bytes:
    return hashlib.sha256(salt + np.packbits(np.asarray(bits, np.uint8), bitorder="little").tobytes()).digest()


class Verifier:
    """The exported HeartID graph + its card: record -> protected template / probe vector."""

    def __init__(self, model: str | os.PathLike = DEFAULT_MODEL, threads: int = 1):
        import onnxruntime as ort

        from ...export import resolve_model

        self.onnx_path, self.card = resolve_model(model)
        if self.card.preprocessing.get("kind") != "heartid":
            raise ValueError(f"{self.onnx_path}: not a HeartID model (preprocessing kind "
                             f"{self.card.preprocessing.get('kind')!r})")
        v = self.card.config.get("verification", {})
        if "threshold" not in v:
            raise ValueError(f"{self.onnx_path}: the model card has no config.verification.threshold")
        self.threshold, self.score = float(v["threshold"]), v.get("score", "euclidean")
        self.key_size = int(self.card.config.get("key_size", 100))
        self.options = {k: val for k, val in self.card.preprocessing.items() if k != "kind"}
        self.sha256 = hashlib.sha256(Path(self.onnx_path).read_bytes()).hexdigest()
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(self.onnx_path), so, providers=["CPUExecutionProvider"])

    def vector(self, records, key: np.ndarray, fs: float | None = None) -> tuple[np.ndarray, int]:
        """(template or probe vector (D,), number of 5-s windows) of one record (or several) under ``key``."""
        if isinstance(records, (str, os.PathLike)):
            records = [records]
        w = np.concatenate([record_windows(r, self.options, fs=fs) for r in records])
        emb = self.session.run(None, {"ecg": w, "key": np.asarray(key, np.float32).reshape(1, -1)})[0]
        return template(emb, self.score), len(w)

    def compare(self, tmpl: np.ndarray, probe: np.ndarray) -> float:
        return float(similarity(tmpl, probe, self.score))


def _open(store, model):
    try:
        return TemplateStore(store or default_store()), Verifier(model)
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None


def _enrol(store: TemplateStore, ver: Verifier, subject: str, record, key, fs) -> tuple[int, int]:
    tmpl, n = ver.vector(record, key, fs)
    return store.put(subject, tmpl, ver.score, ver.sha256, n), n


_common = [
    click.option("--store", type=click.Path(dir_okay=False, path_type=Path), default=None,
                 help="SQLite template store (default: heartid.sqlite in the user data folder, "
                      "or $ECGCORE_HEARTID_STORE)."),
    click.option("--model", default=DEFAULT_MODEL, show_default=True,
                 help="Bundled model name, a folder with model.onnx + model.json, or a .onnx path."),
]


def _with_common(f):
    for opt in reversed(_common):
        f = opt(f)
    return f


@click.command("enroll")
@click.argument("subject")
@click.argument("record", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--key-file", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The subject's key; a missing file is created with a fresh random key (keep it apart from "
                   "the store).")
@click.option("--fs", type=float, default=None, help="Sampling rate of a .npy/.csv RECORD (Hz).")
@click.option("--replace", is_flag=True, help="Overwrite an existing template of SUBJECT.")
@_with_common
def enroll(subject, record, key_file, fs, replace, store, model):
    """Enrol SUBJECT from RECORD... (WFDB records, .npy or .csv; lead 0; at least 5 s, 20 s or more is better;
    several records give a steadier template).

    Only the key-transformed template (mean embedding of the 5-s windows under the key) is stored.
    """
    st, ver = _open(store, model)
    try:
        if st.path.resolve() == key_file.resolve():
            raise click.ClickException("the key file must not be the template store")
        if st.get(subject) is not None and not replace:
            raise click.ClickException(f"{subject} is already enrolled in {st.path}; use --replace, or "
                                       f"`ecgcore revoke {subject}` to re-key")
        key, created = load_or_create_key(key_file, ver.key_size)
        if created:
            click.echo(f"created a new key in {key_file} (keep it secret and apart from the store)")
        elif st.key_revoked(subject, read_key_file(key_file, ver.key_size)):
            raise click.ClickException(f"the key in {key_file} was revoked for {subject}; enrol with a new key "
                                       "file")
        gen, n = _enrol(st, ver, subject, record, key, fs)
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        st.close()
    click.echo(f"enrolled {subject}: {n} windows, template generation {gen}, store {st.path}")


@click.command("verify")
@click.argument("subject")
@click.argument("record", type=click.Path(path_type=Path))
@click.option("--key-file", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The key SUBJECT enrolled with.")
@click.option("--fs", type=float, default=None, help="Sampling rate of a .npy/.csv RECORD (Hz).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@_with_common
def verify(subject, record, key_file, fs, as_json, store, model):
    """Does RECORD come from SUBJECT? Prints accept/reject and the score; exit status 0 accept, 1 reject."""
    st, ver = _open(store, model)
    try:
        entry = st.get(subject)
        if entry is None:
            when = st.last_revocation(subject)
            raise click.ClickException(
                f"{subject} is not enrolled in {st.path}" if when is None else
                f"{subject}'s template was revoked ({time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(when))}); "
                "re-enrol with the new key")
        if entry["model_sha256"] != ver.sha256 or entry["score"] != ver.score:
            raise click.ClickException(f"{subject} was enrolled with another model; re-enrol with this one")
        bits = read_key_file(key_file, ver.key_size)
        revoked_key = st.key_revoked(subject, bits)
        probe, n = ver.vector(record, bits_to_key(bits), fs)
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        st.close()
    s = ver.compare(entry["template"], probe)
    ok = s >= ver.threshold and not revoked_key
    if as_json:
        click.echo(json.dumps({"subject": subject, "decision": "accept" if ok else "reject", "score": s,
                               "threshold": ver.threshold, "score_kind": ver.score, "n_windows": n,
                               "revoked_key": revoked_key}))
    else:
        click.echo(f"{'accept' if ok else 'reject'} {subject}: score {s:.4f} (threshold {ver.threshold:.4f}, "
                   f"{ver.score}, {n} windows){'; this key was revoked' if revoked_key else ''}")
    sys.exit(0 if ok else 1)


@click.command("revoke")
@click.argument("subject")
@click.option("--key-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Replace this key file with a fresh key (the old key is destroyed).")
@click.option("--record", type=click.Path(path_type=Path), default=None,
              help="Re-enrol SUBJECT from this record under the new key right away (needs --key-file).")
@click.option("--fs", type=float, default=None, help="Sampling rate of a .npy/.csv --record (Hz).")
@_with_common
def revoke(subject, key_file, record, fs, store, model):
    """Revoke SUBJECT's template and re-key: the template is deleted, the old key stops working.

    With --key-file the key is replaced by a fresh one and the old key is remembered as revoked (a salted
    digest, never the key): it can no longer enrol or verify SUBJECT. With --record as well, SUBJECT is
    enrolled again under the new key (otherwise run `ecgcore enroll` with it).
    """
    if record is not None and key_file is None:
        raise click.UsageError("--record needs --key-file (the new key to enrol under)")
    st, ver = _open(store, model)
    try:
        old_bits = None
        if key_file is not None and key_file.exists():
            old_bits = read_key_file(key_file, ver.key_size)
        if not st.revoke(subject, old_bits):
            raise click.ClickException(f"{subject} is not enrolled in {st.path}")
        click.echo(f"revoked {subject}'s template")
        if key_file is None:
            click.echo("no --key-file given: enrol again with a new key file (the old key stays usable only if "
                       "you reuse it)", err=True)
        else:
            bits = random_bits(ver.key_size)
            write_key_file(key_file, bits)
            click.echo(f"wrote a fresh key to {key_file}")
            if record is not None:
                gen, n = _enrol(st, ver, subject, record, bits_to_key(bits), fs)
                click.echo(f"re-enrolled {subject}: {n} windows, template generation {gen}")
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        st.close()
