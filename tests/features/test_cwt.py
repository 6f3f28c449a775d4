"""Morlet scalograms against PyWavelets on real MIT-BIH beats (the Conformer seed's preprocessing)."""
from __future__ import annotations

import numpy as np
import pytest
import pywt

from ecgcore.dsp.cwt import morlet_frequencies, morlet_scalogram

from tf_helpers import mitdb_beats, releases_gil

TOL = 1e-4  # max |ours - pywt| relative to max |pywt|, per beat


def pywt_scalogram(beats, scales, wavelet):
    return np.stack([np.abs(pywt.cwt(b, scales, wavelet)[0]).astype(np.float32) for b in beats])


def _check(ours, ref, tol=TOL):
    assert ours.shape == ref.shape and ours.dtype == np.float32
    err = np.abs(ours.astype(np.float64) - ref).max(axis=(-2, -1))
    scale = np.abs(ref).max(axis=(-2, -1))
    assert np.all(err <= tol * scale), f"worst relative error {np.max(err / scale):.3g}"


@pytest.mark.parametrize("scales", [np.arange(1, 33), np.arange(1, 65)], ids=["1..32", "1..64"])
@pytest.mark.parametrize("wavelet", ["morl", "cmor1.5-1.0"])
@pytest.mark.parametrize("fixture", ["beats_100", "beats_208"])
def test_matches_pywt_on_mitdb_beats(request, fixture, scales, wavelet):
    beats = request.getfixturevalue(fixture)[:40]
    _check(morlet_scalogram(beats, scales, wavelet), pywt_scalogram(beats, scales, wavelet))


def test_conformer_seed_shape(beats_100):
    out = morlet_scalogram(beats_100[:3], range(1, 33))
    assert out.shape == (3, 32, 187)


def test_float32_input_matches_pywt_float32(beats_100):
    b32 = beats_100[:20].astype(np.float32)
    _check(morlet_scalogram(b32, np.arange(1, 33)), pywt_scalogram(b32, np.arange(1, 33), "morl"))


def test_fractional_scales_and_other_cmor(beats_208):
    scales = np.geomspace(1.5, 40.0, 17)
    _check(morlet_scalogram(beats_208[:10], scales, "cmor2.0-0.5"),
           pywt_scalogram(beats_208[:10], scales, "cmor2.0-0.5"))


def test_batch_equals_loop_and_axis(beats_100):
    b = beats_100[:6]
    batch = morlet_scalogram(b.reshape(2, 3, 187), np.arange(1, 17))
    assert batch.shape == (2, 3, 16, 187)
    for i in range(6):
        np.testing.assert_array_equal(batch.reshape(6, 16, 187)[i], morlet_scalogram(b[i], np.arange(1, 17)))
    np.testing.assert_array_equal(morlet_scalogram(b.T, np.arange(1, 17), axis=0), batch.reshape(6, 16, 187))


def test_thread_count_does_not_change_results(beats_100):
    a = morlet_scalogram(beats_100[:30], np.arange(1, 33), workers=1)
    b = morlet_scalogram(beats_100[:30], np.arange(1, 33), workers=2)
    np.testing.assert_array_equal(a, b)


def test_frequencies_match_pywt():
    scales = np.arange(1, 33)
    np.testing.assert_allclose(morlet_frequencies(scales, fs=360.0), pywt.scale2frequency("morl", scales) * 360.0)
    np.testing.assert_allclose(morlet_frequencies(scales, "cmor1.5-1.0", fs=360.0),
                               pywt.scale2frequency("cmor1.5-1.0", scales) * 360.0)


@pytest.mark.parametrize("bad", [
    dict(scales=[0, 1]), dict(scales=[-1.0]), dict(scales=[]), dict(scales=[np.nan]),
    dict(wavelet="db4"), dict(wavelet="cmor"), dict(scales=[0.05]),
])
def test_bad_arguments(beats_100, bad):
    kw = dict(scales=[1, 2, 3], wavelet="morl") | bad
    with pytest.raises(ValueError):
        morlet_scalogram(beats_100[:2], kw["scales"], kw["wavelet"])


def test_empty_signal_is_an_error():
    with pytest.raises(ValueError):
        morlet_scalogram(np.zeros((2, 0)), [1, 2])


def test_releases_gil(beats_100):
    b = np.tile(beats_100, (60, 1))  # long enough (~0.5 s here) for the check on a faster machine
    assert releases_gil(lambda: morlet_scalogram(b, np.arange(1, 65), workers=1))


@pytest.mark.slow
def test_matches_pywt_on_every_mitdb_record(mitdb_dir, mitdb_records):
    for rec in mitdb_records:
        beats = mitdb_beats(mitdb_dir, rec, limit=25)
        _check(morlet_scalogram(beats, np.arange(1, 33)), pywt_scalogram(beats, np.arange(1, 33), "morl"))
