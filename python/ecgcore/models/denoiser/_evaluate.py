"""Evaluation of a denoiser run on the ``test`` split (MIT-BIH DS2 + unseen NSTDB noise), with baselines.

For every test pair ``(window, noise type, SNR)`` four outputs are scored against the clean window: the
noisy input itself, the Attention U-Net (z-score in, scale restored), a zero-phase 0.5-40 Hz Butterworth
band-pass (order 3, as the Heartify sibling API filters) and a wavelet-threshold filter (sym8, 5 levels,
universal threshold ``σ√(2 ln n)`` with ``σ = median|d1| / 0.6745``, soft, detail bands only). Metrics, in
the input's units (mV): output SNR and SNR improvement (dB), RMSE, PRD (%), cosine similarity.

R-peak F1 (EC57 rules, 150 ms window, ``ecgcore.datasets.ec57``): ``ecgcore.dsp.detect_r_peaks`` at 130 Hz on
each 10 s window of each output, against the MIT-BIH reference beat annotations mapped to 130 Hz
(``round(sample · 130 / 360)``; VF episodes unscored) when the MIT-BIH folder is given, else against the
peaks detected on the clean window. The clean window's own F1 is reported as the ceiling.

With ``onnx_model`` (a bundled name or an exported model folder) the denoiser is that model through onnxruntime,
each 10 s window denoised as ``ecgcore infer`` does (:meth:`ecgcore.infer.Scorer.denoise`: the card's input
pre-filter, the network, its filter guard), instead of ``RUN_DIR/best.pt``; RUN_DIR then only receives the results.

Results are cached per record under ``RUN_DIR/eval/cache`` (a re-run resumes) and written as
``RUN_DIR/eval/table.csv``, ``RUN_DIR/metrics.json["evaluation"]`` and PNG plots.
"""
from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

import numpy as np

from ..._fs import write_npz, write_text
from ...datasets.ec57 import beat_mask, match_beats, scored_mask
from ...datasets.noise import snr_db
from ...dsp import bandpass, detect_r_peaks
from .data import load_split, normalize_pairs, prefilter_rows, read_dataset_meta

__all__ = ["evaluate", "butterworth_baseline", "wavelet_baseline", "pair_metrics", "METHODS", "format_table"]

METHODS = ("noisy", "denoiser", "butterworth", "wavelet")
METRICS = ("snr_out", "snr_improvement", "rmse", "prd", "cosine")
_PEAK_SOURCES = METHODS + ("clean",)


def butterworth_baseline(x: np.ndarray, fs: float = 130.0) -> np.ndarray:
    """Zero-phase Butterworth 0.5-40 Hz, order 3, along the last axis of ``(..., n)``."""
    return bandpass(np.asarray(x, dtype=np.float64), fs=fs, low=0.5, high=40.0, order=3)


def wavelet_baseline(x: np.ndarray, wavelet: str = "sym8", level: int = 5) -> np.ndarray:
    """Soft universal-threshold wavelet shrinkage of the detail bands, rows of ``(n_rows, n)``."""
    import pywt

    x = np.asarray(x, dtype=np.float64)
    coeffs = pywt.wavedec(x, wavelet, level=level, axis=-1, mode="symmetric")
    sigma = np.median(np.abs(coeffs[-1]), axis=-1, keepdims=True) / 0.6745
    thr = sigma * np.sqrt(2.0 * np.log(x.shape[-1]))
    coeffs = [coeffs[0]] + [pywt.threshold(c, thr, mode="soft") for c in coeffs[1:]]
    return pywt.waverec(coeffs, wavelet, axis=-1, mode="symmetric")[..., : x.shape[-1]]


def pair_metrics(clean: np.ndarray, noisy: np.ndarray, out: np.ndarray) -> dict[str, np.ndarray]:
    """Per-row metrics of ``out`` against ``clean`` (all ``(n_rows, n)``); SNR improvement is relative to ``noisy``.

    ``snr_out = 10 log10(P(clean) / P(out - clean))`` (mean-removed powers, as ``datasets.noise.snr_db``),
    ``rmse = sqrt(mean((out - clean)^2))``, ``prd = 100 sqrt(Σ(out - clean)^2 / Σ clean^2)``,
    ``cosine = <out, clean> / (|out| |clean|)``.
    """
    clean = np.asarray(clean, dtype=np.float64)
    out = np.asarray(out, dtype=np.float64)
    err = out - clean
    s_out = snr_db(clean, out)
    s_in = snr_db(clean, noisy)
    denom = np.linalg.norm(out, axis=-1) * np.linalg.norm(clean, axis=-1)
    return {"snr_out": s_out, "snr_improvement": s_out - s_in, "rmse": np.sqrt(np.mean(err ** 2, axis=-1)),
            "prd": 100.0 * np.sqrt(np.sum(err ** 2, axis=-1) / np.sum(clean ** 2, axis=-1)),
            "cosine": np.sum(out * clean, axis=-1) / np.where(denom == 0, 1.0, denom)}


def _reference_beats(mitdb_dir: Path, record: str, starts: np.ndarray, length: int, fs: float):
    """Per window: reference beat positions (130 Hz samples within the window) and the unscored VF mask inputs."""
    from ...io import read_annotations

    ann = read_annotations(mitdb_dir / record, "atr")
    samples = np.asarray(ann.sample, dtype=np.int64)
    symbols = np.asarray(ann.symbol)
    fs_in = float(getattr(ann, "fs", None) or 360.0)
    s130 = np.rint(samples * fs / fs_in).astype(np.int64)
    beats = s130[beat_mask(symbols)]
    beats = beats[scored_mask(s130, symbols, beats)]
    out = []
    for st in starts:
        inside = beats[(beats >= st) & (beats < st + length)]
        out.append(inside - st)
    return out, s130, symbols


def _count(ref: np.ndarray, det: np.ndarray, window: int) -> tuple[int, int, int]:
    rm, dm = match_beats(np.sort(ref), np.sort(np.asarray(det, dtype=np.int64)), window=window)
    tp = int(np.count_nonzero(rm >= 0))
    return tp, int(ref.size - tp), int(np.count_nonzero(dm < 0))


def _model_outputs(model, noisy_rows: np.ndarray, batch: int, device: str, prefilter_hz: float = 0.0,
                   fs: float = 130.0) -> np.ndarray:
    if not hasattr(model, "state_dict"):  # an ecgcore.infer.Scorer: each row as `ecgcore infer` denoises it
        return np.stack([model.denoise(np.asarray(r, np.float64), model.options["fs"]) for r in noisy_rows])
    import torch

    x, _, _, std = normalize_pairs(prefilter_rows(noisy_rows, prefilter_hz, fs), noisy_rows)
    mean = np.asarray(noisy_rows, np.float64).mean(axis=-1)  # the input's own mean, as ecgcore infer keeps it
    out = np.empty(x.shape, dtype=np.float64)
    with torch.no_grad():
        for i in range(0, x.shape[0], batch):
            y = model(torch.from_numpy(x[i: i + batch, None]).to(device)).cpu().numpy()[:, 0]
            out[i: i + batch] = y
    return out * std[:, None] + mean[:, None]


def _model_digest(scorer) -> str:
    """A short digest of an exported model's graph and pre/post-processing (the cache key of its results)."""
    import hashlib

    h = hashlib.sha256(Path(scorer.onnx_path).read_bytes())
    h.update(json.dumps({k: scorer.options.get(k) for k in ("prefilter", "guard")}, sort_keys=True).encode())
    return h.hexdigest()[:12]


def _save_npz_atomic(path: Path, **arrays) -> None:
    write_npz(path, **arrays)


def _evaluate_record(model, pairs, mitdb_dir, batch, device, window, prefilter_hz: float = 0.0) -> dict[str, np.ndarray]:
    n_w, n_k, n_j, n = pairs.noisy.shape
    noisy = pairs.noisy.reshape(-1, n).astype(np.float64)
    clean = np.repeat(pairs.clean.astype(np.float64), n_k * n_j, axis=0)
    outs = {"noisy": noisy, "denoiser": _model_outputs(model, pairs.noisy.reshape(-1, n), batch, device,
                                                       prefilter_hz, pairs.fs),
            "butterworth": butterworth_baseline(noisy, pairs.fs), "wavelet": wavelet_baseline(noisy)}
    metrics = np.stack([np.stack([pair_metrics(clean, noisy, outs[m])[k] for k in METRICS], axis=-1)
                        for m in METHODS])  # (method, rows, metric)
    if mitdb_dir is not None:
        ref_w, _, _ = _reference_beats(Path(mitdb_dir), str(pairs.record[0]), pairs.start, n, pairs.fs)
    else:
        ref_w = [np.asarray(p, dtype=np.int64) for p in detect_r_peaks(pairs.clean, fs=pairs.fs)]
    counts = np.zeros((len(_PEAK_SOURCES), n_w * n_k * n_j, 3), dtype=np.int64)
    clean_peaks = detect_r_peaks(pairs.clean.astype(np.float64), fs=pairs.fs)
    for s, src in enumerate(_PEAK_SOURCES):
        det = detect_r_peaks(outs[src], fs=pairs.fs) if src != "clean" else None
        for r in range(n_w * n_k * n_j):
            w = r // (n_k * n_j)
            d = clean_peaks[w] if src == "clean" else det[r]
            counts[s, r] = _count(ref_w[w], np.asarray(d, dtype=np.int64), window)
    shape = (n_w, n_k, n_j)
    examples = {m: outs[m].reshape(*shape, n)[:1].astype(np.float32) for m in METHODS}
    return {"metrics": metrics.reshape(len(METHODS), *shape, len(METRICS)),
            "counts": counts.reshape(len(_PEAK_SOURCES), *shape, 3),
            **{f"example_{m}": v for m, v in examples.items()}, "example_clean": pairs.clean[:1]}


def _rows(metrics: np.ndarray, counts: np.ndarray, noise: list[str], snrs: np.ndarray) -> list[dict]:
    """Table rows: per method × noise × SNR, plus noise "all" (mean over noise types)."""
    rows = []
    for m, method in enumerate(METHODS):
        for j, snr in enumerate(snrs):
            for k, kind in list(enumerate(noise)) + [(None, "all")]:
                sel = metrics[m, :, :, j] if k is None else metrics[m, :, k, j]
                cnt = counts[m, :, :, j] if k is None else counts[m, :, k, j]
                tp, fn, fp = cnt.reshape(-1, 3).sum(axis=0)
                row = {"method": method, "noise": kind, "snr_in_db": float(snr),
                       "pairs": int(sel.reshape(-1, len(METRICS)).shape[0])}
                flat = sel.reshape(-1, len(METRICS))
                for i, name in enumerate(METRICS):
                    row[name] = float(np.mean(flat[:, i]))
                row["rpeak_f1"] = float(100.0 * 2 * tp / max(2 * tp + fn + fp, 1))
                row["rpeak_se"] = float(100.0 * tp / max(tp + fn, 1))
                row["rpeak_ppv"] = float(100.0 * tp / max(tp + fp, 1))
                rows.append(row)
    return rows


_COLS = ("method", "noise", "snr_in_db", "pairs", "snr_out", "snr_improvement", "rmse", "prd", "cosine",
         "rpeak_f1", "rpeak_se", "rpeak_ppv")


def _per_record_rows(results, noise, snrs) -> list[dict]:
    """Mean SNR improvement (dB) of each method per test record, input SNR and noise type (``"all"``: the mean over
    the record's pairs of every noise type): where a pooled figure comes from."""
    k = METRICS.index("snr_improvement")
    out = []
    for rec, res in results:
        m = res["metrics"]  # (method, window, noise, snr, metric)
        for j, snr in enumerate(snrs):
            for i, kind in [(None, "all")] + list(enumerate(noise)):
                sel = m[:, :, :, j, k] if i is None else m[:, :, i, j, k]
                vals = sel.reshape(len(METHODS), -1).mean(axis=1)
                out.append({"record": str(rec), "noise": kind, "snr_in_db": float(snr), "pairs": int(sel[0].size),
                            **{meth: float(v) for meth, v in zip(METHODS, vals) if meth != "noisy"}})
    return out


def format_table(rows: list[dict], noise: str | None = None) -> str:
    """Fixed-width text table of evaluation rows (optionally only one noise type or "all")."""
    head = f"{'method':<12}{'noise':<6}{'SNRin':>6}{'pairs':>7}{'SNRout':>8}{'ΔSNR':>7}{'RMSE':>8}{'PRD%':>7}" \
           f"{'cos':>7}{'F1%':>7}"
    lines = [head, "-" * len(head)]
    for r in rows:
        if noise is not None and r["noise"] != noise:
            continue
        lines.append(f"{r['method']:<12}{r['noise']:<6}{r['snr_in_db']:>6.0f}{r['pairs']:>7d}{r['snr_out']:>8.2f}"
                     f"{r['snr_improvement']:>7.2f}{r['rmse']:>8.4f}{r['prd']:>7.1f}{r['cosine']:>7.3f}"
                     f"{r['rpeak_f1']:>7.2f}")
    return "\n".join(lines)


def _write_text_atomic(path: Path, text: str) -> None:
    write_text(path, text)


def _plots(out_dir: Path, rows: list[dict], examples: dict, noise: list[str], snrs: np.ndarray, fs: float,
           record: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    t = np.arange(examples["clean"].shape[-1]) / fs
    for j, snr in enumerate(snrs):
        fig, axes = plt.subplots(len(noise), 1, figsize=(11, 2.6 * len(noise)), sharex=True)
        for k, kind in enumerate(noise):
            ax = axes[k]
            ax.plot(t, examples["noisy"][0, k, j], color="0.7", lw=0.8, label="noisy")
            ax.plot(t, examples["clean"][0], color="k", lw=1.0, label="clean")
            ax.plot(t, examples["denoiser"][0, k, j], color="tab:red", lw=0.9, label="Attention U-Net")
            ax.plot(t, examples["butterworth"][0, k, j], color="tab:blue", lw=0.7, alpha=0.7,
                    label="Butterworth 0.5-40 Hz")
            ax.set_title(f"record {record}, {kind} noise at {snr:g} dB", fontsize=9)
            ax.set_ylabel("mV")
        axes[0].legend(loc="upper right", fontsize=7, ncol=4)
        axes[-1].set_xlabel("s")
        fig.tight_layout()
        name = f"example_{record}_snr{snr:+g}dB.png".replace("+", "p").replace("-", "m")
        fig.savefig(out_dir / name, dpi=100)
        plt.close(fig)
        written.append(name)
    fig, axes = plt.subplots(1, len(noise) + 1, figsize=(4 * (len(noise) + 1), 3.4), sharey=True)
    for ax, kind in zip(axes, list(noise) + ["all"]):
        for method in METHODS[1:]:
            sel = [r for r in rows if r["method"] == method and r["noise"] == kind]
            ax.plot([r["snr_in_db"] for r in sel], [r["snr_improvement"] for r in sel], marker="o", label=method)
        ax.set_title(f"noise: {kind}")
        ax.set_xlabel("input SNR (dB)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("SNR improvement (dB)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "snr_improvement.png", dpi=100)
    plt.close(fig)
    written.append("snr_improvement.png")
    return written


def _run_data_dir(run_dir: Path) -> str:
    """The dataset a run was trained on (its ``config.json``, or an older run's ``metrics.json``)."""
    for name, key in (("config.json", "data_dir"), ("metrics.json", None)):
        p = run_dir / name
        if p.is_file():
            d = json.loads(p.read_text())
            found = d.get(key) if key else d.get("training", {}).get("dataset")
            if found:
                return found
    raise ValueError(f"{run_dir}: no dataset recorded in the run; pass the denoise-pairs folder")


def evaluate(run_dir, data_dir=None, *, mitdb_dir=None, qtdb_dir=None, records: list[str] | None = None,
             max_windows: int | None = None, device: str = "cpu", batch_size: int = 64, progress: bool = True,
             threads: int | None = None, onnx_model=None, command: str | None = None) -> dict:
    """Score ``RUN_DIR/best.pt`` (or ``onnx_model``) on every test pair of ``data_dir`` against the classical baselines.

    Parameters
    ----------
    run_dir : a training run folder (``best.pt``); with ``onnx_model``, any folder for the results
    data_dir : ``ecgcore preprocess denoise-pairs`` output (``test`` split: DS2 records); default: the run's
        (required with ``onnx_model``)
    onnx_model : a bundled model name or exported denoiser folder, scored through onnxruntime as ``ecgcore infer``
        runs it (card pre-filter and guard included) instead of the run's checkpoint
    command : the command line that ran it, recorded with the results
    mitdb_dir : MIT-BIH folder whose ``.atr`` annotations give the R-peak reference (else clean-window detections)
    qtdb_dir : QT Database folder for the DeepFilter protocol; reported as not run when absent
    records : only these test records
    max_windows : only the first N clean windows of each record (quick checks; default all)

    Returns
    -------
    The ``evaluation`` section written to ``RUN_DIR/metrics.json``: ``rows`` (one per method × noise × SNR,
    noise ``"all"`` = mean over the noise types), ``summary``, protocol notes.
    """
    import torch
    from tqdm.auto import tqdm

    from ._train import load_model, write_json_atomic

    if threads:
        torch.set_num_threads(int(threads))
    run_dir = Path(run_dir)
    if onnx_model is not None:
        from ...infer.core import Scorer

        if data_dir is None:
            raise ValueError("scoring an exported model needs the denoise-pairs folder (data_dir)")
        model = Scorer(str(onnx_model), threads=threads)
        if model.kind != "denoise-pairs":
            raise ValueError(f"model {model.card.name!r} is not a denoiser (preprocessing {model.kind!r})")
        ckpt = {"step": 0}
        run_dir.mkdir(parents=True, exist_ok=True)
    else:
        model, ckpt = load_model(run_dir, device=device)
    dataset_dir = data_dir if data_dir is not None else _run_data_dir(run_dir)
    splits, meta = read_dataset_meta(dataset_dir)
    names = list(splits["test"]) if records is None else list(records)
    unknown = [r for r in names if r not in splits["test"]]
    if unknown:
        raise ValueError(f"record(s) {', '.join(unknown)} are not in the test split of {dataset_dir}")
    if mitdb_dir is not None and not Path(mitdb_dir).is_dir():
        raise FileNotFoundError(f"MIT-BIH folder {mitdb_dir} not found (needed for the annotation R-peak reference)")
    out_dir = run_dir / "eval"
    cache = out_dir / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    ref_kind = "mitdb-annotations" if mitdb_dir is not None else "clean-detections"
    tag = (f"onnx-{model.card.name}-{_model_digest(model)}" if onnx_model is not None else f"step{ckpt.get('step', 0)}")
    tag += f"-{ref_kind}" + (f"-w{max_windows}" if max_windows else "")
    t0 = time.monotonic()
    fs = float(meta["options"]["fs"])
    window = int(round(0.150 * fs))
    results, noise, snrs = [], None, None
    for rec in tqdm(names, desc="evaluate denoiser", unit="rec", disable=not progress):
        path = cache / f"{rec}-{tag}.npz"
        if path.is_file():
            with np.load(path) as z:
                res = {k: z[k] for k in z.files}
        else:
            pairs = load_split(dataset_dir, "test", records=[rec])
            if max_windows:
                pairs = pairs.subset(np.arange(min(max_windows, pairs.clean.shape[0])))
            res = _evaluate_record(model, pairs, mitdb_dir, batch_size, device, window,
                                   float(ckpt.get("config", {}).get("prefilter_hz", 0.0) or 0.0))
            res["noise"], res["snr_db"] = np.array(pairs.noise), pairs.snr_db
            _save_npz_atomic(path, **res)
        noise, snrs = [str(s) for s in res["noise"]], res["snr_db"]
        results.append((rec, res))
    metrics = np.concatenate([r["metrics"] for _, r in results], axis=1)
    counts = np.concatenate([r["counts"] for _, r in results], axis=1)
    rows = _rows(metrics, counts, noise, snrs)
    clean_f1 = []
    for j, snr in enumerate(snrs):
        tp, fn, fp = counts[len(METHODS), :, :, j].reshape(-1, 3).sum(axis=0)
        clean_f1.append({"snr_in_db": float(snr), "rpeak_f1": float(100.0 * 2 * tp / max(2 * tp + fn + fp, 1))})

    def pick(method, noise_kind, snr):
        return next(r for r in rows if r["method"] == method and r["noise"] == noise_kind and r["snr_in_db"] == snr)

    beats_all = {float(s): all(pick("denoiser", k, float(s))["snr_improvement"] >
                               max(pick("butterworth", k, float(s))["snr_improvement"],
                                   pick("wavelet", k, float(s))["snr_improvement"])
                               for k in noise) for s in snrs}
    imp0 = pick("denoiser", "all", 0.0)["snr_improvement"] if 0.0 in [float(s) for s in snrs] else None
    per_record = _per_record_rows(results, noise, snrs)
    qt = Path(qtdb_dir) if qtdb_dir is not None else None
    evaluation = {
        **({"checkpoint": str(run_dir / "best.pt"), "checkpoint_step": int(ckpt.get("step", 0))} if onnx_model is None
           else {"onnx_model": str(onnx_model), "scored_as": "ecgcore infer: Scorer.denoise per 10 s window (card "
                                                            "pre-filter, network through onnxruntime, filter guard)",
                 "prefilter": model.options.get("prefilter"), "guard": model.options.get("guard")}),
        "dataset": str(Path(dataset_dir).resolve()), "records": names, "max_windows": max_windows,
        "pairs": int(np.prod(metrics.shape[1:4])), "noise": noise, "snr_db": [float(s) for s in snrs],
        "rpeak_reference": ref_kind, "rpeak_match_window_s": 0.150,
        "methods": {"noisy": "the input itself",
                    "denoiser": ("Attention U-Net, z-score in, scale restored" if onnx_model is None else
                                 "the exported model as ecgcore infer runs it"),
                    "butterworth": "zero-phase Butterworth 0.5-40 Hz, order 3",
                    "wavelet": "pywt sym8, 5 levels, universal threshold (MAD of d1), soft, details only"},
        "rows": rows, "clean_rpeak_f1": clean_f1,
        "per_record_snr_improvement": per_record,
        "summary": {"snr_improvement_at_0db_mean_over_noise": imp0,
                    "target_10db_at_0db_met": bool(imp0 is not None and imp0 >= 10.0),
                    "beats_both_baselines_on_every_noise_by_snr": beats_all,
                    "beats_baselines_everywhere": bool(all(beats_all.values()))},
        "deepfilter_protocol": ({"status": "not run: QT Database not found", "looked_for": str(qt)}
                                if qt is None or not qt.is_dir() else
                                {"status": "not run: QT Database present but the DeepFilter protocol is not "
                                           "implemented in this version", "looked_for": str(qt)}),
        "wall_s": round(time.monotonic() - t0, 1), "command": command,
    }
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(_COLS), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    _write_text_atomic(out_dir / "table.csv", buf.getvalue())
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(per_record[0]), lineterminator="\n")
    w.writeheader()
    w.writerows({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()} for r in per_record)
    _write_text_atomic(out_dir / "per_record.csv", buf.getvalue())
    ex = results[0][1]
    evaluation["plots"] = [f"eval/{p}" for p in _plots(
        out_dir, rows, {m: ex[f"example_{m}"] for m in METHODS} | {"clean": ex["example_clean"]},
        noise, snrs, fs, results[0][0])]
    mpath = run_dir / "metrics.json"
    m = json.loads(mpath.read_text()) if mpath.is_file() else {}
    m["evaluation"] = evaluation
    write_json_atomic(mpath, m)
    return evaluation
