#include "ecgcore/cwt.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "ecgcore/fft.hpp"
#include "ecgcore/parallel.hpp"

namespace ecgcore {
namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr double kLower = -8.0, kUpper = 8.0;  // support of both Morlet wavelets in PyWavelets

// The wavelet sampled like ContinuousWavelet.wavefun(precision): numpy.linspace(-8, 8, 2**precision).
void sample_wavelet(const MorletWavelet& w, int64_t len, std::vector<double>& x, std::vector<double>& re,
                    std::vector<double>& im) {
  x.resize(len);
  re.assign(len, 0.0);
  im.assign(len, 0.0);
  const double step = (kUpper - kLower) / static_cast<double>(len - 1);
  for (int64_t i = 0; i < len; ++i) x[i] = static_cast<double>(i) * step + kLower;  // numpy's linspace order
  x[len - 1] = kUpper;
  for (int64_t i = 0; i < len; ++i) {
    const double t = x[i];
    if (!w.complex) {
      re[i] = std::exp(-t * t / 2.0) * std::cos(5.0 * t);
    } else {
      const double env = std::exp(-t * t / w.bandwidth) / std::sqrt(kPi * w.bandwidth);
      re[i] = env * std::cos(2.0 * kPi * w.center * t);
      im[i] = env * std::sin(2.0 * kPi * w.center * t);
    }
  }
}

void check_wavelet(const MorletWavelet& w) {
  if (w.precision < 4 || w.precision > 20)
    throw std::invalid_argument("wavelet precision must be in 4..20, got " + std::to_string(w.precision));
  if (w.complex && !(w.bandwidth > 0.0 && std::isfinite(w.bandwidth)))
    throw std::invalid_argument("complex Morlet bandwidth B must be positive");
  if (w.complex && !std::isfinite(w.center)) throw std::invalid_argument("complex Morlet centre C must be finite");
}

constexpr int64_t kBlock = 32;  // output samples accumulated in registers per inner loop

// One row, one scale: out[t] = |sum_m x[m] h[t + c - m]|; h is padded so every index is in range.
template <class T, bool Complex>
inline __attribute__((always_inline)) void scale_row_body(const T* x, int64_t n, const T* hre, const T* him,
                                                          int64_t origin, int64_t c, int64_t taps, float* out) {
  for (int64_t t0 = 0; t0 < n; t0 += kBlock) {
    T ar[kBlock] = {};
    T ai[kBlock] = {};
    const int64_t m_lo = std::max<int64_t>(0, t0 + c - (taps - 1));
    const int64_t m_hi = std::min<int64_t>(n - 1, t0 + kBlock - 1 + c);
    for (int64_t m = m_lo; m <= m_hi; ++m) {
      const T xm = x[m];
      const T* hr = hre + origin + t0 + c - m;
      for (int64_t i = 0; i < kBlock; ++i) ar[i] += xm * hr[i];
      if constexpr (Complex) {
        const T* hi = him + origin + t0 + c - m;
        for (int64_t i = 0; i < kBlock; ++i) ai[i] += xm * hi[i];
      }
    }
    const int64_t te = std::min<int64_t>(kBlock, n - t0);
    for (int64_t i = 0; i < te; ++i) {
      if constexpr (Complex) out[t0 + i] = static_cast<float>(std::sqrt(ar[i] * ar[i] + ai[i] * ai[i]));
      else out[t0 + i] = static_cast<float>(std::fabs(ar[i]));
    }
  }
}

#if defined(__GNUC__) && (defined(__x86_64__) || defined(_M_X64))
#define ECGCORE_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define ECGCORE_CLONES
#endif

ECGCORE_CLONES void scale_row_f32(const float* x, int64_t n, const float* hre, const float* him, int64_t origin,
                                  int64_t c, int64_t taps, float* out, bool cplx_w) {
  if (cplx_w) scale_row_body<float, true>(x, n, hre, him, origin, c, taps, out);
  else scale_row_body<float, false>(x, n, hre, him, origin, c, taps, out);
}

ECGCORE_CLONES void scale_row_f64(const double* x, int64_t n, const double* hre, const double* him, int64_t origin,
                                  int64_t c, int64_t taps, float* out, bool cplx_w) {
  if (cplx_w) scale_row_body<double, true>(x, n, hre, him, origin, c, taps, out);
  else scale_row_body<double, false>(x, n, hre, him, origin, c, taps, out);
}

inline void scale_row(const float* x, int64_t n, const float* hre, const float* him, int64_t origin, int64_t c,
                      int64_t taps, float* out, bool cplx_w) {
  scale_row_f32(x, n, hre, him, origin, c, taps, out, cplx_w);
}
inline void scale_row(const double* x, int64_t n, const double* hre, const double* him, int64_t origin, int64_t c,
                      int64_t taps, float* out, bool cplx_w) {
  scale_row_f64(x, n, hre, him, origin, c, taps, out, cplx_w);
}

}  // namespace

CwtFilters morlet_filters(const MorletWavelet& w, const double* scales, int64_t n_scales, int64_t n) {
  check_wavelet(w);
  if (n < 1) throw std::invalid_argument("cannot compute a scalogram of an empty signal");
  if (n_scales < 1) throw std::invalid_argument("at least one scale is needed");
  const int64_t len = int64_t{1} << w.precision;
  std::vector<double> x, re, im;
  sample_wavelet(w, len, x, re, im);
  // Rectangle-rule integral of psi from the left end (pywt.integrate_wavelet): cumsum * step.
  const double step = x[1] - x[0];
  std::vector<double> ire(len), iim(len);
  double sr = 0.0, si = 0.0;
  for (int64_t i = 0; i < len; ++i) {
    sr += re[i];
    si += im[i];
    ire[i] = sr * step;
    iim[i] = -si * step;  // complex wavelets are conjugated before the convolution
  }
  const double span = x[len - 1] - x[0];
  CwtFilters f;
  f.n = n;
  for (int64_t s = 0; s < n_scales; ++s) {
    const double a = scales[s];
    if (!(a > 0.0) || !std::isfinite(a))
      throw std::invalid_argument("scales must be positive and finite, got " + std::to_string(a) + " at index " +
                                  std::to_string(s));
    // Samples of the integrated wavelet stretched to this scale: j = floor(k / (a * step)),
    // k = 0 .. ceil(a * span + 1) - 1, keeping j inside the grid; then reversed.
    const auto count = static_cast<int64_t>(std::ceil(a * span + 1.0));
    std::vector<int64_t> j;
    j.reserve(count);
    for (int64_t k = 0; k < count; ++k) {
      const auto idx = static_cast<int64_t>(static_cast<double>(k) / (a * step));
      if (idx < len) j.push_back(idx);
    }
    const auto taps = static_cast<int64_t>(j.size());
    if (taps < 2)
      throw std::invalid_argument("scale " + std::to_string(a) + " is too small for the wavelet grid (needs at least " +
                                  "2 taps; increase the scale or the precision)");
    // Full convolution then first difference then centre crop: coef[t] = sum_m x[m] g[t + c - m] with
    // g[i] = -sqrt(a) * (filt[i] - filt[i-1]), i = 0 .. taps, c = floor((taps - 2) / 2) + 1.
    const int64_t c = (taps - 2) / 2 + 1;
    const int64_t origin = n + 2 * kBlock;
    const int64_t size = origin + n + taps + c + 4 * kBlock;
    std::vector<double> hr(size, 0.0), hi(w.complex ? size : 0, 0.0);
    const double g = -std::sqrt(a);
    auto filt = [&](const std::vector<double>& v, int64_t i) -> double {
      return (i < 0 || i >= taps) ? 0.0 : v[j[taps - 1 - i]];
    };
    for (int64_t i = 0; i <= taps; ++i) {
      hr[origin + i] = g * (filt(ire, i) - filt(ire, i - 1));
      if (w.complex) hi[origin + i] = g * (filt(iim, i) - filt(iim, i - 1));
    }
    f.length.push_back(taps + 1);
    f.origin.push_back(origin);
    f.re.push_back(std::move(hr));
    f.im.push_back(std::move(hi));
    f.shift.push_back(c);
  }
  return f;
}

template <class T>
void morlet_scalogram(const T* x, int64_t batch, int64_t n, const double* scales, int64_t n_scales,
                      const MorletWavelet& w, float* out, int n_threads) {
  const CwtFilters f = morlet_filters(w, scales, n_scales, n);
  std::vector<std::vector<T>> hr(n_scales), hi(n_scales);
  for (int64_t s = 0; s < n_scales; ++s) {
    hr[s].assign(f.re[s].begin(), f.re[s].end());
    hi[s].assign(f.im[s].begin(), f.im[s].end());
  }
  const int64_t items = batch * n_scales;
  const int threads = resolve_threads(n_threads, items);
#pragma omp parallel for num_threads(threads) schedule(dynamic, 8)
  for (int64_t it = 0; it < items; ++it) {
    const int64_t b = it / n_scales, s = it % n_scales;
    scale_row(x + b * n, n, hr[s].data(), w.complex ? hi[s].data() : nullptr, f.origin[s], f.shift[s],
              f.length[s], out + it * n, w.complex);
  }
}

double morlet_centre_frequency(const MorletWavelet& w) {
  check_wavelet(w);
  // pywt.central_frequency(wavelet, precision=8): strongest non-DC FFT bin of psi on 256 points.
  const int64_t len = 256;
  std::vector<double> x, re, im;
  sample_wavelet(w, len, x, re, im);
  std::vector<cplx> in(len), spec(len);
  for (int64_t i = 0; i < len; ++i) in[i] = {re[i], im[i]};
  FftPlan plan(len);
  std::vector<cplx> scratch(plan.scratch_size());
  plan.forward(in.data(), spec.data(), scratch.data());
  int64_t best = 1;
  double best_mag = -1.0;
  for (int64_t k = 1; k < len; ++k) {
    const double mag = std::abs(spec[k]);
    if (mag > best_mag) {
      best_mag = mag;
      best = k;
    }
  }
  int64_t index = best + 1;
  if (static_cast<double>(index) > static_cast<double>(len) / 2.0) index = len - index + 2;
  const double domain = x[len - 1] - x[0];
  return 1.0 / (domain / static_cast<double>(index - 1));
}

template void morlet_scalogram<float>(const float*, int64_t, int64_t, const double*, int64_t, const MorletWavelet&,
                                      float*, int);
template void morlet_scalogram<double>(const double*, int64_t, int64_t, const double*, int64_t,
                                       const MorletWavelet&, float*, int);

}  // namespace ecgcore
