"""Evaluation of a trained run on its test records: ``metrics.json``, ``classification_report.txt`` and plots."""
from __future__ import annotations

import time

import numpy as np

from .config import ConformerConfig
from .data import dataset_index, make_dataset, rr_table
from .metrics import write_report

__all__ = ["evaluate", "predict_records"]


def onnx_predictor(model, cfg: ConformerConfig, onnx_path, *, threads: int | None = 1):
    """A ``feeds -> probabilities`` callable over an onnxruntime session of ``model`` (exported to ``onnx_path``).

    onnxruntime runs this network several times faster than Keras on one CPU thread; the first batch is also run
    through Keras and must agree within 1e-4 (``ecgcore.export.onnx_parity``), so scores are the Keras model's.
    """
    import onnxruntime as ort

    from ...export import onnx_parity
    from ._export import to_onnx

    to_onnx(model, onnx_path, cfg)
    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = so.inter_op_num_threads = int(threads)
    sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
    state = {"checked": None}

    def run(xb):
        feeds = {k: v.numpy() for k, v in xb.items()} if isinstance(xb, dict) else {"scalograms": xb.numpy()}
        out = sess.run(None, feeds)[0]
        if state["checked"] is None:
            state["checked"] = onnx_parity(onnx_path, feeds, np.asarray(model.predict_on_batch(xb)), atol=1e-4)
        return out

    run.state = state
    return run


def predict_records(model, index, records, norm: dict, cfg: ConformerConfig, *, records_dir=None,
                    keep_mask=None, batch_size: int = 128, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(labels (n,), probabilities (n, 5)) of the kept sequences of ``records``, in record order.

    ``model`` is a Keras model or any callable from an input batch to probabilities (:func:`onnx_predictor`).
    """
    from tqdm.auto import tqdm

    rr = rr_table(index, records, records_dir, cfg.rr_set) if cfg.rr_features else None
    ds = make_dataset(index, records, mean=norm["mean"], scale=norm["scale"], batch_size=batch_size, training=False,
                      rr=rr, rr_mean=norm.get("rr_mean"), rr_scale=norm.get("rr_scale"), keep_mask=keep_mask)
    n = int(keep_mask.sum()) if keep_mask is not None else sum(len(index.labels[r]) for r in records)
    ys, ps = [], []
    with tqdm(total=n, desc="predict", unit="seq", disable=not progress) as bar:
        for xb, yb in ds:
            ps.append(np.asarray(model.predict_on_batch(xb) if hasattr(model, "predict_on_batch") else model(xb)))
            ys.append(yb.numpy())
            bar.update(len(ys[-1]))
    if not ys:
        return np.zeros(0, int), np.zeros((0, cfg.n_classes), np.float32)
    return np.concatenate(ys), np.concatenate(ps)


def evaluate(run_dir, data_dir=None, *, records=None, n_fraction: float | None = None,
             max_per_class: int | None = None, model: str = "model.keras", name: str | None = None,
             backend: str = "onnxruntime", threads: int | None = None, progress: bool = True) -> dict:
    """Score a run's model on its test records (or ``records``) and write the report into ``run_dir/<name>``.

    ``data_dir`` defaults to the run's dataset, ``n_fraction`` and ``threads`` to the run's config
    (``eval_n_fraction``, ``threads``). ``n_fraction < 1`` scores every S, V, F, Q sequence and that fraction of the N sequences (a fixed random
    subset), weighting each scored N by (N count / N scored) so that all figures estimate the full-set ones.
    ``max_per_class`` caps every class at that many scored sequences (a fixed random subset per class, each
    weighted by class count / scored count): stratified sampling, unbiased for every figure of the confusion matrix.
    ``backend="onnxruntime"`` (default) scores through the exported graph after a 1e-4 parity check against
    Keras on the first batch; ``"keras"`` uses Keras throughout.
    """
    if backend not in ("onnxruntime", "keras"):
        raise ValueError(f"backend must be 'onnxruntime' or 'keras', got {backend!r}")
    from ._common import configure_tensorflow, load_run, load_run_model

    run, meta, cfg, norm = load_run(run_dir)
    threads = cfg.threads if threads is None else threads
    n_fraction = cfg.eval_n_fraction if n_fraction is None else n_fraction
    configure_tensorflow(threads)
    index = dataset_index(data_dir or meta["data_dir"])
    records = list(records) if records else meta["test_records"]
    if not 0 < n_fraction <= 1:
        raise ValueError(f"n_fraction must lie in (0, 1], got {n_fraction}")
    labels = np.concatenate([index.labels[r] for r in records])
    mask = None
    rng = np.random.default_rng(cfg.seed)
    if n_fraction < 1:
        mask = (labels != 0) | (rng.random(len(labels)) < n_fraction)
    if max_per_class:
        mask = np.ones(len(labels), bool) if mask is None else mask
        for c in np.unique(labels):
            idx = np.flatnonzero(mask & (labels == c))
            if len(idx) > max_per_class:
                mask[rng.choice(idx, len(idx) - int(max_per_class), replace=False)] = False
    net = load_run_model(run / model)
    name = name or f"eval_{meta['protocol']}"
    (run / name).mkdir(parents=True, exist_ok=True)
    predictor = onnx_predictor(net, cfg, run / name / "model.onnx", threads=threads) if backend == "onnxruntime" else net
    t0 = time.time()
    y, proba = predict_records(predictor, index, records, norm, cfg, records_dir=meta.get("records_dir"),
                               keep_mask=mask, batch_size=cfg.batch_size, progress=progress)
    weights = None
    if mask is not None:
        full = np.bincount(labels, minlength=cfg.n_classes)
        kept = np.bincount(labels[mask], minlength=cfg.n_classes)
        weights = (full / np.maximum(kept, 1))[y]
    title = (f"ecgcore conformer ({cfg.variant}{', RR inputs' if cfg.rr_features else ''}) — protocol "
             f"{meta['protocol']}, test records {', '.join(records)}"
             + (f"; stratified subset of {int(mask.sum())} of {len(labels)} sequences (N fraction {n_fraction}, "
                f"at most {max_per_class} per class), reweighted to the full class counts" if mask is not None else ""))
    return write_report(run / name, y, proba, weights=weights, title=title,
                        extra={"records": records, "n_fraction": n_fraction, "max_per_class": max_per_class,
                               "model": model,
                               "predict_seconds": time.time() - t0, "backend": backend,
                               "onnx_parity_first_batch": getattr(predictor, "state", {}).get("checked"),
                               "class_counts_full": np.bincount(labels, minlength=5).tolist()})
