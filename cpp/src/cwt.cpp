#include "ecgcore/cwt.hpp"

#include "ecgcore/detail/simd.hpp"
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "ecgcore/detail/config.hpp"
#include "ecgcore/detail/parallel.hpp"
#include "ecgcore/fft.hpp"

#pragma GCC diagnostic ignored "-Wpsabi"  // v4d values stay inside this unit

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


// Smallest even 2^a 3^b 5^c >= v (the lengths the mixed-radix FFT does fastest).
int64_t fast_even_length(int64_t v) {
  int64_t best = 2;
  while (best < v) best *= 2;
  for (int64_t p5 = 1; p5 < best; p5 *= 5)
    for (int64_t p35 = p5; p35 < best; p35 *= 3) {
      int64_t c = 2 * p35;
      while (c < v) c *= 2;
      best = std::min(best, c);
    }
  return best;
}

// One scale's filter in the frequency domain, folded into the inverse real FFT: the half-length complex
// input of the inverse is z[k] = X[k] a[k] + conj(X[h - k]) b[k] (k < h) for the signal's spectrum X, so a
// scale costs one complex FFT of N / 2 points per signal. 1/N is folded in.
struct Spectral {
  std::vector<double> ar, ai, br, bi;  // [h] each
};

// The filter of one scale as the real circular kernel g of length N, taps at lags [-c, taps - c]
// (coef[t] = sum_m x[m] g[(t - m) mod N]), and its Spectral form.
Spectral spectral_filter(const std::vector<double>& taps_buf, int64_t origin, int64_t c, int64_t length,
                         int64_t n, const RealFftPlan& plan) {
  const int64_t N = plan.size(), h = N / 2;
  std::vector<double> g(N, 0.0);
  for (int64_t i = 0; i < length; ++i) {
    const int64_t d = i - c;                 // lag t - m of tap i
    if (d <= -n || d >= n) continue;         // never reached by an output in [0, n)
    g[(d % N + N) % N] += taps_buf[origin + i];
  }
  std::vector<cplx> spec(plan.n_bins()), scratch(plan.scratch_size());
  plan.forward(g.data(), spec.data(), scratch.data());
  spec[0].imag(0.0);  // DC and Nyquist bins of a real kernel are real
  spec[h].imag(0.0);
  Spectral f;
  f.ar.resize(h);
  f.ai.resize(h);
  f.br.resize(h);
  f.bi.resize(h);
  const double inv_n = 1.0 / static_cast<double>(N);
  for (int64_t k = 0; k < h; ++k) {
    const double th = 2.0 * kPi * static_cast<double>(k) / static_cast<double>(N);
    const cplx a = spec[k] * cplx(1.0 - std::sin(th), std::cos(th)) * inv_n;
    const cplx b = std::conj(spec[h - k]) * cplx(1.0 + std::sin(th), -std::cos(th)) * inv_n;
    f.ar[k] = a.real();
    f.ai[k] = a.imag();
    f.br[k] = b.real();
    f.bi[k] = b.imag();
  }
  return f;
}

// |coef| of up to four signals into their output rows (stride between the signals' rows: row_stride).
// w holds the inverse transform: coef[2j] = Re w[j], coef[2j + 1] = Im w[j]; v (complex wavelets) the
// imaginary part of coef in the same layout.
ECGCORE_MULTIVERSION(void, write_magnitudes, (const v4d* wr, const v4d* wi, const v4d* vr, const v4d* vi, int64_t n,
                                     int64_t lanes, float* out, int64_t row_stride), (wr, wi, vr, vi, n, lanes, out, row_stride), {
  const int64_t pairs = n / 2;
  if (vr == nullptr) {
    // Four pairs at a time: transpose the 4 x 4 blocks of Re and Im parts (signal lanes -> rows), round to
    // float, interleave Re/Im into the output order and store 8 samples per signal.
    const v4i abs_mask = {INT64_MAX, INT64_MAX, INT64_MAX, INT64_MAX};
    int64_t j = 0;
    for (; j + 4 <= pairs; j += 4) {
      v4f re[4], im[4];
      for (int part = 0; part < 2; ++part) {
        const v4d* src = part == 0 ? wr + j : wi + j;
        const v4d a0 = src[0], a1 = src[1], a2 = src[2], a3 = src[3];
        const v4d t0 = __builtin_shuffle(a0, a1, v4i{0, 4, 2, 6}), t1 = __builtin_shuffle(a0, a1, v4i{1, 5, 3, 7});
        const v4d t2 = __builtin_shuffle(a2, a3, v4i{0, 4, 2, 6}), t3 = __builtin_shuffle(a2, a3, v4i{1, 5, 3, 7});
        const v4d r[4] = {__builtin_shuffle(t0, t2, v4i{0, 1, 4, 5}), __builtin_shuffle(t1, t3, v4i{0, 1, 4, 5}),
                          __builtin_shuffle(t0, t2, v4i{2, 3, 6, 7}), __builtin_shuffle(t1, t3, v4i{2, 3, 6, 7})};
        v4f* dst = part == 0 ? re : im;
        for (int l = 0; l < 4; ++l) dst[l] = __builtin_convertvector((v4d)((v4i)r[l] & abs_mask), v4f);
      }
      for (int64_t l = 0; l < lanes; ++l) {
        float* o = out + l * row_stride + 2 * j;  // no particular alignment: memcpy stores
        const v4f lo = __builtin_shuffle(re[l], im[l], v4i32{0, 4, 1, 5}), hi = __builtin_shuffle(re[l], im[l], v4i32{2, 6, 3, 7});
        __builtin_memcpy(o, &lo, sizeof lo);
        __builtin_memcpy(o + 4, &hi, sizeof hi);
      }
    }
    for (int64_t l = 0; l < lanes; ++l) {
      float* o = out + l * row_stride;
      for (int64_t k = j; k < pairs; ++k) {
        o[2 * k] = static_cast<float>(std::fabs(wr[k][l]));
        o[2 * k + 1] = static_cast<float>(std::fabs(wi[k][l]));
      }
      if (n % 2) o[n - 1] = static_cast<float>(std::fabs(wr[pairs][l]));
    }
    return;
  }
  for (int64_t l = 0; l < lanes; ++l) {
    float* o = out + l * row_stride;
    for (int64_t j = 0; j < pairs; ++j) {
      o[2 * j] = static_cast<float>(std::sqrt(wr[j][l] * wr[j][l] + vr[j][l] * vr[j][l]));
      o[2 * j + 1] = static_cast<float>(std::sqrt(wi[j][l] * wi[j][l] + vi[j][l] * vi[j][l]));
    }
    if (n % 2) o[n - 1] = static_cast<float>(std::sqrt(wr[pairs][l] * wr[pairs][l] + vr[pairs][l] * vr[pairs][l]));
  }
})

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
    const int64_t origin = 0;
    const int64_t size = taps + 1;
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
  // FFT convolution, circular over N points: N > n - 1 + the largest lag any scale reaches keeps the n
  // outputs free of wrap-around (lags beyond +-(n - 1) never meet an output, so N >= 2n - 1 always does).
  int64_t reach = 0;
  for (int64_t s = 0; s < n_scales; ++s)
    reach = std::max({reach, std::min(f.shift[s], n - 1), std::min(f.length[s] - 1 - f.shift[s], n - 1)});
  const int64_t N = fast_even_length(n + reach), h = N / 2;
  const RealFftPlan rplan(N);
  const FftPlan cplan(h);  // the inverse real transforms run as half-length complex ones
  std::vector<Spectral> re(n_scales), im(w.complex ? n_scales : 0);
  for (int64_t s = 0; s < n_scales; ++s) {
    re[s] = spectral_filter(f.re[s], f.origin[s], f.shift[s], f.length[s], n, rplan);
    if (w.complex) im[s] = spectral_filter(f.im[s], f.origin[s], f.shift[s], f.length[s], n, rplan);
  }
  const int64_t groups = (batch + 3) / 4;  // four signals per transform, one per SIMD lane
  const int threads = resolve_threads(n_threads, groups);
  const int64_t scratch_n = std::max<int64_t>(2 * rplan.scratch_size(), 2 * cplan.scratch_size());
#pragma omp parallel num_threads(threads)
  {
    LaneBuffer buf(N, v4d{0.0, 0.0, 0.0, 0.0}), xr(h + 1), xi(h + 1), cr(h), ci(h), wr(h), wi(h),
        vr(w.complex ? h : 0), vi(w.complex ? h : 0), scratch(scratch_n);
    // Dynamic: on a shared machine a thread that gets less CPU takes fewer groups.
#pragma omp for schedule(dynamic, 4)
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t lanes = std::min<int64_t>(4, batch - 4 * g);
      for (int64_t l = 0; l < 4; ++l) {
        const T* row = x + (4 * g + std::min(l, lanes - 1)) * n;  // idle lanes repeat a signal
        for (int64_t j = 0; j < n; ++j) buf[j][l] = static_cast<double>(row[j]);
      }
      rplan.forward4(buf.data(), xr.data(), xi.data(), scratch.data());
      for (int64_t k = 0; k < h; ++k) {
        cr[k] = xr[h - k];
        ci[k] = -xi[h - k];
      }
      for (int64_t s = 0; s < n_scales; ++s) {
        const Spectral& fr = re[s];
        cplan.transform4_product_sum(xr.data(), xi.data(), fr.ar.data(), fr.ai.data(), cr.data(), ci.data(),
                                     fr.br.data(), fr.bi.data(), wr.data(), wi.data(), scratch.data(), true);
        if (w.complex) {
          const Spectral& fi = im[s];
          cplan.transform4_product_sum(xr.data(), xi.data(), fi.ar.data(), fi.ai.data(), cr.data(), ci.data(),
                                       fi.br.data(), fi.bi.data(), vr.data(), vi.data(), scratch.data(), true);
        }
        write_magnitudes(wr.data(), wi.data(), w.complex ? vr.data() : nullptr, w.complex ? vi.data() : nullptr, n,
                         lanes, out + (4 * g * n_scales + s) * n, n_scales * n);
      }
    }
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
