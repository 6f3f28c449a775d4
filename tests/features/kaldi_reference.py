"""Plain NumPy transcription of the Kaldi MFCC formulas as torchaudio.compliance.kaldi.mfcc implements them
(torchaudio is not a dependency). float64 throughout; one signal at a time; slow on purpose (readable)."""
from __future__ import annotations

import math

import numpy as np


def _mel(f):
    return 1127.0 * np.log(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_banks(num_bins, padded_window_size, fs, low_freq, high_freq):
    num_fft_bins = padded_window_size // 2
    nyquist = 0.5 * fs
    if high_freq <= 0.0:
        high_freq += nyquist
    fft_bin_width = fs / padded_window_size
    mel_low, mel_high = _mel(low_freq), _mel(high_freq)
    mel_delta = (mel_high - mel_low) / (num_bins + 1)
    b = np.arange(num_bins)[:, None]
    left = mel_low + b * mel_delta
    center = mel_low + (b + 1.0) * mel_delta
    right = mel_low + (b + 2.0) * mel_delta
    mel = _mel(fft_bin_width * np.arange(num_fft_bins))[None, :]
    up = (mel - left) / (center - left)
    down = (right - mel) / (right - center)
    return np.maximum(0.0, np.minimum(up, down))  # (num_bins, num_fft_bins)


def kaldi_mfcc(x, fs, frame_length_ms=25.0, frame_shift_ms=10.0, num_ceps=13, num_mel_bins=23,
               low_freq=20.0, high_freq=0.0, cepstral_lifter=22.0, preemphasis=0.97, remove_dc_offset=True,
               round_to_power_of_two=True):
    """Returns (num_frames, num_ceps), torchaudio's layout."""
    x = np.asarray(x, dtype=np.float64)
    window_shift = int(fs * frame_shift_ms * 0.001)
    window_size = int(fs * frame_length_ms * 0.001)
    padded = 1 << (window_size - 1).bit_length() if round_to_power_of_two else window_size
    # snip_edges=True
    m = 1 + (len(x) - window_size) // window_shift
    frames = np.stack([x[i * window_shift:i * window_shift + window_size] for i in range(m)])
    if remove_dc_offset:
        frames = frames - frames.mean(axis=1, keepdims=True)
    prev = np.concatenate([frames[:, :1], frames[:, :-1]], axis=1)
    frames = frames - preemphasis * prev
    n = np.arange(window_size)
    window = (0.5 - 0.5 * np.cos(2 * math.pi * n / (window_size - 1))) ** 0.85
    frames = frames * window
    frames = np.pad(frames, ((0, 0), (0, padded - window_size)))
    spectrum = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    banks = np.pad(mel_banks(num_mel_bins, padded, fs, low_freq, high_freq), ((0, 0), (0, 1)))
    mel = spectrum @ banks.T
    mel = np.log(np.maximum(mel, np.finfo(np.float32).eps))
    k = np.arange(num_mel_bins)[:, None]
    j = np.arange(num_mel_bins)[None, :]
    dct = np.cos(math.pi / num_mel_bins * (j + 0.5) * k) * math.sqrt(2.0 / num_mel_bins)
    dct[0] = math.sqrt(1.0 / num_mel_bins)
    feats = mel @ dct[:num_ceps].T
    i = np.arange(num_ceps)
    feats = feats * (1.0 + 0.5 * cepstral_lifter * np.sin(math.pi * i / cepstral_lifter))
    return feats


def compute_deltas(spec, win_length=5):
    """torchaudio.functional.compute_deltas along the last axis (replicate padding)."""
    spec = np.asarray(spec, dtype=np.float64)
    n = (win_length - 1) // 2
    denom = n * (n + 1) * (2 * n + 1) / 3
    padded = np.pad(spec, [(0, 0)] * (spec.ndim - 1) + [(n, n)], mode="edge")
    out = np.zeros_like(spec)
    T = spec.shape[-1]
    for k in range(-n, n + 1):
        out += k * padded[..., n + k:n + k + T]
    return out / denom
