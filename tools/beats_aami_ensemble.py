"""beats-aami as an ensemble of networks trained alike (issue 20): one model folder whose graphs average the members.

    python tools/beats_aami_ensemble.py OUT_DIR MEMBER_DIR MEMBER_DIR [...] [--records-dir MITDB]

Every member is an exported beats-aami folder (``ecgcore export conformer RUN -o DIR``: ``model.onnx`` and the split
``encoder.onnx`` + ``head.onnx``) with the same preprocessing, inputs and classes (members fitted on the same
records have the same normalisation statistics; anything else is refused). OUT_DIR gets:

* ``model.onnx``: every member's full graph on the same inputs, the output the mean of their probabilities;
* ``encoder.onnx``: every member's encoder on the same beats, their embeddings concatenated (n, k x E);
* ``head.onnx``: the concatenated embeddings sliced back per member into each member's head, probabilities averaged;
* ``model.json``: the first member's card with these graphs, ``config.ensemble`` (the members, their training), its
  own name (``<first member's name>-ensemble``), a description and a warning that say so; the members' metrics and
  headline are not carried (an ensemble is scored as a whole), and the memory per item that sizes ``infer``'s
  batches is the members' sum.

So ``ecgcore infer`` runs an ensemble exactly as one network (its split path, one encoder pass per beat), at the
cost of every member's encoder and head. With ``--records-dir``, checks the merged graphs against the members'
mean on the sequences of MIT-BIH record 100 (``--check-record``): full graph and split graphs within 1e-5.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

GRAPHS = {"model": "model.onnx", "encoder": "encoder.onnx", "head": "head.onnx"}


def merge(models: list, combine: str, sliced: str | None = None):
    """One ONNX model running ``models`` (each with the same inputs and one output) side by side: ``combine`` "mean"
    averages their outputs, "concat" joins them on the last axis. ``sliced``: an input whose last axis holds the
    members' inputs side by side (member i reads its own width's span); the other inputs feed every member whole."""
    import onnx
    from onnx import compose, helper

    if combine not in ("mean", "concat"):
        raise ValueError(f"combine must be 'mean' or 'concat', got {combine!r}")
    first = models[0]
    names = [i.name for i in first.graph.input]
    outs = [o.name for o in first.graph.output]
    if len(outs) != 1:
        raise ValueError(f"members must have one output, the first has {outs}")
    opset_of = lambda m: sorted((o.domain, o.version) for o in m.opset_import)  # noqa: E731
    for m in models[1:]:
        if [i.name for i in m.graph.input] != names or [o.name for o in m.graph.output] != outs:
            raise ValueError("members differ in their inputs or outputs")
        if opset_of(m) != opset_of(first) or m.ir_version != first.ir_version:
            raise ValueError("members were exported with different opsets or IR versions: re-export them alike")

    def last_dim(vi) -> int:
        d = vi.type.tensor_type.shape.dim[-1]
        if not d.dim_value:
            raise ValueError(f"{vi.name}: the last axis needs a fixed size")
        return int(d.dim_value)

    nodes, inits, infos, opsets = [], [], [], {}
    start = 0
    for k, m in enumerate(models):
        p = compose.add_prefix(m, f"m{k}_")
        g = p.graph
        for x in names:
            if x == sliced:
                width = last_dim(next(i for i in m.graph.input if i.name == x))
                bounds = [helper.make_tensor(f"m{k}_{x}_{t}", onnx.TensorProto.INT64, [1], [v])
                          for t, v in (("start", start), ("end", start + width), ("axis", -1))]
                inits += bounds
                nodes.append(helper.make_node("Slice", [x, *(b.name for b in bounds)], [f"m{k}_{x}"]))
                start += width
            else:
                nodes.append(helper.make_node("Identity", [x], [f"m{k}_{x}"]))
        nodes += list(g.node)
        inits += list(g.initializer)
        infos += list(g.value_info)
        opsets.update({o.domain: o.version for o in m.opset_import})  # the same for every member (checked)
    member_outs = [f"m{k}_{outs[0]}" for k in range(len(models))]
    if combine == "mean":
        nodes.append(helper.make_node("Mean", member_outs, [outs[0]]))
    else:
        nodes.append(helper.make_node("Concat", member_outs, [outs[0]], axis=-1))
    inputs = [onnx.ValueInfoProto() for _ in first.graph.input]
    for vi, src in zip(inputs, first.graph.input):
        vi.CopyFrom(src)
        if vi.name == sliced:
            vi.type.tensor_type.shape.dim[-1].dim_value = start
    out = onnx.ValueInfoProto()
    out.CopyFrom(first.graph.output[0])
    if combine == "concat":
        out.type.tensor_type.shape.dim[-1].dim_value = sum(last_dim(m.graph.output[0]) for m in models)
    graph = helper.make_graph(nodes, f"ensemble_of_{len(models)}", inputs, [out], initializer=inits, value_info=infos)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in sorted(opsets.items())])
    model.ir_version = first.ir_version
    onnx.checker.check_model(model)
    return model


def check_members(cards: list) -> None:
    """The members must be interchangeable to the product: same preprocessing, inputs, outputs and classes."""
    a = cards[0]
    for c in cards[1:]:
        for what in ("preprocessing", "inputs", "outputs", "classes"):
            if getattr(c, what) != getattr(a, what):
                raise SystemExit(f"the members differ in their {what}: an ensemble needs members prepared alike")
        for role in ("encoder", "head"):
            if role not in (c.graphs or {}) or role not in (a.graphs or {}):
                raise SystemExit(f"every member needs its split graphs (card graphs {role!r}); re-export it")


def parity(out_dir: Path, members: list[Path], records_dir: Path, record: str) -> dict:
    """Largest |difference| between the merged graphs and the members' mean probabilities on ``record``'s
    sequences: the full graph, and encoder + head as ``ecgcore infer`` runs them."""
    from ecgcore.infer.core import Scorer
    from ecgcore.io import read_record

    rec = read_record(records_dir / record, annotator="atr")
    want = np.mean([Scorer(str(m), peaks="annotations", quality=False).predict_record(rec).probabilities
                    for m in members], axis=0)
    split = Scorer(str(out_dir), peaks="annotations", quality=False).predict_record(rec).probabilities
    sc = Scorer(str(out_dir), peaks="annotations", quality=False)
    sc._split = None  # the unsplit graph on the same prepared sequences
    full = sc.predict_record(rec).probabilities
    d = {"record": record, "sequences": int(len(want)), "split_max_abs_diff": float(np.max(np.abs(split - want))),
         "full_max_abs_diff": float(np.max(np.abs(full - want))), "atol": 1e-5}
    if max(d["split_max_abs_diff"], d["full_max_abs_diff"]) > d["atol"]:
        raise SystemExit(f"the merged graphs differ from the members' mean: {d}")
    return d


def main(argv=None) -> int:
    import onnx

    from ecgcore.export.card import read_card, write_card

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("members", type=Path, nargs="+")
    ap.add_argument("--records-dir", type=Path, help="MIT-BIH folder: check the merged graphs on a record")
    ap.add_argument("--check-record", default="100")
    a = ap.parse_args(argv)
    if len(a.members) < 2:
        ap.error("an ensemble needs at least two members")
    if a.out_dir.resolve() in {m.resolve() for m in a.members}:
        ap.error("OUT_DIR must not be one of the members")
    cards = [read_card(m / "model.json") for m in a.members]
    check_members(cards)
    a.out_dir.mkdir(parents=True, exist_ok=True)
    roles = {"model": ("mean", None), "encoder": ("concat", None), "head": ("mean", "embeddings")}
    for role, (combine, sliced) in roles.items():
        files = [m / (GRAPHS[role] if role == "model" else c.graphs[role]) for m, c in zip(a.members, cards)]
        onnx.save(merge([onnx.load(f) for f in files], combine, sliced), a.out_dir / GRAPHS[role])
    card = cards[0]
    card.name = f"{card.name}-ensemble"
    card.graphs = {"encoder": GRAPHS["encoder"], "head": GRAPHS["head"]}
    card.metrics, card.headline = {}, {}
    card.warnings = [f"an ensemble of {len(cards)} networks, not scored as a whole here: its members' figures are "
                     "not its own", "research model, not for clinical use"]
    peak = [c.resources.get("peak_bytes_per_item") for c in cards]
    if all(peak):
        card.resources = dict(card.resources, peak_bytes_per_item=int(sum(peak)))
    cfg = dict(card.config)
    cfg["ensemble"] = {"members": len(cards), "combine": "mean of the members' class probabilities",
                       "member_training": [{k: c.training.get(k) for k in ("command", "best_epoch", "epochs_run",
                                                                          "train_seconds", "val_records")}
                                           | {"seed": c.config.get("seed"), "version": c.version} for c in cards]}
    card.config = cfg
    card.description = (f"Ensemble of {len(cards)} CNN-Conformer beat classifiers trained alike (seeds "
                        f"{', '.join(str(c.config.get('seed')) for c in cards)}): the mean of their AAMI class "
                        f"probabilities. " + (cards[0].description or ""))
    if a.records_dir is not None:
        write_card(card, a.out_dir / "model.json")
        cfg["ensemble"]["parity"] = parity(a.out_dir, a.members, a.records_dir, a.check_record)
        card.config = cfg
    write_card(card, a.out_dir / "model.json")
    for m in a.members:  # nothing else of a member is carried: int8 graphs are per member and would be stale
        for extra in sorted(set(p.name for p in m.glob("*.onnx")) - set(GRAPHS.values())):
            print(f"not carried: {m / extra}")
    print(json.dumps(cfg["ensemble"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
