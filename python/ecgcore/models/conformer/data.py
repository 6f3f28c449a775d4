"""The Conformer seed's data path (SPEC §4.3-4.4) over the batched TFRecords made by ``ecgcore preprocess tfrecords``.

* :data:`FEATURE_SPEC`: the seed's ``tf.io.parse_single_example`` spec; each Example holds up to 256 sequences.
* :func:`dataset_index`: per-record sequence labels (from the preprocess manifest, no file read) and the
  recipe options, with clear errors for a folder that is not a ``tfrecords`` dataset.
* :func:`normalisation_stats`: per-time-column mean / scale (187 each) over every beat of the *training*
  records exactly once (beat ``j`` of a record is ``seq[0, j]`` for ``j < 2`` and ``seq[j - 2, 2]`` after),
  which equals the seed's ``StandardScaler.partial_fit`` over the record h5 beats.
* :func:`rr_table`: optional per-beat RR features (``RR_FEATURES``) from the WFDB records, aligned to the
  sequences (same kept beats as the recipe: AAMI symbol and 93 < R < n - 93).
* :func:`make_dataset`: ``tf.data``: file shuffle (training), ``interleave(cycle_length=4, block_length=1)``,
  parse, ``flat_map`` to single sequences, ``(x - mean) / scale`` broadcast over beats and scales, a channel
  axis, optional class-balanced thinning of N (training), shuffle, repeat (training), batch, prefetch.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Moved to the recipe whose beats these are (``ecgcore infer`` imports no model package); re-exported here.
from ...pipelines.recipes.beats_scalograms import rr_features_for_beats  # noqa: F401
from .config import RR_FEATURES, RR_SETS  # noqa: F401  (RR_FEATURES re-exported)

__all__ = ["FEATURE_SPEC", "DatasetIndex", "dataset_index", "normalisation_stats", "rr_features_for_record",
           "rr_table", "make_dataset", "class_weights", "class_sampling", "read_sequences", "record_column_sums"]

CLASS_NAMES = ("N", "S", "V", "F", "Q")


def feature_spec():
    """The seed's feature spec (SPEC §4.3), built lazily so that importing this module needs no TensorFlow."""
    import tensorflow as tf

    return {
        "num_in_batch": tf.io.FixedLenFeature([], tf.int64),
        "sequence_len": tf.io.FixedLenFeature([], tf.int64),
        "height": tf.io.FixedLenFeature([], tf.int64),
        "width": tf.io.FixedLenFeature([], tf.int64),
        "sequences_raw": tf.io.FixedLenFeature([], tf.string),
        "labels_raw": tf.io.FixedLenFeature([], tf.string),
    }


FEATURE_SPEC = feature_spec  # called, not a dict: see feature_spec


@dataclass
class DatasetIndex:
    """What a ``tfrecords`` dataset folder holds.

    Attributes
    ----------
    root : the folder.
    labels : ``{record: (n_sequences,) int32}`` AAMI class index of each sequence's last beat.
    options : the recipe options used (lead, before/after, scales, wavelet, sequence_length, batch, ...).
    """

    root: Path
    labels: dict[str, np.ndarray]
    options: dict

    def files(self, records) -> list[str]:
        missing = [r for r in records if r not in self.labels]
        if missing:
            raise FileNotFoundError(f"{self.root}: no TFRecords for record(s) {', '.join(missing)} "
                                    f"(have {', '.join(sorted(self.labels))})")
        return [str(self.root / f"{r}.tfrecord") for r in records]

    def counts(self, records) -> np.ndarray:
        """(5,) sequences per class over ``records``."""
        return np.bincount(np.concatenate([self.labels[r] for r in records]), minlength=len(CLASS_NAMES))


def dataset_index(root) -> DatasetIndex:
    """Read the ``manifest.jsonl`` that ``ecgcore preprocess tfrecords`` wrote in ``root``."""
    from ...pipelines.engine import read_manifest

    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder {root} not found (make it with `ecgcore preprocess tfrecords "
                                f"MITDB_DIR {root}`)")
    entries = read_manifest(root)
    if not entries:
        raise FileNotFoundError(f"{root}: no manifest.jsonl; expected a folder made by `ecgcore preprocess tfrecords`")
    labels, options = {}, None
    for rec, e in sorted(entries.items()):
        if e.get("recipe") != "tfrecords":
            raise ValueError(f"{root}: record {rec} was made by recipe {e.get('recipe')!r}, expected 'tfrecords'")
        opts = json.loads(e["options"]) if isinstance(e["options"], str) else e["options"]
        options = options or opts
        if not (root / f"{rec}.tfrecord").is_file():
            raise FileNotFoundError(f"{root / (rec + '.tfrecord')} listed in the manifest but missing")
        labels[rec] = np.asarray(e["info"]["labels"], dtype=np.int32)
    return DatasetIndex(root, labels, options)


def read_sequences(path, *, max_sequences: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """All sequences of one record file without TensorFlow: ((n, 3, 32, 187) float32, (n,) int32)."""
    from ...io.tfrecord import decode_example, read_tfrecord

    xs, ys, n = [], [], 0
    for data in read_tfrecord(path):
        ex = decode_example(data)
        shape = [int(ex[k][0]) for k in ("num_in_batch", "sequence_len", "height", "width")]
        xs.append(np.frombuffer(ex["sequences_raw"][0], "<f4").reshape(shape))
        ys.append(np.frombuffer(ex["labels_raw"][0], "<i4"))
        n += shape[0]
        if max_sequences is not None and n >= max_sequences:
            break
    x, y = np.concatenate(xs), np.concatenate(ys)
    return (x[:max_sequences], y[:max_sequences]) if max_sequences is not None else (x, y)


def record_column_sums(index: DatasetIndex, record: str, cache_dir=None) -> np.ndarray:
    """(3, width) float64: beat-column count, sum and sum of squares of one record (every beat once).

    Cached as ``cache_dir/<record>.npy`` so that k-fold statistics combine per-record sums instead of re-reading.
    """
    if cache_dir is not None:
        path = Path(cache_dir) / f"{record}.npy"
        if path.is_file():
            return np.load(path)
    x, _ = read_sequences(index.root / f"{record}.tfrecord")
    beats = np.concatenate([x[0, :-1], x[:, -1]]).astype(np.float64)  # (n_beats, 32, 187)
    cols = beats.reshape(-1, beats.shape[-1])
    sums = np.stack([np.full(cols.shape[1], float(cols.shape[0])), cols.sum(0), (cols * cols).sum(0)])
    if cache_dir is not None:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        tmp = Path(cache_dir) / f".{record}.tmp.npy"
        np.save(tmp, sums)
        tmp.replace(path)
    return sums


def normalisation_stats(index: DatasetIndex, records, *, progress: bool = False,
                        cache_dir=None) -> tuple[np.ndarray, np.ndarray]:
    """(mean, scale), each (width,) float64, over every beat of ``records`` once (StandardScaler, ddof 0)."""
    from tqdm.auto import tqdm

    total = np.zeros((3, int(index.options.get("before", 93)) + 1 + int(index.options.get("after", 93))))
    for rec in tqdm(list(records), desc="normalisation", disable=not progress):
        total += record_column_sums(index, rec, cache_dir)
    n = total[0, 0]
    if n == 0:
        raise ValueError("no training beats to compute normalisation statistics from")
    mean = total[1] / n
    scale = np.sqrt(np.maximum(total[2] / n - mean * mean, 0.0))
    scale[scale == 0] = 1.0  # StandardScaler leaves constant columns unscaled
    return mean, scale


def rr_features_for_record(records_dir, record: str, options: dict, rr_set: str = "v1") -> np.ndarray:
    """Per-beat RR features (``RR_SETS[rr_set]``) of ``record`` over the beats the recipe kept (reference
    annotations)."""
    from ...datasets.mitdb import aami_labels
    from ...io import read_annotations, read_header, read_record
    from ...pipelines.recipes.beats_scalograms import NEEDS_SIGNAL, beat_side_features

    path = Path(records_dir) / record
    if not path.with_suffix(".atr").is_file():
        raise FileNotFoundError(f"{path}.atr not found: RR features need the WFDB records the dataset was made from")
    ann = read_annotations(path, "atr")
    n_samples = read_header(path.with_suffix(".hea")).sig_len
    before, after = int(options["before"]), int(options["after"])
    cls = aami_labels(ann.symbol, options["variant"])
    keep = (cls != "") & (ann.sample > before) & (ann.sample < n_samples - after)
    name = RR_SETS[rr_set][0]
    signal = None
    if name in NEEDS_SIGNAL:
        signal = read_record(path).signal[:, int(options.get("lead", 0))]
    return beat_side_features(name, ann.sample[keep], fs=float(ann.fs or 360.0), signal=signal)


def rr_table(index: DatasetIndex, records, records_dir, rr_set: str = "v1") -> np.ndarray:
    """(total_sequences, 3, n_rr) RR features (``RR_SETS[rr_set]``) of every sequence of ``records``, in record
    order."""
    out = []
    length = int(index.options.get("sequence_length", 3))
    for rec in records:
        beats = rr_features_for_record(records_dir, rec, index.options, rr_set)
        n_seq = len(index.labels[rec])
        if len(beats) - length + 1 != n_seq:
            raise ValueError(f"record {rec}: {len(beats)} annotated beats give {len(beats) - length + 1} sequences "
                             f"but {index.root} holds {n_seq}; were the TFRecords made from {records_dir}?")
        idx = np.arange(n_seq)[:, None] + np.arange(length)[None, :]
        out.append(beats[idx])
    return np.concatenate(out) if out else np.zeros((0, length, len(RR_SETS[rr_set][1])), np.float32)


def class_weights(counts) -> dict[int, float]:
    """sklearn ``compute_class_weight('balanced')``: n / (k · count) for the classes present."""
    counts = np.asarray(counts, dtype=np.float64)
    present = counts > 0
    w = np.zeros_like(counts)
    w[present] = counts.sum() / (present.sum() * counts[present])
    return {i: float(w[i]) for i in range(len(counts)) if present[i]}


def class_sampling(cfg, counts) -> tuple[np.ndarray, np.ndarray, dict | None]:
    """(keep probability per class, expected sequences per class per epoch, class weights or None) of a training
    set with ``counts`` sequences per class: N thinned to about ``cfg.max_n_per_epoch`` (every minority sequence
    kept), then balanced class weights on the thinned counts when ``cfg.class_weight == "balanced"``, capped at
    ``cfg.max_class_weight``. Shared by the streamed and the chunk trainers."""
    counts = np.asarray(counts, np.float64)
    keep = np.ones(len(counts))
    if cfg.max_n_per_epoch and counts[0] > cfg.max_n_per_epoch:
        keep[0] = cfg.max_n_per_epoch / counts[0]
    expected = counts * keep
    weights = class_weights(expected) if cfg.class_weight == "balanced" else None
    if weights and cfg.max_class_weight:
        weights = {k: min(v, float(cfg.max_class_weight)) for k, v in weights.items()}
    return keep, expected, weights


def make_dataset(index: DatasetIndex, records, *, mean, scale, batch_size: int, training: bool,
                 rr: np.ndarray | None = None, rr_mean=None, rr_scale=None, keep_prob=None,
                 keep_mask: np.ndarray | None = None, shuffle_buffer: int = 8, seed: int = 42,
                 with_labels: bool = True):
    """``tf.data`` pipeline over the records' TFRecords.

    Parameters
    ----------
    records : record names; their files are read in this order unless ``training`` (then shuffled).
    mean, scale : (width,) normalisation statistics.
    rr, rr_mean, rr_scale : (n_total, 3, 4) RR table (see :func:`rr_table`) and its (4,) standardisation.
    keep_prob : (5,) per-class probability of keeping a sequence (training-time class-balanced sampling).
    keep_mask : (n_total,) bool, a fixed subset of sequences (e.g. stratified evaluation).

    Yields
    ------
    ``(inputs, labels)`` batches: inputs = (batch, 3, 32, 187, 1) float32 or a dict
    ``{"scalograms", "rr": (batch, 3, 4)}``; labels (batch,) int32.
    """
    import tensorflow as tf

    files = index.files(records)
    sizes = [len(index.labels[r]) for r in records]
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(files), tf.constant(offsets)), default_value=-1)
    mean_t = tf.constant(np.asarray(mean, np.float32))
    scale_t = tf.constant(np.asarray(scale, np.float32))
    spec = feature_spec()
    use_rr = rr is not None
    if use_rr:
        rr_t = tf.constant(((rr - np.asarray(rr_mean)) / np.asarray(rr_scale)).astype(np.float32))
    keep_t = tf.constant(keep_mask.astype(bool)) if keep_mask is not None else None
    keep_p = tf.constant(np.asarray(keep_prob, np.float32)) if keep_prob is not None else None

    length = int(index.options.get("sequence_length", 3))
    lo, hi = index.options.get("scales", [1, 32])
    height, width = int(hi) - int(lo) + 1, int(index.options.get("before", 93)) + 1 + int(index.options.get("after", 93))

    def parse(record):
        ex = tf.io.parse_single_example(record, spec)
        # Static (3, 32, 187) so that Keras sees a fixed sequence axis; the header fields must agree.
        checks = [tf.debugging.assert_equal(tf.cast(ex[k], tf.int32), v, message=f"TFRecord {k} differs from the "
                                            f"dataset options ({v})")
                  for k, v in (("sequence_len", length), ("height", height), ("width", width))]
        with tf.control_dependencies(checks):
            x = tf.reshape(tf.io.decode_raw(ex["sequences_raw"], tf.float32), [-1, length, height, width])
        y = tf.io.decode_raw(ex["labels_raw"], tf.int32)
        return x, y

    def per_file(path):
        offset = table.lookup(path)
        ds = tf.data.TFRecordDataset(path).map(parse).flat_map(
            lambda x, y: tf.data.Dataset.from_tensor_slices((x, y)))
        return ds.enumerate().map(lambda i, xy: (offset + i, xy[0], xy[1]))

    ds = tf.data.Dataset.from_tensor_slices(files)
    if training:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    ds = ds.interleave(per_file, cycle_length=4, block_length=1, num_parallel_calls=1, deterministic=True)
    if keep_t is not None:
        ds = ds.filter(lambda g, x, y: tf.gather(keep_t, g))
    if keep_p is not None:
        ds = ds.filter(lambda g, x, y: tf.random.uniform([], seed=seed) < tf.gather(keep_p, y))

    def finish(g, x, y):
        x = ((x - mean_t) / scale_t)[..., None]
        if use_rr:
            return {"scalograms": x, "rr": tf.gather(rr_t, g)}, y
        return x, y

    ds = ds.map(finish)
    if not with_labels:
        ds = ds.map(lambda x, y: x)
    if training:
        ds = ds.shuffle(shuffle_buffer, seed=seed).repeat()
    ds = ds.batch(batch_size)
    if not training and keep_p is None:
        # A known length: otherwise Keras finds the end of a validation set by running out of data, and warns.
        n = int(keep_mask.sum()) if keep_mask is not None else int(sum(sizes))
        ds = ds.apply(tf.data.experimental.assert_cardinality(-(-n // batch_size)))
    return ds.prefetch(tf.data.AUTOTUNE)
