"""Finish the bundled segments-abnormal card from a training run and its DS2 evaluations (issue 21).

    ecgcore export attention RUN --out python/ecgcore/data/models/segments-abnormal        (fc1 in int8)
    ecgcore infer python/ecgcore/data/models/segments-abnormal DS2... -o seg.csv
    ecgcore infer-report seg.csv --records-dir MITDB --json seg.json
    ecgcore evaluate attention RUN --records-dir MITDB                                   (attention_analysis.json)
    python tools/segments_abnormal_card.py RUN MODEL_DIR --infer seg.json --rr-baseline rr.json \
        [--aami-baseline aami.json] [--width-baseline width.json]

Adds: the DS2 figures through ``ecgcore infer`` (every window, the seed's label rule), the attention analysis
summary, the baselines in the same terms, the targets, the headline, warnings for every target missed, the ONNX size
and its int8 difference from PyTorch, and the training record (epochs, best epoch, stop reason, time, command).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ecgcore.export.card import read_card, write_card

TARGETS = {"roc_auc": 0.95, "f1": 0.85, "onnx_mb": 10.0}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("--infer", type=Path, required=True, help="infer-report JSON of the DS2 window table")
    ap.add_argument("--rr-baseline", type=Path, required=True)
    ap.add_argument("--aami-baseline", type=Path)
    ap.add_argument("--width-baseline", type=Path, help="tools/segments_baselines.py --width-out")
    a = ap.parse_args()

    card = read_card(a.model_dir / "model.json")
    rep = json.loads(a.infer.read_text())
    analysis_path = a.run / "attention_analysis.json"
    analysis = json.loads(analysis_path.read_text())["summary"] if analysis_path.is_file() else None
    metrics = dict(card.metrics)
    metrics["DS2, ecgcore infer (every window, seed label rule)"] = rep
    metrics["baseline: RR irregularity (threshold from DS1 windows)"] = json.loads(a.rr_baseline.read_text())
    if a.aami_baseline:
        metrics["baseline: beats-aami abnormal-beat share (threshold from DS1 windows)"] = json.loads(
            a.aami_baseline.read_text())
    if a.width_baseline:
        metrics["baseline: median QRS width (threshold from DS1 windows)"] = json.loads(a.width_baseline.read_text())
    if analysis:
        metrics["attention analysis (DS2 windows holding abnormal and normal beats)"] = analysis
    size_mb = (a.model_dir / "model.onnx").stat().st_size / 1e6
    metrics["onnx_size_mb"] = round(size_mb, 2)
    metrics["targets (issue 21)"] = TARGETS
    card.metrics = metrics
    card.headline = {"DS2 ROC-AUC": round(rep["roc_auc"], 4), "DS2 F1(Abnormal)": round(rep["f1"], 4),
                     "DS2 accuracy": round(rep["accuracy"], 4), "ONNX MB": round(size_mb, 2)}
    warnings = []
    if rep["roc_auc"] < TARGETS["roc_auc"]:
        warnings.append(f"below the issue-21 target on DS2: ROC-AUC {rep['roc_auc']:.3f} < {TARGETS['roc_auc']}")
    if rep["f1"] < TARGETS["f1"]:
        warnings.append(f"below the issue-21 target on DS2: F1(Abnormal) {rep['f1']:.3f} < {TARGETS['f1']}")
    if size_mb > TARGETS["onnx_mb"]:
        warnings.append(f"model.onnx is {size_mb:.1f} MB (> {TARGETS['onnx_mb']} MB)")
    warnings.append("research model, not for clinical use")
    card.warnings = warnings
    write_card(card, a.model_dir / "model.json")
    print(json.dumps(card.headline, indent=1))
    print("\n".join(warnings))


if __name__ == "__main__":
    main()
