// Hand-crafted time-frequency statistics of short ECG segments (the HuBERT-ECG seed's 16 shard features).
#pragma once
#include <cstdint>

namespace ecgcore {

constexpr int64_t kShardStatistics = 16;

// x [batch, n] -> out [batch, 16], per row in this order (HuBERT-ECG dumping.py):
// min, max, mean, RMS, variance, std, power (mean x^2), peak (max |x|), peak-to-peak, crest factor (peak / RMS),
// skewness, excess kurtosis (both biased, scipy.stats defaults), then on S = |FFT(x)|^2 / n over all n bins:
// max, sum, mean, variance. Undefined ratios (RMS = 0, variance = 0) are 0 instead of NaN.
// Arithmetic in float64.
template <class T>
void shard_statistics(const T* x, int64_t batch, int64_t n, T* out, int n_threads);

}  // namespace ecgcore
