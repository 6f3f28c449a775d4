"""``tfrecords`` (SPEC §4.3): 3-beat scalogram sequences, 256 per ``tf.train.Example``, one file per record.

Beats and scalograms are cut exactly as ``beats-scalograms`` does (the Conformer seed's stage 1); then
sequences of 3 consecutive beats with stride 1, labelled by the last beat; records with fewer than 3 beats
are skipped. Each chunk of 256 sequences is one Example with the seed's schema: ``num_in_batch``,
``sequence_len`` (3), ``height`` (32), ``width`` (187) as int64, ``sequences_raw`` (float32 C-order
[n, 3, 32, 187] bytes) and ``labels_raw`` (int32 [n] bytes). Written without TensorFlow.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..._fs import atomic_write
from ...dsp import beat_sequences
from ...io.tfrecord import encode_example, write_tfrecord
from .base import RecordResult, write_json
from .beats_scalograms import BeatsScalograms, record_scalograms


class TFRecords(BeatsScalograms):
    name = "tfrecords"

    def default_options(self) -> dict:
        return dict(super().default_options(), sequence_length=3, batch=256)

    def run(self, item: str, in_dir: Path, out_dir: Path, options: dict) -> RecordResult:
        _, _, scal, _, labels, _, _ = record_scalograms(in_dir, item, options)
        length, batch = int(options["sequence_length"]), int(options["batch"])
        seqs, seq_labels = beat_sequences(scal.astype(np.float32, copy=False), labels, length=length)
        if len(seqs) == 0:
            raise ValueError(f"{item}: fewer than {length} beats, no sequence to write")
        seqs = np.ascontiguousarray(seqs, dtype="<f4")
        seq_labels = seq_labels.astype("<i4")
        examples = (encode_example({
            "num_in_batch": len(seqs[i:i + batch]), "sequence_len": length, "height": seqs.shape[2],
            "width": seqs.shape[3], "sequences_raw": seqs[i:i + batch].tobytes(),
            "labels_raw": seq_labels[i:i + batch].tobytes()}) for i in range(0, len(seqs), batch))
        rel = f"{item}.tfrecord"
        with atomic_write(out_dir / rel) as tmp:
            n_ex = write_tfrecord(tmp, examples)
        return RecordResult(record=item, files=[rel], n_items=int(len(seqs)),
                            info={"labels": seq_labels.tolist(), "examples": n_ex})

    def finish(self, out_dir: Path, results: dict[str, dict], options: dict) -> None:
        write_json(out_dir / "summary.json", {
            "recipe": self.name, "records": len(results),
            "sequences": int(sum(len(e["info"]["labels"]) for e in results.values())),
            "examples": int(sum(e["info"]["examples"] for e in results.values())),
            "per_record": {r: len(e["info"]["labels"]) for r, e in sorted(results.items())}})
