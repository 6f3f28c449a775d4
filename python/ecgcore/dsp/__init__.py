"""Signal processing on the C++ core: filtering, resampling (and R-peaks, segmentation, time-frequency,
signal quality)."""
from .filter import (
    bandpass,
    butter,
    cheby1,
    decimate,
    filtfilt,
    iirnotch,
    lfilter,
    lfilter_zi,
    notch,
    resample,
    resample_poly,
    resample_ratio,
    sosfilt,
    sosfilt_zi,
    sosfiltfilt,
)
from .cwt import morlet_frequencies, morlet_scalogram
from .fft import irfft, rfft
from .peaks import detect_r_peaks, refine_r_peaks
from .quality import QualityThresholds, SignalQuality, signal_quality
from .stft import db_spectrogram, get_window, heartid_stft, stft
from .segment import beat_sequences, rr_features, segment_beats, segment_windows, window_labels

__all__ = [
    "bandpass", "butter", "cheby1", "decimate", "filtfilt", "iirnotch", "lfilter", "lfilter_zi", "notch",
    "resample", "resample_poly", "resample_ratio", "sosfilt", "sosfilt_zi", "sosfiltfilt",
    "detect_r_peaks", "refine_r_peaks", "signal_quality", "SignalQuality", "QualityThresholds",
    "morlet_scalogram", "morlet_frequencies", "rfft", "irfft", "stft", "db_spectrogram", "get_window",
    "heartid_stft",  # alias of db_spectrogram
    "beat_sequences", "rr_features", "segment_beats", "segment_windows", "window_labels",
]
