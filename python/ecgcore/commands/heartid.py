"""``ecgcore train|evaluate|export heartid`` and ``ecgcore enroll|verify|revoke``.

MLX is imported only inside the training/evaluation commands; enrol/verify/revoke run on onnxruntime alone
(the library side is :mod:`ecgcore.models.heartid.product`)."""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import click

from ..models.heartid.keys import load_or_create_key, random_bits, read_key_file, write_key_file
from ..models.heartid.product import DEFAULT_MODELS, DEFAULT_SCHEME, SCHEMES, enrol_record


def _blas_hint():
    from ..models.heartid._train import openblas_path

    lib = openblas_path()
    if lib and lib not in os.environ.get("LD_PRELOAD", ""):
        click.echo(f"hint: mlx[cpu]'s bundled BLAS is slow; LD_PRELOAD={lib} makes training several times "
                   "faster", err=True)


@click.command("train")
@click.argument("data_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--run-dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Run folder: the shared config.json, checkpoint/, history.csv, learning_curve.png, run.json, "
                   "plus heartid_model.npz, best_model.npz, split.json.")
@click.option("--arch", type=click.Choice(["seed", "beat-lda"]), default="seed", show_default=True,
              help="seed: the seed's network (MLX, triplet training on `ecgcore preprocess heartid` folders). "
                   "beat-lda: median heartbeats + PCA/Fisher-LDA fitted in MLX on RAW record folders (ECG-ID's "
                   "person folders, MIT-BIH's flat folder); n_pca by 3-fold cross-validation over the training "
                   "persons; the bundled heartid-beats model. Only --negatives, --within, --shrink, --hr-norm, --beat-window, --seed and the split "
                   "fractions apply to it.")
@click.option("--negatives", "negatives", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="beat-lda only, repeatable: a raw folder (e.g. PTB-XL, whose patient_id makes the persons) whose "
                   "persons all join the fit as extra between-person examples and are never validated or tested.")
@click.option("--within", type=click.Choice(["multi-record", "all"]), default="multi-record", show_default=True,
              help="beat-lda only: the persons whose beat scatter is the within-person covariance. multi-record: "
                   "those with two or more records (session-to-session change, what verify meets); all: everyone.")
@click.option("--shrink", type=click.FloatRange(0.0, 1.0, max_open=True), default=0.0, show_default=True,
              help="beat-lda only: shrink the within-person covariance towards the identity by this share before it "
                   "is whitened (regularised LDA). 0, plain LDA, is the bundled model's; tools/heartid_shrink_cv.py "
                   "measures other values under verify's own score.")
@click.option("--hr-norm/--no-hr-norm", default=True, show_default=True,
              help="beat-lda only: read each median-beat group's ST-T at its own heart rate (time past t0 after the "
                   "R-peak stretched by (RR/rr_ref)^alpha, RR the group's median RR; the values of "
                   "BEAT_OPTIONS['hr_norm'] go into the card), so a person's T wave lines up across days at other "
                   "rates. --no-hr-norm cuts groups as the models before it.")
@click.option("--beat-window", type=(float, float), default=None, metavar="BEFORE AFTER",
              help="beat-lda only: the beat's cut in s before and after its R-peak [default: 0.25 0.45]. "
                   "tools/heartid_beat_window_cv.py compares cuts by cross-validation over the training persons.")
@click.option("--loss", type=click.Choice(["securetl", "heartid"]), default="securetl", show_default=True,
              help="securetl: original Secure Triplet Loss (same person under another key is a negative, "
                   "cancelable); heartid: the seed's 4-term loss (pulls other-key embeddings together).")
@click.option("--epochs", type=int, default=10, show_default=True)
@click.option("--steps-per-epoch", type=int, default=100, show_default=True, help="Triplet batches per epoch.")
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--lr", type=float, default=1e-3, show_default=True, help="AdamW learning rate (weight decay 0.01).")
@click.option("--score", type=click.Choice(["euclidean", "cosine"]), default="euclidean", show_default=True,
              help="Template comparison used for validation and the exported card.")
@click.option("--key-scale", type=float, default=1.0, show_default=True,
              help="Gain on the unit-norm key at the dense layer's input (1 = the seed). SecureTL needs ~100 to "
                   "become cancelable within a few hundred steps: the dB features' identity spread dwarfs a "
                   "unit key's offset.")
@click.option("--standardize-spectrum", is_flag=True,
              help="Standardise the 501 dB STFT features with per-bin training statistics (not in the seed; "
                   "folded into the dense layer on export).")
@click.option("--test-fraction", type=float, default=0.3, show_default=True,
              help="Share of each database's subjects held out for testing.")
@click.option("--val-fraction", type=float, default=0.1, show_default=True,
              help="Share of each database's subjects for validation (model selection, accept threshold).")
@click.option("--max-minutes", type=float, default=None, help="Wall-clock cap over the whole run (resumes count).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--no-resume", is_flag=True, help="Start over even if RUN_DIR holds a checkpoint.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def train(data_dirs, run_dir, arch, negatives, within, shrink, hr_norm, beat_window, loss, epochs, steps_per_epoch, batch_size, lr, score, key_scale,
          standardize_spectrum, test_fraction, val_fraction, max_minutes, seed, no_resume, quiet):
    """Train HeartID on `ecgcore preprocess heartid` folders (e.g. ECG-ID and MIT-BIH), or fit the beat-lda
    embedding on raw record folders (--arch beat-lda).

    Subjects are split per database into disjoint train / validation / test sets (60/10/30 %); test subjects
    are never seen in training. Each batch draws 32 triplets (anchor and positive from one subject, negative
    from another) and two fresh keys, as the seed did. Re-running the same command resumes the run.
    """
    from ..models.heartid import train as run_train
    from ..models.heartid.config import HeartIDConfig

    if negatives and arch != "beat-lda":
        raise click.UsageError("--negatives applies to --arch beat-lda only")
    if shrink and arch != "beat-lda":
        raise click.UsageError("--shrink applies to --arch beat-lda only")
    if beat_window is not None and arch != "beat-lda":
        raise click.UsageError("--beat-window applies to --arch beat-lda only")
    if arch == "beat-lda":
        from ..models.heartid.beats import train_beat_lda

        try:
            run = train_beat_lda(list(data_dirs), run_dir, negatives=list(negatives), within=within, hr_norm=hr_norm,
                                 shrink=shrink, window_s=beat_window,
                                 test_fraction=test_fraction, val_fraction=val_fraction,
                                 seed=seed, log=lambda m: (click.echo(m), sys.stdout.flush()))
        except (ValueError, FileNotFoundError) as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"done: beat-lda, n_pca {run['n_pca']}, {run['embedding_size']}-dim embedding; export with "
                   f"`ecgcore export heartid {run_dir} -o DIR`")
        return
    _blas_hint()
    cfg = HeartIDConfig(loss=loss, epochs=epochs, steps_per_epoch=steps_per_epoch, batch_size=batch_size, lr=lr,
                        time_limit_s=None if max_minutes is None else 60.0 * max_minutes, seed=seed, score=score, key_scale=key_scale,
                        standardize_spectrum=standardize_spectrum,
                        test_fraction=test_fraction,
                        val_fraction=val_fraction)
    try:
        state = run_train(list(data_dirs), run_dir, cfg, resume=not no_resume, progress=not quiet,
                          log=lambda s: (click.echo(s), sys.stdout.flush()))
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"done: {state['epoch']} epochs, {state['step']} steps, best validation EER "
               f"{state['best_val_eer']} at epoch {state['best_epoch']}; weights in {run_dir}")


@click.command("evaluate")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--weights", type=click.Choice(["best", "last"]), default="best", show_default=True,
              help="best_model.npz (lowest validation EER) or heartid_model.npz (last epoch).")
@click.option("--ecgid-raw", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Raw ECG-ID folder, for rank-1 split by recording day (default: $ECGCORE_DATA/ecgiddb when "
                   "present).")
def evaluate(run_dirs, weights, ecgid_raw):
    """Evaluate HeartID runs on their held-out test subjects.

    \b
    Verification: EER, FAR at FRR = 1 %, FRR at FAR = 0.1 %, FAR/FRR at the validation-EER threshold, DET
    curve (det.png). Identification: rank-1 (and close / far apart in time on ECG-ID). Cancelability: the
    rate at which the same person under a second key is accepted, and the Gomez-Barrero unlinkability D_sys
    (0 = unlinkable). Probes are 7 windows (one 20 s record) and single 5 s windows. Writes metrics.json and
    scores.npz into each run folder and prints one table.
    """
    from ..models.heartid import evaluate as run_eval
    from ..models.heartid._evaluate import format_table

    _blas_hint()
    outs = []
    for rd in run_dirs:
        try:
            outs.append(run_eval(rd, weights=weights, ecgid_raw=ecgid_raw, progress=lambda s: click.echo(s, err=True)))
        except (ValueError, FileNotFoundError) as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(format_table(outs))


@click.command("export")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--out-dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for model.onnx + model.json (e.g. python/ecgcore/data/models/heartid).")
@click.option("--weights", type=click.Choice(["best", "last"]), default="best", show_default=True)
@click.option("--also", "also_runs", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Other runs (e.g. the other loss) whose metrics.json go into the card for comparison.")
def export(run_dir, out_dir, weights, also_runs):
    """Export a HeartID run to ONNX (rebuilt with onnx.helper) + model card, checked in onnxruntime.

    The accept threshold in the card is the validation subjects' EER point (from `ecgcore evaluate
    heartid`'s metrics.json, computed here if missing). Parity: onnxruntime vs MLX embeddings on real test
    windows, |diff| <= 1e-4.
    """
    from ..models.heartid import export as run_export

    if json.loads((Path(run_dir) / "run.json").read_text() if (Path(run_dir) / "run.json").is_file()
                  else "{}").get("arch") == "beat-lda":
        from ..models.heartid.beats import export_beat_lda

        try:
            r = export_beat_lda(run_dir, out_dir)
        except (ValueError, FileNotFoundError) as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"wrote {r['onnx']} and {r['card']}; onnxruntime vs NumPy max |diff| "
                   f"{r['parity']['max_abs_diff']:.2e} on {r['parity']['n_groups']} groups; add the grp-iom "
                   f"threshold and figures with tools/heartid_scheme_card.py {out_dir}")
        return
    try:
        r = run_export(run_dir, out_dir, weights=weights, also_runs=also_runs)
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None
    parity = r["parity"]
    click.echo(f"wrote {r['onnx']} and {r['card']}; onnxruntime vs MLX max |diff| "
               f"{max(parity['shared_key'], parity['per_row_keys']):.2e} on {parity['n_windows']} windows; "
               f"threshold {r['threshold']:.4f}")


# ---- enroll / verify / revoke (the HeartID product path) ------------------------------------------------------

def _open(store, model, scheme=DEFAULT_SCHEME):
    from ..models.heartid.product import TemplateStore, Verifier, default_store

    try:
        return TemplateStore(store or default_store()), Verifier(model, scheme=scheme)
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None


_common = [
    click.option("--store", type=click.Path(dir_okay=False, path_type=Path), default=None,
                 help="SQLite template store (default: heartid.sqlite in the user data folder, "
                      "or $ECGCORE_HEARTID_STORE)."),
    click.option("--model", default=None,
                 help="Bundled model name, a folder with model.onnx + model.json, or a .onnx path. Default: "
                      + ", ".join(f"{m} under --scheme {s}" for s, m in DEFAULT_MODELS.items())
                      + " (the seed scheme needs the seed network, whose second input is the key)."),
    click.option("--scheme", type=click.Choice(SCHEMES), default=DEFAULT_SCHEME, show_default=True,
                 help="Template protection. grp-iom: keyed Index-of-Max hashing of a key-independent embedding "
                      "(unlinkable, non-invertible, renewable; only 512 small indices are stored). seed: the "
                      "seed project's key-in-the-network template, linkable by anyone holding the model; for "
                      "reproduction only."),
]


def _with_common(f):
    for opt in reversed(_common):
        f = opt(f)
    return f


@click.command("enroll")
@click.argument("subject")
@click.argument("record", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--key-file", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The subject's key; a missing file is created with a fresh random key (keep it apart from "
                   "the store).")
@click.option("--fs", type=float, default=None, help="Sampling rate of a .npy/.csv RECORD (Hz).")
@click.option("--replace", is_flag=True, help="Overwrite an existing template of SUBJECT.")
@_with_common
def enroll(subject, record, key_file, fs, replace, store, model, scheme):
    """Enrol SUBJECT from RECORD... (WFDB records, .npy or .csv; lead 0; at least 5 s, 20 s or more is better;
    several records give a steadier template).

    Only the protected template is stored (default scheme grp-iom: 512 keyed Index-of-Max indices of the 5-s
    windows' mean embedding direction); the key stays in --key-file. Verify and revoke with the same --scheme.
    """
    st, ver = _open(store, model, scheme)
    try:
        if st.path.resolve() == key_file.resolve():
            raise click.ClickException("the key file must not be the template store")
        if st.get(subject) is not None and not replace:
            raise click.ClickException(f"{subject} is already enrolled in {st.path}; use --replace, or "
                                       f"`ecgcore revoke {subject}` to re-key")
        bits, created = load_or_create_key(key_file, ver.key_size)
        if created:
            click.echo(f"created a new key in {key_file} (keep it secret and apart from the store)")
        elif st.key_revoked(subject, read_key_file(key_file, ver.key_size)):
            raise click.ClickException(f"the key in {key_file} was revoked for {subject}; enrol with a new key "
                                       "file")
        gen, n = enrol_record(st, ver, subject, record, bits, fs)
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        st.close()
    click.echo(f"enrolled {subject}: {n} windows, template generation {gen}, store {st.path}")


@click.command("verify")
@click.argument("subject")
@click.argument("record", type=click.Path(path_type=Path))
@click.option("--key-file", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The key SUBJECT enrolled with.")
@click.option("--fs", type=float, default=None, help="Sampling rate of a .npy/.csv RECORD (Hz).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@_with_common
def verify(subject, record, key_file, fs, as_json, store, model, scheme):
    """Does RECORD come from SUBJECT? Prints accept/reject and the score; exit status 0 accept, 1 reject.

    grp-iom scores are the share of equal indices (1: identical, about 1/16 for unrelated templates), or, for a
    model whose card names a cohort (score_norm), that share cohort-normalised: how many standard deviations it
    lies above the mean of the probe's K best matches among the cohort's people, all hashed under this key
    (adaptive T-norm; the bundled heartid-beats: K = 10 of 466 PTB-XL patients). Seed scores are minus the
    Euclidean distance of mean embeddings.
    """
    st, ver = _open(store, model, scheme)
    try:
        entry = st.get(subject)
        if entry is None:
            when = st.last_revocation(subject)
            raise click.ClickException(
                f"{subject} is not enrolled in {st.path}" if when is None else
                f"{subject}'s template was revoked ({time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(when))}); "
                "re-enrol with the new key")
        if entry["score"] != ver.score:
            other = "grp-iom" if str(entry["score"]).startswith("grp-iom") else "seed"
            raise click.ClickException(f"{subject} was enrolled under the {other} scheme ({entry['score']}); verify "
                                       f"with --scheme {other}, or re-enrol under {scheme}")
        if entry["model_sha256"] != ver.sha256:
            raise click.ClickException(f"{subject} was enrolled with another model; re-enrol with this one")
        bits = read_key_file(key_file, ver.key_size)
        revoked_key = st.key_revoked(subject, bits)
        probe, n = ver.vector(record, bits, fs)
        s = ver.compare(entry["template"], probe, bits)
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        st.close()
    ok = s >= ver.threshold and not revoked_key
    if as_json:
        click.echo(json.dumps({"subject": subject, "decision": "accept" if ok else "reject", "score": s,
                               "threshold": ver.threshold, "score_kind": ver.score,
                               "score_norm": (ver.score_norm or {}).get("kind"), "n_windows": n,
                               "revoked_key": revoked_key}))
    else:
        click.echo(f"{'accept' if ok else 'reject'} {subject}: score {s:.4f} (threshold {ver.threshold:.4f}, "
                   f"{ver.score}, {n} windows){'; this key was revoked' if revoked_key else ''}")
    sys.exit(0 if ok else 1)


@click.command("revoke")
@click.argument("subject")
@click.option("--key-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Replace this key file with a fresh key (the old key is destroyed).")
@click.option("--record", type=click.Path(path_type=Path), default=None,
              help="Re-enrol SUBJECT from this record under the new key right away (needs --key-file).")
@click.option("--fs", type=float, default=None, help="Sampling rate of a .npy/.csv --record (Hz).")
@_with_common
def revoke(subject, key_file, record, fs, store, model, scheme):
    """Revoke SUBJECT's template and re-key: the template is deleted, the old key stops working.

    With --key-file the key is replaced by a fresh one and the old key is remembered as revoked (a salted
    digest, never the key): it can no longer enrol or verify SUBJECT. With --record as well, SUBJECT is
    enrolled again under the new key (otherwise run `ecgcore enroll` with it).
    """
    if record is not None and key_file is None:
        raise click.UsageError("--record needs --key-file (the new key to enrol under)")
    st, ver = _open(store, model, scheme)
    try:
        old_bits = None
        if key_file is not None and key_file.exists():
            old_bits = read_key_file(key_file, ver.key_size)
        if not st.revoke(subject, old_bits):
            raise click.ClickException(f"{subject} is not enrolled in {st.path}")
        click.echo(f"revoked {subject}'s template")
        if key_file is None:
            click.echo("no --key-file given: enrol again with a new key file (the old key stays usable only if "
                       "you reuse it)", err=True)
        else:
            bits = random_bits(ver.key_size)
            write_key_file(key_file, bits)
            click.echo(f"wrote a fresh key to {key_file}")
            if record is not None:
                gen, n = enrol_record(st, ver, subject, record, bits, fs)
                click.echo(f"re-enrolled {subject}: {n} windows, template generation {gen}")
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        st.close()
