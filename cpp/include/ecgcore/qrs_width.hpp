// Median QRS width of short ECG windows (issue 21): how long the smoothed absolute slope stays high around each
// R-peak, the median over a window's beats. ecgcore.dsp.qrs.qrs_width documents the definition.
#pragma once
#include <cstdint>
#include <vector>

namespace ecgcore {

// For each row r of x [batch, n] (row-major) with R-peaks peaks[offsets[r] .. offsets[r + 1]): d = |numpy.gradient(x)|
// smoothed by a centred moving average of odd length `smooth` (zero beyond the ends, divided by `smooth`); for each
// peak p with p - half >= 0 and p + half < n, the width is last - first over j in [p - half, p + half) where
// d[j] > frac * max(d[p - half .. p + half)). Returns the median width per row in samples (the mean of the two middle
// ones for an even count), NaN for a row without a measurable beat. Rows run in parallel (n_threads <= 0: all cores).
template <class T>
std::vector<double> qrs_width_batch(const T* x, int64_t batch, int64_t n, const int64_t* peaks, const int64_t* offsets,
                                    int64_t half, int64_t smooth, double frac, int n_threads);

}  // namespace ecgcore
