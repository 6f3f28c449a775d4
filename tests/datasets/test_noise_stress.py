"""EC57 noise-stress records (ecgcore.datasets.noise.noise_stress, `ecgcore noise-stress`) checked against nst's
definition: sigamp's amplitudes (recomputed here from their documented rules), the gain formula, the protocol, the
offset correction, and the WFDB output with the reference annotations."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from ecgcore.datasets.noise import nst_gain, nst_protocol, noise_stress, qrs_amplitude, rms_amplitude, trimmed_mean

# wfdb's writer calls a pandas API that pandas deprecates (not ecgcore's code)
pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame:DeprecationWarning")


@pytest.fixture(scope="module")
def rec118(mitdb_dir):
    from ecgcore.io import read_record

    return read_record(mitdb_dir / "118")


@pytest.fixture(scope="module")
def em(data_dir):
    from ecgcore.io import read_record

    return read_record(data_dir / "nstdb" / "em")


def _sigamp_pp(x, samples, symbols, fs):
    """sigamp -a: the first 300 N/L/R/e/j beats, max - min over t-18 .. t+18 samples (0.05 s at 360 Hz)."""
    d = round(0.05 * fs)
    amps = [x[t - d:t + d + 1].max(0) - x[t - d:t + d + 1].min(0) for t, s in zip(samples, symbols) if s in "NLRej"]
    amps = np.sort(np.array(amps[:300]), axis=0)
    k = len(amps) // 20
    return amps[k:len(amps) - k].mean(0)


def test_trimmed_mean_drops_a_twentieth_at_each_end():
    v = np.arange(100.0)
    assert trimmed_mean(v) == pytest.approx(np.arange(5, 95).mean())
    assert trimmed_mean(np.arange(19.0)) == pytest.approx(9.0)  # 19 // 20 = 0: nothing dropped
    with pytest.raises(ValueError):
        trimmed_mean([])


def test_amplitudes_follow_sigamp(rec118, em):
    ann = rec118.annotations
    got = qrs_amplitude(rec118.signal, ann.sample, ann.symbol, rec118.fs)
    np.testing.assert_allclose(got, _sigamp_pp(rec118.signal, ann.sample, ann.symbol, rec118.fs), rtol=1e-12)
    assert 1.0 < got[0] < 5.0  # mV: a plausible MLII QRS
    x = em.signal[:300 * 360].reshape(300, 360, 2)
    rms = np.sqrt(((x - x.mean(1, keepdims=True)) ** 2).mean(1))
    np.testing.assert_allclose(rms_amplitude(em.signal, em.fs), trimmed_mean(rms), rtol=1e-12)


def test_gain_is_the_documented_formula():
    assert nst_gain(0.0, 2.0, 1.0) == pytest.approx(np.sqrt(2) / 2)
    for snr in (24, 18, 12, 6, 0, -6):
        g = nst_gain(snr, [2.5, 1.0], [0.3, 0.1])
        np.testing.assert_allclose(g, 10 ** (-snr / 20) * np.sqrt(2) / 4 * np.array([2.5, 1.0]) / [0.3, 0.1])
        # EC57's SNR: S = pp² / 8, N = (gain · rms)²
        np.testing.assert_allclose(10 * np.log10((np.array([2.5, 1.0]) ** 2 / 8) / (g * [0.3, 0.1]) ** 2), snr, atol=1e-9)
    with pytest.raises(ValueError, match="zero"):
        nst_gain(6, 1.0, 0.0)


def test_protocol_is_five_minutes_clean_then_two_on_two_off():
    fs = 360.0
    on = nst_protocol(650000, fs)
    edges = np.flatnonzero(np.diff(on.astype(int))) + 1
    np.testing.assert_array_equal(edges, np.arange(5 * 60, 30 * 60, 120)[: len(edges)] * 360)
    assert not on[: 300 * 360].any() and on[300 * 360] and not on[420 * 360] and on[540 * 360] and on[-1]


@pytest.mark.parametrize("snr", [12, -6])
def test_record_is_clean_plus_gained_noise_with_nst_offsets(rec118, em, snr):
    noisy, info = noise_stress(rec118, em, snr, return_info=True)
    x, n = rec118.signal, em.signal[: rec118.n_samples]
    gain = nst_gain(snr, _sigamp_pp(x, rec118.annotations.sample, rec118.annotations.symbol, 360.0),
                    trimmed_mean(np.sqrt(((em.signal[:108000].reshape(300, 360, 2)
                                           - em.signal[:108000].reshape(300, 360, 2).mean(1, keepdims=True)) ** 2)
                                         .mean(1))))
    np.testing.assert_allclose(info["gain"], gain, rtol=1e-12)
    on = nst_protocol(rec118.n_samples, 360.0)
    residual = noisy.signal - x - np.where(on[:, None], gain, 0.0) * n  # = -z: constant between switches
    edges = np.r_[0, np.flatnonzero(np.diff(on.astype(int))) + 1, len(on)]
    z = 0.0
    for a, b in zip(edges[:-1], edges[1:]):
        if a > 0:  # nst: z += (g_new - g_old) * noise[a - 1]
            z = z + (int(on[a]) - int(on[a - 1])) * gain * n[a - 1]
        np.testing.assert_allclose(residual[a:b], -np.broadcast_to(z, residual[a:b].shape), atol=1e-9)
    # the first five minutes are the clean record; the output never jumps at a switch by more than the signal does
    np.testing.assert_array_equal(noisy.signal[:108000], x[:108000])
    for a in edges[1:-1]:
        step = np.abs(noisy.signal[a] - noisy.signal[a - 1])
        assert np.all(step <= np.abs(x[a] - x[a - 1]) + np.abs(gain * n[a]) + np.abs(gain * n[a - 1]) + 1e-9)
    assert noisy.annotations is rec118.annotations


def test_noise_start_and_wrapping(rec118, em):
    start = 1000.0  # s: the noise wraps 805 s later
    noisy = noise_stress(rec118, em, 6, noise_start_s=start)
    on = nst_protocol(rec118.n_samples, 360.0)
    idx = (np.arange(rec118.n_samples) + int(start * 360)) % em.n_samples
    wrap = em.n_samples - int(start * 360)
    d = noisy.signal - rec118.signal
    # inside one noisy stretch without a wrap, the added signal is gain · the noise from `start` on, plus a constant
    a = 300 * 360
    seg = d[a:a + 1000] - d[a]
    ref = em.signal[idx[a:a + 1000]] - em.signal[idx[a]]
    g = seg[1:] / np.where(np.abs(ref[1:]) > 1e-6, ref[1:], np.nan)
    assert np.nanstd(g, axis=0).max() < 1e-6
    # at the wrap (inside a noisy stretch for this start) the output does not jump with the noise
    assert on[wrap]
    assert np.all(np.abs(d[wrap] - d[wrap - 1]) < 0.05)
    with pytest.raises(ValueError, match="outside the noise record"):
        noise_stress(rec118, em, 6, noise_start_s=10_000)


def test_errors_are_named(rec118, em):
    from dataclasses import replace

    with pytest.raises(ValueError, match="no reference annotations"):
        noise_stress(replace(rec118, annotations=None), em, 6)
    with pytest.raises(ValueError, match="resample"):
        noise_stress(rec118, replace(em, fs=250.0), 6)


def test_cli_writes_wfdb_records_with_annotations(mitdb_dir, data_dir, tmp_path):
    from ecgcore.cli import main
    from ecgcore.io import read_record

    out = tmp_path / "nst"
    res = CliRunner().invoke(main, ["noise-stress", str(mitdb_dir / "118"), str(tmp_path / "missing"), "--snr", "12",
                                    "--snr", "-6", "--noise", "em", "--noise", "ma", "--nstdb",
                                    str(data_dir / "nstdb"), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "4 records written" in res.output and "1 failed" in res.output  # the missing record is reported, skipped
    names = sorted(p.stem for p in out.glob("*.hea"))
    assert names == ["118e12", "118e_6", "118m12", "118m_6"]
    clean = read_record(mitdb_dir / "118")
    rec = read_record(out / "118e12")
    want = noise_stress(clean, data_dir / "nstdb" / "em", 12)
    assert rec.leads == clean.leads and rec.fs == clean.fs
    np.testing.assert_allclose(rec.signal, want.signal, atol=0.5 / 200 + 1e-9)  # 16-bit at 200 adu/mV
    np.testing.assert_array_equal(rec.annotations.sample, clean.annotations.sample)
    np.testing.assert_array_equal(rec.annotations.symbol, clean.annotations.symbol)
    meta = json.loads((out / "noise_stress.json").read_text())
    assert [m["name"] for m in meta["records"]] == ["118e12", "118e_6", "118m12", "118m_6"]
    assert meta["failed"][0]["record"].endswith("missing")


def test_peaks_noise_stress_table(mitdb_dir, data_dir, tmp_path):
    """`ecgcore peaks evaluate --noise-stress`: the clean record and its nst versions, scored from 5:00."""
    from ecgcore.cli import main
    from ecgcore.datasets.ec57 import evaluate_qrs
    from ecgcore.dsp import detect_r_peaks

    out = tmp_path / "ns.json"
    res = CliRunner().invoke(main, ["peaks", "evaluate", str(mitdb_dir), "--noise-stress", "--records", "118",
                                    "--noise", "em", "--snr", "12", "--snr", "0", "--detectors", "ecgcore",
                                    "--nstdb", str(data_dir / "nstdb"), "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "record 118, em" in res.output
    rows = json.loads(out.read_text())["rows"]
    assert [(r["noise"], r["snr_db"]) for r in rows] == [("clean", None), ("em", 12), ("em", 0)]
    # the 12 dB row, recomputed by hand from the generator and the EC57 scorer
    from ecgcore.io import read_record

    clean = read_record(mitdb_dir / "118")
    noisy = noise_stress(clean, data_dir / "nstdb" / "em", 12)
    st = evaluate_qrs(clean.annotations.sample, clean.annotations.symbol, detect_r_peaks(noisy.signal[:, 0], fs=360.0),
                      fs=360.0, start_s=300.0)
    assert (rows[1]["tp"], rows[1]["fn"], rows[1]["fp"]) == (st.tp, st.fn, st.fp)
    assert rows[0]["f1"] > 99.5 and rows[0]["f1"] > rows[1]["f1"] > rows[2]["f1"]  # noise costs detections


@pytest.mark.slow
def test_peaks_noise_stress_with_the_peers(mitdb_dir, data_dir):
    from ecgcore.datasets.peaks_stress import noise_stress_table

    pytest.importorskip("wfdb")
    res = noise_stress_table(mitdb_dir, data_dir / "nstdb", records=["119"], noises=["em"], snrs=[6],
                             detectors=["ecgcore", "xqrs"], progress=False)
    dets = {r["detector"] for r in res["rows"]}
    assert dets == {"ecgcore", "xqrs"} and all(0 < r["f1"] <= 100 for r in res["rows"])


def test_stress_table_pools_beats_over_records():
    from ecgcore.datasets.peaks_stress import format_stress_table

    def row(rec, det, tp, fn, fp):
        return {"record": rec, "noise": "em", "snr_db": 12, "detector": det, "tp": tp, "fn": fn, "fp": fp,
                "se": 100.0 * tp / (tp + fn), "ppv": 100.0 * tp / (tp + fp), "f1": 200.0 * tp / (2 * tp + fn + fp)}

    res = {"records": ["a", "b"], "noises": ["em"], "skipped": {},
           "rows": [row("a", "ecgcore", 90, 10, 0), row("b", "ecgcore", 300, 0, 100),
                    row("a", "xqrs", 100, 0, 0), row("b", "xqrs", 200, 100, 0)]}
    text = format_stress_table(res)
    pooled = text[text.index("all 2 records pooled, em"):].splitlines()[2]
    # ecgcore: tp 390, fn 10, fp 100 -> F1 = 780 / 890; xqrs: tp 300, fn 100, fp 0 -> F1 = 600 / 700
    assert f"{100 * 780 / 890:.2f}" in pooled and f"{100 * 600 / 700:.2f}" in pooled
    assert f"{100 * 390 / 400:5.1f}/{100 * 390 / 490:5.1f}" in pooled
