"""Signal processing on the C++ core: filtering, resampling (and R-peaks, segmentation, time-frequency)."""
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
    resample_poly,
    sosfilt,
    sosfilt_zi,
    sosfiltfilt,
)

__all__ = [
    "bandpass", "butter", "cheby1", "decimate", "filtfilt", "iirnotch", "lfilter", "lfilter_zi", "notch",
    "resample_poly", "sosfilt", "sosfilt_zi", "sosfiltfilt",
]
