"""``preprocess tfrecords`` read back by TensorFlow itself, with the seed's tf.data pipeline (SPEC §4.3-4.4)."""
from __future__ import annotations

import numpy as np
import pytest

from ecgcore.pipelines.engine import preprocess


def _seed_dataset(tf, files, mean=None, scale=None):
    """The seed's DataLoader: interleave(TFRecordDataset, 4, 1) -> parse -> flat_map to single sequences."""
    schema = {
        "num_in_batch": tf.io.FixedLenFeature([], tf.int64),
        "sequence_len": tf.io.FixedLenFeature([], tf.int64),
        "height": tf.io.FixedLenFeature([], tf.int64),
        "width": tf.io.FixedLenFeature([], tf.int64),
        "sequences_raw": tf.io.FixedLenFeature([], tf.string),
        "labels_raw": tf.io.FixedLenFeature([], tf.string),
    }

    def parse(proto):
        ex = tf.io.parse_single_example(proto, schema)
        shape = tf.stack([ex["num_in_batch"], ex["sequence_len"], ex["height"], ex["width"]])
        seqs = tf.reshape(tf.io.decode_raw(ex["sequences_raw"], tf.float32), shape)
        labels = tf.io.decode_raw(ex["labels_raw"], tf.int32)
        return seqs, labels

    def normalise(x, y):
        if mean is not None:
            x = (x - mean) / scale
        return x[..., tf.newaxis], y

    ds = tf.data.Dataset.from_tensor_slices([str(f) for f in files])
    ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=4, block_length=1)
    ds = ds.map(parse).flat_map(lambda s, l: tf.data.Dataset.from_tensor_slices((s, l)))
    return ds.map(normalise)


def test_tf_data_reads_our_tfrecords(mitdb_dir, tmp_path):
    tf = pytest.importorskip("tensorflow")
    import h5py

    recs = ["232", "231"]
    preprocess("beats-scalograms", mitdb_dir, tmp_path / "bs", records=recs, workers=1, progress=False)
    s = preprocess("tfrecords", mitdb_dir, tmp_path / "tf", records=recs, workers=1, progress=False)
    assert sorted(s.done) == sorted(recs)
    expected = {}
    for r in recs:
        with h5py.File(tmp_path / "bs" / f"{r}.h5", "r") as h5:
            scal, labels = h5["scalograms"][:], h5["labels"][:]
        expected[r] = (np.stack([scal[i:i + 3] for i in range(len(scal) - 2)]), labels[2:])

    # One file at a time: every sequence and label as the h5 beats give them (TF checks each record's CRC).
    for r in recs:
        xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in _seed_dataset(tf, [tmp_path / "tf" / f"{r}.tfrecord"])])
        x, y = np.stack(xs), np.array(ys)
        assert x.shape == (len(expected[r][0]), 3, 32, 187, 1) and x.dtype == np.float32
        np.testing.assert_array_equal(x[..., 0], expected[r][0])
        np.testing.assert_array_equal(y, expected[r][1])

    # The seed's interleaved, normalised stream over both files: every sequence once, batched as in training.
    mean = np.linspace(0.0, 1.0, 187, dtype=np.float32)
    scale = np.full(187, 2.0, dtype=np.float32)
    ds = _seed_dataset(tf, [tmp_path / "tf" / f"{r}.tfrecord" for r in recs], mean, scale).batch(64)
    n = 0
    got_labels = []
    for x, y in ds:
        assert x.shape[1:] == (3, 32, 187, 1)
        n += int(x.shape[0])
        got_labels.append(y.numpy())
    assert n == sum(len(e[1]) for e in expected.values()) == s.n_items
    np.testing.assert_array_equal(np.sort(np.concatenate(got_labels)),
                                  np.sort(np.concatenate([e[1] for e in expected.values()])))
    first = next(iter(_seed_dataset(tf, [tmp_path / "tf" / "232.tfrecord"], mean, scale)))[0].numpy()
    np.testing.assert_allclose(first[..., 0], (expected["232"][0][0] - mean) / scale, rtol=1e-6)
