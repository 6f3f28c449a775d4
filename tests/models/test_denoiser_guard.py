"""The denoiser's filter guard (issue 22): the network's output blended with the input's 0.5-40 Hz band-pass by
the Wiener weight of their difference against the network's error floor; and its wiring through the card."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from ecgcore.dsp import bandpass
from ecgcore.pipelines.recipes.denoise_chunks import filter_guard

FS = 130.0


@pytest.fixture(scope="module")
def clean130(load_mitdb):
    """One minute of record 100 at 130 Hz, band-passed 0.5-45 Hz and z-scored (a clean denoiser target)."""
    import scipy.signal

    x = scipy.signal.resample_poly(load_mitdb("100")[0][: 360 * 60], 13, 36)
    x = bandpass(x, fs=FS, low=0.5, high=45.0)
    return (x - x.mean()) / x.std()


def _err(a, b):
    return float(np.mean((a - b) ** 2))


def test_guard_off_and_agreeing_outputs_change_nothing(clean130):
    rng = np.random.default_rng(0)
    x = clean130 + 0.3 * rng.standard_normal(clean130.size)
    y = clean130 + 0.05 * rng.standard_normal(clean130.size)
    np.testing.assert_array_equal(filter_guard(x, y, fs=FS, kappa=0.0), y)
    b = bandpass(x, fs=FS, low=0.5, high=40.0, order=3)
    np.testing.assert_allclose(filter_guard(x, b, fs=FS, kappa=0.05), b, atol=1e-12)


def test_guard_keeps_the_filter_on_clean_input_and_the_network_on_noisy_input(clean130):
    """A 'network' whose error is 5 % of its output power: on clean input the guard returns (almost) the filter's
    output, on strongly noisy input (almost) the network's."""
    rng = np.random.default_rng(1)
    e = np.sqrt(0.05) * rng.standard_normal(clean130.size)
    y = clean130 + bandpass(e, fs=FS, low=0.5, high=40.0, order=3)
    b_clean = bandpass(clean130, fs=FS, low=0.5, high=40.0, order=3)
    out = filter_guard(clean130, y, fs=FS, kappa=0.05)
    assert _err(out, clean130) < 0.4 * _err(y, clean130)
    assert _err(out, b_clean) < 0.2 * _err(y, b_clean)
    noisy = clean130 + 2.0 * bandpass(rng.standard_normal(clean130.size), fs=FS, low=0.5, high=40.0, order=3)
    out = filter_guard(noisy, y, fs=FS, kappa=0.05)
    assert _err(out, clean130) < 1.3 * _err(y, clean130)
    assert _err(out, clean130) < 0.1 * _err(bandpass(noisy, fs=FS, low=0.5, high=40.0, order=3), clean130)


def test_guard_weights_follow_the_noise_second_by_second(clean130):
    """Noise on the second half only: the first half ends up at the filter, the second at the network."""
    rng = np.random.default_rng(2)
    n = clean130.size
    noise = np.zeros(n)
    noise[n // 2:] = 2.0 * bandpass(rng.standard_normal(n - n // 2), fs=FS, low=0.5, high=40.0, order=3)
    x = clean130 + noise
    y = clean130 + bandpass(np.sqrt(0.05) * rng.standard_normal(n), fs=FS, low=0.5, high=40.0, order=3)
    out = filter_guard(x, y, fs=FS, kappa=0.05)
    b = bandpass(x, fs=FS, low=0.5, high=40.0, order=3)
    q, e = n // 4, int(2 * FS)  # away from the switch and from the filters' edges
    assert _err(out[e:q], b[e:q]) < 0.3 * _err(y[e:q], b[e:q])
    assert _err(out[-q:-e], y[-q:-e]) < 0.1 * _err(b[-q:-e], y[-q:-e])


def test_guard_errors():
    with pytest.raises(ValueError, match="same length"):
        filter_guard(np.zeros(400), np.zeros(300), fs=FS, kappa=0.1)
    with pytest.raises(ValueError, match="kappa"):
        filter_guard(np.zeros(400), np.zeros(400), fs=FS, kappa=-1.0)
    y = np.arange(100.0)
    np.testing.assert_array_equal(filter_guard(np.zeros(100), y, fs=FS, kappa=0.1), y)  # shorter than 2 s: off


def test_card_guard_is_what_denoise_signal_applies(tmp_path, load_mitdb):
    """A card with preprocessing.guard: denoise_signal returns the network's output passed through filter_guard
    (in z-score units at 130 Hz); guard=False returns the network's output alone."""
    from ecgcore.export import resolve_model
    from ecgcore.infer import denoise_signal
    from ecgcore.pipelines.recipes.denoise_chunks import restore_scale, zscore

    path, _ = resolve_model("denoiser")
    model = tmp_path / "guarded"
    shutil.copytree(path.parent, model)
    card = json.loads((model / "model.json").read_text())
    card["preprocessing"]["guard"] = {"kappa": 0.05, "segment_s": 1.0}
    card["preprocessing"]["prefilter"] = None  # the guard alone (the pre-filter has its own tests)
    (model / "model.json").write_text(json.dumps(card))
    import scipy.signal

    x = scipy.signal.resample_poly(load_mitdb("100")[0][: 360 * 30], 13, 36) * 3.0 + 1.5
    raw = denoise_signal(x, FS, model=str(model), guard=False)
    np.testing.assert_allclose(raw, denoise_signal(x, FS, model="denoiser", guard=False, prefilter=False), atol=1e-9)
    got = denoise_signal(x, FS, model=str(model))
    z, mean, std = zscore(x)
    want = restore_scale(filter_guard(z, (raw - mean) / std, fs=FS, kappa=0.05, segment_s=1.0), mean, std)
    np.testing.assert_allclose(got, want, atol=1e-6 * std)
    assert not np.allclose(got, raw)
