"""HeartID beat-lda (``heartid-beats``, the default model of enroll/verify): median-beat groups on real ECG-ID records,
the MLX Fisher-LDA fit against its definition, the bundled card's figures reproduced through the product path, the
train -> export CLI on a small set of real persons, and the default model of each scheme."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from ecgcore.cli import main
from ecgcore.export import resolve_model
from ecgcore.models.heartid.beats import (BEAT_OPTIONS, beat_groups, beat_length, beat_options, embed, fit_lda,
                                          person_groups)
from ecgcore.models.heartid.preprocess import read_lead

PRE = int(round(BEAT_OPTIONS["before_s"] * BEAT_OPTIONS["fs"]))


@pytest.fixture(scope="module")
def ecgid(data_dir):
    return data_dir / "ecgiddb"


@pytest.mark.parametrize("person", ["Person_01", "Person_02", "Person_30"])
def test_beat_groups_are_aligned_normalised_medians(ecgid, person):
    """Groups of 10 beats every 5 beats of a 20-s record: unit peak, zero median, the R-peak (largest deflection
    of these persons' lead I) at 0.25 s; spans follow the beats (starts 5 beats apart, each span ~10 beats)."""
    x, fs, _ = read_lead(ecgid / person / "rec_1", BEAT_OPTIONS)
    g, st, en = beat_groups(x, fs)
    assert g.shape[1] == beat_length(BEAT_OPTIONS) == 174 and g.dtype == np.float32
    assert 2 <= len(g) <= 5 and len(st) == len(en) == len(g)
    np.testing.assert_allclose(np.abs(g).max(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(np.median(g, axis=1), 0.0, atol=1e-6)
    assert (np.argmax(np.abs(g), axis=1) == PRE).all()
    span_s = (en - st) / BEAT_OPTIONS["fs"]
    assert ((span_s > 5.0) & (span_s < 15.0)).all() and (np.diff(st) > 0).all()


def test_beat_groups_refuse_gaps_and_short_records(ecgid, tmp_path):
    x, fs, _ = read_lead(ecgid / "Person_01" / "rec_1", BEAT_OPTIONS)
    bad = x.copy()
    bad[100] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        beat_groups(bad, fs)
    g, st, en = beat_groups(x[:int(1.0 * fs)], fs)  # one second: fewer than min_beats beats
    assert g.shape == (0, 174) and st.size == en.size == 0
    np.save(tmp_path / "short.npy", x[:int(1.0 * fs)])
    from ecgcore.models.heartid.preprocess import record_windows

    with pytest.raises(ValueError, match="heartbeats"):
        record_windows(tmp_path / "short.npy", dict(BEAT_OPTIONS), fs=fs)


def test_fit_lda_whitens_within_person_scatter_and_orders_discriminants(ecgid):
    """Fisher LDA by its definition, on real groups of 8 persons: in the embedding the person-balanced within-person
    covariance is the identity, the between-person covariance is diagonal with decreasing variances, and persons
    separate better than in the PCA space of the same size."""
    persons = [f"Person_{i:02d}" for i in (3, 4, 5, 6, 7, 8, 10, 11)]
    data, = person_groups({p: [ecgid / p / "rec_1", ecgid / p / "rec_2"] for p in persons})
    X = np.concatenate([g for p in persons for g in data[p]])
    y = np.concatenate([np.full(sum(len(g) for g in data[p]), i) for i, p in enumerate(persons)])
    mean, P = fit_lda(X, y, n_pca=12)
    assert P.shape == (174, 7)  # min(n_pca, persons - 1)
    Z = embed(X, mean, P).astype(np.float64)
    C = len(persons)
    means = np.stack([Z[y == c].mean(0) for c in range(C)])
    Sw = sum(np.cov(Z[y == c].T, bias=True) for c in range(C)) / C
    np.testing.assert_allclose(Sw, np.eye(7), atol=2e-3)
    Sb = np.cov((means - means.mean(0)).T, bias=True)
    off = Sb - np.diag(np.diag(Sb))
    assert np.abs(off).max() < 1e-3 * np.diag(Sb).max()
    assert (np.diff(np.diag(Sb)) <= 1e-6).all()

    def fisher_ratio(E):
        m = np.stack([E[y == c].mean(0) for c in range(C)])
        within = np.mean([E[y == c].var(0).sum() for c in range(C)])
        return ((m - m.mean(0)) ** 2).sum(1).mean() / within

    Xc = X - X.mean(0)
    pca = Xc @ np.linalg.svd(Xc, full_matrices=False)[2][:7].T
    assert fisher_ratio(Z) > 2 * fisher_ratio(pca)


def test_fit_lda_within_persons_set_the_whitened_scatter(ecgid):
    """``within``: only the named persons' scatter is whitened (their person-balanced within-person covariance is the
    identity in the embedding); the others still count as between-person examples (d = persons - 1)."""
    persons = [f"Person_{i:02d}" for i in (3, 4, 5, 6, 7, 8, 10, 11)]
    data, = person_groups({p: [ecgid / p / "rec_1", ecgid / p / "rec_2"] for p in persons})
    X = np.concatenate([g for p in persons for g in data[p]])
    y = np.concatenate([np.full(sum(len(g) for g in data[p]), i) for i, p in enumerate(persons)])
    labels = 10 * y + 3  # labels that are not their indices
    within = [3, 23, 43, 63]  # persons 0, 2, 4, 6
    mean, P = fit_lda(X, labels, n_pca=12, within=within)
    assert P.shape == (174, 7)
    Z = embed(X, mean, P).astype(np.float64)
    Sw_in = sum(np.cov(Z[y == c].T, bias=True) for c in (0, 2, 4, 6)) / 4
    np.testing.assert_allclose(Sw_in, np.eye(7), atol=2e-3)
    Sw_out = sum(np.cov(Z[y == c].T, bias=True) for c in (1, 3, 5, 7)) / 4
    assert np.abs(Sw_out - np.eye(7)).max() > 0.05  # the others' scatter was not what got whitened
    _, P_all = fit_lda(X, labels, n_pca=12)
    assert not np.allclose(np.abs(P), np.abs(P_all), atol=1e-3)
    with pytest.raises(ValueError, match="not among"):
        fit_lda(X, labels, n_pca=12, within=[3, 99])


def test_fit_lda_shrink_whitens_the_shrunk_within_scatter(ecgid):
    """``shrink`` s: the embedding whitens ``(1 - s)·Sw + s·(tr Sw / n)·I`` (Sw the person-balanced within-person
    covariance in the PCA space), computed here in float64 NumPy from the definition; the unshrunk Sw is then no
    longer the identity in the embedding. s = 0 is plain LDA; values outside [0, 1) are refused."""
    persons = [f"Person_{i:02d}" for i in (3, 4, 5, 6, 7, 8, 10, 11)]
    data, = person_groups({p: [ecgid / p / "rec_1", ecgid / p / "rec_2"] for p in persons})
    X = np.concatenate([g for p in persons for g in data[p]]).astype(np.float64)
    y = np.concatenate([np.full(sum(len(g) for g in data[p]), i) for i, p in enumerate(persons)])
    C, n = len(persons), 12
    # the reference: person-balanced mean and covariance, top-n PCA basis, within-person scatter in that basis
    mu = np.mean([X[y == c].mean(0) for c in range(C)], axis=0)
    cov = np.mean([((X[y == c] - mu).T @ (X[y == c] - mu)) / np.sum(y == c) for c in range(C)], axis=0)
    V = np.linalg.eigh(cov)[1][:, ::-1][:, :n]
    Z = (X - mu) @ V
    Sw = np.mean([np.cov(Z[y == c].T, bias=True) for c in range(C)], axis=0)
    s = 0.3
    shrunk = (1 - s) * Sw + s * np.trace(Sw) / n * np.eye(n)
    mean, P = fit_lda(X, y, n_pca=n, shrink=s)
    np.testing.assert_allclose(mean, mu, atol=1e-4)
    A = V.T @ P.astype(np.float64)  # the projection in the PCA basis (P lies in its span)
    np.testing.assert_allclose(V @ A, P, atol=5e-4)  # MLX fits in float32
    np.testing.assert_allclose(A.T @ shrunk @ A, np.eye(P.shape[1]), atol=2e-3)
    assert np.abs(A.T @ Sw @ A - np.eye(P.shape[1])).max() > 0.05
    _, P0 = fit_lda(X, y, n_pca=n)
    A0 = V.T @ P0.astype(np.float64)
    np.testing.assert_allclose(A0.T @ Sw @ A0, np.eye(P0.shape[1]), atol=2e-3)
    np.testing.assert_array_equal(fit_lda(X, y, n_pca=n, shrink=0.0)[1], P0)
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match="shrink"):
            fit_lda(X, y, n_pca=n, shrink=bad)


def test_ptbxl_folder_gives_patients_as_persons(data_dir):
    """A PTB-XL folder (``ptbxl_database.csv``) is read as persons = ``patient_id``, each patient's 500 Hz ECGs in
    order of recording date; records missing on disk are left out."""
    import csv

    from ecgcore.pipelines.recipes.heartid import _subjects

    root = data_dir / "ptbxl"
    subs = _subjects(root)
    with open(root / "ptbxl_database.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if (root / f"{r['filename_hr']}.hea").is_file()]
    assert sum(map(len, subs.values())) == len(rows) == 500
    assert len(subs) == len({int(float(r["patient_id"])) for r in rows})
    date = {r["filename_hr"]: r["recording_date"] for r in rows}
    multi = [v for v in subs.values() if len(v) > 1]
    assert multi and all([date[r] for r in v] == sorted(date[r] for r in v) for v in multi)
    assert all(r.startswith("records500/") for v in subs.values() for r in v)


def test_ptbxl_subjects_skip_missing_records_and_sort_by_date(data_dir, tmp_path):
    """A trimmed PTB-XL table: a row whose files are missing is left out, a patient's ECGs come in recording-date
    order whatever the table's order, and a row with only its 100 Hz file on disk gives that file."""
    import csv

    from ecgcore.pipelines.recipes.heartid import _subjects

    src = data_dir / "ptbxl"
    (tmp_path / "records500").symlink_to(src / "records500")
    (tmp_path / "records100").symlink_to(src / "records100")
    with open(src / "ptbxl_database.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))[:3]
    rows[0] = {**rows[0], "patient_id": "7.0", "recording_date": "1990-01-02 10:00:00"}
    rows[1] = {**rows[1], "patient_id": "7.0", "recording_date": "1989-05-01 10:00:00"}
    rows[2] = {**rows[2], "filename_hr": "records500/00000/missing_hr"}
    ghost = {**rows[0], "patient_id": "9.0", "filename_hr": "records500/x/none_hr", "filename_lr": "records100/x/none_lr"}
    with open(tmp_path / "ptbxl_database.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows + [ghost])
    subs = _subjects(tmp_path)
    assert subs["7"] == [rows[1]["filename_hr"], rows[0]["filename_hr"]]  # the earlier date first
    assert subs[str(int(float(rows[2]["patient_id"])))] == [rows[2]["filename_lr"]]  # 100 Hz fallback
    assert "9" not in subs


def test_default_models_by_scheme(ecgid):
    from ecgcore.models.heartid.product import Verifier, default_model

    assert default_model() == "heartid-beats" and default_model("seed") == "heartid"
    v = Verifier()
    assert v.card.name == "heartid-beats" and not v.has_key_input
    assert v.windows(ecgid / "Person_01" / "rec_1").shape[1] == v.card.config["input_size"] == 187
    assert Verifier(scheme="seed").card.name == "heartid"
    with pytest.raises(ValueError, match="--model heartid"):
        Verifier("heartid-beats", scheme="seed")
    with pytest.raises(ValueError, match="no key"):
        v.embed(v.windows(ecgid / "Person_01" / "rec_1"), np.ones((1, 100), np.float32))


def test_bundled_card_figures_are_the_product_paths(ecgid):
    """The card's grp-iom test figures (18 ECG-ID persons never used in the fit, enrol rec_1, probe every later
    record) are what `enroll`/`verify`'s Verifier computes now, with the card's threshold and seeds."""
    from ecgcore.models.heartid.product import Verifier
    from ecgcore.models.heartid.scheme_eval import person_records, scheme_scores, summarise

    _, card = resolve_model("heartid-beats")
    fig = card.metrics["template protection (issue 23)"]["schemes"]["grp-iom-v1"]["test"]
    test = [s.split(":", 1)[1] for s in card.training["test_subjects"] if s.startswith("ecgiddb:")]
    ver = Verifier()
    r = summarise(scheme_scores(ver, person_records(ecgid, test), seed=1), ver.threshold)
    for k in ("eer_stolen_key", "eer_two_factor", "frr_at_threshold", "far_stolen_key_at_threshold", "rank1",
              "same_person_other_key_accepted"):
        assert r[k] == pytest.approx(fig[k], abs=1e-9), k
    assert r["n_genuine"] == fig["n_genuine"] == 79
    # D_sys at the card's sample size (other keys per person): what the card says, within issue 23's 0.05, and
    # the biometric figures do not depend on how many other keys were drawn
    keys = card.metrics["template protection (issue 23)"]["other_keys_per_person"]["grp-iom-v1"]
    many = summarise(scheme_scores(ver, person_records(ecgid, test), seed=1, rank1=False, other_keys=keys),
                     ver.threshold)
    assert many["d_sys"] == pytest.approx(fig["d_sys"], abs=1e-9) and many["d_sys"] <= 0.05
    assert many["d_sys_estimator_floor"] == pytest.approx(fig["d_sys_estimator_floor"], abs=1e-9)
    assert many["eer_stolen_key"] == r["eer_stolen_key"] and many["same_person_other_key_accepted"] == 0.0
    # better than the seed network's grp-iom figures on the same persons (its own card)
    _, seed_card = resolve_model("heartid")
    old = seed_card.metrics["template protection (issue 23)"]["schemes"]["grp-iom-v1"]["test"]
    assert r["eer_stolen_key"] < old["eer_stolen_key"] and r["rank1"] > old["rank1"]


def test_train_and_export_cli_on_real_persons(ecgid, tmp_path):
    """`ecgcore train heartid --arch beat-lda` on 12 real ECG-ID persons (raw folders), then `ecgcore export
    heartid`: a card with the cross-validation table and a graph that embeds through the Verifier."""
    raw = tmp_path / "ecgid"
    raw.mkdir()
    for i in range(1, 13):
        (raw / f"Person_{i:02d}").symlink_to(ecgid / f"Person_{i:02d}")
    run, out = tmp_path / "run", tmp_path / "model"
    r = CliRunner().invoke(main, ["train", "heartid", "--arch", "beat-lda", str(raw), "-o", str(run)])
    assert r.exit_code == 0, r.output
    info = json.loads((run / "run.json").read_text())
    assert info["arch"] == "beat-lda" and len(info["split"]["test"]) == 4
    assert info["n_pca"] in info["n_pca_grid"] and len(info["cross_validation"]) == len(info["n_pca_grid"])
    assert all(0.0 <= row["rank1"] <= 1.0 and row["n_probes"] > 0 for row in info["cross_validation"])
    r = CliRunner().invoke(main, ["export", "heartid", str(run), "-o", str(out)])
    assert r.exit_code == 0, r.output
    from ecgcore.models.heartid.product import Verifier

    ver = Verifier(out, threshold=0.5)
    e = ver.embed(ver.windows(ecgid / "Person_01" / "rec_1"))
    assert e.shape[1] == info["embedding_size"] and np.isfinite(e).all()
    card = json.loads((out / "model.json").read_text())
    assert card["training"]["cross_validation"] == info["cross_validation"]
    # heart-rate normalisation is on by default and travels in the card; --no-hr-norm fits the previous cut
    assert info["options"]["hr_norm"] == card["preprocessing"]["hr_norm"] == BEAT_OPTIONS["hr_norm"]
    r = CliRunner().invoke(main, ["train", "heartid", "--arch", "beat-lda", "--no-hr-norm", str(raw), "-o",
                                  str(tmp_path / "plain")])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["export", "heartid", str(tmp_path / "plain"), "-o", str(tmp_path / "plain-model")])
    assert r.exit_code == 0, r.output
    plain = json.loads((tmp_path / "plain-model" / "model.json").read_text())
    assert "hr_norm" not in plain["preprocessing"] and "--no-hr-norm" in plain["training"]["command"]
    assert "--no-hr-norm" not in card["training"]["command"]
    assert card["config"]["shrink"] == 0.0 and "--shrink" not in card["training"]["command"]
    # --shrink reaches the fit, the run, the card and its command; the seed network refuses it
    r = CliRunner().invoke(main, ["train", "heartid", "--arch", "beat-lda", "--shrink", "0.2", str(raw), "-o",
                                  str(tmp_path / "shrunk")])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "shrunk" / "run.json").read_text())["shrink"] == 0.2
    r = CliRunner().invoke(main, ["export", "heartid", str(tmp_path / "shrunk"), "-o", str(tmp_path / "shrunk-model")])
    assert r.exit_code == 0, r.output
    shrunk = json.loads((tmp_path / "shrunk-model" / "model.json").read_text())
    assert shrunk["config"]["shrink"] == 0.2 and "--shrink 0.2" in shrunk["training"]["command"]
    with np.load(tmp_path / "shrunk" / "beat_lda.npz") as z, np.load(run / "beat_lda.npz") as z0:
        assert not np.allclose(z["projection"], z0["projection"], atol=1e-3)
    r = CliRunner().invoke(main, ["train", "heartid", "--shrink", "0.2", str(raw), "-o", str(tmp_path / "seed")])
    assert r.exit_code != 0 and "--shrink applies to --arch beat-lda only" in r.output
    # --beat-window reaches the run's options, the card (input size, description, command) and the Verifier's cut
    assert "--beat-window" not in card["training"]["command"] and "-0.25..+0.45 s" in card["description"]
    r = CliRunner().invoke(main, ["train", "heartid", "--arch", "beat-lda", "--beat-window", "0.3", "0.45", str(raw),
                                  "-o", str(tmp_path / "cut")])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "cut" / "run.json").read_text())["options"]["before_s"] == 0.3
    r = CliRunner().invoke(main, ["export", "heartid", str(tmp_path / "cut"), "-o", str(tmp_path / "cut-model")])
    assert r.exit_code == 0, r.output
    cut = json.loads((tmp_path / "cut-model" / "model.json").read_text())
    assert cut["preprocessing"]["before_s"] == 0.3 and cut["config"]["input_size"] == 187
    assert "--beat-window 0.3 0.45" in cut["training"]["command"] and "-0.3..+0.45 s" in cut["description"]
    x, fs, _ = read_lead(ecgid / "Person_01" / "rec_1", BEAT_OPTIONS)
    np.testing.assert_array_equal(Verifier(tmp_path / "cut-model", threshold=0.5).windows(ecgid / "Person_01" / "rec_1"),
                                  beat_groups(x, fs, beat_options(None, (0.3, 0.45)))[0])
    r = CliRunner().invoke(main, ["train", "heartid", "--arch", "beat-lda", "--beat-window", "0.0", "0.45", str(raw),
                                  "-o", str(tmp_path / "bad")])
    assert r.exit_code != 0 and "beat window must be" in r.output and not (tmp_path / "bad").exists()
    # another split: the card records it, its command reproduces it, and the tools rebuild it from the card
    r = CliRunner().invoke(main, ["train", "heartid", "--arch", "beat-lda", "--test-fraction", "0.25", "--seed", "3",
                                  str(raw), "-o", str(tmp_path / "split")])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["export", "heartid", str(tmp_path / "split"), "-o", str(tmp_path / "split-model")])
    assert r.exit_code == 0, r.output
    from ecgcore.models.heartid.beats import card_fit_persons, read_beat_lda_card

    split = read_beat_lda_card(tmp_path / "split-model")
    assert split.config["test_fraction"] == 0.25 and split.config["seed"] == 3
    assert "--test-fraction 0.25 --val-fraction 0.1" in split.training["command"] and "--seed 3" in split.training["command"]
    assert "--test-fraction" not in card["training"]["command"] and "--seed" not in card["training"]["command"]
    assert sorted(card_fit_persons(split, tmp_path).split["test"]) == sorted(split.training["test_subjects"])
    r = CliRunner().invoke(main, ["train", "heartid", "--arch", "beat-lda", "--shrink", "1", str(raw), "-o",
                                  str(tmp_path / "bad")])
    assert r.exit_code != 0 and "--shrink" in r.output
    # each model's Verifier cuts the groups its card names
    x, fs, _ = read_lead(ecgid / "Person_01" / "rec_1", BEAT_OPTIONS)
    np.testing.assert_array_equal(Verifier(tmp_path / "plain-model", threshold=0.5).windows(
        ecgid / "Person_01" / "rec_1"), beat_groups(x, fs, beat_options(0.0))[0])
    np.testing.assert_array_equal(ver.windows(ecgid / "Person_01" / "rec_1"), beat_groups(x, fs)[0])


def test_negatives_join_the_fit_only(ecgid, ptbxl_cut, tmp_path):
    """`--negatives` (a small PTB-XL folder: 20 ECGs) adds persons to the fit, never to the split; `--within
    multi-record` whitens only persons with several records; `--negatives` is refused for the seed network."""
    raw = tmp_path / "ecgid"
    raw.mkdir()
    for i in range(1, 13):
        (raw / f"Person_{i:02d}").symlink_to(ecgid / f"Person_{i:02d}")
    neg = tmp_path / "ptbxl"
    rows = ptbxl_cut(neg, 20)
    run = tmp_path / "run"
    r = CliRunner().invoke(main, ["train", "heartid", "--arch", "beat-lda", str(raw), "--negatives", str(neg),
                                  "-o", str(run)])
    assert r.exit_code == 0, r.output
    info = json.loads((run / "run.json").read_text())
    n_neg = len({int(float(row["patient_id"])) for row in rows[:20]})
    assert info["negative_persons"] == n_neg and info["within"] == "multi-record"
    assert not any(p.startswith("ptbxl:") for k in ("train", "val", "test") for p in info["split"][k])
    from collections import Counter

    multi_neg = sum(n >= 2 for n in Counter(int(float(row["patient_id"])) for row in rows[:20]).values())
    assert multi_neg >= 1  # a patient with two ECGs among the first 20 rows
    # every ECG-ID person has several records; of the negatives, the patients with two ECGs
    assert info["within_persons"] == len(info["split"]["train"]) + multi_neg
    # the negatives widen the fit: more discriminant directions than the training persons alone allow
    assert info["embedding_size"] > len(info["split"]["train"]) - 1
    r = CliRunner().invoke(main, ["train", "heartid", str(raw), "--negatives", str(neg), "-o", str(tmp_path / "s")])
    assert r.exit_code != 0 and "beat-lda only" in r.output
    empty = tmp_path / "empty"
    empty.mkdir()
    r = CliRunner().invoke(main, ["train", "heartid", "--arch", "beat-lda", str(raw), "--negatives", str(empty),
                                  "-o", str(tmp_path / "e")])
    assert r.exit_code != 0 and "no persons found" in r.output
    r = CliRunner().invoke(main, ["train", "heartid", "--arch", "beat-lda", str(raw), "--negatives", str(raw),
                                  "-o", str(tmp_path / "d")])
    assert r.exit_code != 0 and "repeat records" in r.output


def test_infer_scores_the_same_groups_as_the_verifier(ecgid, tmp_path):
    """`ecgcore infer heartid-beats` writes one embedding per median-beat group, equal to the Verifier's, with each
    group's span in the record's own samples (500 Hz here)."""
    import csv

    from ecgcore.models.heartid.product import Verifier

    rec = ecgid / "Person_02" / "rec_1"
    out = tmp_path / "emb.csv"
    r = CliRunner().invoke(main, ["infer", "heartid-beats", str(rec), "-o", str(out), "--no-progress"])
    assert r.exit_code == 0, r.output
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    ver = Verifier()
    want = ver.embed(ver.windows(rec))
    got = np.array([[float(v) for v in row["embedding"].split()] for row in rows])
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-5)
    start, end = np.array([int(row["sample"]) for row in rows]), np.array([int(row["end_sample"]) for row in rows])
    assert (np.diff(start) > 0).all() and ((end - start) / 500.0 > 5).all() and end.max() <= 10000


def _paced(rr_s: float, fs: float, seconds: float, hr: dict) -> np.ndarray:
    """A synthetic lead at a fixed RR: P, QRS and T Gaussians, the waveform past ``t0`` stretched by
    ``(RR / rr_ref)^alpha`` -- the QT-RR relation ``hr_norm`` assumes."""
    t0, k = hr["t0_s"], (rr_s / hr["rr_ref_s"]) ** hr["alpha"]
    t = np.arange(int(seconds * fs)) / fs
    x = np.zeros_like(t)
    for r in np.arange(0.6, seconds - 1.0, rr_s):
        d = t - r
        tau = np.where(d > t0, t0 + (d - t0) / k, d)  # the beat's own time axis
        x += (np.exp(-0.5 * (tau / 0.012) ** 2) - 0.25 * np.exp(-0.5 * ((tau - 0.03) / 0.01) ** 2)
              + 0.15 * np.exp(-0.5 * ((tau + 0.16) / 0.025) ** 2) + 0.35 * np.exp(-0.5 * ((tau - 0.28) / 0.05) ** 2))
    return x


def test_hr_norm_lines_up_the_t_wave_across_heart_rates():
    """Heart-rate normalisation on a synthetic person at 100 and 60 bpm whose ST-T stretches as ``(RR / 0.8 s)^0.6``:
    the same groups at both rates with ``hr_norm`` (T-wave peak within one sample, correlation > 0.99, max |diff|
    < 0.06 of the unit peak: the 1-40 Hz band-pass does not scale with the waveform), and not without it (T peak
    25+ ms apart, correlation 0.81); up to t0 past the R-peak the groups are the plain ones (up to an offset and a gain)."""
    hr = BEAT_OPTIONS["hr_norm"]
    fs = 500.0
    fast, slow = _paced(0.6, fs, 30.0, hr), _paced(1.0, fs, 30.0, hr)
    plain = beat_options(0.0)
    gf, gs, pf, ps = (beat_groups(x, fs, o)[0] for o in (None, plain) for x in (fast, slow))
    assert gf.shape[1] == gs.shape[1] == pf.shape[1] == 174
    mf, ms, qf, qs = (np.median(g, axis=0) for g in (gf, gs, pf, ps))
    st = PRE + int(0.1 * 250)  # past the QRS
    t_peak = [int(np.argmax(m[st:])) for m in (mf, ms, qf, qs)]
    assert abs(t_peak[0] - t_peak[1]) <= 1
    assert abs(t_peak[2] - t_peak[3]) >= 0.025 * 250
    assert np.corrcoef(mf, ms)[0, 1] > 0.99 and np.abs(mf - ms).max() < 0.06
    assert np.corrcoef(qf, qs)[0, 1] < 0.9 and np.abs(qf - qs).max() > 0.2
    head = PRE + int(hr["t0_s"] * 250)
    # (the groups' final median removal and scaling see the warped ST-T: equal up to an offset and a gain)
    for u, v in zip(gf[:, :head], pf[:, :head]):
        assert np.corrcoef(u, v)[0, 1] > 0.99999


def test_warp_groups_by_definition():
    """``_warp_groups`` on a ramp (each sample holds its own time): the output is the warped time axis itself --
    ``t`` up to t0, ``t0 + (t - t0) (RR / rr_ref)^alpha`` after it, RR the median RR of *that group's* beats clipped
    to ``rr_range_s`` -- and ``reach`` is one past the last sample read: a wide beat that is NaN from ``pre + reach``
    on still gives a finite group, from ``pre + reach - 1`` on it does not."""
    from ecgcore.pipelines.recipes.heartid import _hr_norm, _warp_groups, _wide_post

    o = BEAT_OPTIONS
    h = _hr_norm(o)
    fs, post = o["fs"], int(round(o["after_s"] * o["fs"]))
    wide = PRE + _wide_post(o, h)
    ramp = (np.arange(wide) - PRE) / fs
    t = (np.arange(PRE + post) - PRE) / fs
    for rr_a, rr_b in ((0.8, 0.6), (1.2, 3.0), (0.2, 1.0)):
        # group 0: beats 0-9 at rr_a; group 1: beats 10-19 at rr_b
        p = np.r_[0.0, np.cumsum([rr_a] * 9 + [rr_b] * 10)]
        p = np.round(p * fs).astype(np.int64) + 100
        out, reach = _warp_groups(np.stack([ramp, ramp]), p, np.array([0, 10]), 10, o, h)
        for j, rr in enumerate((rr_a, rr_b)):
            k = (min(max(rr, 0.3), 2.0) / h["rr_ref_s"]) ** h["alpha"]
            np.testing.assert_allclose(out[j], np.where(t > h["t0_s"], h["t0_s"] + (t - h["t0_s"]) * k, t),
                                       atol=2e-3)  # the rounded peaks move RR by < 1 sample
            for cut, finite in ((reach[j], True), (reach[j] - 1, False)):
                m = ramp.copy()
                m[PRE + cut:] = np.nan
                assert np.isfinite(_warp_groups(m[None], p[10 * j:], np.array([0]), 10, o, h)[0]).all() == finite
        if rr_a == 0.8:
            assert reach[0] == post  # k = 1: the plain cut's end
    with pytest.raises(ValueError, match="cut"):
        _warp_groups(np.stack([ramp[:PRE + post]]), p, np.array([0]), 10, o, h)
    for bad in ({"alpha": 0.6}, {**h, "rr_ref_s": 0.0}, {**h, "rr_range_s": [2.0, 0.3]},
                {**h, "rr_range_s": [0.3, float("inf")]}, {**h, "alpha": 40.0}, True):
        with pytest.raises(ValueError, match="hr_norm"):
            _hr_norm(dict(o, hr_norm=bad))
    # through group_beats: at 75 bpm (RR = rr_ref) the spans are the plain cut's
    x = _paced(0.8, 500.0, 30.0, h)
    np.testing.assert_array_equal(beat_groups(x, 500.0)[2], beat_groups(x, 500.0, beat_options(0.0))[2])


def test_hr_norm_keeps_the_plain_cuts_beats(ecgid):
    """With ``hr_norm`` the same beats are kept as without it (none lost at the record's end to the wider cut) and
    each is scaled by its -0.25..+0.45 s part: that part equals the plain cut's beat."""
    from ecgcore.pipelines.recipes.heartid import aligned_beats

    from ecgcore.pipelines.recipes.heartid import _hr_norm, _wide_post, lead_at_rate

    x, fs, _ = read_lead(ecgid / "Person_05" / "rec_2", BEAT_OPTIONS)
    wide, p = aligned_beats(x, fs)
    plain, q = aligned_beats(x, fs, beat_options(0.0))
    np.testing.assert_array_equal(p, q)
    n = lead_at_rate(x, fs, BEAT_OPTIONS["band"], BEAT_OPTIONS["fs"], what="beats").size
    assert p[-1] + _wide_post(BEAT_OPTIONS, _hr_norm(BEAT_OPTIONS)) > n  # the last beat needed the padding
    tail = wide[-1, PRE + n - p[-1]:]  # past the record's end: the zero padding, less the beat's median, scaled
    assert tail.size > 0 and (tail == tail[0]).all()
    assert wide.shape[1] > plain.shape[1] == 174
    np.testing.assert_allclose(wide[:, :174], plain, atol=1e-6)


def test_hr_norm_off_is_the_previous_cut(ecgid):
    """A card without ``hr_norm`` (the models before it), or with alpha 0, cuts groups as the code before
    ``hr_norm`` did: values recorded from that code (commit 61f8b52~1) on ECG-ID Person_05 rec_2."""
    x, fs, _ = read_lead(ecgid / "Person_05" / "rec_2", BEAT_OPTIONS)
    a = beat_groups(x, fs, beat_options(0.0))
    b = beat_groups(x, fs, dict(BEAT_OPTIONS, hr_norm=dict(BEAT_OPTIONS["hr_norm"], alpha=0.0)))
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    g, st, en = a
    assert g.shape == (2, 174) and st.tolist() == [38, 1349] and en.tolist() == [2568, 3882]
    np.testing.assert_allclose(g.astype(np.float64).sum(1), [2.505289, 2.326835], atol=2e-5)
    np.testing.assert_allclose(g[:, [10, 62, 100, 150]], [[0.002433, -1.0, 0.069467, -0.137355],
                                                         [-0.004461, -0.996692, 0.0931, -0.144656]], atol=1e-5)


def test_bundled_hr_norm_is_the_cross_validated_choice(repo_tool):
    """The shipped ``hr_norm`` is the exponent ``tools/heartid_hr_norm_cv.py`` found best over the training persons
    (its table in the card, alpha 0 included and worse), and the card says how it was chosen."""
    repo_tool("heartid_hr_norm_cv")  # the tool imports
    _, card = resolve_model("heartid-beats")
    choice = card.training["hr_norm_choice"]
    rows = choice["rows"]
    best = min(rows, key=lambda r: (r["cv_eer_mean"], -r["cv_rank1"]))
    assert card.preprocessing["hr_norm"]["alpha"] == choice["lowest"]["alpha"] == best["alpha"] == \
        choice["shipped_alpha"]
    assert card.preprocessing["hr_norm"] == dict(BEAT_OPTIONS["hr_norm"])
    off = min((r for r in rows if r["alpha"] == 0.0), key=lambda r: r["cv_eer_mean"])
    assert best["cv_eer_mean"] < off["cv_eer_mean"]
    assert "/" not in choice["command"].replace("tools/", "").replace("MODEL/model.json", "")


def test_bundled_score_norm_is_the_cross_validated_choice(repo_tool, data_dir, tmp_path):
    """grp-iom's cohort normalisation and threshold are what ``tools/heartid_score_norm.py`` chose over the training
    persons (its table in the card: the lowest mean per-fold EER, below the raw score's; the threshold at the rule
    the card names), and the cohort file is the negatives' first records through the product path (checked on five
    of them)."""
    import hashlib

    from ecgcore.models.heartid._evaluate import _unit, template
    from ecgcore.models.heartid.product import Verifier

    tool = repo_tool("heartid_score_norm")
    onnx_path, card = resolve_model("heartid-beats")
    entry = card.config["verification"]["schemes"]["grp-iom-v1"]
    norm, choice = entry["score_norm"], card.training["score_norm_choice"]
    rows = choice["rows"]
    raw = next(r for r in rows if r["score"] == "raw")
    # the rule the card names: lowest EER and the pooled EER point, or with --far-target the operating point
    far = choice.get("far_target")
    best = min((r for r in rows if r["score"] != "raw"), key=lambda r: tool.choice_key(r, far))
    assert tool.choice_key(best, far)[0] < tool.choice_key(raw, far)[0]
    assert tool.choice_key(best, None) == (best["cv_eer_mean"], -best["cv_rank1"])
    assert norm["top_k"] == best["top_k"] == choice["chosen"]["top_k"]
    at = "pooled_threshold" if far is None else "threshold_at_far_target"
    assert choice.get("far_target") in (None, best.get("far_target"))
    assert entry["threshold"] == best[at] == choice["chosen"]["threshold"]
    assert "validation and test persons not read" in entry["threshold_chosen_on"]
    path = onnx_path.parent / norm["cohort"]
    assert norm["cohort"] == tool.COHORT_FILE
    assert hashlib.sha256(path.read_bytes()).hexdigest() == norm["cohort_sha256"]
    cohort = np.load(path)
    assert cohort.shape == (norm["cohort_persons"], card.config["embedding_size"]) and cohort.dtype == np.float32
    ver = Verifier()
    assert ver.score_norm == norm and ver.threshold == entry["threshold"]
    from ecgcore.models.heartid.beats import fit_persons

    who = fit_persons([data_dir / "ecgiddb", data_dir / "mitdb"], [data_dir / "ptbxl"])
    names = sorted(who.negatives)
    assert len(names) == norm["cohort_persons"] + len(norm["cohort_skipped"])
    used = [p for p in names if p not in norm["cohort_skipped"]]
    for i in (0, 1, 100, 250, len(used) - 1):
        want = _unit(template(ver.embed(ver.windows(who.negatives[used[i]][0])), "cosine"))
        np.testing.assert_allclose(cohort[i], want, atol=1e-6)
    # the tool's own cohort builder gives those rows, and works on a model folder whose cohort file is gone
    folder = tmp_path / "m"
    shutil.copytree(onnx_path.parent, folder)
    (folder / norm["cohort"]).unlink()
    some = {p: who.negatives[p] for p in (used[0], used[100], used[-1])}
    built, names, skipped = tool.build_cohort(folder, some)
    assert names == sorted(some) and skipped == [] and built.dtype == np.float32
    np.testing.assert_array_equal(built, cohort[[used.index(n) for n in names]])


def test_score_norm_tool_refuses_a_far_target_outside_0_1(repo_tool, capsys):
    """``--far-target`` is a rate: 0, 1 and 1.5 are refused before any data is read."""
    tool = repo_tool("heartid_score_norm")
    for bad in ("0", "1", "1.5"):
        with pytest.raises(SystemExit) as exc:
            tool.main(["--far-target", bad])
        assert exc.value.code == 2
        assert "--far-target must lie in (0, 1)" in capsys.readouterr().err


def test_score_norm_tool_ranks_by_the_operating_point_with_a_far_target(repo_tool):
    """Without a FAR target the lowest mean per-fold EER wins; with one, the lowest pooled FRR at that FAR (EER breaks
    ties)."""
    tool = repo_tool("heartid_score_norm")
    rows = [{"top_k": 10, "cv_eer_mean": 0.010, "cv_rank1": 0.98, "frr_at_far_target": 0.020},
            {"top_k": 20, "cv_eer_mean": 0.009, "cv_rank1": 0.98, "frr_at_far_target": 0.026},
            {"top_k": 50, "cv_eer_mean": 0.011, "cv_rank1": 0.99, "frr_at_far_target": 0.020}]
    assert min(rows, key=lambda r: tool.choice_key(r, None))["top_k"] == 20
    assert min(rows, key=lambda r: tool.choice_key(r, 0.01))["top_k"] == 10


def test_beat_window_cuts_more_before_the_r_peak(ecgid):
    """``beat_options(window_s=(0.3, 0.45))`` (``--beat-window``) cuts 13 more samples before each R-peak at 250 Hz
    (75, where round(62.5) gave 62): the same beats with the R-peak at sample 75; bad windows are refused."""
    from ecgcore.pipelines.recipes.heartid import aligned_beats

    x, fs, _ = read_lead(ecgid / "Person_05" / "rec_2", BEAT_OPTIONS)
    plain, p = aligned_beats(x, fs, beat_options(0.0))
    wide, q = aligned_beats(x, fs, beat_options(0.0, (0.3, 0.45)))
    assert wide.shape[1] == plain.shape[1] + 13 == 187 == beat_length(beat_options(0.0, (0.3, 0.45)))
    common = np.isin(p, q)
    assert common.sum() >= len(p) - 1  # a first beat may lose its room before the start
    # the shared span holds the same samples up to each beat's own median and peak scaling (affine)
    a, b = plain[common], wide[np.isin(q, p)][:, 13:]
    r = [np.corrcoef(u, v)[0, 1] for u, v in zip(a, b)]
    assert min(r) > 0.999
    g = beat_groups(x, fs, beat_options(None, (0.3, 0.45)))[0]
    assert g.shape[1] == 187 and np.isfinite(g).all()
    for bad in [(0.0, 0.45), (0.3, 2.0)]:
        with pytest.raises(ValueError, match="beat window"):
            beat_options(None, bad)


def test_beat_window_is_a_beat_lda_option(tmp_path):
    res = CliRunner().invoke(main, ["train", "heartid", str(tmp_path), "-o", str(tmp_path / "run"),
                                    "--beat-window", "0.3", "0.45"])
    assert res.exit_code == 2 and "--beat-window applies to --arch beat-lda only" in res.output


def test_bundled_beat_window_is_the_cross_validated_choice(repo_tool):
    """The shipped cut is the one ``tools/heartid_beat_window_cv.py`` found best over the training persons (its
    table in the card, the previous 0.25 s cut included and worse), and the card's command reproduces it."""
    tool = repo_tool("heartid_beat_window_cv")
    assert tool.parse_windows("0.3:0.45,0.25:0.5") == [(0.3, 0.45), (0.25, 0.5)]
    with pytest.raises(SystemExit, match="BEFORE:AFTER"):
        tool.parse_windows("0.3")
    _, card = resolve_model("heartid-beats")
    choice = card.training["beat_window_choice"]
    best = min(choice["rows"], key=lambda r: (r["cv_eer_mean"], -r["cv_rank1"]))
    cut = (card.preprocessing["before_s"], card.preprocessing["after_s"])
    assert cut == (best["before_s"], best["after_s"]) == (choice["shipped"]["before_s"], choice["shipped"]["after_s"])
    before = next(r for r in choice["rows"] if (r["before_s"], r["after_s"]) == (0.25, 0.45))
    assert best["cv_eer_mean"] < before["cv_eer_mean"]
    assert f"--beat-window {cut[0]:g} {cut[1]:g}" in card.training["command"]
    assert f"-{cut[0]:g}..+{cut[1]:g} s around" in card.description
    assert card.config["input_size"] == beat_length(card.preprocessing) == card.inputs[0]["shape"][1]
    assert choice["test_persons"] == "never read here" and "/" not in choice["command"].replace("tools/", "")


def test_card_fit_persons_reproduces_the_bundled_split(data_dir):
    """The tools' shared start: a beat-lda card's fit persons rebuilt from the data folder, its test persons the card's;
    another split or another kind of model is refused by name."""
    import dataclasses

    from ecgcore.models.heartid.beats import card_fit_persons, read_beat_lda_card

    onnx_path, _ = resolve_model("heartid-beats")
    card = read_beat_lda_card(onnx_path.parent)
    who = card_fit_persons(card, data_dir)
    assert sorted(who.split["test"]) == sorted(card.training["test_subjects"])
    assert not set(who.fit_records) & set(card.training["test_subjects"])
    with pytest.raises(ValueError, match="not this model's split"):
        card_fit_persons(dataclasses.replace(card, config=dict(card.config, seed=1)), data_dir)
    with pytest.raises(ValueError, match="not a beat-lda model"):
        read_beat_lda_card(resolve_model("heartid")[0].parent)
