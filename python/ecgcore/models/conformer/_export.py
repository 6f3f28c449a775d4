"""Export a trained run to ONNX + a model card; check onnxruntime against Keras on real sequences."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .config import RR_SETS, ConformerConfig
from ...pipelines.recipes.beats_scalograms import USUAL_BEAT

__all__ = ["export", "to_onnx", "card_preprocessing", "split_models", "to_onnx_split", "SPLIT_GRAPHS"]

# Beat encoder + sequence head (issue 24): each beat's CNN runs once per record instead of once per sequence.
SPLIT_GRAPHS = {"encoder": "encoder.onnx", "head": "head.onnx"}
# ``ecgcore infer`` runs the beat encoder at most this many beats per call (``resources.max_batch``): beyond 32 the
# encoder ran at half speed (fresh large allocations every call), and the memory budget alone allowed 369.
MAX_BATCH = 32
MAX_BATCH_WHY = ("all 22 DS2 records (49,682 beats, --peaks detect) through ecgcore infer, 2 threads (2026-12-06): "
                 "batch 16 21.4 s, peak RSS 503 MB; 32 18.8-21.4 s, 509 MB; 128 31.7 s, 525 MB; 369 (the 512 MB "
                 "budget) 29.8 s, 850 MB. The encoder alone: 4,154 beats/s at batch 32, 2,168 at 40 (with "
                 "onnxruntime's memory arena it keeps its speed at 128: the cost of fresh large allocations each call)")

OPSET = 17


def to_onnx(model, path, cfg: ConformerConfig) -> Path:
    """Convert a Keras model with tf2onnx (through a concrete ``tf.function``; Keras 3 models have no
    ``from_keras`` path in tf2onnx 1.17). Inputs keep their Keras names, the batch axis is dynamic."""
    import tensorflow as tf
    import tf2onnx

    spec = [tf.TensorSpec((None, cfg.sequence_length, cfg.height, cfg.width, 1), tf.float32, name="scalograms")]
    if cfg.rr_features:
        spec.append(tf.TensorSpec((None, cfg.sequence_length, cfg.n_rr), tf.float32, name="rr"))

    @tf.function(input_signature=spec)
    def serve(*inputs):
        return {"probabilities": model(list(inputs) if len(inputs) > 1 else inputs[0], training=False)}

    from ..._fs import atomic_write

    path = Path(path)
    with atomic_write(path) as tmp:
        tf2onnx.convert.from_function(serve, input_signature=spec, opset=OPSET, output_path=str(tmp))
    return path


def split_models(model, cfg: ConformerConfig):
    """(encoder, head) Keras models holding ``model``'s weights.

    encoder: ``beats`` (n, 32, 187, 1) [+ ``rr`` (n, 4)] → ``embedding`` (n, embed_dim): the per-beat CNN and, with RR
    inputs, the per-beat fusion layer. head: ``embeddings`` (m, 3, embed_dim) → ``probabilities`` (m, 5). For a
    sequence of beats (a, b, c): ``head(encoder(beats)[[a, b, c]])`` = ``model(sequence)``.
    """
    import keras
    from keras import layers

    from .chunks import transfer_weights
    from .model import beat_cnn, sequence_head

    beats = keras.Input((cfg.height, cfg.width, 1), name="beats")
    cnn = beat_cnn(cfg)
    x = cnn(beats)
    inputs = [beats]
    if cfg.rr_features:
        rr = keras.Input((cfg.n_rr,), name="rr")
        inputs.append(rr)
        x = layers.Concatenate(name="with_rr")([x, rr])
        x = layers.Dense(cfg.embed_dim, name="rr_fusion")(x)
    encoder = keras.Model(inputs if len(inputs) > 1 else beats, x, name="beat_encoder")
    cnn.set_weights(model.get_layer("beat_cnn_td").layer.get_weights())
    if cfg.rr_features:
        encoder.get_layer("rr_fusion").set_weights(model.get_layer("rr_fusion").get_weights())
    emb = keras.Input((cfg.sequence_length, cfg.embed_dim), name="embeddings")
    head = keras.Model(emb, sequence_head(emb, cfg), name="sequence_head")
    transfer_weights(model, head)
    return encoder, head


def to_onnx_split(model, out_dir, cfg: ConformerConfig) -> dict:
    """``encoder.onnx`` and ``head.onnx`` (:func:`split_models`) in ``out_dir``; returns their paths by role."""
    import tensorflow as tf
    import tf2onnx

    from ..._fs import atomic_write

    encoder, head = split_models(model, cfg)
    enc_spec = [tf.TensorSpec((None, cfg.height, cfg.width, 1), tf.float32, name="beats")]
    if cfg.rr_features:
        enc_spec.append(tf.TensorSpec((None, cfg.n_rr), tf.float32, name="rr"))
    head_spec = [tf.TensorSpec((None, cfg.sequence_length, cfg.embed_dim), tf.float32, name="embeddings")]

    @tf.function(input_signature=enc_spec)
    def enc_fn(*inputs):
        return {"embedding": encoder(list(inputs) if len(inputs) > 1 else inputs[0], training=False)}

    @tf.function(input_signature=head_spec)
    def head_fn(emb):
        return {"probabilities": head(emb, training=False)}

    out = {}
    for role, fn, spec in (("encoder", enc_fn, enc_spec), ("head", head_fn, head_spec)):
        path = Path(out_dir) / SPLIT_GRAPHS[role]
        with atomic_write(path) as tmp:
            tf2onnx.convert.from_function(fn, input_signature=spec, opset=OPSET, output_path=str(tmp))
        out[role] = path
    return out


def split_parity(folder, full_onnx, feeds: dict, atol: float = 1e-5) -> float:
    """Largest |difference| between the full graph and encoder + head on the same sequences (must be <= atol).

    Each sequence's beats go through the encoder separately (its RR features with them), then the head."""
    import onnxruntime as ort

    def sess(p):
        return ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])

    folder = Path(folder)
    full = sess(full_onnx).run(None, feeds)[0]
    seq = feeds["scalograms"]
    b, length = seq.shape[:2]
    enc = sess(folder / SPLIT_GRAPHS["encoder"])
    enc_feed = {"beats": seq.reshape(b * length, *seq.shape[2:])}
    if "rr" in feeds:
        enc_feed["rr"] = feeds["rr"].reshape(b * length, -1)
    emb = enc.run(None, enc_feed)[0].reshape(b, length, -1)
    got = sess(folder / SPLIT_GRAPHS["head"]).run(None, {"embeddings": emb})[0]
    worst = float(np.abs(got - full).max())
    if worst > atol:
        raise AssertionError(f"encoder + head differ from the full graph by {worst:.2e} (> {atol:g})")
    return worst


def card_preprocessing(cfg: ConformerConfig, norm: dict, dataset_options: dict) -> dict:
    """Everything ``ecgcore infer`` must redo, as the ``beats-scalograms`` recipe + the sequence and scaling steps."""
    pre = {
        "kind": "beats-scalograms",
        "lead": int(dataset_options.get("lead", 0)),
        "fs": 360.0,
        "before": int(dataset_options.get("before", 93)),
        "after": int(dataset_options.get("after", 93)),
        "scales": list(dataset_options.get("scales", [1, 32])),
        "wavelet": dataset_options.get("wavelet", "morl"),
        "variant": dataset_options.get("variant", "conformer"),
        "signal": "physical units (mV), unfiltered, as read from the record",
        "sequence_length": cfg.sequence_length,
        "sequence_stride": 1,
        "label_of": "last",
        "input_layout": "scalograms (batch, sequence_length, n_scales, before + 1 + after, 1): |cwt| per beat, "
                        "then (x - mean[t]) / scale[t] per time column t, broadcast over beats and scales",
        "normalization": {"mean": list(map(float, norm["mean"])), "scale": list(map(float, norm["scale"]))},
    }
    if cfg.rr_features:
        function, names = RR_SETS[cfg.rr_set]
        pre["rr_features"] = {
            "names": list(names),
            "definition": "ecgcore.dsp.rr_features(r_peaks, fs=fs, local_beats=10) over the record's beats: "
                          "columns pre, post, local, average RR (s); NaN local -> mean pre-RR, NaN pre/post -> "
                          "local; features = [pre/avg, post/avg, local/avg, avg"
                          + ("" if cfg.rr_set == "v1" else ", pre/local, post/pre, median |dRR| / median RR over "
                             "beats i-10..i+10")
                          + ("" if len(names) <= 7 else f", then against the record's own {USUAL_BEAT[function]}, "
                             f"from the signal (beats_scalograms, {function}): " + ", ".join(names[7:]))
                          + "]; then (f - mean) / scale; "
                          f"input 'rr' is (batch, sequence_length, {len(names)}), the same 3 beats as the scalograms",
            "function": function,
            "local_beats": 10,
            "mean": list(map(float, norm["rr_mean"])),
            "scale": list(map(float, norm["rr_scale"])),
        }
    return pre


def export(run_dir, out_dir=None, *, name: str = "beats-aami", model: str = "model.keras", check: bool = True,
           n_check: int = 64, threads: int | None = 1, split: bool = True) -> dict:
    """``run_dir/model.keras`` → ``out_dir/model.onnx`` + ``model.json``; returns ``{"onnx", "card", "parity"}``.

    The parity check runs the first ``n_check`` test-record sequences (real data, normalised as in training)
    through Keras and onnxruntime and requires ``|diff| <= 1e-4`` (:func:`ecgcore.export.onnx_parity`).
    ``split`` also writes ``encoder.onnx`` + ``head.onnx`` (:func:`to_onnx_split`, named in the card's ``graphs``),
    checked against the full graph on the same sequences (1e-5).
    """
    from ...export import ModelCard, onnx_parity, write_card
    from .data import dataset_index, make_dataset, rr_table
    from ._common import configure_tensorflow, load_run, load_run_model

    configure_tensorflow(threads)
    run, meta, cfg, norm = load_run(run_dir)
    out = Path(out_dir) if out_dir else run / "export"
    out.mkdir(parents=True, exist_ok=True)
    net = load_run_model(run / model)
    onnx_path = to_onnx(net, out / "model.onnx", cfg)

    parity = None
    if check:
        index = dataset_index(meta["data_dir"])
        rec = meta["test_records"][:1] or meta["train_records"][:1]
        rr = rr_table(index, rec, meta["records_dir"], cfg.rr_set) if cfg.rr_features else None
        ds = make_dataset(index, rec, mean=norm["mean"], scale=norm["scale"], batch_size=n_check, training=False,
                          rr=rr, rr_mean=norm.get("rr_mean"), rr_scale=norm.get("rr_scale"))
        xb, _ = next(iter(ds))
        feeds = {k: v.numpy() for k, v in xb.items()} if isinstance(xb, dict) else {"scalograms": xb.numpy()}
        expected = np.asarray(net.predict_on_batch(xb if isinstance(xb, dict) else feeds["scalograms"]))
        parity = {"max_abs_diff": onnx_parity(onnx_path, feeds, expected, atol=1e-4), "n_sequences": len(expected),
                  "record": rec[0], "atol": 1e-4}
    graphs = {}
    if split:
        paths = to_onnx_split(net, out, cfg)
        graphs = {role: p.name for role, p in paths.items()}
        if check:
            parity["split_max_abs_diff"] = split_parity(out, onnx_path, feeds)

    metrics, subsets = {}, []
    for sub in sorted(run.glob("eval_*")):
        if (sub / "metrics.json").is_file():
            m = json.loads((sub / "metrics.json").read_text())
            if (m.get("n_fraction") or 1.0) < 1.0 or m.get("max_per_class"):
                subsets.append(sub.name)  # a card carries full test sets only: a subset is not a test figure
                continue
            metrics[sub.name[5:]] = {k: m[k] for k in ("accuracy", "macro_f1_NSVF", "macro_f1_all5", "kappa",
                                                        "jk_index", "per_class", "auc", "weighted", "records",
                                                        "n_fraction") if k in m}
    inputs = [{"name": "scalograms", "shape": [None, cfg.sequence_length, cfg.height, cfg.width, 1],
               "dtype": "float32"}]
    if cfg.rr_features:
        inputs.append({"name": "rr", "shape": [None, cfg.sequence_length, cfg.n_rr], "dtype": "float32"})
    fit = meta.get("final", {})
    card = ModelCard(
        name=name, task="classification", framework="keras", inputs=inputs,
        outputs=[{"name": "probabilities", "shape": [None, cfg.n_classes], "dtype": "float32"}], fs=360.0,
        preprocessing=card_preprocessing(cfg, norm, meta.get("dataset_options", {})),
        classes=["N", "S", "V", "F", "Q"], metrics=metrics,
        training={"protocol": meta["protocol"], "train_records": meta["train_records"],
                  "test_records": meta["test_records"], "epochs_run": fit.get("epochs_run"),
                  "steps_per_epoch": fit.get("steps_per_epoch"), "keep_prob": fit.get("keep_prob"),
                  "class_weight": fit.get("class_weight"), "stopped_by_wall_clock": fit.get("stopped_by_wall_clock"),
                  "train_seconds": meta.get("train_seconds"), "command": meta.get("command"),
                  "init_from": meta.get("init_from"),
                  "kfold": meta.get("kfold"), "parity": parity, "hardware": "CPU, 1 TensorFlow thread",
                  **({"evaluations_left_out_as_subsets": subsets} if subsets else {})},
        config=cfg.to_dict(), graphs=graphs, resources={"max_batch": MAX_BATCH, "max_batch_why": MAX_BATCH_WHY},
        description="CNN-Conformer AAMI beat classifier (N, S, V, F, Q) of the LAST beat of 3 consecutive beats, "
                    "from |Morlet| scalograms (32 scales x 187 samples)"
                    + (" and RR-interval features" if cfg.rr_features else "") + "; ecgcore port of the "
                    "ECG_Heartbeat_Classification seed (SPEC §4).")
    write_card(card, out / "model.json")
    for f in (onnx_path, out / "model.json", *(out / g for g in graphs.values())):
        os.chmod(f, 0o644)  # temp files are created 0600; a shipped model must be readable by everyone
    return {"onnx": str(onnx_path), "card": str(out / "model.json"), "parity": parity}
