#include "ecgcore/segment.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "ecgcore/detail/parallel.hpp"

namespace ecgcore {

EdgePolicy parse_edge_policy(const std::string& name) {
  if (name == "drop") return EdgePolicy::drop;
  if (name == "pad") return EdgePolicy::pad;
  throw std::invalid_argument("edge must be 'drop' or 'pad', got '" + name + "'");
}

std::vector<int64_t> kept_beats(const int64_t* peaks, int64_t n_peaks, int64_t n, int64_t before,
                                int64_t after, EdgePolicy edge) {
  if (before < 0 || after < 0) throw std::invalid_argument("before and after must be non-negative sample counts");
  if (n < 0 || n_peaks < 0) throw std::invalid_argument("array sizes must be non-negative");
  std::vector<int64_t> kept;
  kept.reserve(static_cast<size_t>(n_peaks));
  for (int64_t i = 0; i < n_peaks; ++i) {
    if (peaks[i] < 0 || peaks[i] >= n)
      throw std::invalid_argument("R-peak " + std::to_string(i) + " at sample " + std::to_string(peaks[i]) +
                                  " lies outside the signal (0.." + std::to_string(n - 1) + ")");
    if (edge == EdgePolicy::pad || (peaks[i] - before >= 0 && peaks[i] + after < n)) kept.push_back(i);
  }
  return kept;
}

template <class T>
void segment_beats(const T* x, int64_t n_leads, int64_t n, const int64_t* peaks, const int64_t* kept,
                   int64_t n_kept, int64_t before, int64_t after, T pad_value, T* out, int n_threads) {
  const int64_t len = before + 1 + after;
  const int64_t work = n_leads * n_kept;
  const int threads = resolve_threads(n_threads, work / 64 + 1);
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t w = 0; w < work; ++w) {
    const int64_t lead = w / n_kept, b = w % n_kept;
    const int64_t start = peaks[kept[b]] - before;
    const int64_t a = std::max<int64_t>(0, start), e = std::min<int64_t>(n, start + len);
    T* dst = out + w * len;
    std::fill(dst, dst + len, pad_value);
    if (e > a) std::copy(x + lead * n + a, x + lead * n + e, dst + (a - start));
  }
}

int64_t n_windows(int64_t n, int64_t size, int64_t step) {
  if (size < 1) throw std::invalid_argument("window size must be at least 1 sample");
  if (step < 1) throw std::invalid_argument("window step must be at least 1 sample");
  return n < size ? 0 : (n - size) / step + 1;
}

template <class T>
void segment_windows(const T* x, int64_t batch, int64_t n, int64_t size, int64_t step, T* out, int n_threads) {
  const int64_t m = n_windows(n, size, step);
  const int64_t work = batch * m;
  const int threads = resolve_threads(n_threads, work / 16 + 1);
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t w = 0; w < work; ++w) {
    const int64_t r = w / m, k = w % m;
    const T* src = x + r * n + k * step;
    std::copy(src, src + size, out + w * size);
  }
}

void rr_features(const int64_t* peaks, int64_t n_peaks, double fs, int64_t local_beats, double* out) {
  if (!(fs > 0.0)) throw std::invalid_argument("fs must be positive");
  if (local_beats < 1) throw std::invalid_argument("local_beats must be at least 1");
  for (int64_t i = 1; i < n_peaks; ++i)
    if (peaks[i] <= peaks[i - 1])
      throw std::invalid_argument("R-peaks must be strictly increasing (peak " + std::to_string(i) + ")");
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double average = n_peaks > 1 ? static_cast<double>(peaks[n_peaks - 1] - peaks[0]) / (n_peaks - 1) / fs : nan;
  double window_sum = 0.0;  // sum of the pre-RRs of beats (i - local_beats, i]
  int64_t window_count = 0;
  for (int64_t i = 0; i < n_peaks; ++i) {
    const double pre = i > 0 ? static_cast<double>(peaks[i] - peaks[i - 1]) / fs : nan;
    const double post = i + 1 < n_peaks ? static_cast<double>(peaks[i + 1] - peaks[i]) / fs : nan;
    if (i > 0) {
      window_sum += pre;
      ++window_count;
    }
    const int64_t leaving = i - local_beats;  // beat whose pre-RR drops out of the window
    if (leaving >= 1) {
      window_sum -= static_cast<double>(peaks[leaving] - peaks[leaving - 1]) / fs;
      --window_count;
    }
    out[4 * i + 0] = pre;
    out[4 * i + 1] = post;
    out[4 * i + 2] = window_count > 0 ? window_sum / window_count : nan;
    out[4 * i + 3] = average;
  }
}

template void segment_beats<float>(const float*, int64_t, int64_t, const int64_t*, const int64_t*, int64_t,
                                   int64_t, int64_t, float, float*, int);
template void segment_beats<double>(const double*, int64_t, int64_t, const int64_t*, const int64_t*, int64_t,
                                    int64_t, int64_t, double, double*, int);
template void segment_windows<float>(const float*, int64_t, int64_t, int64_t, int64_t, float*, int);
template void segment_windows<double>(const double*, int64_t, int64_t, int64_t, int64_t, double*, int);

}  // namespace ecgcore
