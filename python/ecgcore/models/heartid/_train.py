"""Training: the seed's loop (AdamW, two fresh keys per batch, five embeddings, triplet loss) on real subjects.

Outputs in the shared run folder (:mod:`ecgcore.models._run`), rewritten atomically after every epoch so a run
can be resumed: ``config.json``, ``checkpoint/`` (the weights and ``optimizer.safetensors`` —
``tree_flatten(optimizer.state)``: step, learning_rate, m and v — plus the position), ``history.csv``,
``learning_curve.png``, ``run.json``; and the family's ``heartid_model.npz`` (last epoch's flattened
parameters, the seed's file name), ``best_model.npz`` (lowest validation EER) and ``split.json``
(subject-disjoint train/val/test ids).

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
from pathlib import Path

import numpy as np

from ..._fs import atomic_write, write_json
from .._run import Run
from ._evaluate import evaluate_subjects
from .config import HeartIDConfig
from .data import TripletSampler, load_subjects, split_subjects
from .model import MLXEmbedder

RESUMABLE = ("epochs", "time_limit_s", "patience")


def openblas_path() -> str | None:
    """Debian/Ubuntu's pthread OpenBLAS, if installed (``apt-get install libopenblas0-pthread``)."""
    for p in ("/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0", "/usr/lib/x86_64-linux-gnu/libopenblas.so.0",
              "/usr/lib/aarch64-linux-gnu/openblas-pthread/libopenblas.so.0", "/usr/lib/aarch64-linux-gnu/libopenblas.so.0"):
        if os.path.exists(p):
            return p
    return None


def save_model(model, path: Path) -> None:
    """Flattened parameters to ``path`` (.npz) atomically."""
    import mlx.core as mx
    from mlx.utils import tree_flatten

    with atomic_write(path) as tmp:
        mx.savez(str(tmp), **dict(tree_flatten(model.parameters())))


def train(data_dir, run_dir, config: HeartIDConfig | None = None, *, resume: bool = True, progress: bool = True,
          log=print) -> dict:
    """Train (or resume) a HeartID run on one or several ``ecgcore preprocess heartid`` folders (``data_dir``: a
    folder or a list of them); returns the run's summary (``run.json`` plus the history).

    A resumed run keeps its settings; only the budgets ``epochs`` and ``time_limit_s`` (over the whole run) may
    change."""
    import mlx.core as mx
    import mlx.nn as nn
    import mlx.optimizers as optim
    from mlx.utils import tree_flatten, tree_unflatten
    from tqdm import tqdm

    from .losses import LOSSES
    from .model import HeartIDNet

    config = config or HeartIDConfig()
    data_dirs = [data_dir] if isinstance(data_dir, (str, os.PathLike)) else list(data_dir)
    data_dirs = [str(Path(d).resolve()) for d in data_dirs]
    subjects = load_subjects(data_dirs)
    by_id = {s.id: s for s in subjects}
    run_dir = Path(run_dir)
    resuming = resume and (run_dir / "checkpoint" / "state.json").is_file() and (run_dir / "split.json").is_file()
    if resuming:
        # the learned spectrum statistics are part of the saved config: resume with them
        saved = json.loads((run_dir / "config.json").read_text())["config"]
        for k in ("spectrum_mean", "spectrum_std"):
            setattr(config, k, saved.get(k))
    run = Run(run_dir, config, family="heartid", data_dir=None, resume=resuming,
              time_limit_s=None, resumable=RESUMABLE)
    st = run.state
    if run.resuming:
        split = json.loads((run_dir / "split.json").read_text())
    else:
        split = split_subjects(subjects, config.test_fraction, config.val_fraction, config.seed)
        split["data_dirs"] = data_dirs
        write_json(run_dir / "split.json", split)
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
        saved = json.loads((run_dir / "config.json").read_text())
        saved["config"] = config.to_dict()
        write_json(run_dir / "config.json", saved)
        run.config = config.to_dict()
    val_subjects = [by_id[i] for i in split["val"]]

    mx.random.seed(config.seed)
    model = HeartIDNet(config)
    optimizer = optim.AdamW(learning_rate=config.lr, betas=list(config.betas), eps=config.eps,
                            weight_decay=config.weight_decay)

    def save(folder: Path) -> None:
        mx.savez(str(folder / "weights.npz"), **dict(tree_flatten(model.parameters())))
        mx.save_safetensors(str(folder / "optimizer.safetensors"), dict(tree_flatten(optimizer.state)))

    def read(folder: Path) -> None:
        model.load_weights(str(folder / "weights.npz"), strict=True)
        optimizer.state = tree_unflatten(list(mx.load(str(folder / "optimizer.safetensors")).items()))

    if run.resuming:
        run.load(read)
        log(f"resuming {run_dir} at epoch {st.epoch} (step {st.step})")
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

    budget = config.time_limit_s  # over the whole run, resumed sessions included
    stopped = False
    while st.epoch < config.epochs and not stopped:
        ep = st.epoch
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
            if budget is not None and run.seconds > budget:
                stopped = True
                break
        val = evaluate_subjects(val_subjects, MLXEmbedder(model), config.key_size, config.probe_windows,
                                seed=config.seed + 1, max_groups=10, score=config.score)["metrics"] if len(val_subjects) > 1 else {}
        st.epoch = ep + 1
        st.step += len(losses)
        entry = run.log(train_loss=float(np.mean(losses)), loss_last=losses[-1],
                        **{f"val_{k}": val[k] for k in ("eer", "eer_threshold", "rank1", "mated_different_keys_accept",
                                                        "d_sys") if k in val})
        save_model(model, run_dir / "heartid_model.npz")
        if val and (st.best_step is None or val["eer"] <= st.best_score):  # a tie goes to the later epoch
            st.best_score, st.best_step, st.best_epoch = float(val["eer"]), st.step, st.epoch
            st.bad_epochs = 0
            save_model(model, run_dir / "best_model.npz")
        elif val:
            st.bad_epochs += 1
        if stopped:
            run.stop("time_limit")
        elif config.patience and st.bad_epochs >= config.patience:
            run.stop("early_stopping")
            stopped = True
        elif st.epoch >= config.epochs:
            run.stop("epochs")
        run.save(save)
        log(json.dumps(entry))
    if st.stop_reason is None:
        run.stop("epochs")
        run.save(save)
    out = run.summary()
    out.update(epoch=st.epoch, step=st.step, best_val_eer=None if st.best_step is None else st.best_score,
               best_epoch=st.best_epoch, stopped_by_time_cap=st.stop_reason == "time_limit")
    return out
