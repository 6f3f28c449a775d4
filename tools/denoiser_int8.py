"""Store an exported denoiser's large convolution weights in int8 and record the change in its card (issue 22).

    ecgcore export denoiser RUN --out MODEL_DIR
    python tools/denoiser_int8.py MODEL_DIR --pairs DENOISE_PAIRS

Rewrites MODEL_DIR/model.onnx with :func:`ecgcore.export.quantize.quantize_weights` (one int8 scale per output
channel, weights of at least ``--min-elements`` values, float32 arithmetic; the int8 graph is made and compared in a
temporary folder and replaces model.onnx only when that worked, so a failure leaves the folder as it was and nothing
unshipped lands in a bundled model's folder) and writes
``metrics.weight_storage`` into MODEL_DIR/model.json: the tensors and bytes, and the difference from the float graph
on ``--windows`` real DS2 windows (noisy inputs of the test split, evenly spread over windows, noise types and SNRs,
pre-filtered and z-scored as ``ecgcore infer`` feeds them), in z-score units.
Run it before the guard calibration and the DS2 evaluations, so every figure in the card is the int8 graph's.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("--pairs", type=Path, required=True, help="ecgcore preprocess denoise-pairs output (DS2 = test)")
    ap.add_argument("--windows", type=int, default=64)
    ap.add_argument("--min-elements", type=int, default=10_000)
    a = ap.parse_args(argv)

    import onnxruntime as ort

    from ecgcore.export.card import read_card, write_card
    from ecgcore.export.quantize import quantize_weights
    from ecgcore.models.denoiser.data import load_split, normalize_pairs, prefilter_rows

    onnx_path = a.model_dir / "model.onnx"
    card_path = a.model_dir / "model.json"
    card = read_card(card_path)
    if card.metrics.get("weight_storage"):
        print(f"{onnx_path} is already int8 (card metrics.weight_storage); export again first", file=sys.stderr)
        return 2
    pairs = load_split(a.pairs, "test")
    # every (window, noise, SNR) row of the test split, flattened; the sample cycles through noises and SNRs
    noisy = pairs.noisy.reshape(-1, pairs.noisy.shape[-1])
    clean = np.repeat(pairs.clean, noisy.shape[0] // pairs.clean.shape[0], axis=0)
    idx = np.linspace(0, noisy.shape[0] - 1, a.windows).round().astype(int)
    pre = ((card.preprocessing or {}).get("prefilter") or {}).get("highpass_hz", 0.0)
    x, _, _, _ = normalize_pairs(prefilter_rows(noisy[idx], pre, pairs.fs), clean[idx])
    x = x[:, None, :].astype(np.float32)

    def run(path: Path) -> np.ndarray:
        s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return s.run(None, {s.get_inputs()[0].name: x})[0]

    # Quantize and compare in a temporary folder; the model folder changes only once everything has worked.
    with tempfile.TemporaryDirectory() as tmp:
        int8 = Path(tmp) / "model.int8.onnx"
        # convolutions only: a global-context block's Linear weights stay float (onnxruntime would run their
        # int8 MatMuls with quantized activations; they are ~1 MB)
        rep = quantize_weights(onnx_path, int8, min_elements=a.min_elements, op_types=("Conv", "ConvTranspose"))
        y32, y8 = run(onnx_path), run(int8)
        shutil.copyfile(int8, onnx_path)
    d = y8 - y32
    card.metrics["weight_storage"] = {
        "kind": f"int8 per output channel (ecgcore.export.quantize.quantize_weights, min_elements {a.min_elements}), "
                "DequantizeLinear in front of each Conv/ConvTranspose, float32 arithmetic",
        "tensors": len(rep["quantized"]), "bytes_fp32": rep["bytes_before"], "bytes_int8": rep["bytes_after"],
        f"vs_fp32_onnx_on_{a.windows}_real_ds2_windows": {
            "max_abs_diff_z_units": round(float(np.abs(d).max()), 5),
            "rms_diff": round(float(np.sqrt(np.mean(d * d))), 5),
            "rms_output": round(float(np.sqrt(np.mean(y32 * y32))), 5)},
        "command": f"python tools/denoiser_int8.py MODEL_DIR --pairs DENOISE_PAIRS --windows {a.windows} "
                   f"--min-elements {a.min_elements}",
    }
    write_card(card, card_path)
    print(f"{len(rep['quantized'])} tensors in int8: {rep['bytes_before']:,} -> {rep['bytes_after']:,} bytes; "
          f"vs float on {a.windows} DS2 windows: rms diff {np.sqrt(np.mean(d * d)):.5f} "
          f"(output rms {np.sqrt(np.mean(y32 * y32)):.4f}), max {np.abs(d).max():.4f} z units")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
