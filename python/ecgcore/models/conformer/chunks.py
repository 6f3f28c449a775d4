"""Chunk training of the Conformer: every beat's CNN computed once, batches drawn at random from memory.

The seed trains on 3-beat sequences streamed from TFRecords. Two costs follow: each beat sits in three sequences, so
its CNN (nearly all of the compute) runs three times; and the stream interleaves four record files through a small
shuffle buffer, so a batch holds beats of about four patients (batch statistics and gradients swing with whichever
records are being read).

Here a training example is a *chunk*: ``chunk`` consecutive sequences of one record, i.e. ``chunk + 2`` beats. The
per-beat CNN (and the RR fusion) runs once per beat; the sequence head runs over the chunk's sliding 3-beat windows,
so each sequence is scored exactly as :func:`~.model.build_model` scores it. The layers are built by the same
functions with the same names, so the trained weights move by name into the standard 3-beat model, which is what
the run saves, evaluates and exports.

The training records' beats are held in memory, normalised (DS1 without its validation records: ≈ 47k beats,
≈ 1.1 GB float32). Each step draws ``batch_size // chunk`` anchor sequences at random from all training records, with
probability proportional to the class keep probability (``max_n_per_epoch`` thins N as the streamed pipeline does),
and takes a chunk holding each anchor at a random position. The anchor's loss weight is 1; its neighbours, which
come with their record's natural class mix, are weighted by their class keep probability, so the expected class
balance of the loss is that of the thinned set. Validation tiles the validation records into chunks (every
sequence once) and weights the loss the same way, so early stopping watches the training objective.

Early stopping, learning-rate reduction on plateau and the wall-clock budget keep their state in
``<stage>/chunk_ckpt/`` (last weights with the optimiser's, best weights, counters), so an interrupted run resumes
where its last epoch ended with the same counters.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._common import write_json
from .data import class_sampling

__all__ = ["BeatStore", "load_store", "chunk_model", "training_batches", "validation_batches", "fit_chunks",
           "transfer_weights", "teacher_identity", "teacher_probabilities"]


@dataclass
class BeatStore:
    """Normalised beats of some records, in memory.

    Attributes
    ----------
    records : record names.
    beats : per record, (n_seq + 2, height, width, 1) float32 normalised scalograms (beat ``j`` of the record).
    rr : per record, (n_seq + 2, 4) float32 standardised RR features, or None.
    labels : per record, (n_seq,) int32 class of each sequence (= of its last beat, beat ``s + 2``).
    """

    records: list
    beats: list
    rr: list | None
    labels: list

    @property
    def n_sequences(self) -> int:
        return int(sum(len(y) for y in self.labels))


def load_store(index, records, norm: dict, *, records_dir=None, rr: bool = False, rr_set: str = "v1",
               progress: bool = True) -> BeatStore:
    """Read ``records`` once from the TFRecords (each beat from the first sequence holding it) and normalise."""
    from tqdm.auto import tqdm

    from .data import read_sequences, rr_features_for_record

    mean = np.asarray(norm["mean"], np.float32)
    scale = np.asarray(norm["scale"], np.float32)
    beats, rrs, labels = [], [] if rr else None, []
    for rec in tqdm(list(records), desc="load beats", disable=not progress):
        x, y = read_sequences(index.root / f"{rec}.tfrecord")
        b = np.concatenate([x[0, :-1], x[:, -1]])  # (n_seq + length - 1, height, width)
        b -= mean
        b /= scale
        beats.append(b[..., None])
        labels.append(np.asarray(y, np.int32))
        if rr:
            f = rr_features_for_record(records_dir, rec, index.options, rr_set)
            if len(f) != len(b):
                raise ValueError(f"record {rec}: {len(f)} annotated beats but {len(b)} beats in {index.root}")
            rrs.append(((f - np.asarray(norm["rr_mean"])) / np.asarray(norm["rr_scale"])).astype(np.float32))
    return BeatStore(list(records), beats, rrs, labels)


def _layers():
    import keras
    from keras import ops

    class Windows(keras.layers.Layer):
        """(batch, chunk + w - 1, dim) → (batch · chunk, w, dim): every sliding window of ``w`` beats."""

        def __init__(self, width, **kwargs):
            super().__init__(**kwargs)
            self.width = int(width)

        def call(self, x):
            n = x.shape[1] - self.width + 1
            stacked = ops.stack([x[:, j:j + n] for j in range(self.width)], axis=2)
            return ops.reshape(stacked, (-1, self.width, x.shape[-1]))

    class Unwindow(keras.layers.Layer):
        """(batch · chunk, classes) → (batch, chunk, classes)."""

        def __init__(self, chunk, **kwargs):
            super().__init__(**kwargs)
            self.chunk = int(chunk)

        def call(self, y):
            return ops.reshape(y, (-1, self.chunk, y.shape[-1]))

    return Windows, Unwindow


def chunk_model(cfg, chunk: int):
    """The training model: inputs (batch, chunk + 2, 32, 187, 1) [and (batch, chunk + 2, 4) RR] → (batch, chunk, 5)."""
    import keras

    from .model import beat_embeddings, sequence_head

    windows, unwindow = _layers()
    keras.utils.set_random_seed(cfg.seed)
    n_beats = chunk + cfg.sequence_length - 1
    seq = keras.Input((n_beats, cfg.height, cfg.width, 1), name="scalograms")
    inputs = [seq]
    rr = None
    if cfg.rr_features:
        rr = keras.Input((n_beats, cfg.n_rr), name="rr")
        inputs.append(rr)
    x = beat_embeddings(seq, cfg, rr)
    x = windows(cfg.sequence_length, name="windows")(x)
    out = unwindow(chunk, name="unwindow")(sequence_head(x, cfg))
    return keras.Model(inputs if len(inputs) > 1 else seq, out, name="chunk_trainer")


def transfer_weights(src, dst) -> int:
    """Copy every weighted layer of ``dst`` from the layer of the same name in ``src``; returns the count."""
    n = 0
    for layer in dst.layers:
        if layer.weights:
            layer.set_weights(src.get_layer(layer.name).get_weights())
            n += 1
    return n


def _inputs(store: BeatStore, picks, chunk: int, length: int):
    """Stack chunks ``[(record index, first sequence), ...]`` into model inputs."""
    n_beats = chunk + length - 1
    x = np.stack([store.beats[r][s:s + n_beats] for r, s in picks])
    if store.rr is None:
        return x
    return {"scalograms": x, "rr": np.stack([store.rr[r][s:s + n_beats] for r, s in picks])}


def teacher_identity(teacher) -> str:
    """SHA-256 over the teacher's encoder and head graphs: what a resumed distillation run checks it still has."""
    import hashlib

    from ...export import resolve_model

    onnx_path, card = resolve_model(teacher)
    graphs = card.graphs or {}
    if not {"encoder", "head"} <= set(graphs):
        raise ValueError(f"teacher {teacher}: needs the split encoder + head graphs (card graphs)")
    h = hashlib.sha256()
    for role in ("encoder", "head"):
        h.update((Path(onnx_path).parent / graphs[role]).read_bytes())
    return h.hexdigest()


def teacher_probabilities(teacher, store: BeatStore, norm: dict, length: int = 3, batch: int = 256,
                          n_classes: int = 5, threads: int | None = 1) -> list:
    """Per record of ``store``, the (n_seq, classes) float32 probabilities of the exported model ``teacher`` (folder
    or bundled name) on every sequence: its encoder on each beat once, its head on the sliding ``length``-beat
    windows, as ``ecgcore infer`` runs it. The store's inputs are already normalised, so the teacher must share the
    normalisation ``norm``, its classes (``n_classes``), its sequence length and its RR inputs (``ValueError``
    otherwise)."""
    from ...export import resolve_model
    from ...infer.core import make_session

    onnx_path, card = resolve_model(teacher)
    graphs = card.graphs or {}
    if not {"encoder", "head"} <= set(graphs):
        raise ValueError(f"teacher {teacher}: needs the split encoder + head graphs (card graphs)")
    pre = card.preprocessing
    if len(card.classes) != n_classes or int(pre.get("sequence_length", length)) != length:
        raise ValueError(f"teacher {teacher}: {len(card.classes)} classes and {pre.get('sequence_length')}-beat "
                         f"sequences, this run {n_classes} and {length}")
    if (store.rr is None) != ("rr_features" not in pre):
        raise ValueError(f"teacher {teacher}: {'takes' if 'rr_features' in pre else 'takes no'} RR inputs, this "
                         f"run {'has none' if store.rr is None else 'has them'}")
    pairs = [(pre["normalization"]["mean"], norm["mean"]), (pre["normalization"]["scale"], norm["scale"])]
    if store.rr is not None:
        rr = pre.get("rr_features") or {}
        pairs += [(rr.get("mean", []), norm["rr_mean"]), (rr.get("scale", []), norm["rr_scale"])]
    for a, b in pairs:
        if np.shape(a) != np.shape(b) or not np.allclose(a, b, rtol=1e-5, atol=1e-7):
            raise ValueError(f"teacher {teacher}: its normalisation differs from this run's, so it was fitted on other "
                             f"records or inputs (its validation records: {card.training.get('val_records')}; name "
                             "the same ones with val_records=[...], a count draws them with the seed)")
    folder = Path(onnx_path).parent
    enc, head = (make_session(folder / graphs[r], threads=threads) for r in ("encoder", "head"))
    names = [i.name for i in enc.get_inputs()]
    out = []
    for r in range(len(store.beats)):
        b = store.beats[r]
        emb = np.concatenate([enc.run(None, {names[0]: b[i:i + batch]}
                                      | ({names[1]: store.rr[r][i:i + batch]} if store.rr is not None else {}))[0]
                              for i in range(0, len(b), batch)])
        n = len(store.labels[r])
        win = np.stack([emb[j:j + n] for j in range(length)], axis=1)
        out.append(np.concatenate([head.run(None, {"embeddings": win[i:i + batch]})[0]
                                   for i in range(0, n, batch)]).astype(np.float32))
    return out


def _targets(y: np.ndarray, soft: np.ndarray | None, alpha: float, n_classes: int) -> np.ndarray:
    """One-hot labels, or with a teacher's ``soft`` probabilities the distillation target."""
    one = np.eye(n_classes, dtype=np.float32)[y]
    return one if soft is None else alpha * one + (1.0 - alpha) * soft


def training_batches(store: BeatStore, keep, loss_keep=None, *, chunks_per_step: int, chunk: int, length: int = 3,
                     seed: int = 42, soft: list | None = None, alpha: float = 0.5, amplitude=None, norm=None):
    """Endless ``(inputs, labels (b, chunk), weights (b, chunk))`` batches of random chunks (see the module doc).

    Anchors are drawn with probability ``keep[class]``; an anchor's loss weight is ``loss_keep[class] / keep[class]``
    (1 without class weights), a neighbour's ``loss_keep[class]`` (``loss_keep`` defaults to ``keep``). With ``soft``
    (a teacher's probabilities per record, :func:`teacher_probabilities`) the labels are (b, chunk, classes)
    distillation targets, ``alpha`` x one-hot + (1 - ``alpha``) x the teacher's; draws and weights are unchanged.
    With ``amplitude`` ``(low, high)`` and the store's normalisation ``norm`` (``mean``, ``scale`` per time column),
    each chunk's scalograms are those of its signal scaled by a factor drawn log-uniformly from [low, high]:
    ``a·S`` before normalisation, i.e. ``a·z + (a - 1)·mean/scale`` on the stored ``z``. The factors come from their
    own random stream, so draws, labels and weights are those of the same run without augmentation.
    """
    keep = np.asarray(keep, np.float64)
    loss_keep = keep if loss_keep is None else np.asarray(loss_keep, np.float64)
    rec_of = np.concatenate([np.full(len(y), i) for i, y in enumerate(store.labels)])
    pos_of = np.concatenate([np.arange(len(y)) for y in store.labels])
    lab = np.concatenate(store.labels)
    usable = np.array([len(y) >= chunk for y in store.labels])[rec_of]
    p = keep[lab] * usable
    p /= p.sum()
    rng = np.random.default_rng(seed)
    if amplitude is not None:
        if norm is None:
            raise ValueError("amplitude augmentation needs the store's normalisation (norm: mean and scale)")
        log_lo, log_hi = np.log(np.asarray(amplitude, np.float64))
        offset = (np.asarray(norm["mean"], np.float32) / np.asarray(norm["scale"], np.float32))[:, None]
        amp_rng = np.random.default_rng([seed, 1])
    while True:
        anchors = rng.choice(len(lab), size=chunks_per_step, p=p)
        picks, ys, ws = [], [], []
        for a in anchors:
            r, i = int(rec_of[a]), int(pos_of[a])
            n = len(store.labels[r])
            s = int(np.clip(i - rng.integers(0, chunk), 0, n - chunk))
            y = store.labels[r][s:s + chunk]
            w = loss_keep[y].astype(np.float32)
            w[i - s] = loss_keep[y[i - s]] / keep[y[i - s]]
            picks.append((r, s))
            ys.append(y if soft is None else _targets(y, soft[r][s:s + chunk], alpha, soft[r].shape[1]))
            ws.append(w)
        x = _inputs(store, picks, chunk, length)
        if amplitude is not None:
            a = np.exp(amp_rng.uniform(log_lo, log_hi, len(picks))).astype(np.float32)[:, None, None, None, None]
            scal = x["scalograms"] if isinstance(x, dict) else x
            scal *= a
            scal += (a - 1.0) * offset
        yield x, np.stack(ys), np.stack(ws)


def _tiles(labels, keep, chunk: int):
    """``[(record index, first sequence, weights)]`` covering every sequence once (a record's last chunk overlaps
    the one before it; the overlap is weighted 0)."""
    keep = np.asarray(keep, np.float32)
    tiles = []
    for r, y in enumerate(labels):
        n = len(y)
        if n < chunk:
            continue
        starts = list(range(0, n - chunk + 1, chunk))
        covered = starts[-1] + chunk
        if covered < n:
            starts.append(n - chunk)
        for k, s in enumerate(starts):
            w = keep[y[s:s + chunk]].copy()
            if k == len(starts) - 1 and covered < n:
                w[: covered - s] = 0.0  # already scored by the previous chunk
            tiles.append((r, s, w))
    return tiles


def validation_batches(store: BeatStore, keep, *, chunks_per_step: int, chunk: int, length: int = 3,
                       one_hot: int = 0):
    """One pass over every sequence of ``store`` in chunks, each loss weighted by its class's ``keep``; labels as
    class indices, or one-hot over ``one_hot`` classes (the distillation run's loss takes probability targets)."""
    tiles = _tiles(store.labels, keep, chunk)
    for b in range(0, len(tiles), chunks_per_step):
        part = tiles[b:b + chunks_per_step]
        picks = [(r, s) for r, s, _ in part]
        y = np.stack([store.labels[r][s:s + chunk] for r, s in picks])
        yield (_inputs(store, picks, chunk, length), _targets(y, None, 1.0, one_hot) if one_hot else y,
               np.stack([w for _, _, w in part]))


def _dataset(gen_fn, cfg, chunk: int, n_batches: int | None = None):
    import tensorflow as tf

    n_beats = chunk + cfg.sequence_length - 1
    xs = tf.TensorSpec((None, n_beats, cfg.height, cfg.width, 1), tf.float32)
    x_sig = {"scalograms": xs, "rr": tf.TensorSpec((None, n_beats, cfg.n_rr), tf.float32)} if cfg.rr_features else xs
    y_sig = (tf.TensorSpec((None, chunk, cfg.n_classes), tf.float32) if cfg.teacher is not None
             else tf.TensorSpec((None, chunk), tf.int32))
    sig = (x_sig, y_sig, tf.TensorSpec((None, chunk), tf.float32))
    ds = tf.data.Dataset.from_generator(gen_fn, output_signature=sig)
    if n_batches is not None:
        ds = ds.apply(tf.data.experimental.assert_cardinality(n_batches))
    return ds.prefetch(2)


def _save_weights(model, path: Path) -> None:
    """``save_weights`` then an atomic rename (Keras insists on the ``.weights.h5`` suffix)."""
    tmp = path.with_name(f".tmp-{path.name}")
    model.save_weights(tmp)
    tmp.replace(path)


def fit_chunks(cfg, index, train_recs, out_dir: Path, *, val_recs=None, records_dir=None, epochs: int | None = None,
               steps_per_epoch: int | None = None, deadline: float | None = None, progress: bool = True,
               sums_dir=None, init_from=None, run=None, stage: str = "final", budget_cls=None,
               run_callback=None, normalisation=None) -> dict:
    """Train in chunks of ``cfg.chunk`` sequences (see the module doc); the same contract as ``fit_once``.

    Writes ``out_dir/model.keras`` (the standard 3-beat model carrying the best epoch's weights when validating,
    else the last), ``norm.json``, ``history.csv`` and ``fit.json``; ``chunk_ckpt/`` holds the resumable state.
    """
    import keras

    from .model import build_model, compile_model

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / "model.keras"
    want = epochs or cfg.epochs
    ck = out_dir / "chunk_ckpt"
    ck.mkdir(exist_ok=True)
    state_path = ck / "state.json"
    state = json.loads(state_path.read_text()) if state_path.is_file() else None
    if final.is_file() and (out_dir / "fit.json").is_file():
        prev = json.loads((out_dir / "fit.json").read_text())
        if prev["epochs_run"] >= want or prev.get("early_stopped"):
            return prev
    chunk = int(cfg.chunk)
    norm = normalisation(index, train_recs, cfg, records_dir, out_dir / "norm.json", progress, sums_dir)
    counts = index.counts(train_recs)
    keep, expected, weights = class_sampling(cfg, counts)
    # Loss weight of a sequence of class c: keep[c] (its expected share in the thinned set) times the class weight.
    loss_keep = keep * np.array([weights.get(c, 0.0) if weights else 1.0 for c in range(len(keep))])
    chunks_per_step = max(1, cfg.batch_size // chunk)
    steps = steps_per_epoch or max(1, math.ceil(expected.sum() / chunks_per_step))
    store = load_store(index, train_recs, norm, records_dir=records_dir, rr=cfg.rr_features, rr_set=cfg.rr_set,
                       progress=progress)
    val_store = None
    n_val_batches = None
    if val_recs:
        val_store = load_store(index, val_recs, norm, records_dir=records_dir, rr=cfg.rr_features, rr_set=cfg.rr_set,
                       progress=progress)
        n_val_batches = math.ceil(len(_tiles(val_store.labels, loss_keep, chunk)) / chunks_per_step)

    soft = None
    if cfg.teacher is not None:
        ident = teacher_identity(cfg.teacher)
        if state is not None and state.get("teacher_sha256", ident) != ident:
            raise ValueError(f"teacher {cfg.teacher}: its graphs changed since this run started (resume with the "
                             "same teacher, or start a new run folder)")
        soft = teacher_probabilities(cfg.teacher, store, norm, cfg.sequence_length, n_classes=cfg.n_classes,
                                     threads=cfg.threads)
    model = compile_model(chunk_model(cfg, chunk), cfg, soft_targets=soft is not None)
    initial = 0
    if state is not None and (ck / "last.weights.h5").is_file():
        model.optimizer.build(model.trainable_variables)
        model.load_weights(ck / "last.weights.h5")
        model.optimizer.learning_rate.assign(state["lr"])
        initial = int(state["epoch"])
    else:
        state = {"epoch": 0, "best": None, "best_epoch": 0, "wait": 0, "plateau_wait": 0, "lr": float(cfg.lr),
                 "early_stopped": False, "seconds": 0.0, "history": {}}
        if soft is not None:
            state["teacher_sha256"] = ident
        if init_from is not None:
            from ._common import load_run_model

            transfer_weights(load_run_model(init_from), model)

    ds = _dataset(lambda: training_batches(store, keep, loss_keep, chunks_per_step=chunks_per_step, chunk=chunk,
                                           length=cfg.sequence_length, seed=cfg.seed + 7919 * initial, soft=soft,
                                           alpha=float(cfg.distill_alpha), amplitude=cfg.amplitude_range, norm=norm),
                  cfg, chunk)
    val_ds = None
    if val_store is not None:
        val_ds = _dataset(lambda: validation_batches(val_store, loss_keep, chunks_per_step=chunks_per_step, chunk=chunk,
                                                     length=cfg.sequence_length,
                                                     one_hot=cfg.n_classes if soft is not None else 0),
                          cfg, chunk, n_val_batches)
    budget = budget_cls(deadline)
    t0 = time.time()
    seconds0 = float(state["seconds"])
    # Stochastic weight averaging (cfg.swa_from): the running average of the epoch-end weights, checkpointed under a
    # per-epoch name that state.json (written last) points at, so a run killed in between resumes consistently.
    swa = {"avg": None}
    if cfg.swa_from and state.get("swa"):
        with np.load(ck / state["swa"]["file"]) as z:
            swa["avg"] = [z[f"w{i}"] for i in range(len(z.files))]

    class Track(keras.callbacks.Callback):
        """Early stopping + LR on plateau (or the fixed ``lr_schedule``) with checkpointed counters; the last and the
        best weights on disk."""

        def on_epoch_begin(self, epoch, logs=None):
            if cfg.lr_schedule:
                self.model.optimizer.learning_rate.assign(cfg.lr_at(epoch + 1))

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            state["epoch"] = epoch + 1
            for k, v in logs.items():
                state["history"].setdefault(k, []).append(float(v))
            score = logs.get("val_loss") if val_ds is not None else logs.get("loss")
            if score is not None and (state["best"] is None or score < state["best"] - 1e-4):
                state.update(best=float(score), best_epoch=epoch + 1, wait=0, plateau_wait=0)
                _save_weights(self.model, ck / "best.weights.h5")
            elif val_ds is not None:
                state["wait"] += 1
                state["plateau_wait"] += 1
                if state["plateau_wait"] >= cfg.plateau_patience and not cfg.lr_schedule:
                    lr = max(float(self.model.optimizer.learning_rate.numpy()) * cfg.plateau_factor, cfg.min_lr)
                    self.model.optimizer.learning_rate.assign(lr)
                    state["plateau_wait"] = 0
                if state["wait"] >= cfg.patience:
                    state["early_stopped"] = True
                    self.model.stop_training = True
            state["lr"] = float(self.model.optimizer.learning_rate.numpy())
            state["seconds"] = seconds0 + time.time() - t0
            _save_weights(self.model, ck / "last.weights.h5")
            if cfg.swa_from and epoch + 1 >= cfg.swa_from:
                prev = state.get("swa") or {"n": 0, "epochs": []}
                ws = self.model.get_weights()
                n = int(prev["n"])
                swa["avg"] = ws if n == 0 else [a + (w - a) / (n + 1) for a, w in zip(swa["avg"], ws)]
                name = f"swa-e{epoch + 1}.npz"
                np.savez(ck / name, **{f"w{i}": a for i, a in enumerate(swa["avg"])})
                state["swa"] = {"n": n + 1, "epochs": [*prev["epochs"], epoch + 1], "file": name}
            write_json(state_path, state)
            if state.get("swa"):  # the average state.json now points at is the only one kept
                for old in ck.glob("swa-e*.npz"):
                    if old.name != state["swa"]["file"]:
                        old.unlink()

    cbs = [Track(), keras.callbacks.CSVLogger(str(out_dir / "history.csv"), append=True), budget]
    if run_callback is not None:
        cbs.append(run_callback(steps))
    if initial < want and not state["early_stopped"]:
        model.fit(ds, epochs=want, initial_epoch=initial, steps_per_epoch=steps, validation_data=val_ds,
                  callbacks=cbs, shuffle=False, verbose=2 if progress else 0)
    swa_info = None
    if cfg.swa_from and state.get("swa"):
        model.set_weights(swa["avg"])
        # The averaged weights' BatchNorm statistics: re-estimated by forward passes in training mode (dropout on,
        # no gradient step) over fresh training batches, starting from the averaged running statistics.
        gen = training_batches(store, keep, loss_keep, chunks_per_step=chunks_per_step, chunk=chunk,
                               length=cfg.sequence_length, seed=cfg.seed + 104_729)
        for _ in range(int(cfg.swa_bn_batches)):
            model(next(gen)[0], training=True)
        swa_info = {"epochs": state["swa"]["epochs"], "bn_batches": int(cfg.swa_bn_batches)}
    elif val_ds is not None and (ck / "best.weights.h5").is_file():
        model.load_weights(ck / "best.weights.h5")
    std = build_model(cfg)
    transfer_weights(model, std)
    from ._common import save_model

    compile_model(std, cfg)
    save_model(std, final)
    info = {"model": str(final), "history": state["history"], "epochs_run": state["epoch"],
            "steps_per_epoch": steps, "stopped_by_wall_clock": bool(budget.stopped),
            "early_stopped": bool(state["early_stopped"]), "best_epoch": state["best_epoch"],
            "best_val_loss": state["best"], "seconds": state["seconds"], "class_counts": counts.tolist(),
            "keep_prob": keep.tolist(), "class_weight": weights, "trainer": f"chunks of {chunk} sequences",
            "chunks_per_step": chunks_per_step, "train_records": list(train_recs), "val_records": list(val_recs or []),
            "train_sequences": store.n_sequences, "swa": swa_info,
            "teacher": None if soft is None else {"model": str(cfg.teacher), "alpha": float(cfg.distill_alpha),
                                                  "sha256": ident}}
    write_json(out_dir / "fit.json", info)
    return info
