"""The shipped ``segments-abnormal`` model: loadable and runnable by onnxruntime alone, card consistent."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


_PKG_PARENT = __import__("os").environ["ECGCORE_PKG_PARENT"]  # set by tests/conftest.py


REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "python" / "ecgcore" / "data" / "models" / "segments-abnormal"


def test_bundled_card():
    from ecgcore.export import list_bundled, read_card

    assert "segments-abnormal" in list_bundled()
    card = read_card(BUNDLE)
    assert card.name == "segments-abnormal" and card.framework == "pytorch" and card.task == "classification"
    assert card.classes == ["Normal", "Abnormal"] and card.fs == 360.0
    pre = card.preprocessing
    assert pre["kind"] == "segments" and pre["window_s"] == 10.0 and pre["band"] == [0.5, 50.0] and pre["order"] == 5
    assert card.metrics["protocol"] == "inter-patient"
    for k in ("accuracy", "precision", "recall", "f1", "roc_auc"):
        assert 0.0 <= card.metrics["test"][k] <= 1.0
    assert card.metrics["onnx_parity_max_abs_diff"] < 1e-4
    assert card.training["steps"] > 0 and card.training["command"].startswith("ecgcore train attention")


def test_bundled_runs_with_onnxruntime_only(mitdb_dir):
    """Record 119 (DS1, bigeminy) through the segments recipe transform, then the ONNX graph, torch never loaded."""
    code = f"""
import sys, json
import numpy as np
import onnxruntime as ort
from pathlib import Path
from ecgcore.pipelines.recipes.segments import Segments
out = Path(sys.argv[1])
r = Segments(); opts = r.default_options()
r.run("119", Path({str(mitdb_dir)!r}), out, opts)
with np.load(out / "119.npz") as z:
    x, y = z["segments"][:16, None, :], z["labels"][:16]
sess = ort.InferenceSession({str(BUNDLE / 'model.onnx')!r}, providers=["CPUExecutionProvider"])
logits, prob = sess.run(None, {{"ecg": x}})
att_sess = ort.InferenceSession({str(BUNDLE / 'attention.onnx')!r}, providers=["CPUExecutionProvider"])
(att,) = att_sess.run(None, {{"ecg": x}})
assert "torch" not in sys.modules, "torch was imported"
print(json.dumps({{"shape": [list(logits.shape), list(prob.shape), list(att.shape)],
                  "prob_sum": float(np.abs(prob.sum(1) - 1).max()), "att_sum": float(np.abs(att.sum(-1) - 1).max()),
                  "finite": bool(np.isfinite(logits).all())}}))
"""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run([sys.executable, "-c", code, tmp], capture_output=True, text=True,
                           env={"PYTHONPATH": _PKG_PARENT, "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["shape"] == [[16, 2], [16, 2], [16, 900, 900]]
    assert out["prob_sum"] < 1e-5 and out["att_sum"] < 1e-4 and out["finite"]
