"""``ecgcore.infer.release_memory``: freed C-heap pages go back to the system (glibc ``malloc_trim``), a no-op where
the C library has no such call; the REST server's ``/predict`` scoring calls it on every path."""
from __future__ import annotations

import platform
import subprocess
import sys

import pytest

import ecgcore.infer.core as core
from ecgcore.infer import release_memory

_PROBE = r"""
import json
from ecgcore.infer import release_memory

def rss_mb():
    return int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) / 1024

blocks = [bytearray(64 << 10) for _ in range(3000)]  # ~190 MB of 64 KiB blocks: malloc's heap, not mmap
for b in blocks:
    b[::4096] = b"\x01" * len(b[::4096])  # touch every page
sentinel = bytearray(1 << 10)  # allocated last: the freed blocks are not at the heap's top, so free() keeps them
before = rss_mb()
del blocks
freed = rss_mb()
release_memory()
print(json.dumps({"before": before, "freed": freed, "after": rss_mb()}))
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_freed_heap_pages_go_back_to_the_system():
    import json

    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["before"] - r["freed"] < 50, r  # free() alone keeps the blocks mapped
    assert r["freed"] - r["after"] > 150, r  # release_memory() returns them


def test_no_malloc_trim_is_a_no_op(monkeypatch):
    monkeypatch.setattr(core, "_MALLOC_TRIM", [False])
    assert release_memory() is None


def test_predict_releases_memory_even_when_scoring_fails(monkeypatch):
    from ecgcore.serve.inference import ServeModels

    calls = []
    monkeypatch.setattr(core, "release_memory", lambda: calls.append(1))

    class Failing:
        def predict_record(self, record):
            raise RuntimeError("scoring failed")

    models = ServeModels()
    monkeypatch.setattr(models, "_get", lambda role, raise_=True: Failing())
    with pytest.raises(RuntimeError, match="scoring failed"):
        models.predict(object())
    assert calls == [1]
