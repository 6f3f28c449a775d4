"""Fuzzing the readers (issue 18 §6): random and mutated files never crash the process or hang.

Every reader (``read_header``, ``read_record`` for WFDB / ``.npy`` / ``.csv``, ``read_annotations``) is fed
random bytes, files made from a grammar with extreme values, and mutations of real PhysioNet files (MIT-BIH
100, ECG-ID Person_01/rec_1: bytes flipped, numbers set to 0 / -1 / 2**63-1 / 1e999 / nan, files truncated,
junk inserted, lines dropped). The property: the reader returns a consistent object, or raises ``ValueError``
or ``OSError`` whose message names the file -- never another exception type, never a hang.

Budget: ``DEFAULT_EXAMPLES`` per test in the default suite (deterministic: ``derandomize=True``, no example
database), ``SLOW_EXAMPLES`` per test under ``--runslow``. Run with ``-s`` to see how many cases each test ran.
"""
from __future__ import annotations

import math
import re
import shutil
import signal
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import numpy.lib.format as npformat
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from ecgcore.io import Annotations, Header, Record, read_annotations, read_header, read_record

DEFAULT_EXAMPLES = 300
SLOW_EXAMPLES = 2000
EXAMPLE_TIME_LIMIT_S = 30  # a reader that takes this long on a file of a few KB is hung

# Real files, cut down so that every example stays small: 1000 frames of MIT-BIH 100 (format 212, 2 leads)
# and of ECG-ID Person_01/rec_1 (format 16, 2 leads), with their reference annotation files.
_N_FRAMES = 1000


@pytest.fixture(scope="module")
def real(data_dir) -> dict[str, bytes]:
    mit = data_dir / "mitdb"
    eid = data_dir / "ecgiddb" / "Person_01"
    mit_hea = (mit / "100.hea").read_bytes().replace(b"100 2 360 650000", b"100 2 360 %d" % _N_FRAMES)
    eid_hea = (eid / "rec_1.hea").read_bytes().replace(b"rec_1 2 500 10000", b"rec_1 2 500 %d" % _N_FRAMES)
    assert b"360 1000" in mit_hea and b"500 1000" in eid_hea
    return {
        "mit_hea": mit_hea, "mit_dat": (mit / "100.dat").read_bytes()[: 3 * _N_FRAMES],
        "mit_atr": (mit / "100.atr").read_bytes(),
        "eid_hea": eid_hea, "eid_dat": (eid / "rec_1.dat").read_bytes()[: 4 * _N_FRAMES],
        "eid_atr": (eid / "rec_1.atr").read_bytes(),
    }


@contextmanager
def _memory_cap(extra: int = 4 << 30):
    """Cap the address space at what the process maps now + `extra` (Linux): a reader that allocates what a
    damaged header declares fails the property with a MemoryError instead of taking the machine's memory."""
    try:
        import resource

        with open("/proc/self/status") as fh:
            vm = next(int(ln.split()[1]) * 1024 for ln in fh if ln.startswith("VmSize:"))
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        cap = vm + extra if hard == resource.RLIM_INFINITY else min(vm + extra, hard)
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    except (ImportError, OSError, StopIteration, ValueError):
        yield
        return
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@pytest.fixture()
def budget(request, tmp_path_factory):
    # Hypothesis keeps caches (constants it found in the source) under ./.hypothesis even without an example
    # database: keep them out of the checkout.
    set_hypothesis_home_dir(tmp_path_factory.mktemp("hypothesis"))
    try:
        with _memory_cap():
            yield SLOW_EXAMPLES if request.config.getoption("--runslow") else DEFAULT_EXAMPLES
    finally:
        set_hypothesis_home_dir(None)


def _settings(n: int):
    return settings(max_examples=n, derandomize=True, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


class Hang(BaseException):
    """Raised by the time limit; a BaseException so that no reader's ``except Exception`` swallows it."""


@contextmanager
def _time_limit(seconds: float):
    def on_alarm(signum, frame):
        raise Hang(f"reader still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


class Stats:
    """How many examples a test ran and how they ended (printed at the end of each test)."""

    def __init__(self, name: str):
        self.name, self.n, self.examples, self.outcomes, self.t0 = name, 0, 0, {}, time.perf_counter()

    def add(self, outcome: str, case: bool = True):
        self.n += case
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    def report(self):
        dt = time.perf_counter() - self.t0
        print(f"\n[fuzz] {self.name}: {self.examples} examples, {self.n} reader calls in {dt:.1f} s: "
              f"{dict(sorted(self.outcomes.items()))}")


def _check_call(fn, names: tuple[str, ...], stats: Stats):
    """Run a reader: return its result, or None when it raised an allowed error naming one of `names`."""
    try:
        with _time_limit(EXAMPLE_TIME_LIMIT_S):
            out = fn()
    except (ValueError, OSError) as exc:
        # Errors are for people: a ValueError from deep inside numpy or int() ("could not convert string to
        # float: 'e'") has the right type but does not say which file was wrong, so it fails here too.
        msg = str(exc)
        assert any(n in msg for n in names), f"{type(exc).__name__} does not name the file {names}: {msg!r}"
        stats.add(type(exc).__name__)
        return None
    stats.add("ok")
    return out


@contextmanager
def _folder():
    d = tempfile.mkdtemp(prefix="ecgfuzz_")
    try:
        yield Path(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ---- mutations ----------------------------------------------------------------------------------------

_EXTREMES = ["0", "-1", "1", "-0", "2", "3", str(2**31), str(2**32 + 1), str(2**63 - 1), str(2**63), str(2**64 + 1),
             str(-(2**63) - 1), "1e308", "1e999", "-1e999", "1e-320", "nan", "inf", "-inf", "9" * 40, "9" * 5000,
             "0x10", "1_000", "+5", ".", "e", "-", "", "1.5", "360.0/0", "212x2", "16:3", "212+4", "200(0)/mV"]

_NUMBER = re.compile(rb"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")

_text_op = st.one_of(
    st.tuples(st.just("number"), st.integers(0, 60), st.sampled_from(_EXTREMES)),
    st.tuples(st.just("token"), st.integers(0, 60), st.sampled_from(_EXTREMES)),
    st.tuples(st.just("line"), st.integers(0, 20), st.sampled_from(["drop", "dup", "swap", "repeat"])),
)
_byte_op = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 1 << 20), st.integers(1, 255)),
    st.tuples(st.just("word"), st.integers(0, 1 << 20), st.integers(0, 0xFFFF)),
    st.tuples(st.just("truncate"), st.integers(0, 1 << 20)),
    st.tuples(st.just("insert"), st.integers(0, 1 << 20), st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("delete"), st.integers(0, 1 << 20), st.integers(1, 16)),
)
text_mutations = st.lists(st.one_of(_text_op, _byte_op), min_size=1, max_size=4)
byte_mutations = st.lists(_byte_op, min_size=1, max_size=4)


_MAX_FILE = 1 << 16  # a mutated file never grows beyond 64 KiB


def mutate(data: bytes, ops) -> bytes:
    b = bytearray(data)
    for op in ops:
        kind = op[0]
        if kind == "number":
            hits = list(_NUMBER.finditer(bytes(b)))
            if hits:
                m = hits[op[1] % len(hits)]
                b[m.start():m.end()] = op[2].encode()
        elif kind == "token":
            hits = list(re.finditer(rb"\S+", bytes(b)))
            if hits:
                m = hits[op[1] % len(hits)]
                b[m.start():m.end()] = op[2].encode()
        elif kind == "line":
            lines = bytes(b).split(b"\n")
            k = op[1] % len(lines)
            if op[2] == "drop":
                del lines[k]
            elif op[2] == "dup":
                lines.insert(k, lines[k])
            elif op[2] == "swap":
                j = (k + 1) % len(lines)
                lines[k], lines[j] = lines[j], lines[k]
            else:  # a long line (bounded: examples stay small)
                lines.insert(k, lines[k] * max(1, min(200, _MAX_FILE // (len(lines[k]) + 1))))
            b = bytearray(b"\n".join(lines))
        elif kind == "flip":
            if b:
                b[op[1] % len(b)] ^= op[2]
        elif kind == "word":
            if len(b) >= 2:
                p = (op[1] % (len(b) // 2)) * 2
                b[p:p + 2] = op[2].to_bytes(2, "little")
        elif kind == "truncate":
            del b[op[1] % (len(b) + 1):]
        elif kind == "insert":
            p = op[1] % (len(b) + 1)
            b[p:p] = op[2]
        elif kind == "delete":
            if b:
                p = op[1] % len(b)
                del b[p:p + op[2]]
        del b[_MAX_FILE:]
    return bytes(b)


# ---- property checks on what the readers return ------------------------------------------------------

def _check_header(h):
    assert isinstance(h, Header)
    assert h.fs > 0 and math.isfinite(h.fs)
    assert h.n_sig >= 0 and (h.sig_len is None or h.sig_len >= 0)
    if not h.multi_segment:
        assert len(h.signals) == h.n_sig


def _check_record(r):
    assert isinstance(r, Record)
    assert r.signal.ndim == 2 and r.signal.shape[0] > 0 and r.signal.shape[1] > 0
    assert len(r.leads) == len(r.units) == r.signal.shape[1]
    assert r.fs > 0 and math.isfinite(r.fs)
    if r.annotations is not None:
        _check_annotations(r.annotations)


def _check_annotations(a):
    assert isinstance(a, Annotations)
    n = len(a)
    assert a.sample.ndim == 1 and a.symbol.shape == (n,)
    assert not a.aux_note or len(a.aux_note) == n
    assert a.chan is None or len(a.chan) == n
    assert a.subtype is None or len(a.subtype) == n


def _read_all_wfdb(folder: Path, name: str, stats: Stats, physical: bool = True):
    names = (name,)
    h = _check_call(lambda: read_header(folder / name), names, stats)
    if h is not None:
        _check_header(h)
    r = _check_call(lambda: read_record(folder / name, physical=physical), names, stats)
    if r is not None:
        _check_record(r)
    return r


# ---- WFDB headers ------------------------------------------------------------------------------------

def test_fuzz_mutated_headers(real, budget):
    stats = Stats("mutated .hea (MIT-BIH 100 / ECG-ID rec_1)")

    @_settings(budget)
    @given(which=st.sampled_from(["mit", "eid"]), ops=text_mutations, physical=st.booleans())
    def run(which, ops, physical):
        stats.examples += 1
        with _folder() as d:
            src = "100" if which == "mit" else "rec_1"
            hea = mutate(real[f"{which}_hea"], ops)
            (d / f"{src}.hea").write_bytes(hea)
            (d / f"{src}.dat").write_bytes(real[f"{which}_dat"])
            (d / f"{src}.atr").write_bytes(real[f"{which}_atr"])
            _read_all_wfdb(d, src, stats, physical)

    run()
    stats.report()


def test_fuzz_random_headers(real, budget):
    stats = Stats("random bytes as .hea")

    @_settings(budget)
    @given(hea=st.one_of(st.binary(max_size=400),
                         st.text(alphabet="0123456789 .-+eExX:/()#\nabcdMLIV", max_size=300).map(str.encode)))
    def run(hea):
        stats.examples += 1
        with _folder() as d:
            (d / "fzrec.hea").write_bytes(hea)
            (d / "fzrec.dat").write_bytes(real["mit_dat"])
            _read_all_wfdb(d, "fzrec", stats)

    run()
    stats.report()


# ---- WFDB signal files: grammar-built headers, random/mutated .dat, checked against a numpy decoder -------

_NATIVE = (212, 16, 61, 80)


def _ref_decode(fmt: int, raw: bytes, n_sig: int, n_frames: int) -> np.ndarray:
    """Independent numpy decoder of WFDB formats 212/16/61/80 (signal(5)), digital samples [n_frames, n_sig]."""
    n = n_frames * n_sig
    b = np.frombuffer(raw, dtype=np.uint8).astype(np.int64)
    if fmt == 80:
        v = b[:n] - 128
    elif fmt in (16, 61):
        v = np.frombuffer(raw[: 2 * n], dtype="<i2" if fmt == 16 else ">i2").astype(np.int64)
    else:
        g = np.concatenate([b, np.zeros(3, np.int64)])[: 3 * ((n + 1) // 2)].reshape(-1, 3)
        v = np.empty(2 * len(g), np.int64)
        v[0::2] = g[:, 0] | ((g[:, 1] & 0x0F) << 8)
        v[1::2] = g[:, 2] | ((g[:, 1] & 0xF0) << 4)
        v = np.where(v >= 2048, v - 4096, v)[:n]
    return v.reshape(n_frames, n_sig)


_num_text = st.one_of(st.integers(-5, 3000).map(str), st.sampled_from(_EXTREMES))


def _mostly(draw, good, bad, p_bad: int = 6):
    """Draw from `good`, or from `bad` about once in `p_bad` times."""
    return draw(bad) if draw(st.integers(0, p_bad - 1)) == 0 else draw(good)


@st.composite
def grammar_record(draw):
    """A header built field by field (mostly plausible, sometimes extreme) and a random signal file."""
    n_sig = draw(st.integers(1, 3))
    same_fmt = draw(st.integers(0, 3)) > 0
    fmt0 = draw(st.sampled_from(_NATIVE))
    dat = _mostly(draw, st.binary(min_size=24, max_size=3000), st.binary(max_size=24))
    offset = _mostly(draw, st.sampled_from(["", "", "+0", "+1", "+3", "+16"]),
                     st.sampled_from(["+4096", "+" + str(2**63), "x2", "x0", ":1", "x" + str(2**40)]))
    # The sample count: absent, what the file holds (+- 1), or anything.
    n_bytes = max(0, len(dat) - int(offset[1:]) if offset[:1] == "+" else len(dat))
    frames = (n_bytes * 2 // 3 if fmt0 == 212 else n_bytes if fmt0 == 80 else n_bytes // 2) // n_sig
    sig_len = draw(st.sampled_from([None, str(frames), str(frames + 1), str(max(frames - 1, 0))]))
    rec = ["fzrec", _mostly(draw, st.just(str(n_sig)), _num_text, 10),
           _mostly(draw, st.sampled_from(["360", "500", "1", "0.5", "360/1"]), _num_text, 10)]
    if sig_len is not None:
        rec.append(_mostly(draw, st.just(sig_len), st.one_of(st.integers(0, 1200).map(str), _num_text)))
    lines = [" ".join(rec)]
    for i in range(n_sig):
        fmt = fmt0 if same_fmt else _mostly(
            draw, st.sampled_from(_NATIVE), st.sampled_from([0, 8, 24, 32, 160, 310, 311, 508, 999, 2**31, 10**30]), 3)
        fname = _mostly(draw, st.just("fzrec.dat"),
                        st.sampled_from(["other.dat", "..", "/", "~", "a\x00b.dat", "x" * 300, "fzrec.hea"]), 10)
        fields = [fname, f"{fmt}{offset}"]
        fields.append(_mostly(draw, st.sampled_from(["200", "200(0)/mV", "0", "-200", "1e-300", "100(-5)/uV"]),
                              _num_text, 10))
        for _ in range(draw(st.integers(0, 5))):
            fields.append(_mostly(draw, st.integers(-3000, 3000).map(str), _num_text, 30))
        if len(fields) == 8:
            fields.append(f"lead{i}")
        lines.append(" ".join(fields))
    return "\n".join(lines) + "\n", dat


def test_fuzz_decoders(budget):
    stats = Stats("grammar .hea + random .dat (212/16/61/80 and others)")

    @_settings(budget)
    @given(case=grammar_record(), physical=st.booleans())
    def run(case, physical):
        stats.examples += 1
        hea, dat = case
        with _folder() as d:
            (d / "fzrec.hea").write_text(hea, encoding="latin-1")
            (d / "fzrec.dat").write_bytes(dat)
            if _read_all_wfdb(d, "fzrec", stats, physical) is None:
                return
            # Natively decoded single-file records: the digital samples must equal an independent decoder's.
            h = read_header(d / "fzrec")
            specs = h.signals
            if (h.natively_readable and len({(sp.file_name, sp.fmt, sp.byte_offset) for sp in specs}) == 1
                    and specs[0].file_name == "fzrec.dat"):
                r = read_record(d / "fzrec", physical=False, annotator=None)
                raw = dat[specs[0].byte_offset:]
                np.testing.assert_array_equal(r.signal, _ref_decode(specs[0].fmt, raw, h.n_sig, r.n_samples))
                assert h.sig_len is None or r.n_samples == h.sig_len
                stats.add("compared with the numpy decoder", case=False)

    run()
    stats.report()


def test_fuzz_mutated_dat(real, budget):
    stats = Stats("mutated .dat (MIT-BIH 212 / ECG-ID 16)")

    @_settings(budget)
    @given(which=st.sampled_from(["mit", "eid"]), ops=byte_mutations, physical=st.booleans(),
           rng=st.tuples(st.integers(0, 1100), st.one_of(st.none(), st.integers(0, 1100))))
    def run(which, ops, physical, rng):
        stats.examples += 1
        with _folder() as d:
            src = "100" if which == "mit" else "rec_1"
            (d / f"{src}.hea").write_bytes(real[f"{which}_hea"])
            dat = mutate(real[f"{which}_dat"], ops)
            (d / f"{src}.dat").write_bytes(dat)
            r = _check_call(lambda: read_record(d / src, physical=physical, sampfrom=rng[0], sampto=rng[1],
                                                annotator=None), (src,), stats)
            if r is not None:
                _check_record(r)
                if not physical:
                    full = _ref_decode(212 if which == "mit" else 16, dat, 2, _N_FRAMES)
                    np.testing.assert_array_equal(r.signal, full[rng[0]:rng[1]])

    run()
    stats.report()


# ---- annotations -------------------------------------------------------------------------------------

def test_fuzz_annotations(real, budget):
    stats = Stats("mutated / random .atr")

    @_settings(budget)
    @given(src=st.one_of(st.tuples(st.sampled_from(["mit", "eid"]), byte_mutations),
                         st.tuples(st.just("random"), st.binary(max_size=600))),
           with_header=st.booleans())
    def run(src, with_header):
        stats.examples += 1
        kind, arg = src
        data = arg if kind == "random" else mutate(real[f"{kind}_atr"], arg)
        with _folder() as d:
            (d / "fzrec.atr").write_bytes(data)
            if with_header:
                (d / "fzrec.hea").write_bytes(real["mit_hea"].replace(b"100", b"fzrec"))
            a = _check_call(lambda: read_annotations(d / "fzrec"), ("fzrec.atr",), stats)
            if a is not None:
                _check_annotations(a)

    run()
    stats.report()


# ---- .npy --------------------------------------------------------------------------------------------

_DESCRS = ["<f8", "<f4", ">f8", "<i2", ">i4", "|u1", "|b1", "<u8", "<f2", "<c16", "|O", "|V8", "|S5", "<U3",
           "<M8[s]", "<m8", [("a", "<f8")], "<x9", "bogus", 3]


@st.composite
def npy_file(draw):
    choice = draw(st.integers(0, 4))
    if choice == 0:  # a well-formed header with any shape, a body of any length
        shape = tuple(draw(st.lists(st.one_of(st.integers(0, 3000), st.sampled_from([10**11, 2**62, 2**63, 2**64, -1])),
                                    max_size=3)))
        header = {"descr": draw(st.sampled_from(_DESCRS)), "fortran_order": draw(st.booleans()), "shape": shape}
        head = "{" + ", ".join(f"{k!r}: {v!r}" for k, v in header.items()) + ", }"
        head = head.ljust(draw(st.integers(0, 200)))
        version = draw(st.sampled_from([(1, 0), (2, 0), (3, 0), (9, 9)]))
        size = len(head) + 1
        prefix = npformat.MAGIC_PREFIX + bytes(version)
        prefix += size.to_bytes(2 if version[0] == 1 else 4, "little")
        return prefix + head.encode("latin-1") + b"\n" + draw(st.binary(max_size=1024))
    if choice == 1:  # a real file, mutated
        arr = np.linspace(-1, 1, 200).reshape(100, 2)
        with tempfile.TemporaryFile() as fh:
            np.save(fh, arr.astype(draw(st.sampled_from(["<f8", "<f4", "<i2", ">f8"]))))
            fh.seek(0)
            good = fh.read()
        return mutate(good, draw(text_mutations))
    if choice == 2:  # the header's text replaced by junk
        return npformat.MAGIC_PREFIX + b"\x01\x00" + draw(st.binary(max_size=300))
    if choice == 3:  # a zip (np.savez) or pickle magic
        return draw(st.sampled_from([b"PK\x03\x04", b"\x80\x04\x95", b"\x93NUMPY"])) + draw(st.binary(max_size=200))
    return draw(st.binary(max_size=400))


def test_fuzz_npy(budget):
    stats = Stats(".npy (header grammar, mutations, junk)")

    @_settings(budget)
    @given(data=npy_file(), dtype=st.sampled_from([None, np.float64, np.float32]))
    def run(data, dtype):
        stats.examples += 1
        with _folder() as d:
            (d / "fzarr.npy").write_bytes(data)
            r = _check_call(lambda: read_record(d / "fzarr.npy", fs=250, dtype=dtype), ("fzarr.npy",), stats)
            if r is not None:
                _check_record(r)
                ref = np.load(d / "fzarr.npy", allow_pickle=False)  # what was read is what numpy reads
                with np.errstate(over="ignore", invalid="ignore"):
                    ref = ref.reshape(len(ref), -1).astype(r.signal.dtype)
                np.testing.assert_array_equal(r.signal, ref)
                stats.add("compared with np.load", case=False)

    run()
    stats.report()


# ---- .csv --------------------------------------------------------------------------------------------

@st.composite
def csv_file(draw):
    choice = draw(st.integers(0, 3))
    if choice == 0:
        return draw(st.text(alphabet="0123456789,.-+eEnaif \t\r\nI", max_size=400)).encode()
    if choice == 1:
        return draw(st.binary(max_size=400))
    if choice == 2:  # one huge line
        return (draw(st.sampled_from(["1.5,", "x", "9" * 50, ",", "nan,"])) * draw(st.integers(1000, 20000))).encode()
    sig = draw(st.sampled_from([np.linspace(-1, 1, 100).reshape(50, 2), np.arange(30.0).reshape(30, 1)]))
    text = ("I,II\n" if sig.shape[1] == 2 and draw(st.booleans()) else "") + "\n".join(
        ",".join(repr(float(v)) for v in row) for row in sig)
    return mutate(text.encode(), draw(text_mutations))


def test_fuzz_csv(budget):
    stats = Stats(".csv (text, junk, huge lines, mutations)")

    @_settings(budget)
    @given(data=csv_file(), dtype=st.sampled_from([None, np.float32]))
    def run(data, dtype):
        stats.examples += 1
        with _folder() as d:
            (d / "fzsig.csv").write_bytes(data)
            r = _check_call(lambda: read_record(d / "fzsig.csv", fs=360, dtype=dtype), ("fzsig.csv",), stats)
            if r is not None:
                _check_record(r)

    run()
    stats.report()


# ---- regressions: the crash reports of issue 18 ------------------------------------------------------

def _write(d: Path, name: str, hea: str, dat: bytes = b"\0" * 1024) -> Path:
    (d / f"{name}.hea").write_text(hea)
    (d / f"{name}.dat").write_bytes(dat)
    return d / name


@pytest.mark.parametrize("n_sig", [1, 2, 3])
@pytest.mark.parametrize("n", [2**63 - 1, 2**62, 2**64 + 5, 10**30])
def test_header_with_absurd_sample_count(tmp_path, n_sig, n):
    # was: TypeError from wfdb_bytes_needed (n * n_sig beyond int64), or a negative byte count in the message
    sigs = "".join(f"big.dat 16 200 16 0 0 0 0 s{i}\n" for i in range(n_sig))
    path = _write(tmp_path, "big", f"big {n_sig} 360 {n}\n{sigs}")
    with pytest.raises(ValueError, match=r"big\.(hea|dat).*(declares|out of range)") as exc:
        read_record(path)
    assert not re.search(r"\(-\d+ bytes\)", str(exc.value))


@pytest.mark.parametrize("shape", [(10**11,), (2**40, 2), (2**63 - 1,), (10**6, 10**6)])
@pytest.mark.parametrize("version", [(1, 0), (2, 0)])
def test_npy_with_huge_shape_and_small_body(tmp_path, shape, version):
    # was: MemoryError (np.load allocates what the header declares before reading the 1 KB body)
    path = tmp_path / "huge.npy"
    with open(path, "wb") as fh:
        header = {"descr": "<f8", "fortran_order": False, "shape": shape}
        (npformat.write_array_header_1_0 if version == (1, 0) else npformat.write_array_header_2_0)(fh, header)
        fh.write(b"\0" * 1024)
    with pytest.raises(ValueError, match=r"huge\.npy.*declares"):
        read_record(path, fs=100)


@pytest.mark.parametrize("record_line, signal_line, match", [
    ("r 1 360 100", f"r.dat {2**70} 200 12 0 0 0 0 I", "format"),
    ("r 1 360 100", "r.dat 12345 200 12 0 0 0 0 I", "format"),
    ("r 1 360 100", "r.dat 16 1e999 12 0 0 0 0 I", "gain"),
    ("r 1 360 100", f"r.dat 16 200 12 {10**400} 0 0 0 I", "adc_zero"),
    ("r 1 360 100", f"r.dat 16 200({10**400})/mV 12 0 0 0 0 I", "baseline"),
    ("r 1 360 100", f"r.dat 16x{2**64} 200 12 0 0 0 0 I", "samples per frame"),
    ("r 1 360 100", f"r.dat 16:{2**64} 200 12 0 0 0 0 I", "skew"),
    ("r 1 360 100", f"r.dat 16+{2**64} 200 12 0 0 0 0 I", "offset"),
    ("r 1 360 100", "r.dat 16 e 12 0 0 0 0 I", "gain"),
    ("r 1 e 100", "r.dat 16 200 12 0 0 0 0 I", "sampling frequency"),
    ("r 1 1e999 100", "r.dat 16 200 12 0 0 0 0 I", "sampling frequency"),
    ("r 1 -360 100", "r.dat 16 200 12 0 0 0 0 I", "sampling frequency"),
    ("r -1 360 100", "r.dat 16 200 12 0 0 0 0 I", "signals"),
    ("r 1 360 -100", "r.dat 16 200 12 0 0 0 0 I", "samples"),
    (f"r {2**63} 360 100", "r.dat 16 200 12 0 0 0 0 I", "signals"),
    ("r 1 360 100", f"r.dat {'9' * 5000} 200 12 0 0 0 0 I", "format"),
    ("r 1 360 100", "r\x00.dat 16 200 12 0 0 0 0 I", "NUL byte"),
    ("r 1 360 100", ("x" * 5000) + " 16 200 12 0 0 0 0 I", "cannot open signal file"),
])
def test_header_extremes_raise_value_error(tmp_path, record_line, signal_line, match):
    _write(tmp_path, "r", f"{record_line}\n{signal_line}\n")
    with pytest.raises((ValueError, OSError), match=r"(?s)r\.(hea|dat).*" + match):
        read_header(tmp_path / "r")
        read_record(tmp_path / "r")


def test_zero_gain_is_wfdb_default(tmp_path):
    # not an error: header(5) says an ADC gain of 0 (or none) means the default, 200 adu per physical unit
    _write(tmp_path, "g", "g 1 360 100\ng.dat 16 0 12 0 0 0 0 I\n", np.full(100, 400, "<i2").tobytes())
    r = read_record(tmp_path / "g")
    assert r.adc_gain.tolist() == [200.0] and np.all(r.signal == 2.0)


@pytest.mark.parametrize("content, match", [
    (b"\xff\xfe\x00garbage\x80\x81", "UTF-8|text"),
    (b"1,2\n3\n", "columns"),
    (b"", "empty"),
    (b"a,b\n", "no sample rows"),
    (b"1,2\n3,x\n", "non-numeric"),
    (b"I,II,III\n1,2\n3,4\n", "lead names"),
    (b"1.5," * 20000 + b"1.5", "n_leads, n_samples"),
])
def test_csv_absurd_content(tmp_path, content, match):
    (tmp_path / "bad.csv").write_bytes(content)
    with pytest.raises(ValueError, match=r"bad\.csv.*" + match):
        read_record(tmp_path / "bad.csv", fs=250)


@pytest.mark.parametrize("content", [
    b"PK\x03\x04" + b"\0" * 100,  # a zip (.npz) renamed to .npy
    b"\x93NUMPY\x01\x00",  # the magic and nothing else
    b"\x93NUMPY\x01\x00\x10\x00{'descr': 3}   \n",
    # found by the fuzzer (--runslow): dimensions beyond int64 made numpy's reader raise OverflowError / warn
    b"\x93NUMPY\x01\x00N\x00{'descr': '<f8', 'fortran_order': False, 'shape': (0, 9223372036854775808), }\n",
    b"\x93NUMPY\x01\x00N\x00{'descr': '<f8', 'fortran_order': False, 'shape': (-9223372036854775809, 2), }\n"
    + b"\0" * 64,
])
def test_npy_not_an_array(tmp_path, content):
    (tmp_path / "bad.npy").write_bytes(content)
    with pytest.raises(ValueError, match=r"bad\.npy"):
        read_record(tmp_path / "bad.npy", fs=250)


def test_annotation_time_resolution_overflow(tmp_path):
    # a "## time resolution" note with 400 digits: int(inf) raised OverflowError
    note = b"## time resolution: " + b"9" * 400
    note += b"\0" * (len(note) % 2)
    words = [(22 << 10) | 0, (63 << 10) | len(note.rstrip(b"\0"))]
    data = np.array(words, "<u2").tobytes() + note + np.array([(1 << 10) | 5, 0], "<u2").tobytes()
    (tmp_path / "a.atr").write_bytes(data)
    try:
        a = read_annotations(tmp_path / "a")
    except ValueError as exc:
        assert "a.atr" in str(exc)
    else:
        assert a.fs is None or math.isfinite(a.fs)


def _annotation_bytes(items) -> bytes:
    """MIT-format annotation file from (code, sample delta, note or None) items (annot(5))."""
    out = bytearray()
    for code, delta, note in items:
        out += ((code << 10) | delta).to_bytes(2, "little")
        if note is not None:
            b = note.encode("latin-1")
            out += ((63 << 10) | len(b)).to_bytes(2, "little") + b + b"\0" * (len(b) % 2)
    return bytes(out + b"\0\0")


@pytest.mark.parametrize("notes", [["## hello"], ["## time resolution: 360", "## time resolution: 250"],
                                   ["## time resolution: 360", "## a comment"]])
def test_annotation_definition_note_that_hangs_wfdb(tmp_path, notes):
    # wfdb.rdann loops forever on a "## " note at sample 0 that is neither the (first) time resolution nor a
    # label-definition block; a code outside WFDB's table (45) sends the file past the fast parser to wfdb.
    items = [(22, 0, n) for n in notes] + [(1, 5, None), (45, 7, None)]
    (tmp_path / "h.atr").write_bytes(_annotation_bytes(items))
    with _time_limit(EXAMPLE_TIME_LIMIT_S), pytest.raises(ValueError, match=r"h\.atr.*never return"):
        read_annotations(tmp_path / "h")


def test_annotation_custom_labels_still_read_by_wfdb(tmp_path):
    # the hang check must not turn away what wfdb reads: a label-definition block (custom symbol 'z')
    import wfdb

    wfdb.wrann("c", "atr", np.array([5, 10, 20]), symbol=["N", "z", "N"], fs=360, write_dir=str(tmp_path),
               custom_labels=[(42, "z", "zap")])
    with _time_limit(EXAMPLE_TIME_LIMIT_S):
        a = read_annotations(tmp_path / "c")
    ref = wfdb.rdann(str(tmp_path / "c"), "atr")
    np.testing.assert_array_equal(a.sample, ref.sample)
    assert list(a.symbol) == ref.symbol and a.fs == ref.fs == 360


def test_npy_float32_with_signalling_nan(tmp_path):
    # found by the fuzzer (--runslow): casting a float32 signalling NaN to float64 warned "invalid value"
    sig = np.linspace(-1, 1, 20, dtype=np.float32)
    raw = sig.view(np.uint32).copy()
    raw[3] = 0x7F800001  # a signalling NaN
    np.save(tmp_path / "s.npy", raw.view(np.float32))
    r = read_record(tmp_path / "s.npy", fs=100)
    assert np.isnan(r.signal[3, 0]) and np.isfinite(np.delete(r.signal[:, 0], 3)).all()
