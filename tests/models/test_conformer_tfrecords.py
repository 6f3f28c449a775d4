"""TensorFlow's own tf.data parser, with the Conformer seed's feature spec (SPEC §4.3), reads ecgcore's TFRecords.

The TFRecords are written without TensorFlow (``ecgcore.io.tfrecord``); this checks the bytes against the real
consumer: ``tf.data.TFRecordDataset`` (CRC checks on) + ``tf.io.parse_single_example`` exactly as the seed's
DataLoader does it, and the values against the beats-scalograms of the same record.
"""
from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from ecgcore.pipelines.engine import preprocess  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _seed_parse(record):
    """The seed's DataLoader._parse_tfrecord_fn, transcribed (SPEC §4.4)."""
    feature_description = {
        "num_in_batch": tf.io.FixedLenFeature([], tf.int64),
        "sequence_len": tf.io.FixedLenFeature([], tf.int64),
        "height": tf.io.FixedLenFeature([], tf.int64),
        "width": tf.io.FixedLenFeature([], tf.int64),
        "sequences_raw": tf.io.FixedLenFeature([], tf.string),
        "labels_raw": tf.io.FixedLenFeature([], tf.string),
    }
    ex = tf.io.parse_single_example(record, feature_description)
    n, length, h, w = (tf.cast(ex[k], tf.int32) for k in ("num_in_batch", "sequence_len", "height", "width"))
    seqs = tf.reshape(tf.io.decode_raw(ex["sequences_raw"], tf.float32), [n, length, h, w])
    labels = tf.reshape(tf.io.decode_raw(ex["labels_raw"], tf.int32), [n])
    return seqs, labels


def test_tensorflow_reads_our_tfrecords(mitdb_dir, tmp_path):
    from ecgcore.pipelines.recipes.beats_scalograms import record_scalograms
    from ecgcore.pipelines.recipes.tfrecords import TFRecords

    s = preprocess("tfrecords", mitdb_dir, tmp_path, records=["232"], workers=1, progress=False)
    assert not s.failed
    ds = tf.data.TFRecordDataset(str(tmp_path / "232.tfrecord")).map(_seed_parse).flat_map(
        lambda x, y: tf.data.Dataset.from_tensor_slices((x, y)))
    seqs, labels = [], []
    for x, y in ds.batch(512):
        seqs.append(x.numpy())
        labels.append(y.numpy())
    seqs, labels = np.concatenate(seqs), np.concatenate(labels)
    assert len(seqs) == s.n_items  # every sequence the recipe reported, once
    _, _, scal, _, beat_labels, _, _ = record_scalograms(mitdb_dir, "232", TFRecords().default_options())
    assert seqs.shape == (len(scal) - 2, 3, 32, 187) and seqs.dtype == np.float32
    np.testing.assert_array_equal(seqs[:, 0], scal[:-2])
    np.testing.assert_array_equal(seqs[:, 2], scal[2:])
    np.testing.assert_array_equal(labels, beat_labels[2:])
    # record 232 is mostly S (A) beats among N: both classes must be present for the check to mean anything
    assert set(np.unique(labels)) >= {0, 1}


def test_our_pipeline_matches_the_seed_parser(mitdb_dir, tmp_path):
    """ecgcore's tf.data pipeline (interleave, parse, flat_map, per-column normalisation) gives the seed's tensors."""
    from ecgcore.models.conformer.data import dataset_index, make_dataset

    preprocess("tfrecords", mitdb_dir, tmp_path, records=["232", "231"], workers=1, progress=False)
    index = dataset_index(tmp_path)
    mean, scale = np.linspace(0.1, 0.2, 187), np.linspace(1.0, 2.0, 187)
    ds = make_dataset(index, ["231", "232"], mean=mean, scale=scale, batch_size=7, training=False)
    x, y = next(iter(ds))
    # interleave(cycle_length=4, block_length=1) alternates the two files sequence by sequence
    ref = {}
    for rec in ("231", "232"):
        rx, ry = next(iter(tf.data.TFRecordDataset(str(tmp_path / f"{rec}.tfrecord")).map(_seed_parse)))
        ref[rec] = (rx.numpy()[:4], ry.numpy()[:4])
    order = [("231", 0), ("232", 0), ("231", 1), ("232", 1), ("231", 2), ("232", 2), ("231", 3)]
    want_x = np.stack([ref[r][0][i] for r, i in order])
    want_y = np.array([ref[r][1][i] for r, i in order])
    assert x.shape == (7, 3, 32, 187, 1)
    np.testing.assert_allclose(x.numpy()[..., 0], (want_x - mean.astype(np.float32)) / scale.astype(np.float32),
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(y.numpy(), want_y)


def test_tensorflow_rejects_a_corrupted_record(mitdb_dir, tmp_path):
    """One flipped byte inside a record's payload: TensorFlow's CRC check refuses the file (DataLossError)."""
    preprocess("tfrecords", mitdb_dir, tmp_path, records=["232"], workers=1, progress=False)
    path = tmp_path / "232.tfrecord"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(tf.errors.DataLossError):
        for _ in tf.data.TFRecordDataset(str(path)).map(_seed_parse):
            pass
