#include "ecgcore/qrs_width.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "ecgcore/detail/parallel.hpp"

namespace ecgcore {

namespace {

template <class T>
double row_width(const T* x, int64_t n, const int64_t* p, int64_t n_peaks, int64_t half, int64_t smooth, double frac,
                 std::vector<double>& grad, std::vector<double>& d, std::vector<double>& widths) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  grad.assign(static_cast<size_t>(n), 0.0);
  if (n >= 2) {  // numpy.gradient: one-sided at the ends, central inside
    grad[0] = std::abs(static_cast<double>(x[1]) - static_cast<double>(x[0]));
    grad[n - 1] = std::abs(static_cast<double>(x[n - 1]) - static_cast<double>(x[n - 2]));
    for (int64_t i = 1; i + 1 < n; ++i)
      grad[i] = std::abs((static_cast<double>(x[i + 1]) - static_cast<double>(x[i - 1])) / 2.0);
  }
  d.assign(static_cast<size_t>(n), 0.0);
  const int64_t k2 = smooth / 2;
  for (int64_t i = 0; i < n; ++i) {
    double s = 0.0;
    for (int64_t j = std::max<int64_t>(0, i - k2); j <= std::min<int64_t>(n - 1, i + k2); ++j) s += grad[j];
    d[i] = s / static_cast<double>(smooth);
  }
  widths.clear();
  for (int64_t b = 0; b < n_peaks; ++b) {
    const int64_t r = p[b];
    if (r - half < 0 || r + half >= n) continue;
    const double* seg = d.data() + (r - half);
    const double mx = *std::max_element(seg, seg + 2 * half);
    const double thr = frac * mx;
    int64_t first = -1, last = -1;
    for (int64_t j = 0; j < 2 * half; ++j)
      if (seg[j] > thr) {
        if (first < 0) first = j;
        last = j;
      }
    if (first >= 0) widths.push_back(static_cast<double>(last - first));
  }
  if (widths.empty()) return nan;
  const size_t m = widths.size() / 2;
  std::nth_element(widths.begin(), widths.begin() + static_cast<std::ptrdiff_t>(m), widths.end());
  const double hi = widths[m];
  if (widths.size() % 2) return hi;
  const double lo = *std::max_element(widths.begin(), widths.begin() + static_cast<std::ptrdiff_t>(m));
  return (lo + hi) / 2.0;
}

}  // namespace

template <class T>
std::vector<double> qrs_width_batch(const T* x, int64_t batch, int64_t n, const int64_t* peaks, const int64_t* offsets,
                                    int64_t half, int64_t smooth, double frac, int n_threads) {
  if (batch < 0 || n < 0) throw std::invalid_argument("batch and n must be non-negative");
  if (half < 1) throw std::invalid_argument("qrs_width: the half window must be at least one sample");
  if (smooth < 1 || smooth % 2 == 0) throw std::invalid_argument("qrs_width: the moving average length must be odd");
  if (!(frac > 0.0 && frac < 1.0)) throw std::invalid_argument("qrs_width: frac must lie in (0, 1)");
  if (batch > 0 && offsets[0] != 0) throw std::invalid_argument("qrs_width: offsets must start at 0");
  for (int64_t r = 0; r < batch; ++r)
    if (offsets[r + 1] < offsets[r]) throw std::invalid_argument("qrs_width: offsets must not decrease");
  std::vector<double> out(static_cast<size_t>(batch));
  const int threads = resolve_threads(n_threads, batch);
#pragma omp parallel num_threads(threads)
  {
    std::vector<double> grad, d, widths;
#pragma omp for schedule(dynamic, 8)
    for (int64_t r = 0; r < batch; ++r)
      out[r] =
          row_width(x + r * n, n, peaks + offsets[r], offsets[r + 1] - offsets[r], half, smooth, frac, grad, d, widths);
  }
  return out;
}

template std::vector<double> qrs_width_batch<float>(const float*, int64_t, int64_t, const int64_t*, const int64_t*,
                                                    int64_t, int64_t, double, int);
template std::vector<double> qrs_width_batch<double>(const double*, int64_t, int64_t, const int64_t*, const int64_t*,
                                                     int64_t, int64_t, double, int);

}  // namespace ecgcore
