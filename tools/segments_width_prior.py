"""Give a segments-abnormal model the QRS-width prior, OR-combined with its network (issue 21).

    python tools/segments_width_prior.py MODEL_DIR SEGMENTS_DIR OUT_DIR

MODEL_DIR holds a seed-form ``model.onnx`` + ``model.json`` (e.g. the bundled model before the prior); SEGMENTS_DIR is
the ``ecgcore preprocess segments`` dataset it trained on. The network's weights are read back from the graph
(``load_onnx_weights``) and left as they are. ``attach_width_prior`` fits the prior on the network's training windows (DS1) only: the width
threshold T that maximises F1(Abnormal) of the median QRS width alone, the logistic slope, and the intercept moved
so that the prior's probability equals the card's decision threshold at T. OUT_DIR receives ``model.onnx`` (inputs
``ecg`` and ``qrs_width``; fc1 in int8 as before), ``attention.onnx`` (unchanged function) and the card, with the
prior in ``preprocessing.qrs_width``, the fit in ``training.width_prior`` and the network's own figures kept under
``metrics["network alone (...)"]``. Then score DS2 with ``ecgcore infer`` and finish the card with
``tools/segments_abnormal_card.py``.
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path


from ecgcore.export.card import read_card, write_card
from ecgcore.models.attention import AttentionConfig
from ecgcore.models.attention._export import (check_windows_of, export_graphs, load_onnx_weights,
                                               quantize_checked, width_prior_card)
from ecgcore.models.attention.data import config_splits
from ecgcore.models.attention.model import attach_width_prior

# metrics of the network alone (before the prior): kept, relabelled
NETWORK_KEYS = ("test", "DS2, ecgcore infer (every window, seed label rule)",
                "DS2, ecgcore infer, argmax at 0.5 (the operating point before 2026-12-05)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("segments", type=Path)
    ap.add_argument("out_dir", type=Path)
    a = ap.parse_args()

    card = read_card(a.model_dir / "model.json")
    config = AttentionConfig.from_dict(card.config)
    if config.prior != "none":
        raise SystemExit(f"{a.model_dir}: the model already has a prior ({config.prior})")
    decision = card.preprocessing.get("decision") or {}
    if "threshold" not in decision:
        raise SystemExit(f"{a.model_dir}: the card has no decision threshold (preprocessing.decision, written for "
                         "balanced-weight runs); the prior is placed at that threshold")
    threshold = float(decision["threshold"])
    model = load_onnx_weights(a.model_dir / "model.onnx", config).eval()
    splits = config_splits(a.segments, config)  # the network's own training split (all of DS1 for a refit)
    train, test = splits["train"], splits["test"]
    fit = attach_width_prior(model, train.x, train.y, threshold)
    fit["fitted_on"] = f"the {len(train)} DS1 windows of {len(set(train.record.tolist()))} records"

    a.out_dir.mkdir(parents=True, exist_ok=True)
    x = check_windows_of(test, 8)  # as `ecgcore export attention` picks them
    worst = export_graphs(model, a.out_dir, x)
    int8 = quantize_checked(model, a.out_dir / "model.onnx", x)

    metrics = dict(card.metrics)
    net = {k: metrics.pop(k) for k in NETWORK_KEYS if k in metrics}
    old_version = str(card.version)
    metrics[f"network alone (version {old_version}, the same weights without the width prior)"] = net
    metrics["onnx_parity_max_abs_diff"] = worst
    metrics["onnx_parity_windows"] = int(len(x))
    if int8:
        metrics["onnx_int8"] = int8
    else:
        metrics.pop("onnx_int8", None)
    card.metrics = metrics
    entry, section = width_prior_card(
        model, {k: fit[k] for k in ("threshold_ms", "at_probability")},
        rule_suffix=". At the decision threshold: Abnormal when the network says so or the window's median QRS width "
                    ">= threshold_ms")
    card.inputs = [card.inputs[0], entry]
    card.preprocessing["qrs_width"] = section
    card.config = model.config.to_dict()
    card.training = {**card.training, "width_prior": fit,
                     "width_prior_command": "python tools/segments_width_prior.py MODEL_DIR SEGMENTS OUT "
                                            f"(MODEL_DIR: version {old_version} of {card.name})"}
    card.version = str(int(old_version) + 1) if old_version.isdigit() else f"{old_version}+width"
    card.description = (card.description.rstrip(".") + f". Version {card.version}: the same network OR a QRS-width prior: "
                        "P(Abnormal) = max(network, logistic(median QRS width)), the prior fitted on the DS1 windows "
                        "(second graph input qrs_width, measured by ecgcore infer); a bundle-branch block widens every "
                        "QRS in any patient, which the network, trained on two patients of each block, does not "
                        "generalise.")
    # the headline and warnings spoke of the network alone: until segments_abnormal_card.py scores this version
    card.headline = {}
    card.warnings = ["not scored yet: run ecgcore infer on DS2 and tools/segments_abnormal_card.py",
                     "research model, not for clinical use"]
    write_card(card, a.out_dir / "model.json")
    if a.model_dir.resolve() != a.out_dir.resolve():
        for extra in a.model_dir.iterdir():  # anything else the folder ships (plots), unchanged
            if extra.is_file() and not (a.out_dir / extra.name).exists():
                shutil.copy2(extra, a.out_dir / extra.name)
    print(json.dumps({"width_prior": fit, "parity": worst,
                      "int8": int8 and {k: int8[k] for k in ("bytes_after", "max_abs_diff_probabilities")}}))


if __name__ == "__main__":
    main()
