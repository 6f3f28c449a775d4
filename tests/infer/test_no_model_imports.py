"""``ecgcore infer`` and ``ecgcore serve`` read everything from the model card and the recipes: scoring a record with
every bundled model imports no module of ``ecgcore.models`` (the training packages)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import ecgcore
from ecgcore.export.card import list_bundled

SAMPLE = Path(ecgcore.__file__).parent / "data" / "mitdb" / "100"

SCRIPT = r"""
import sys

import numpy as np

import ecgcore.infer
import ecgcore.serve
import ecgcore.serve.app
from ecgcore.export.card import list_bundled
from ecgcore.infer import Scorer
from ecgcore.io import Annotations, Record, read_record
from ecgcore.serve.inference import ServeModels

full = read_record(sys.argv[1])
n = int(20 * full.fs)  # 20 s: enough for every model (HuBERT takes 5 s), quick for all
a = full.annotations
keep = a.sample < n
ann = Annotations(a.sample[keep], [s for s, k in zip(a.symbol, keep) if k],
                  [s for s, k in zip(a.aux_note, keep) if k], fs=a.fs)
rec = Record(signal=np.ascontiguousarray(full.signal[:n]), fs=full.fs, leads=full.leads, units=full.units,
             name=full.name, annotations=ann)
for name in sorted(list_bundled()):
    scorer = Scorer(name, threads=1)
    if scorer.kind == "denoise-pairs":
        assert scorer.denoise(rec.signal[:, 0], rec.fs).shape == (n,)
    else:
        assert len(scorer.predict_record(rec).rows), name
    print("scored", name, scorer.kind)
models = ServeModels(threads=1, predict_threads=1)
models.load()
window = models.denoise_window()
assert models.denoise(np.sin(np.linspace(0, 60, window[1]))).shape == (window[1],)
models.predict(rec)
loaded = sorted(m for m in sys.modules if m == "ecgcore.models" or m.startswith("ecgcore.models."))
assert not loaded, f"ecgcore.infer / ecgcore.serve imported {loaded}"
print("ok", window)
"""


@pytest.mark.skipif(len(list_bundled()) < 5, reason="needs the five bundled models")
def test_infer_and_serve_import_no_model_package():
    pytest.importorskip("fastapi")
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(SAMPLE)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr[-4000:]
    assert r.stdout.count("scored") == len(list_bundled())
    # the bundled denoiser's card gives the API its 1300-value contract (10 s at 130 Hz)
    assert "ok (130.0, 1300)" in r.stdout
