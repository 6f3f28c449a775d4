"""The denoiser's learned filter guard (issue 22): the network's output for ``z`` and minus its output for ``-z``
averaged, then blended with the input's 0.5-40 Hz band-pass by a logistic weight on per-second features; its
features by their definitions, its wiring through ``denoise_array`` and the card, and its fit
(``tools/denoiser_guard.py --kind logistic``) on real records."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from ecgcore.dsp import bandpass
from ecgcore.pipelines.recipes.denoise_chunks import (GUARD_FEATURES, denoise_array, guard_design, guard_features,
                                                      learned_guard)

FS = 130.0
N_COLS = 4 * len(GUARD_FEATURES)  # features and their moving averages, then their squares


@pytest.fixture(scope="module")
def clean130(load_mitdb):
    """One minute of record 100 at 130 Hz, band-passed 0.5-45 Hz and z-scored."""
    import scipy.signal

    x = scipy.signal.resample_poly(load_mitdb("100")[0][: 360 * 60], 13, 36)
    x = bandpass(x, fs=FS, low=0.5, high=45.0)
    return (x - x.mean()) / x.std()


def _guard(bias: float, **kw) -> dict:
    """A logistic guard whose weight is ``sigmoid(bias)`` everywhere (zero weights)."""
    return {"kind": "logistic", "weights": [0.0] * N_COLS, "bias": bias, "center": [0.0] * N_COLS,
            "scale": [1.0] * N_COLS, **kw}


def _segment_ms(v, seg=130):
    k = -(-v.size // seg)
    return np.mean(np.pad(v, (0, k * seg - v.size), mode="edge").reshape(k, seg) ** 2, axis=1)


def test_features_by_their_definitions(clean130):
    rng = np.random.default_rng(0)
    z = clean130 + 0.2 * rng.standard_normal(clean130.size)
    y = clean130 + 0.05 * rng.standard_normal(clean130.size)
    y_flip = clean130 - 0.05 * rng.standard_normal(clean130.size)
    f = guard_features(z, y, y_flip, fs=FS, smooth_segments=5)
    k = -(-z.size // 130)
    assert f.shape == (k, 2 * len(GUARD_FEATURES))

    def bp(v, lo=0.5, hi=40.0):
        return bandpass(v, fs=FS, low=lo, high=hi, order=3)

    m = 0.5 * (y + y_flip)
    yb = bp(m)
    r = bp(z) - yb
    seg = np.pad(yb, (0, k * 130 - yb.size), mode="edge").reshape(k, 130)
    p_y = seg.var(axis=1) + 1e-12
    p_r = _segment_ms(r) + 1e-12
    np.testing.assert_allclose(f[:, 0], np.log(p_r / p_y), rtol=1e-10)
    np.testing.assert_allclose(f[:, 1], np.log((_segment_ms(bp(z, 20.0)) + 1e-12) / p_y), rtol=1e-10)
    np.testing.assert_allclose(f[:, 3], np.log((_segment_ms(bp(r, 0.5, 4.0)) + 1e-12) / p_r), rtol=1e-10)
    np.testing.assert_allclose(f[:, 2], np.log((_segment_ms(bp(r, 20.0)) + 1e-12) / p_r), rtol=1e-10)
    np.testing.assert_allclose(f[:, 4], np.log((_segment_ms(0.5 * (y - y_flip)) + 1e-12) / p_y), rtol=1e-10)
    np.testing.assert_allclose(f[:, 5], np.log(p_y), rtol=1e-10)
    # the second half: a centred moving average over 5 segments, the ends repeated
    i = k // 2
    np.testing.assert_allclose(f[i, 6:], f[i - 2:i + 3, :6].mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(f[0, 6:], (3 * f[0, :6] + f[1, :6] + f[2, :6]) / 5, rtol=1e-10)
    # the doubt feature grows with the passes' disagreement
    f2 = guard_features(z, y + 0.3, y_flip - 0.3, fs=FS)
    assert np.all(f2[:, 4] > f[:, 4])
    X = guard_design(f)
    assert X.shape == (k, N_COLS) and np.allclose(X[:, 12:], f * f)


def test_weight_one_gives_the_filter_and_zero_the_two_passes_mean(clean130):
    rng = np.random.default_rng(1)
    z = clean130 + 0.3 * rng.standard_normal(clean130.size)
    y, y_flip = clean130 + 0.1, clean130 - 0.1
    b = bandpass(z, fs=FS, low=0.5, high=40.0, order=3)
    np.testing.assert_allclose(learned_guard(z, y, y_flip, fs=FS, **_guard(40.0)), b, atol=1e-12)
    np.testing.assert_allclose(learned_guard(z, y, y_flip, fs=FS, **_guard(-40.0)), clean130, atol=1e-12)
    half = learned_guard(z, y, y_flip, fs=FS, **_guard(0.0))
    np.testing.assert_allclose(half, 0.5 * (clean130 + b), atol=1e-12)
    # shorter than two segments: the passes' mean, no guard
    np.testing.assert_allclose(learned_guard(z[:200], y[:200], y_flip[:200], fs=FS, **_guard(40.0)), clean130[:200])


def test_weight_follows_the_fitted_model_second_by_second(clean130):
    """Weights on the doubt feature only: seconds where the passes disagree go to the filter, the others stay with
    the network."""
    n = clean130.size
    z = clean130 + 0.1 * np.random.default_rng(2).standard_normal(n)
    y, y_flip = clean130.copy(), clean130.copy()
    y[: n // 2] += 0.3 * np.sin(np.arange(n // 2))  # the first half: the passes disagree
    y_flip[: n // 2] -= 0.3 * np.sin(np.arange(n // 2))
    g = _guard(0.0)
    g["weights"][4] = 50.0
    g["center"][4] = float(np.log(0.01))  # doubt above 1 % of the output power -> the filter
    out = learned_guard(z, y, y_flip, fs=FS, **g)
    b = bandpass(z, fs=FS, low=0.5, high=40.0, order=3)
    q, e = n // 4, int(2 * FS)
    np.testing.assert_allclose(out[e:q], b[e:q], atol=1e-6)
    np.testing.assert_allclose(out[-q:-e], clean130[-q:-e], atol=1e-6)


def test_denoise_array_runs_the_network_on_the_negated_input_and_averages():
    """A network with an even part (``x + 1``): the two passes' mean cancels it; the kappa guard does not run it
    twice."""
    calls = []

    def run(c):
        calls.append(c.reshape(-1).copy())
        return c + 1.0

    x = np.sin(np.linspace(0, 60, 2600)) * 2.0 + np.linspace(0.0, 10.0, 2600)
    out = denoise_array(x, run, seed_compat=True, guard=_guard(-40.0))
    z = (x - x.mean()) / x.std()
    np.testing.assert_allclose(out, z, atol=1e-6)
    assert len(calls) == 2
    np.testing.assert_allclose(calls[0], z, atol=1e-6)  # the input, then its negation
    np.testing.assert_allclose(calls[1], -z, atol=1e-6)
    calls.clear()
    denoise_array(x, run, seed_compat=True, guard={"kappa": 0.01})
    assert len(calls) == 1


def test_errors(clean130):
    z = clean130[:1300]
    with pytest.raises(ValueError, match="one length"):
        guard_features(z, z[:-1], z, fs=FS)
    with pytest.raises(ValueError, match="24 numbers"):
        learned_guard(z, z, z, fs=FS, **{**_guard(0.0), "weights": [0.0] * 3})
    with pytest.raises(ValueError, match="logistic"):
        learned_guard(z, z, z, fs=FS, **{**_guard(0.0), "kind": "kappa"})
    with pytest.raises(ValueError, match="unknown learned-guard settings"):
        learned_guard(z, z, z, fs=FS, **{**_guard(0.0), "smoothing_segments": 3})
    with pytest.raises(ValueError, match="other features"):
        learned_guard(z, z, z, fs=FS, **{**_guard(0.0), "features": list(GUARD_FEATURES)[::-1]})
    with pytest.raises(ValueError, match="unknown filter guard kind"):
        denoise_array(z, lambda c: c, guard={**_guard(0.0), "kind": "logistc"})


def test_card_learned_guard_is_what_denoise_signal_applies(tmp_path, load_mitdb):
    """A card whose preprocessing.guard is logistic: denoise_signal returns learned_guard of the network's two
    passes (z-score units at 130 Hz)."""
    from ecgcore.export import resolve_model
    from ecgcore.infer import denoise_signal
    from ecgcore.pipelines.recipes.denoise_chunks import restore_scale, zscore

    path, _ = resolve_model("denoiser")
    model = tmp_path / "learned"
    shutil.copytree(path.parent, model)
    card = json.loads((model / "model.json").read_text())
    guard = _guard(0.3)
    guard["weights"][0] = -1.0
    card["preprocessing"]["guard"] = {**guard, "features": list(GUARD_FEATURES)}
    card["preprocessing"]["prefilter"] = None
    (model / "model.json").write_text(json.dumps(card))
    import scipy.signal

    x = scipy.signal.resample_poly(load_mitdb("100")[0][: 360 * 30], 13, 36) * 3.0 + 1.5
    z, mean, std = zscore(x)
    y = (denoise_signal(x, FS, model=str(model), guard=False) - mean) / std
    y_flip = -(denoise_signal(-x, FS, model=str(model), guard=False) + mean) / std
    want = restore_scale(learned_guard(z, y, y_flip, fs=FS, **guard), mean, std)
    got = denoise_signal(x, FS, model=str(model))
    np.testing.assert_allclose(got, want, atol=1e-6 * std)
    assert not np.allclose(got, y * std + mean)
