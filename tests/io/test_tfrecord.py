"""TFRecord framing and tf.train.Example encoding without TensorFlow.

The Example encoding is checked against protobuf's own parser reading the wire format with an equivalent
schema built at run time (field numbers from TensorFlow's example.proto / feature.proto).
"""
from __future__ import annotations

import struct

import numpy as np
import pytest

from ecgcore._native import core
from ecgcore.io.tfrecord import decode_example, encode_example, read_tfrecord, write_tfrecord


def test_crc32c_known_vectors():
    # RFC 3720 B.4 test vectors
    assert core.crc32c(bytes(32)) == 0x8A9136AA
    assert core.crc32c(bytes([0xFF] * 32)) == 0x62A8AB43
    assert core.crc32c(bytes(range(32))) == 0x46DD794E
    assert core.crc32c(b"123456789") == 0xE3069283


def _example_classes():
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    fdp = descriptor_pb2.FileDescriptorProto(name="ex.proto", package="tfx", syntax="proto3")
    for name, fields in [("BytesList", [("value", 1, 12, 3)]), ("FloatList", [("value", 1, 2, 3)]),
                         ("Int64List", [("value", 1, 3, 3)])]:
        m = fdp.message_type.add(name=name)
        for fname, num, typ, label in fields:
            m.field.add(name=fname, number=num, type=typ, label=label)
    feat = fdp.message_type.add(name="Feature")
    feat.oneof_decl.add(name="kind")
    for fname, num, tname in [("bytes_list", 1, ".tfx.BytesList"), ("float_list", 2, ".tfx.FloatList"),
                              ("int64_list", 3, ".tfx.Int64List")]:
        feat.field.add(name=fname, number=num, type=11, label=1, type_name=tname, oneof_index=0)
    fs = fdp.message_type.add(name="Features")
    entry = fs.nested_type.add(name="FeatureEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=9, label=1)
    entry.field.add(name="value", number=2, type=11, label=1, type_name=".tfx.Feature")
    fs.field.add(name="feature", number=1, type=11, label=3, type_name=".tfx.Features.FeatureEntry")
    ex = fdp.message_type.add(name="Example")
    ex.field.add(name="features", number=1, type=11, label=1, type_name=".tfx.Features")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tfx.Example"))


def test_example_encoding_parses_with_protobuf():
    pytest.importorskip("google.protobuf")
    Example = _example_classes()
    seq = np.random.default_rng(0).normal(size=(5, 3, 32, 187)).astype(np.float32)
    data = encode_example({"num_in_batch": 5, "sequence_len": 3, "neg": -7, "sequences_raw": seq.tobytes(),
                           "floats": np.array([1.5, -2.0], dtype=np.float32)})
    msg = Example()
    msg.ParseFromString(data)
    f = msg.features.feature
    assert list(f["num_in_batch"].int64_list.value) == [5] and list(f["neg"].int64_list.value) == [-7]
    assert np.array_equal(np.frombuffer(f["sequences_raw"].bytes_list.value[0], np.float32).reshape(seq.shape), seq)
    assert list(f["floats"].float_list.value) == [1.5, -2.0]
    # and protobuf's own serialisation decodes with ours
    back = decode_example(msg.SerializeToString())
    assert back["sequence_len"].tolist() == [3] and back["sequences_raw"][0] == seq.tobytes()


def test_tfrecord_roundtrip_and_corruption(tmp_path):
    path = tmp_path / "a.tfrecord"
    payloads = [encode_example({"i": i, "b": bytes([i]) * (i + 1)}) for i in range(4)]
    assert write_tfrecord(path, payloads) == 4
    assert list(read_tfrecord(path)) == payloads
    raw = bytearray(path.read_bytes())
    (n,) = struct.unpack("<Q", raw[:8])
    raw[12 + n - 1] ^= 0xFF  # flip a byte of the first record's data
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="corrupt data CRC"):
        list(read_tfrecord(path))
    path.write_bytes(bytes(raw[:20]))
    with pytest.raises(ValueError, match="truncated"):
        list(read_tfrecord(path))
