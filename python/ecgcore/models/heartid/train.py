"""Training: the seed's loop (AdamW, two fresh keys per batch, five embeddings, triplet loss) on real subjects.

Outputs in the run folder, rewritten atomically after every epoch so a run can be resumed:
``heartid_model.npz`` (flattened parameters, the seed's file name), ``optimizer.safetensors``
(``tree_flatten(optimizer.state)``: step, learning_rate, m and v), ``best_model.npz`` (lowest validation EER),
``state.json`` (epoch, history, best), ``split.json`` (subject-disjoint train/val/test ids), ``config.json``.

Why ``key_scale``: the key enters only the (linear) dense layer, so an embedding is ``f(x) + W_k k`` and a
second key moves it by ``W_k (k1 - k2)``. With the seed's unit-norm keys and default init that offset is ~0.3
while the identity spread of the un-normalised dB features is ~30-100; SecureTL's gradient on ``W_k`` then
averages out over the batch (the offset direction is noise next to the identity differences) and AdamW at lr
1e-3 only random-walks ``W_k``: measured on ECG-ID + MIT-BIH, the other-key accept rate stayed at 87-90 % after
150 steps with gain 1 and 10, and fell to 57 % after 40 steps with gain 100. The gain is a fixed input scale
(folded into the exported key weights), not a new parameter.

Linux note: mlx[cpu]'s bundled BLAS is slow; ``ecgcore train heartid`` re-executes itself with Debian's
OpenBLAS in ``LD_PRELOAD`` when it finds one (about 3-15x faster convolutions), see :func:`openblas_path`.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from .config import HeartIDConfig
from .data import TripletSampler, load_dataset, split_subjects
from .evaluation import evaluate_subjects


def openblas_path() -> str | None:
    """Debian/Ubuntu's pthread OpenBLAS, if installed (``apt-get install libopenblas0-pthread``)."""
    for p in ("/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0", "/usr/lib/x86_64-linux-gnu/libopenblas.so.0",
              "/usr/lib/aarch64-linux-gnu/openblas-pthread/libopenblas.so.0", "/usr/lib/aarch64-linux-gnu/libopenblas.so.0"):
        if os.path.exists(p):
            return p
    return None


def _atomic_json(path: Path, obj) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


class MLXEmbedder:
    """NumPy in/out wrapper of a :class:`~.model.HeartIDNet` for the evaluation protocol."""

    def __init__(self, model, batch: int = 256, cache: bool = False):
        self.model, self.batch = model, batch
        # content-keyed cache: evaluation asks for the same windows many times (validation, per database and
        # pooled, 7- and 1-window probes), each time as a fresh fancy-indexed copy
        self._cache = {} if cache else None

    def features(self, windows: np.ndarray) -> np.ndarray:
        if self._cache is None:
            return self._features(windows)
        import hashlib

        w = np.ascontiguousarray(windows, np.float32)
        keys = [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in w]
        todo = [i for i, k in enumerate(keys) if k not in self._cache]
        if todo:
            for i, f in zip(todo, self._features(w[todo])):
                self._cache[keys[i]] = f
        return np.stack([self._cache[k] for k in keys])

    def _features(self, windows: np.ndarray) -> np.ndarray:
        import mlx.core as mx

        out = []
        for i in range(0, len(windows), self.batch):
            f = self.model.features(mx.array(np.asarray(windows[i:i + self.batch], np.float32)))
            mx.eval(f)
            out.append(np.array(f))
        return np.concatenate(out)

    def embed(self, feats: np.ndarray, key: np.ndarray) -> np.ndarray:
        import mlx.core as mx

        e = self.model.embed_features(mx.array(np.asarray(feats, np.float32)), mx.array(np.asarray(key, np.float32)))
        mx.eval(e)
        return np.array(e)


def load_subjects(data_dirs) -> list:
    subjects = []
    for d in data_dirs:
        subjects += load_dataset(d)
    ids = [s.id for s in subjects]
    if len(set(ids)) != len(ids):
        raise ValueError("two dataset folders share a name; subject ids must be unique (name the folders apart)")
    return subjects


def save_model(model, path: Path) -> None:
    """Flattened parameters to ``path`` (.npz) atomically."""
    import mlx.core as mx
    from mlx.utils import tree_flatten

    tmp = path.with_name(f".{path.stem}.tmp.npz")
    mx.savez(str(tmp), **dict(tree_flatten(model.parameters())))
    os.replace(tmp, path)


def train(config: HeartIDConfig, data_dirs, run_dir, resume: bool = True, progress: bool = True,
          log=print) -> dict:
    """Train (or resume) a HeartID run; returns the final ``state.json`` content."""
    import mlx.core as mx
    import mlx.nn as nn
    import mlx.optimizers as optim
    from mlx.utils import tree_flatten, tree_unflatten
    from tqdm import tqdm

    from .losses import LOSSES
    from .model import HeartIDNet

    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    data_dirs = [str(Path(d).resolve()) for d in data_dirs]
    subjects = load_subjects(data_dirs)
    by_id = {s.id: s for s in subjects}
    state_path, model_path, opt_path = run / "state.json", run / "heartid_model.npz", run / "optimizer.safetensors"
    resuming = resume and state_path.is_file() and model_path.is_file() and opt_path.is_file()
    if resuming:
        # the saved settings win, except how long to go on: epochs / max_minutes may extend a finished run
        saved = HeartIDConfig.from_dict(json.loads((run / "config.json").read_text()))
        saved.epochs, saved.max_minutes = config.epochs, config.max_minutes
        config = saved
        _atomic_json(run / "config.json", config.to_dict())
        split = json.loads((run / "split.json").read_text())
        state = json.loads(state_path.read_text())
    else:
        split = split_subjects(subjects, config.test_fraction, config.val_fraction, config.seed)
        split["data_dirs"] = data_dirs
        state = {"epoch": 0, "step": 0, "history": [], "best_val_eer": None, "best_epoch": None,
                 "train_seconds": 0.0}
        _atomic_json(run / "config.json", config.to_dict())
        _atomic_json(run / "split.json", split)
    missing = [i for k in ("train", "val") for i in split[k] if i not in by_id]
    if missing:
        raise ValueError(f"split.json names subjects not in the data folders: {missing[:5]}")
    sampler = TripletSampler([by_id[i] for i in split["train"]])
    sampler.spectra()  # the STFT branch has no parameters: compute it once per window, not once per step
    if config.standardize_spectrum and config.spectrum_mean is None:
        # subject-balanced: a 30-min MIT-BIH record must not outweigh a 40-s ECG-ID person
        mus = np.stack([sp.mean(axis=0) for sp in sampler._spec])
        mu = mus.mean(axis=0)
        var = np.stack([((sp - mu) ** 2).mean(axis=0) for sp in sampler._spec]).mean(axis=0)
        config.spectrum_mean = mu.astype(float).tolist()
        config.spectrum_std = np.sqrt(np.maximum(var, 1e-6)).astype(float).tolist()
        _atomic_json(run / "config.json", config.to_dict())
    val_subjects = [by_id[i] for i in split["val"]]

    mx.random.seed(config.seed)
    model = HeartIDNet(config)
    optimizer = optim.AdamW(learning_rate=config.lr, betas=list(config.betas), eps=config.eps,
                            weight_decay=config.weight_decay)
    if resuming:
        model.load_weights(str(model_path), strict=True)
        optimizer.state = tree_unflatten(list(mx.load(str(opt_path)).items()))
        log(f"resuming {run} at epoch {state['epoch']} (step {state['step']})")
    mx.eval(model.parameters())
    loss_fn = LOSSES[config.loss]

    def objective(model, a, p, n, spec, k1, k2):
        # the key enters only the dense layer, so each window's conv/STFT features are computed once and
        # reused for both keys: the same five embeddings as the seed's five network passes, at 3/5 of the cost
        b = a.shape[0]
        f = model.features(mx.concatenate([a, p, n], axis=0), spec)
        fa, fp, fn = f[:b], f[b:2 * b], f[2 * b:]
        e = model.embed_features
        return loss_fn(e(fa, k1), e(fp, k1), e(fp, k2), e(fn, k1), e(fn, k2), margin=config.margin)

    loss_and_grad = nn.value_and_grad(model, objective)

    def step(a, p, n, spec, k1, k2):
        loss, grads = loss_and_grad(model, a, p, n, spec, k1, k2)
        optimizer.update(model, grads)
        return loss

    from .keys import generate_key

    t0 = time.monotonic()
    budget = None if config.max_minutes is None else 60.0 * config.max_minutes  # over the whole run
    stopped = False
    while state["epoch"] < config.epochs and not stopped:
        ep = state["epoch"]
        rng = np.random.default_rng([config.seed, ep])
        losses = []
        bar = tqdm(range(config.steps_per_epoch), desc=f"epoch {ep + 1}/{config.epochs}", disable=not progress,
                   leave=False)
        for _ in bar:
            (a, p, n), specs = sampler.batch(rng, config.batch_size)
            k1, k2 = mx.array(generate_key(config.key_size, rng)), mx.array(generate_key(config.key_size, rng))
            loss = step(mx.array(a), mx.array(p), mx.array(n), mx.array(np.concatenate(specs)), k1, k2)
            mx.eval(loss, model.parameters(), optimizer.state)
            losses.append(float(loss))
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
            if budget is not None and state["train_seconds"] + time.monotonic() - t0 > budget:
                stopped = True
                break
        val = evaluate_subjects(val_subjects, MLXEmbedder(model), config.key_size, config.probe_windows,
                                seed=config.seed + 1, max_groups=10, score=config.score)["metrics"] if len(val_subjects) > 1 else {}
        state["epoch"] = ep + 1
        state["step"] += len(losses)
        state["train_seconds"] += time.monotonic() - t0
        t0 = time.monotonic()
        entry = {"epoch": ep + 1, "step": state["step"], "loss_mean": float(np.mean(losses)),
                 "loss_last": losses[-1], **{f"val_{k}": val[k] for k in
                                             ("eer", "eer_threshold", "rank1", "mated_different_keys_accept",
                                              "d_sys") if k in val}}
        state["history"].append(entry)
        save_model(model, model_path)
        tmp = run / ".optimizer.tmp.safetensors"
        mx.save_safetensors(str(tmp), dict(tree_flatten(optimizer.state)))
        os.replace(tmp, opt_path)
        if val and (state["best_val_eer"] is None or val["eer"] <= state["best_val_eer"]):
            state["best_val_eer"], state["best_epoch"] = val["eer"], ep + 1
            save_model(model, run / "best_model.npz")
        _atomic_json(state_path, state)
        log(json.dumps(entry))
    state["stopped_by_time_cap"] = stopped
    _atomic_json(state_path, state)
    return state
