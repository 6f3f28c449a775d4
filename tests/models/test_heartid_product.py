"""`ecgcore enroll / verify / revoke` end to end with the bundled HeartID model on real ECG-ID records.

The persons are the first ECG-ID *test* subjects of the bundled model's card (never seen in training) that
have at least two records; enrolment uses rec_1, verification rec_2 (another 20 s recording).
"""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ecgcore.cli import main
from ecgcore.export import resolve_model

_PKG_PARENT = __import__("os").environ["ECGCORE_PKG_PARENT"]  # set by tests/conftest.py


REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def persons(data_dir):
    _, card = resolve_model("heartid")
    raw = data_dir / "ecgiddb"
    ids = [s.split(":", 1)[1] for s in card.training["test_subjects"] if s.startswith("ecgid:")]
    ok = [p for p in ids if (raw / p / "rec_2.hea").is_file()]
    assert len(ok) >= 2, "the bundled card lists too few ECG-ID test subjects"
    return raw, ok[:2]


@pytest.fixture
def seeded_keys(monkeypatch):
    """Keys the CLI creates come from a seeded generator here, so the end-to-end decisions are reproducible
    (acceptance of a genuine later record is not certain for every key and person: the stolen-key EER is far
    from 0, see the card's template-protection figures)."""
    import random
    import types

    from ecgcore.models.heartid import keys

    monkeypatch.setattr(keys, "secrets", types.SimpleNamespace(randbits=random.Random(20261201).getrandbits))


def _run(*args):
    r = CliRunner().invoke(main, [str(a) for a in args])
    return r.exit_code, r.output


def _key_strings(path: Path) -> list[str]:
    d = json.loads(path.read_text())
    bits = np.unpackbits(np.frombuffer(bytes.fromhex(d["bits"]), np.uint8), bitorder="little")[:d["key_size"]]
    return [d["bits"], "".join(map(str, bits)), f"{1 / np.sqrt(bits.sum()):.4f}"]


def test_enroll_verify_revoke_end_to_end(persons, tmp_path, seeded_keys):
    raw, (a, b) = persons
    store, key_a, key_x = tmp_path / "store" / "t.sqlite", tmp_path / "keys" / "a.key", tmp_path / "keys" / "x.key"
    outputs = []

    def run(*args):
        code, out = _run(*args, "--store", store)
        outputs.append(out)
        return code, out

    code, out = run("enroll", a, raw / a / "rec_1", "--key-file", key_a)
    assert code == 0, out
    assert "created a new key" in out and key_a.is_file()
    assert (key_a.stat().st_mode & 0o777) == 0o600
    code, out = run("enroll", a, raw / a / "rec_1", "--key-file", key_a)
    assert code == 1 and "already enrolled" in out

    code, out = run("verify", a, raw / a / "rec_2", "--key-file", key_a)
    assert code == 0 and out.startswith("accept"), out
    # wrong key: the genuine person's later record under another key
    run("enroll", "someone-else", raw / b / "rec_1", "--key-file", key_x)
    code, out = run("verify", a, raw / a / "rec_2", "--key-file", key_x)
    assert code == 1 and out.startswith("reject"), out
    # wrong person presenting the right key
    code, out = run("verify", a, raw / b / "rec_2", "--key-file", key_a)
    assert code == 1 and out.startswith("reject"), out
    code, out = run("verify", a, raw / a / "rec_2", "--key-file", key_a, "--json")
    assert code == 0 and json.loads(out)["decision"] == "accept"

    old = tmp_path / "keys" / "old.key"
    shutil.copy(key_a, old)
    code, out = run("revoke", a, "--key-file", key_a)
    assert code == 0 and "revoked" in out
    assert key_a.read_text() != old.read_text()
    code, out = run("verify", a, raw / a / "rec_2", "--key-file", old)
    assert code == 1 and "revoked" in out
    code, out = run("enroll", a, raw / a / "rec_1", "--key-file", old)  # a revoked key cannot come back
    assert code == 1 and "was revoked" in out
    code, out = run("enroll", a, raw / a / "rec_1", "--key-file", key_a)
    assert code == 0 and "created" not in out
    code, out = run("verify", a, raw / a / "rec_2", "--key-file", key_a)
    assert code == 0 and out.startswith("accept"), out
    code, out = run("verify", a, raw / a / "rec_2", "--key-file", old)  # the revoked key no longer matches
    assert code == 1 and out.startswith("reject") and "this key was revoked" in out, out
    # revoke + re-enrol in one go
    code, out = run("revoke", a, "--key-file", key_a, "--record", raw / a / "rec_1")
    assert code == 0 and "re-enrolled" in out
    code, out = run("verify", a, raw / a / "rec_2", "--key-file", key_a)
    assert code == 0, out

    # no key material in any output; the store holds 512 IoM indices per template only (no ECG, no key)
    secrets_ = _key_strings(key_a) + _key_strings(old) + _key_strings(key_x)
    assert not any(s in o for s in secrets_ for o in outputs)
    db = sqlite3.connect(store)
    cols = [r[1] for r in db.execute("PRAGMA table_info(templates)")]
    assert "key" not in " ".join(cols) and "ecg" not in " ".join(cols)
    rows = db.execute("SELECT template, score FROM templates").fetchall()
    db.close()
    assert rows and all(len(t) == 512 and sc == "grp-iom-v1" for t, sc in rows)
    assert all(max(t) < 16 for t, _ in rows)  # indices of 16 projections, nothing else


def test_seed_scheme_is_kept_and_schemes_do_not_mix(persons, tmp_path, seeded_keys):
    """--scheme seed reproduces the seed's key-in-the-network template (100 float64); a template of one scheme is
    never compared under the other (a clear error names the scheme to use)."""
    raw, (a, _) = persons
    store, key = tmp_path / "s.sqlite", tmp_path / "a.key"
    code, out = _run("enroll", a, raw / a / "rec_1", "--key-file", key, "--store", store, "--scheme", "seed")
    assert code == 0, out
    code, out = _run("verify", a, raw / a / "rec_2", "--key-file", key, "--store", store, "--scheme", "seed", "--json")
    assert code == 0 and json.loads(out)["score_kind"] == "euclidean", out
    code, out = _run("verify", a, raw / a / "rec_2", "--key-file", key, "--store", store)
    assert code == 1 and "seed scheme" in out and "--scheme seed" in out, out
    db = sqlite3.connect(store)
    (t,), = db.execute("SELECT template FROM templates").fetchall()
    db.close()
    assert len(t) == 100 * 8


@pytest.mark.parametrize("scheme,bound", [("grp-iom", 0.01), ("seed", 0.30)])
def test_other_key_acceptance_rate(persons, scheme, bound):
    """Cancelability as a rate, not one lucky key: 4 test subjects x 25 seeded key pairs, enrolment rec_1, probe
    rec_2. The same person's later record under another key must be rejected: grp-iom (independent projections
    per key, other-key similarity about 1/16) at most 1 % (issue 23's target; 0 % measured); the seed scheme only
    partly (its card's held-out other-key acceptance is 19-28 %)."""
    from ecgcore.models.heartid.keys import random_bits  # noqa: F401  (the product's key source; seeded here)
    from ecgcore.models.heartid.product import Verifier

    raw, _ = persons
    _, card = resolve_model("heartid")
    ids = [s.split(":", 1)[1] for s in card.training["test_subjects"] if s.startswith("ecgid:")]
    subjects = [p for p in ids if (raw / p / "rec_2.hea").is_file()][:4]
    ver, rng = Verifier("heartid", scheme=scheme), np.random.default_rng(7)
    other = n = 0
    sims = []
    for a in subjects:
        for _ in range(25):
            k, kx = rng.integers(0, 2, ver.key_size).astype(np.uint8), rng.integers(0, 2, ver.key_size).astype(np.uint8)
            tmpl, _ = ver.vector(raw / a / "rec_1", k)
            s = ver.compare(tmpl, ver.vector(raw / a / "rec_2", kx)[0])
            other += s >= ver.threshold
            sims.append(s)
            n += 1
    assert other / n <= bound, f"other-key acceptance {other / n:.3f}"
    if scheme == "grp-iom":  # unrelated keys: about 1/16 equal indices, far below the threshold
        assert abs(np.mean(sims) - 1 / 16) < 0.03 and max(sims) < ver.threshold


def test_bad_inputs_are_clear_errors(persons, tmp_path):
    raw, (a, _) = persons
    store = tmp_path / "s.sqlite"
    code, out = _run("verify", a, raw / a / "rec_2", "--key-file", tmp_path / "k", "--store", store)
    assert code == 1 and "not enrolled" in out
    _run("enroll", a, raw / a / "rec_1", "--key-file", tmp_path / "k", "--store", store)
    code, out = _run("verify", a, raw / a / "rec_2", "--key-file", tmp_path / "missing.key", "--store", store)
    assert code == 1 and "missing.key not found" in out
    (tmp_path / "bad.key").write_text("{}")
    code, out = _run("verify", a, raw / a / "rec_2", "--key-file", tmp_path / "bad.key", "--store", store)
    assert code == 1 and "not an ecgcore HeartID key file" in out
    code, out = _run("verify", a, tmp_path / "nope", "--key-file", tmp_path / "k", "--store", store)
    assert code == 1 and "nope" in out and "not found" in out
    np.save(tmp_path / "sig.npy", np.zeros(5000))
    code, out = _run("enroll", "b", tmp_path / "sig.npy", "--key-file", tmp_path / "k2", "--store", store)
    assert code == 1 and "--fs" in out
    code, out = _run("revoke", "nobody", "--store", store)
    assert code == 1 and "not enrolled" in out


def test_product_runs_without_mlx(persons, tmp_path):
    """enroll + verify in a fresh interpreter where importing mlx is made impossible."""
    raw, (a, _) = persons
    code = f"""
import sys
class _NoMLX:
    def find_spec(self, name, path=None, target=None):
        if name == "mlx" or name.startswith("mlx.") or name.startswith("mlx_stft") or name == "torch":
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, _NoMLX())
import random, types
from ecgcore.models.heartid import keys
# the seeded_keys fixture's generator: a genuine later record is not accepted under every key (card: EER ~5 %)
keys.secrets = types.SimpleNamespace(randbits=random.Random(20261201).getrandbits)
from click.testing import CliRunner
from ecgcore.cli import main
args = ["--store", r"{tmp_path / 's.sqlite'}", "--key-file", r"{tmp_path / 'a.key'}"]
r1 = CliRunner().invoke(main, ["enroll", "{a}", r"{raw / a / 'rec_1'}"] + args)
r2 = CliRunner().invoke(main, ["verify", "{a}", r"{raw / a / 'rec_2'}"] + args)
print(r1.exit_code, r2.exit_code, any(m.startswith("mlx") for m in sys.modules))
print(r1.output, r2.output, repr(r1.exception), repr(r2.exception))
"""
    env = dict(os.environ, PYTHONPATH=_PKG_PARENT)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split("\n")[0] == "0 0 False", res.stdout


def test_cohort_normalised_scores_need_their_cohort_and_the_key(persons, tmp_path):
    """The bundled heartid-beats scores grp-iom probes against a cohort file beside its graph: verify works from a
    copy of the model folder, a changed or missing cohort is refused by name, and a score without the probe's key
    is refused (the cohort is hashed under it). The normalised score is the raw share against the probe's top-K
    cohort shares, as protect.cohort_normalise defines it."""
    from ecgcore.models.heartid.product import Verifier
    from ecgcore.models.heartid.protect import cohort_normalise, iom_hash, iom_similarity, projections

    raw, (a, _) = persons
    onnx_path, card = resolve_model("heartid-beats")
    ver = Verifier()
    norm = ver.score_norm
    assert norm and norm["kind"] == "adaptive-t-norm"
    keys = np.random.default_rng(23).integers(0, 2, (2, 100)).astype(np.uint8)  # fixed keys: a reproducible test
    k, k2 = keys
    t, _ = ver.vector(raw / a / "rec_1", k)
    p, _ = ver.vector(raw / a / "rec_2", k)
    s = ver.compare(t, p, k)
    ch = iom_hash(ver.cohort, W=projections(k, ver.cohort.shape[1]))
    assert s == pytest.approx(cohort_normalise([iom_similarity(t, p)], p, ch, norm["top_k"])[0], rel=1e-12)
    with pytest.raises(ValueError, match="needs the key"):
        ver.compare(t, p)
    # a probe made under another key is normalised by the cohort hashed under *its* key (a renewed key's probe)
    p2, _ = ver.vector(raw / a / "rec_2", k2)
    s2 = ver.compare(t, p2, k2)
    ch2 = iom_hash(ver.cohort, W=projections(k2, ver.cohort.shape[1]))
    assert s2 == pytest.approx(cohort_normalise([iom_similarity(t, p2)], p2, ch2, norm["top_k"])[0], rel=1e-12)
    assert s2 != pytest.approx(cohort_normalise([iom_similarity(t, p2)], p2, ch, norm["top_k"])[0], rel=1e-6)
    assert s2 < ver.threshold < s and ver.raw_compare(t, p) == iom_similarity(t, p)  # genuine vs renewed key
    copy = tmp_path / "m"
    shutil.copytree(onnx_path.parent, copy)
    assert Verifier(copy).compare(t, p, k) == s
    c = np.load(copy / norm["cohort"])
    c[0, 0] += 0.5
    np.save(copy / norm["cohort"], c)
    with pytest.raises(ValueError, match="SHA-256"):
        Verifier(copy)
    (copy / norm["cohort"]).unlink()
    with pytest.raises(FileNotFoundError, match="cohort"):
        Verifier(copy)
    code, out = _run("verify", "x", raw / a / "rec_2", "--key-file", tmp_path / "k", "--model", copy,
                     "--store", tmp_path / "s.sqlite")
    assert code == 1 and "cohort" in out and "Traceback" not in out
