"""Calibrate the denoiser's filter guard on training records and write it into a model card (issue 22).

    python tools/denoiser_guard.py python/ecgcore/data/models/denoiser --mitdb MITDB --nstdb NSTDB --write
    python tools/denoiser_guard.py python/ecgcore/data/models/denoiser --ptbxl PTBXL --nstdb NSTDB --write
    python tools/denoiser_guard.py python/ecgcore/data/models/denoiser --ptbxl PTBXL --nstdb NSTDB --kind logistic --write

The guard (:func:`ecgcore.pipelines.recipes.denoise_chunks.filter_guard`) blends the network's output with the
0.5-40 Hz Butterworth band-pass of its input, second by second, with the Wiener weight
``g = clip(kappa * P_y / mean((b - y)^2), 0, 1)``; ``kappa`` is the network's error power relative to its output
power. This tool picks ``kappa`` on EC57 noise-stress records built from **DS1 (training) records** with noise from
the NSTDB's **training portion** (its first 70 %, the part the denoiser trained on; DS2 and the held-out noise stay
for the card's test tables): every record x bw/ma/em x 24...-6 dB, the first noisy 2-minute stretch (5:00-7:00, with 30 s of
context each side; ``--stretches`` for more), the network run once per stretch through onnxruntime, then every
``kappa`` (and ``power``) applied to its output. The objective (``--objective``) is ``mean``: the mean over the
(noise, SNR) cells of the stretches' mean output SNR (the pair evaluation's definition, against the clean record
band-passed 0.5-45 Hz), or ``targets``: the number of cells where the output beats the Butterworth filter by issue
22's margins (+3 dB at input SNR <= 12 dB, 0 dB at 18 and 24 dB), then the smallest total shortfall, then the mean.

``--ptbxl`` calibrates on people the denoiser never saw instead (:func:`ptbxl_items`: PTB-XL lead II, 10 s ECGs, with the
NSTDB's training noise scaled as ``nst`` does): the network reproduces its own training records better than unseen
ones, so a ``kappa`` fitted on DS1 underestimates its error on new people and leans too little on the filter where the
input is nearly clean.

``--kind logistic`` fits the learned guard instead (:func:`ecgcore.pipelines.recipes.denoise_chunks.learned_guard`):
the network also runs on the negated input, the two passes are averaged, and ``g = sigmoid(...)`` of a quadratic
logistic model on per-second features (the removed power, its spectral shares, the input's 20-40 Hz power, the two
passes' disagreement, each also averaged over 5 s) blends the mean with the filter. The weights minimise the mean
over items of the output's SNR deficit against the filter (:func:`fit_logistic`; the 24 and 18 dB items weigh 3 and
2, the cells where the filter is hardest to beat). Use it with ``--ptbxl``: the fit takes every other PTB-XL patient
(sorted ids), and the card records the other half's cells (held out).

    python tools/denoiser_guard.py MODEL --ptbxl PTBXL --nstdb NSTDB --kind logistic --write

The network's input is what ``ecgcore infer`` gives it: with the card's ``preprocessing.prefilter`` (a high-pass before
the z-score) when it has one, or the one given by ``--prefilter HZ`` (``0``: none), which ``--write`` then stores.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

KAPPAS = (0.0, 0.005, 0.01, 0.02, 0.03, 0.05, 0.08, 0.12, 0.2)
POWERS = (1.0, 0.5)
RECORDS = ("101", "106", "109", "116", "119", "201", "208", "230")
SNRS = (24, 18, 12, 6, 0, -6)
OBJECTIVES = ("mean", "targets")


def target_margin(cell: str) -> float:
    """Issue 22's margin over the Butterworth filter for a cell named ``"<noise> <snr> dB"``."""
    from ecgcore.models.denoiser.stress import margin_over_butterworth

    return margin_over_butterworth(float(cell.split()[1]))


def score(cells: dict, butterworth: dict, objective: str = "mean") -> tuple:
    """Larger is better: ``(mean,)`` or ``(cells meeting the margins, -total shortfall, mean)``."""
    mean = float(np.mean(list(cells.values())))
    if objective == "mean":
        return (mean,)
    gaps = [cells[c] - butterworth[c] - target_margin(c) for c in cells]
    return (sum(g >= 0 for g in gaps), -float(sum(-g for g in gaps if g < 0)), mean)


def mitdb_items(mitdb: Path, nstdb: Path, *, records=RECORDS, noises=("bw", "ma", "em"), snrs=SNRS,
                stretches: int = 1):
    """``(n_jobs, iterator)`` of ``(cell, segment, fs, reference, lo, hi, person)``: EC57 noise-stress records of DS1
    records with the NSTDB's training noise, the first ``stretches`` noisy 2-minute stretches with 30 s of context each
    side; ``segment[lo:hi]`` is the scored stretch and ``reference`` the segment's clean lead band-passed 0.5-45 Hz;
    ``person`` the record's name."""
    from ecgcore.datasets.noise import noise_stress
    from ecgcore.dsp import bandpass
    from ecgcore.io import read_record

    noise_recs = {n: read_record(nstdb / n) for n in noises}
    jobs = [(r, n, s) for r in records for n in noises for s in snrs]

    def gen():
        clean_cache: dict = {}
        for r, n, s in jobs:
            if r not in clean_cache:
                clean_cache = {r: read_record(mitdb / r)}
            clean = clean_cache[r]
            fs = float(clean.fs)
            nz = noise_recs[n]
            train_end = int(round(0.7 * nz.n_samples))  # the NSTDB part the denoiser trained on
            noisy, info = noise_stress(clean, nz, s, noise_start_s=0.0, return_info=True)
            ref = bandpass(clean.signal[:, 0], fs=fs, low=0.5, high=45.0)
            x = noisy.signal[:, 0]
            margin = int(round(30 * fs))
            for lo, hi in [st for st in info["noisy_stretches"] if st[1] <= train_end][:stretches]:
                a0, a1 = max(0, lo - margin), min(x.size, hi + margin)
                yield f"{n} {s:g} dB", x[a0:a1], fs, ref[a0:a1], lo - a0, hi - a0, r

    return len(jobs), gen()


def ptbxl_items(ptbxl: Path, nstdb: Path, *, noises=("bw", "ma", "em"), snrs=SNRS, limit: int | None = None,
                seed: int = 0, lead: str = "II", folds=None):
    """Like :func:`mitdb_items` on people the denoiser never saw: each PTB-XL ECG's lead II (10 s), resampled to
    NSTDB's 360 Hz, plus NSTDB training noise from a random offset, scaled as ``nst`` scales it (EC57's SNR from the
    QRS amplitude of the beats ecgcore's detector finds, every beat taken as normal); the inner 8 s are scored and
    ``person`` is the ECG's PTB-XL patient id. ``folds``: only ECGs of these PTB-XL folds (a denoiser trained with
    ``extra_clean`` from ``denoise-ptbxl`` saw folds 1-8; its unseen people are folds 9 and 10)."""
    from ecgcore.datasets.noise import nst_gain, qrs_amplitude, rms_amplitude
    from ecgcore.dsp import bandpass, detect_r_peaks, resample_poly, resample_ratio
    from ecgcore.io import read_record
    from ecgcore.pipelines.recipes.heartid import _ptbxl_subjects  # the one PTB-XL table reader

    subjects = _ptbxl_subjects(ptbxl)
    if subjects is None:
        raise FileNotFoundError(f"{ptbxl}: no ptbxl_database.csv")
    rels = [(r, str(p)) for p, recs in subjects.items() for r in recs]  # by patient, each patient's ECGs by date
    if folds is not None:
        from ecgcore.datasets.ptbxl import ptbxl_rows

        fold_of = {r["path"]: r["strat_fold"] for r in ptbxl_rows(ptbxl)}
        keep = {int(f) for f in folds}
        rels = [(r, p) for r, p in rels if fold_of.get(r) in keep]
    rels = rels[:limit] if limit else rels
    noise_recs = {n: read_record(nstdb / n) for n in noises}
    rng = np.random.default_rng(seed)
    jobs = [(rel, patient, n, s) for rel, patient in rels for n in noises for s in snrs]

    def gen():
        cache: dict = {}
        for rel, patient, n, s in jobs:
            if rel not in cache:
                rec = read_record(ptbxl / rel)
                up, down = resample_ratio(float(rec.fs), 360.0)
                x = resample_poly(rec.signal[:, list(rec.leads).index(lead)], up, down)
                peaks = np.asarray(detect_r_peaks(x, fs=360.0), np.int64)
                peaks = peaks[(peaks >= 18) & (peaks < x.size - 18)]  # whole 0.1 s QRS windows (sigamp's rule)
                cache = {rel: (x, peaks)}
            x, peaks = cache[rel]
            if peaks.size < 3:
                continue
            nz = noise_recs[n]
            train_end = int(round(0.7 * nz.n_samples))
            start = int(rng.integers(0, train_end - x.size))
            noise = nz.signal[start:start + x.size, 0]
            gain = nst_gain(s, qrs_amplitude(x, peaks, ["N"] * peaks.size, 360.0)[0],
                            rms_amplitude(noise, 360.0, window_s=1.0)[0])
            ref = bandpass(x, fs=360.0, low=0.5, high=45.0)
            lo, hi = 360, x.size - 360
            yield f"{n} {s:g} dB", x + gain * (noise - noise.mean()), 360.0, ref, lo, hi, patient

    return len(jobs), gen()


def calibrate(model_dir: Path, items, *, kappas=KAPPAS, powers=POWERS, segment_s: float = 1.0,
              objective: str = "mean", progress: bool = True, prefilter: dict | None | str = "card") -> dict:
    """Score the network and every guard (``kappa``, ``power``) on ``items`` (:func:`mitdb_items` /
    :func:`ptbxl_items`) and pick the best by ``objective``."""
    from tqdm.auto import tqdm

    from ecgcore.dsp import resample_poly, resample_ratio
    from ecgcore.infer.core import Scorer
    from ecgcore.models.denoiser._evaluate import butterworth_baseline, pair_metrics
    from ecgcore.pipelines.recipes.denoise_chunks import filter_guard, highpass_prefilter, restore_scale, zscore
    from ecgcore.pipelines.recipes.denoise_pairs import to_model_rate

    scorer = Scorer(str(model_dir))
    fs_m = float(scorer.options["fs"])
    if prefilter == "card":
        prefilter = scorer.options.get("prefilter") or None
    grid = [(k, p) for k in kappas if k > 0 for p in powers]
    snr = {k: {} for k in ["network", "butterworth"] + [f"kappa={k:g} power={p:g}" for k, p in grid]}
    t0 = time.perf_counter()
    n_jobs, it = items
    for cell, seg, fs, ref, lo, hi, _ in tqdm(it, total=n_jobs, desc="guard calibration", disable=not progress):
        r_ref = ref[lo:hi]
        offset = float(seg.mean())
        x130 = to_model_rate(seg - offset, fs, fs_m, workers=2)
        if prefilter:
            x130 = highpass_prefilter(x130, fs=fs_m, **prefilter)
        z, mean, std = zscore(x130)
        y_z = scorer.denoise(z, fs_m, seed_compat=True, guard=False, prefilter=False)
        up, down = resample_ratio(fs_m, fs)

        def back(v130):
            v = resample_poly(restore_scale(v130, mean, std), up, down, workers=2)
            v = v[: seg.size] if v.size >= seg.size else np.pad(v, (0, seg.size - v.size), mode="edge")
            return v + offset

        outs = {"network": back(y_z), "butterworth": butterworth_baseline(seg, fs)}
        for k, p in grid:
            outs[f"kappa={k:g} power={p:g}"] = back(filter_guard(z, y_z, fs=fs_m, kappa=k, segment_s=segment_s,
                                                                 power=p))
        r_in = seg[lo:hi]
        for name, out in outs.items():
            m = pair_metrics(*(v[None, :] - v.mean() for v in (r_ref, r_in, out[lo:hi])))
            snr[name].setdefault(cell, []).append(float(m["snr_out"][0]))
    cells = {name: {c: float(np.mean(v)) for c, v in d.items()} for name, d in snr.items()}
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    scores = {name: score(d, cells["butterworth"], objective) for name, d in cells.items() if name != "butterworth"}
    best = max(scores, key=scores.get)
    if best == "network":
        kappa, power = 0.0, 1.0
    else:
        kappa, power = (float(t.split("=")[1]) for t in best.split())
    minus_bw = {name: {c: round(v - cells["butterworth"][c], 2) for c, v in d.items()}
                for name, d in cells.items() if name in ("network", best)}
    return {"kappa": kappa, "power": power, "segment_s": segment_s, "objective": objective,
            "scores": {k: [round(x, 3) for x in v] for k, v in scores.items()},
            "snr_out_minus_butterworth_db": minus_bw, "prefilter": prefilter,
            "items": int(sum(len(v) for v in snr["network"].values())), "seconds": round(time.perf_counter() - t0, 1)}


SNR_WEIGHTS = {24.0: 3.0, 18.0: 2.0}


def segment_sums(model_dir: Path, items, *, segment_s: float = 1.0, smooth_segments: int = 5,
                 prefilter: dict | None | str = "card", progress: bool = True) -> dict:
    """The learned guard's training table: per 1-s segment wholly inside an item's scored part, its
    :func:`~ecgcore.pipelines.recipes.denoise_chunks.guard_features` and the sums that give the output's squared error
    for any weight ``g`` against the reference (all at the model's 130 Hz, z-score units, each item's scored part
    mean-removed): ``err(g) = e0 + 2 g c + g^2 a`` with ``e0 = sum (m - r)^2``, ``c = sum (m - r)(b - m)``,
    ``a = sum (b - m)^2``, ``m`` the two sign passes' mean, ``b`` the input's 0.5-40 Hz band-pass (``g = 1`` gives the
    filter's error ``ebw``); ``pr`` is the reference's power (sum of squares) in the segment."""
    from tqdm.auto import tqdm

    from ecgcore.dsp import bandpass
    from ecgcore.infer.core import Scorer
    from ecgcore.pipelines.recipes.denoise_chunks import guard_features, highpass_prefilter, zscore
    from ecgcore.pipelines.recipes.denoise_pairs import to_model_rate

    scorer = Scorer(str(model_dir))
    fs_m = float(scorer.options["fs"])
    if prefilter == "card":
        prefilter = scorer.options.get("prefilter") or None
    seg = int(round(segment_s * fs_m))
    cols: dict = {k: [] for k in ("features", "e0", "c", "a", "ebw", "pr", "item", "person", "noise", "snr")}
    n_jobs, it = items
    for i, (cell, x, fs, ref, lo, hi, person) in enumerate(tqdm(it, total=n_jobs, desc="guard features",
                                                                  disable=not progress)):
        x130 = to_model_rate(x - float(x.mean()), fs, fs_m, workers=2)
        if prefilter:
            x130 = highpass_prefilter(x130, fs=fs_m, **prefilter)
        z, _, std = zscore(x130)
        y = scorer.denoise(z, fs_m, seed_compat=True, guard=False, prefilter=False)
        y_flip = -scorer.denoise(-z, fs_m, seed_compat=True, guard=False, prefilter=False)
        b_full = bandpass(z, fs=fs_m, low=0.5, high=40.0, order=3)  # the guard's band, as learned_guard filters
        f = guard_features(z, y, y_flip, fs=fs_m, segment_s=segment_s, smooth_segments=smooth_segments, b=b_full)
        r = to_model_rate(ref, fs, fs_m, workers=2)[: z.size] / std
        s0, s1 = -(-int(np.ceil(lo * fs_m / fs)) // seg), int(hi * fs_m / fs) // seg
        if s1 <= s0 or r.size < s1 * seg:
            continue
        sl = slice(s0 * seg, s1 * seg)
        m, b, r = (v[sl] - v[sl].mean() for v in (0.5 * (y + y_flip), b_full, r))
        k = s1 - s0
        for key, v in (("e0", (m - r) ** 2), ("c", (m - r) * (b - m)), ("a", (b - m) ** 2), ("ebw", (b - r) ** 2),
                       ("pr", r * r)):
            cols[key].append(v.reshape(k, seg).sum(axis=1))
        cols["features"].append(f[s0:s1])
        noise, snr = cell.split()[:2]
        for key, v in (("item", i), ("person", person), ("noise", noise), ("snr", float(snr))):
            cols[key].append(np.full(k, v))
    out = {k: np.concatenate(v) for k, v in cols.items()}
    out["prefilter"] = prefilter
    return out


def _item_db(t: dict, g: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per item among ``rows``: the output's error relative to the filter's, in dB (negative: better than the
    filter); and the items' row index of their first segment."""
    items, first = np.unique(t["item"][rows], return_index=True)
    inv = np.searchsorted(items, t["item"][rows])
    err = t["e0"][rows] + 2 * g * t["c"][rows] + g * g * t["a"][rows]
    num = np.bincount(inv, err, minlength=items.size)
    den = np.bincount(inv, t["ebw"][rows], minlength=items.size)
    return 10 * np.log10(np.maximum(num, 1e-30) / np.maximum(den, 1e-30)), first


def cells_minus_butterworth(t: dict, g: np.ndarray, rows: np.ndarray) -> dict:
    """``{"<noise> <snr> dB": output SNR minus the filter's}``, the mean over the items of ``rows``."""
    db, first = _item_db(t, g, rows)
    noise, snr = t["noise"][rows][first], t["snr"][rows][first]
    out = {}
    for n, s in sorted({(a, b) for a, b in zip(noise, snr)}, key=lambda k: (k[0], -k[1])):
        out[f"{n} {s:g} dB"] = round(float(-db[(noise == n) & (snr == s)].mean()), 2)
    return out


def fit_logistic(t: dict, rows: np.ndarray, *, quadratic: bool = True, l2: float = 1e-3,
                 snr_weights: dict = SNR_WEIGHTS) -> dict:
    """Fit ``g = sigmoid(((F - center) / scale) . w + bias)`` on the segments ``rows`` of :func:`segment_sums`'s table:
    minimise the weighted mean over items of ``log(err(g) / ebw)`` (the output's SNR deficit against the filter, in
    nepers; items at the issue's 24 and 18 dB cells weigh ``snr_weights`` times more) plus ``l2 * |w|^2``."""
    from scipy.optimize import minimize
    from scipy.special import expit

    from ecgcore.pipelines.recipes.denoise_chunks import guard_design

    X = guard_design(t["features"][rows], quadratic)
    center, scale = X.mean(axis=0), X.std(axis=0) + 1e-9
    Xn = (X - center) / scale
    items, first, inv = np.unique(t["item"][rows], return_index=True, return_inverse=True)
    e0, c, a, ebw = (t[k][rows] for k in ("e0", "c", "a", "ebw"))
    den = np.bincount(inv, ebw, minlength=items.size)
    iw = np.array([snr_weights.get(float(s), 1.0) for s in t["snr"][rows][first]])
    iw = iw / iw.sum()

    def objective(w):
        g = expit(Xn @ w[1:] + w[0])
        err = e0 + 2 * g * c + g * g * a
        num = np.bincount(inv, err, minlength=items.size)
        grad_err = (iw / num)[inv] * (2 * c + 2 * g * a) * g * (1 - g)
        loss = float(iw @ np.log(num / den)) + l2 * float(w[1:] @ w[1:])
        return loss, np.concatenate([[grad_err.sum()], Xn.T @ grad_err + 2 * l2 * w[1:]])

    res = minimize(objective, np.zeros(X.shape[1] + 1), jac=True, method="L-BFGS-B")
    return {"weights": [float(v) for v in res.x[1:]], "bias": float(res.x[0]), "center": [float(v) for v in center],
            "scale": [float(v) for v in scale], "quadratic": bool(quadratic), "l2": l2,
            "snr_weights": {f"{k:g} dB": v for k, v in snr_weights.items()}, "converged": bool(res.success),
            "objective": round(float(res.fun), 5)}


def logistic_guard(t: dict, guard: dict, rows: np.ndarray) -> np.ndarray:
    """The fitted guard's weight per segment of ``rows`` (piecewise constant: the fit's view; inference
    interpolates between segment centres)."""
    from scipy.special import expit

    from ecgcore.pipelines.recipes.denoise_chunks import guard_design

    X = guard_design(t["features"][rows], guard["quadratic"])
    return expit(((X - guard["center"]) / guard["scale"]) @ guard["weights"] + guard["bias"])


def calibrate_logistic(model_dir: Path, items, *, segment_s: float = 1.0, smooth_segments: int = 5,
                       prefilter: dict | None | str = "card", progress: bool = True) -> dict:
    """Fit the learned guard on the items of every other person (sorted names: 0, 2, 4, ...) and report, on the
    held-out persons, each cell's output SNR minus the filter's for the two sign passes' mean alone, the card's
    current guard when it is a ``kappa`` guard (applied to the mean; piecewise constant), and the fitted guard."""
    from ecgcore.export.card import read_card

    t0 = time.perf_counter()
    t = segment_sums(model_dir, items, segment_s=segment_s, smooth_segments=smooth_segments, prefilter=prefilter,
                     progress=progress)
    persons = np.unique(t["person"])
    held = np.isin(t["person"], persons[1::2])
    fit_rows, test_rows = np.nonzero(~held)[0], np.nonzero(held)[0]
    guard = {"kind": "logistic", "segment_s": segment_s, "band": [0.5, 40.0], "order": 3,
             "smooth_segments": smooth_segments, **fit_logistic(t, fit_rows)}
    table = {"network (sign-flip mean)": cells_minus_butterworth(t, np.zeros(test_rows.size), test_rows),
             "learned guard": cells_minus_butterworth(t, logistic_guard(t, guard, test_rows), test_rows)}
    old = read_card(Path(model_dir) / "model.json").preprocessing.get("guard") or {}
    if old.get("kappa"):
        f0 = t["features"][test_rows, 0]  # log(P_r / P_y)
        g = np.clip(old["kappa"] * np.exp(-f0), 0.0, 1.0) ** old.get("power", 1.0)
        table[f"kappa guard (kappa={old['kappa']:g}, power={old.get('power', 1.0):g})"] = \
            cells_minus_butterworth(t, g, test_rows)
    return {"guard": guard, "prefilter": t["prefilter"], "fit_persons": int(persons[0::2].size),
            "held_out_persons": int(persons[1::2].size), "fit_segments": int(fit_rows.size),
            "held_out_segments": int(test_rows.size),
            "held_out_snr_out_minus_butterworth_db (130 Hz, per segment, piecewise-constant weight)": table,
            "seconds": round(time.perf_counter() - t0, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("--mitdb", type=Path, default=None, help="MIT-BIH folder: calibrate on DS1 noise-stress records")
    ap.add_argument("--ptbxl", type=Path, default=None,
                    help="PTB-XL folder: calibrate on people the denoiser never saw (lead II, 10 s ECGs) instead")
    ap.add_argument("--limit", type=int, default=None, help="--ptbxl: only the first N ECGs")
    ap.add_argument("--folds", default=None,
                    help="--ptbxl: only ECGs of these PTB-XL folds, e.g. 9,10 (the people a denoiser trained with "
                         "extra_clean=denoise-ptbxl never saw)")
    ap.add_argument("--nstdb", type=Path, required=True)
    ap.add_argument("--records", default=",".join(RECORDS), help="DS1 records (comma-separated)")
    ap.add_argument("--stretches", type=int, default=1, help="noisy 2-minute stretches per record (from 5:00)")
    ap.add_argument("--objective", choices=OBJECTIVES, default="mean",
                    help="mean output SNR over the cells, or the cells meeting issue 22's margins over Butterworth")
    ap.add_argument("--prefilter", type=float, default=None, metavar="HZ",
                    help="high-pass the network's input at HZ (order 3) before the z-score; 0: none; default: the card's")
    ap.add_argument("--kind", choices=("kappa", "logistic"), default="kappa",
                    help="kappa: pick the Wiener guard's kappa and power on a grid; logistic: fit the learned guard "
                         "(two sign passes, a logistic weight on per-second features) on every other person and "
                         "report the held-out persons")
    ap.add_argument("--write", action="store_true", help="write preprocessing.guard and the calibration into the card")
    a = ap.parse_args()
    from ecgcore.datasets.mitdb import DS1
    from ecgcore.pipelines.recipes.denoise_chunks import GUARD_FEATURES

    if (a.mitdb is None) == (a.ptbxl is None):
        raise SystemExit("give one source: --mitdb (DS1 records) or --ptbxl")
    if a.folds is not None and a.ptbxl is None:
        raise SystemExit("--folds selects PTB-XL ECGs: it needs --ptbxl")
    pre = "card" if a.prefilter is None else ({"highpass_hz": a.prefilter, "order": 3} if a.prefilter > 0 else None)
    if a.mitdb is not None:
        records = [r.strip() for r in a.records.split(",") if r.strip()]
        if not set(records) <= set(DS1):
            raise SystemExit(f"calibrate on DS1 (training) records only; not DS1: {sorted(set(records) - set(DS1))}")
        items = mitdb_items(a.mitdb, a.nstdb, records=records, stretches=a.stretches)
        source = {"records": records, "snrs": list(SNRS), "noises": ["bw", "ma", "em"],
                  "stretches": f"the first {a.stretches} noisy 2-minute stretch(es) from 5:00 (30 s of context "
                               "each side)", "noise_portion": "NSTDB training portion (first 70 %; noise_start 0)"}
        key = "guard calibration (DS1 records, NSTDB training noise)"
    else:
        try:
            folds = None if a.folds is None else [int(f) for f in a.folds.split(",") if f.strip()]
        except ValueError:
            raise SystemExit(f"--folds takes PTB-XL fold numbers separated by commas, got {a.folds!r}") from None
        if folds is not None and (not folds or not set(folds) <= set(range(1, 11))):
            raise SystemExit(f"--folds must name PTB-XL folds among 1-10, got {a.folds!r}")
        items = ptbxl_items(a.ptbxl, a.nstdb, limit=a.limit, folds=folds)
        source = {"ptbxl": str(a.ptbxl), "limit": a.limit, "folds": folds, "lead": "II", "snrs": list(SNRS),
                  "noises": ["bw", "ma", "em"], "scored": "the inner 8 s of each 10 s ECG at 360 Hz",
                  "snr_definition": "EC57 (nst gain from the QRS amplitude of the detected beats)",
                  "noise_portion": "NSTDB training portion (first 70 %), a random 10 s per ECG (seed 0)"}
        if a.kind == "logistic":  # its held-out table is scored on the 130 Hz segments the guard weighs
            source["scored"] = "per 1 s segment at 130 Hz, one guard weight per segment (the held-out table's key)"
        key = "guard calibration (PTB-XL lead II, people never seen, NSTDB training noise)"
    command = " ".join(["python", "tools/denoiser_guard.py", *sys.argv[1:]])
    if a.kind == "logistic":
        res = {**calibrate_logistic(a.model_dir, items, prefilter=pre), **source, "command": command}
        print(json.dumps(res, indent=1))
        if a.write:
            from ecgcore.export.card import read_card, write_card

            card = read_card(a.model_dir / "model.json")
            card.preprocessing = {**card.preprocessing, "guard": {**res["guard"], "features": list(GUARD_FEATURES)},
                                  "prefilter": res["prefilter"]}
            card.metrics = {**card.metrics, key.replace("guard calibration", "learned guard fit"): res}
            write_card(card, a.model_dir / "model.json")
        return
    res = {**calibrate(a.model_dir, items, objective=a.objective, prefilter=pre), **source, "command": command}
    print(json.dumps(res, indent=1))
    if a.write:
        from ecgcore.export.card import read_card, write_card

        card = read_card(a.model_dir / "model.json")
        pre = dict(card.preprocessing)
        pre["guard"] = ({"kappa": res["kappa"], "power": res["power"], "segment_s": res["segment_s"],
                         "band": [0.5, 40.0], "order": 3} if res["kappa"] > 0 else None)
        pre["prefilter"] = res["prefilter"]
        card.preprocessing = pre
        metrics = dict(card.metrics)
        metrics[key] = res
        card.metrics = metrics
        write_card(card, a.model_dir / "model.json")


if __name__ == "__main__":
    main()
