"""The int8 encoder of the bundled beats-aami (issue 24): calibrate on DS1, quantise, state the DS2 change.

    python tools/beats_aami_int8.py quantize [MODEL_DIR] --records-dir MITDB
    ecgcore infer MODEL_DIR DS2... --peaks detect -o fp32.csv            (and --precision int8 -o int8.csv)
    ecgcore infer-report fp32.csv --records-dir MITDB --json fp32.json   (and int8)
    python tools/beats_aami_int8.py card [MODEL_DIR] --fp32 fp32.json --int8 int8.json --fp32-csv fp32.csv \
        --int8-csv int8.csv

``quantize``: beats and RR inputs of DS1 records (every fourth training record, reference beats, the card's
preprocessing through ``Scorer.prepare``), 32 batches of 64 beats drawn evenly, onnxruntime static QDQ quantisation
of ``encoder.onnx`` (int8 per-channel weights, uint8 activations, min-max ranges) into ``encoder.int8.onnx``, named
in the card's ``graphs["encoder_int8"]``. ``card``: the DS2 figures of both precisions, the share of beats whose
class changes, into ``metrics["int8 encoder (issue 24)"]``.
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from ecgcore.export.card import read_card, write_card

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO / "python/ecgcore/data/models/beats-aami"


def calibration_feeds(model_dir: Path, records_dir: Path, batches: int = 32, batch: int = 64, seed: int = 0):
    from ecgcore.datasets.mitdb import DS1
    from ecgcore.infer.core import Scorer
    from ecgcore.io import read_record

    sc = Scorer(str(model_dir), peaks="annotations", quality=False)
    enc = sc._split["encoder"]
    names = [i.name for i in enc.get_inputs()]
    beats, rrs = [], []
    for r in list(DS1)[::4]:
        prep = sc.prepare(read_record(records_dir / r, annotator="atr"))
        b = np.asarray(prep.inputs[0].items, np.float32)
        beats.append(b)
        rr = prep.inputs.get("rr")
        rrs.append(None if rr is None else np.asarray(rr)[:, -1].astype(np.float32))
    x = np.concatenate(beats)
    if len(enc.get_inputs()[0].shape) == x.ndim + 1:
        x = x[..., None]
    rr = None if rrs[0] is None else np.concatenate(rrs)
    rng = np.random.default_rng(seed)
    pick = rng.permutation(len(x))[:batches * batch]
    feeds = []
    for i in range(0, len(pick), batch):
        j = np.sort(pick[i:i + batch])
        f = {names[0]: x[j]}
        if rr is not None and len(names) > 1:
            f[names[1]] = rr[j]
        feeds.append(f)
    return feeds, [r for r in list(DS1)[::4]]


def _classes(path: Path) -> list[str]:
    with path.open() as f:
        return [row["class"] for row in csv.DictReader(f)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("step", choices=["quantize", "card"])
    ap.add_argument("model_dir", type=Path, nargs="?", default=DEFAULT)
    ap.add_argument("--records-dir", type=Path)
    ap.add_argument("--fp32", type=Path)
    ap.add_argument("--int8", type=Path)
    ap.add_argument("--fp32-csv", type=Path)
    ap.add_argument("--int8-csv", type=Path)
    a = ap.parse_args()
    card = read_card(a.model_dir / "model.json")
    if a.step == "quantize":
        from ecgcore.export.quantize import quantize_static_int8

        feeds, recs = calibration_feeds(a.model_dir, a.records_dir)
        rep = quantize_static_int8(a.model_dir / card.graphs["encoder"], a.model_dir / "encoder.int8.onnx", feeds)
        card.graphs = dict(card.graphs, encoder_int8="encoder.int8.onnx")
        metrics = dict(card.metrics)
        metrics["int8 encoder (issue 24)"] = {**rep, "calibration_records": recs,
                                              "calibration_beats": int(sum(len(next(iter(f.values()))) for f in feeds))}
        card.metrics = metrics
        write_card(card, a.model_dir / "model.json")
        print(json.dumps(rep))
        return
    f32, i8 = json.loads(a.fp32.read_text()), json.loads(a.int8.read_text())
    c32, c8 = _classes(a.fp32_csv), _classes(a.int8_csv)
    if len(c32) != len(c8):
        raise SystemExit("the two tables hold different beats")
    changed = float(np.mean(np.array(c32) != np.array(c8)))
    keys = ("accuracy", "jk_index")
    metrics = dict(card.metrics)
    entry = dict(metrics.get("int8 encoder (issue 24)", {}))
    entry.update({"DS2 (ecgcore infer --peaks detect), fp32": {k: f32.get(k) for k in keys},
                  "DS2 (ecgcore infer --peaks detect), int8": {k: i8.get(k) for k in keys},
                  "per_class_f1_fp32": f32.get("per_class", {}), "per_class_f1_int8": i8.get("per_class", {}),
                  "beats_whose_class_changes": changed, "beats": len(c32)})
    metrics["int8 encoder (issue 24)"] = entry
    card.metrics = metrics
    write_card(card, a.model_dir / "model.json")
    print(json.dumps({k: v for k, v in entry.items() if "per_class" not in k}, indent=1))


if __name__ == "__main__":
    main()
