"""``ecgcore infer`` runs exactly the training-time preprocessing: the recipe outputs that models train on,
compared array for array with what the Scorer feeds the network."""
from __future__ import annotations

import numpy as np
import pytest

from ecgcore.infer import Scorer
from ecgcore.io import Record, read_record
from ecgcore.io.tfrecord import decode_example, read_tfrecord
from ecgcore.pipelines.engine import preprocess

# wfdb 4.3 calls DataFrame.set_index/drop(inplace=True), which pandas 3.1 deprecates.
pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame:DeprecationWarning")


def load_npz(path) -> dict:
    """All arrays of an .npz, the file closed (an open NpzFile warns when it is collected)."""
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def _tfrecord_sequences(path):
    seqs, labels = [], []
    for raw in read_tfrecord(path):
        ex = decode_example(raw)
        n, L, h, w = (int(np.asarray(ex[k]).ravel()[0]) for k in ("num_in_batch", "sequence_len", "height", "width"))
        seqs.append(np.frombuffer(bytes(ex["sequences_raw"][0]), "<f4").reshape(n, L, h, w))
        labels.append(np.frombuffer(bytes(ex["labels_raw"][0]), "<i4"))
    return np.concatenate(seqs), np.concatenate(labels)


def test_beats_inputs_are_the_training_sequences(beats_model, mini_dir, tmp_path):
    """The seed's stage-2 training sequences (tfrecords recipe) + the loader's per-column normalisation."""
    folder, _, card = beats_model
    out = tmp_path / "tf"
    s = preprocess("tfrecords", mini_dir, out, records=["100"], workers=1, progress=False)
    assert s.done == ["100"]
    train_x, train_y = _tfrecord_sequences(out / "100.tfrecord")
    mean = np.asarray(card.preprocessing["normalization"]["mean"], np.float32)
    scale = np.asarray(card.preprocessing["normalization"]["scale"], np.float32)
    train_x = (train_x - mean) / scale  # the seed's DataLoader: (x - mean) / scale over the 187 columns

    scorer = Scorer(folder, threads=1)
    prep = scorer.prepare(read_record(mini_dir / "100"))
    x = np.asarray(prep.inputs[0])
    assert x.shape == (len(train_x) + 2, 3, 32, 187, 1)  # every beat: 2 more than the seed's sequences
    np.testing.assert_array_equal(x[2:, ..., 0], train_x)
    np.testing.assert_array_equal(prep.reference[2:], train_y)
    # The first beats borrow beat 0 as context; beat i's own scalogram is always the last of its sequence.
    np.testing.assert_array_equal(x[0, 0], x[0, 2])
    np.testing.assert_array_equal(x[1, 2, ..., 0], train_x[0, 1])


def test_beat_positions_and_labels_equal_the_h5(beats_model, mini_dir, tmp_path):
    import h5py

    folder, _, _ = beats_model
    preprocess("beats-scalograms", mini_dir, tmp_path, records=["208"], workers=1, progress=False)
    pred = Scorer(folder, threads=1).predict_record(read_record(mini_dir / "208"))
    with h5py.File(tmp_path / "208.h5", "r") as h5:
        np.testing.assert_array_equal([r["sample"] for r in pred.rows], h5["r_peaks"][:])
        assert [r["reference"] for r in pred.rows] == [c.decode() for c in h5["aami"][:]]
    assert sum(pred.summary["counts"].values()) == len(pred.rows) == pred.summary["n"]
    assert abs(sum(pred.summary["burden_pct"].values()) - 100.0) < 0.01


@pytest.mark.parametrize("seed_compat", [False, True])
def test_segments_inputs_are_the_training_segments(segments_model, mitdb_dir, tmp_path, seed_compat):
    from ecgcore.export.card import write_card

    folder, _, card = segments_model
    out = tmp_path / "seg"
    preprocess("segments", mitdb_dir, out, records=["100", "119"], options={"seed_compat": seed_compat},
               workers=1, progress=False)
    npz = load_npz(out / "119.npz")
    want = npz["segments"]
    if seed_compat:
        # The seed's StandardScaler (fitted at preprocessing time) travels in the card.
        sc = load_npz(out / "scaler.npz")
        card = type(card)(**{**card.to_dict(), "preprocessing": {**card.preprocessing, "seed_compat": True,
                                                                   "scaler_mean": sc["mean"].tolist(),
                                                                   "scaler_scale": sc["scale"].tolist()}})
        folder = tmp_path / "model"
        folder.mkdir()
        (folder / "model.onnx").write_bytes((segments_model[0] / "model.onnx").read_bytes())
        write_card(card, folder)
        # The attention training loader: float32 windows minus float32 column means, over float32 scales.
        want = (want - sc["mean"].astype(np.float32)) / sc["scale"].astype(np.float32)
    prep = Scorer(folder, threads=1).prepare(read_record(mitdb_dir / "119"))
    x = prep.inputs[0]
    assert x.shape == (want.shape[0], 1, 3600)
    np.testing.assert_array_equal(x[:, 0], want)
    np.testing.assert_array_equal(prep.sample, npz["start"])
    np.testing.assert_array_equal(prep.reference, npz["labels"])


def test_heartid_windows_are_the_training_windows(heartid_model, data_dir, tmp_path):
    folder, _, _ = heartid_model
    out = tmp_path / "hid"
    preprocess("heartid", data_dir / "ecgiddb", out, records=["Person_01"], workers=1, progress=False)
    npz = load_npz(out / "Person_01.npz")
    scorer = Scorer(folder, threads=1)
    recs = list(dict.fromkeys(npz["record"].tolist()))  # the subject's records in time order
    got = [scorer.prepare(read_record(data_dir / "ecgiddb" / r, annotator=None)) for r in recs]
    np.testing.assert_array_equal(np.concatenate([np.asarray(p.inputs[0]) for p in got]), npz["windows"])
    # Window starts come back at the record's own rate (500 Hz in ECG-ID, the windows were cut at 200 Hz).
    np.testing.assert_array_equal(got[0].sample, npz["start"][npz["record"] == recs[0]] * 500 // 200)


def test_detected_beats_when_there_are_no_annotations(beats_model, rec100):
    """An unannotated signal (.npy-like) is scored on detect_r_peaks beats, within 150 ms of the references."""
    folder, _, _ = beats_model
    bare = Record(signal=rec100.signal, fs=rec100.fs, leads=rec100.leads, units=rec100.units, name="100")
    pred = Scorer(folder, threads=1).predict_record(bare)
    assert pred.summary["peaks"] == "detect" and "reference" not in pred.rows[0]
    ref = rec100.annotations.beats().sample
    got = np.array([r["sample"] for r in pred.rows])
    assert abs(len(got) - len(ref)) <= 0.01 * len(ref)
    nearest = np.abs(ref[np.clip(np.searchsorted(ref, got), 1, len(ref) - 1)[:, None] + [-1, 0]] - got[:, None]).min(1)
    assert np.mean(nearest <= 54) > 0.99


def test_other_rates_are_resampled_to_the_model_rate(beats_model, rec100):
    """A 250 Hz input is brought to the card's 360 Hz first; positions are reported at 250 Hz."""
    from ecgcore.dsp import resample_poly

    folder, _, _ = beats_model
    x = resample_poly(rec100.signal[:, 0], 25, 36)
    rec = Record(signal=x[:, None], fs=250.0, leads=["MLII"], units=["mV"], name="100@250")
    pred = Scorer(folder, threads=1).predict_record(rec)
    got = np.array([r["sample"] for r in pred.rows])
    ref = np.round(rec100.annotations.beats().sample * 250 / 360)
    assert abs(len(got) - len(ref)) <= 0.01 * len(ref)
    assert got.max() < x.size
    assert np.median(np.abs(ref[np.searchsorted(ref, got).clip(0, len(ref) - 1)] - got)) <= 2


def test_rr_features_from_the_cards_function_feed_the_named_input(mini_dir, tmp_path):
    """A two-input beats model (graph inputs ``rr`` then ``scalograms``): the card names the RR function its
    training used; infer calls it on the kept beats, normalises it and feeds it by input name."""
    import warnings

    import torch

    from ecgcore.dsp import rr_features
    from ecgcore.export.card import ModelCard, write_card

    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(3 + 12, 5)

        def forward(self, rr, scalograms):
            return self.fc(torch.cat([scalograms.mean(dim=(2, 3, 4)), torch.nan_to_num(rr).flatten(1)], dim=1))

    torch.manual_seed(0)
    m = M().eval()
    folder = tmp_path / "m"
    folder.mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, (torch.randn(2, 3, 4), torch.randn(2, 3, 32, 187, 1)), str(folder / "model.onnx"),
                          input_names=["rr", "scalograms"], output_names=["y"],
                          dynamic_axes={"rr": {0: "b"}, "scalograms": {0: "b"}, "y": {0: "b"}}, dynamo=False)
    rr_card = {"function": "ecgcore.dsp.rr_features", "mean": [0.8, 0.8, 0.8, 0.8], "scale": [0.2, 0.2, 0.2, 0.2]}
    write_card(ModelCard(name="rr", task="classification", framework="pytorch",
                         inputs=[{"name": "rr", "shape": [None, 3, 4]}, {"name": "scalograms",
                                                                        "shape": [None, 3, 32, 187, 1]}],
                         outputs=[{"name": "y", "shape": [None, 5]}], fs=360.0, classes=list("NSVFQ"),
                         preprocessing={"kind": "beats-scalograms", "sequence_length": 3, "sequence_stride": 1,
                                        "rr_features": rr_card}), folder)
    s = Scorer(folder, threads=1)
    rec = read_record(mini_dir / "119")
    prep = s.prepare(rec)
    r = prep.sample
    want = (rr_features(r, fs=360.0) - 0.8) / 0.2
    idx = np.maximum(np.arange(len(r))[:, None] - 2 + np.arange(3), 0)
    np.testing.assert_array_equal(prep.inputs["rr"], want[idx].astype(np.float32))
    feeds = s._feeds(prep)
    assert feeds[0] is prep.inputs["rr"] and feeds[1] is prep.inputs[0]
    pred = s.predict_record(rec)
    with torch.no_grad():
        eager = m(torch.from_numpy(prep.inputs["rr"]), torch.from_numpy(np.asarray(prep.inputs[0]))).numpy()
    np.testing.assert_allclose(pred.probabilities, s.probabilities(eager), atol=1e-5)
    # the card's name is looked up, never imported: an unknown one is refused with the names infer knows
    import shutil

    from ecgcore.export.card import read_card
    from ecgcore.pipelines.recipes.beats_scalograms import RR_FEATURE_FUNCTIONS, rr_features_for_beats

    card = read_card(folder)
    card.preprocessing["rr_features"] = {**rr_card, "function": "os.system"}
    other = tmp_path / "unknown"
    other.mkdir()
    shutil.copy(folder / "model.onnx", other / "model.onnx")
    write_card(card, other)
    with pytest.raises(ValueError, match="unknown RR-feature function 'os.system'.*rr-intervals-v1"):
        Scorer(other, threads=1).prepare(rec)
    # the bundled beats-aami card's import path names the function that moved to the recipe
    assert RR_FEATURE_FUNCTIONS["ecgcore.models.conformer.data.rr_features_for_beats"] is rr_features_for_beats


def test_rr_morph_features_get_the_cards_lead_at_inference(mini_dir, tmp_path):
    """A card naming ``rr-morph-v3`` (side features that need the signal): ``ecgcore infer`` computes them from the
    card's lead (here lead 1, V1 of record 119) over the kept beats, normalises them and feeds all 14 columns."""
    import warnings

    import torch

    from ecgcore.export.card import ModelCard, write_card
    from ecgcore.pipelines.recipes.beats_scalograms import rr_morph_features_v3

    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(3 * 14 + 3, 5)

        def forward(self, scalograms, rr):
            return self.fc(torch.cat([scalograms.mean(dim=(2, 3, 4)), rr.flatten(1)], dim=1))

    folder = tmp_path / "m"
    folder.mkdir()
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(M().eval(), (torch.randn(2, 3, 32, 187, 1), torch.randn(2, 3, 14)), str(folder / "model.onnx"),
                          input_names=["scalograms", "rr"], output_names=["y"],
                          dynamic_axes={"rr": {0: "b"}, "scalograms": {0: "b"}, "y": {0: "b"}}, dynamo=False)
    mean, scale = np.linspace(0.1, 1.4, 14), np.linspace(0.5, 2.0, 14)
    write_card(ModelCard(name="morph", task="classification", framework="pytorch",
                         inputs=[{"name": "scalograms", "shape": [None, 3, 32, 187, 1]},
                                 {"name": "rr", "shape": [None, 3, 14]}],
                         outputs=[{"name": "y", "shape": [None, 5]}], fs=360.0, classes=list("NSVFQ"),
                         preprocessing={"kind": "beats-scalograms", "lead": 1, "sequence_length": 3,
                                        "sequence_stride": 1,
                                        "rr_features": {"function": "rr-morph-v3", "mean": mean.tolist(),
                                                        "scale": scale.tolist()}}), folder)
    rec = read_record(mini_dir / "119")
    prep = Scorer(folder, threads=1).prepare(rec)
    r = prep.sample
    want = (rr_morph_features_v3(r, fs=360.0, signal=rec.signal[:, 1]) - mean) / scale
    idx = np.maximum(np.arange(len(r))[:, None] - 2 + np.arange(3), 0)
    assert prep.inputs["rr"].shape == (len(r), 3, 14)
    np.testing.assert_allclose(prep.inputs["rr"], want[idx].astype(np.float32), rtol=1e-6, atol=1e-6)
    lead0 = (rr_morph_features_v3(r, fs=360.0, signal=rec.signal[:, 0]) - mean) / scale
    assert np.abs(lead0[idx][..., 7:] - prep.inputs["rr"][..., 7:]).max() > 0.1  # the lead matters
