// Polyphase rational resampling, scipy.signal.resample_poly (_signaltools.py, _upfirdn.py) with the Kaiser-windowed
// low-pass of scipy.signal.firwin. See filter_resample.hpp.
#include "ecgcore/filter_resample.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>

#include "ecgcore/detail/config.hpp"
#include "ecgcore/detail/parallel.hpp"
#include "ecgcore/detail/simd.hpp"

namespace ecgcore {

namespace {

constexpr double kPi = 3.14159265358979323846;

double bessel_i0(double x) {
  // Power series; terms decay fast for the window parameters used (|x| <= ~50).
  double sum = 1.0, term = 1.0;
  const double q = x * x / 4.0;
  for (int k = 1; k < 500; ++k) {
    term *= q / (static_cast<double>(k) * k);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return sum;
}

}  // namespace

std::vector<double> resample_poly_filter(int up, int down, double beta) {
  if (up < 1 || down < 1) throw std::invalid_argument("up and down must be >= 1");
  const int max_rate = std::max(up, down);
  const double fc = 1.0 / max_rate;
  const int half = 10 * max_rate;
  const int ntaps = 2 * half + 1;
  std::vector<double> h(ntaps);
  const double alpha = (ntaps - 1) / 2.0;
  const double i0b = bessel_i0(beta);
  double s = 0.0;
  for (int i = 0; i < ntaps; ++i) {
    const double m = i - alpha;
    const double arg = fc * m;
    const double sinc = arg == 0.0 ? 1.0 : std::sin(kPi * arg) / (kPi * arg);
    const double r = (i - alpha) / alpha;
    const double w = bessel_i0(beta * std::sqrt(std::max(0.0, 1.0 - r * r))) / i0b;
    h[i] = fc * sinc * w;
    s += h[i];
  }
  for (auto& v : h) v = v / s * up;
  return h;
}

int64_t resample_poly_length(int64_t n_in, int up, int down) {
  const int64_t n = n_in * up;
  return n / down + (n % down ? 1 : 0);
}

namespace {

// Floor division for a positive divisor.
inline int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// The prototype filter split by phase: output j reads the taps h[p + m*up] (m = 0, 1, ...) against the
// inputs u_hi - m, where c = (j + pre_remove)*down - pre_pad, u_hi = floor(c/up), p = c - u_hi*up. Each
// phase's taps are stored in input order (m descending), so an output is one contiguous dot product.
struct Polyphase {
  std::vector<double> taps;
  std::vector<int64_t> off, len;
  Polyphase(const std::vector<double>& h, int up) : off(up), len(up) {
    const int64_t hl = static_cast<int64_t>(h.size());
    for (int p = 0; p < up; ++p) {
      off[p] = static_cast<int64_t>(taps.size());
      len[p] = p < hl ? (hl - 1 - p) / up + 1 : 0;
      for (int64_t i = 0; i < len[p]; ++i) taps.push_back(h[p + (len[p] - 1 - i) * up]);
    }
  }
};

// Outputs [j0, j1) of one row: the inputs they read (cval outside the signal) are copied once into
// `span` (contiguous, so strided rows vectorise too), then each output is a dot product.
// always_inline: compiled into each build of resample_chunk (an out-of-line instance would be baseline code).
template <class T>
ECGCORE_INLINE void resample_chunk_impl(const T* xr, int64_t xs, int64_t n, T* yr, int64_t ys, int64_t j0, int64_t j1,
                                        int up, int down, int64_t pre_pad, int64_t pre_remove, const Polyphase& P,
                                        double cval, std::vector<double>& span) {
  auto locate = [&](int64_t j, int64_t& uh, int& p) {
    const int64_t c = (j + pre_remove) * down - pre_pad;
    uh = floor_div(c, up);
    p = static_cast<int>(c - uh * up);
  };
  int64_t uh0, uh1;
  int p0, p1;
  locate(j0, uh0, p0);
  locate(j1 - 1, uh1, p1);
  const int64_t a = uh0 - std::max<int64_t>(P.len[p0], 1) + 1, b = uh1;  // inputs [a, b]
  span.resize(static_cast<size_t>(b - a + 1));
  for (int64_t u = a; u <= b; ++u) span[u - a] = (u >= 0 && u < n) ? static_cast<double>(xr[u * xs]) : cval;
  // c grows by `down` per output: step u_hi and the phase without dividing.
  const int64_t q = down / up, rd = down % up;
  int64_t uh = uh0;
  int p = p0;
  for (int64_t j = j0; j < j1; ++j) {
    if (j > j0) {
      uh += q;
      p += static_cast<int>(rd);
      if (p >= up) {
        p -= up;
        ++uh;
      }
    }
    const int64_t m = P.len[p];
    const double* tp = P.taps.data() + P.off[p];
    const double* xp = span.data() + (uh - m + 1 - a);
    // Four partial sums in a fixed order (vectorised; the same bits in every build but for FMA).
    v4d acc4{};
    int64_t i = 0;
    for (; i + 4 <= m; i += 4) {
      v4d t, v;
      std::memcpy(&t, tp + i, sizeof t);
      std::memcpy(&v, xp + i, sizeof v);
      acc4 += t * v;
    }
    double acc = (acc4[0] + acc4[2]) + (acc4[1] + acc4[3]);
    for (; i < m; ++i) acc += tp[i] * xp[i];
    yr[j * ys] = static_cast<T>(acc);
  }
}

#define ECGCORE_RESAMPLE_CHUNK(T)                                                                        \
  ECGCORE_MULTIVERSION(                                                                                  \
      void, resample_chunk,                                                                              \
      (const T* xr, int64_t xs, int64_t n, T* yr, int64_t ys, int64_t j0, int64_t j1, int up, int down,  \
       int64_t pre_pad, int64_t pre_remove, const Polyphase& P, double cval, std::vector<double>& span), \
      (xr, xs, n, yr, ys, j0, j1, up, down, pre_pad, pre_remove, P, cval, span),                         \
      { resample_chunk_impl(xr, xs, n, yr, ys, j0, j1, up, down, pre_pad, pre_remove, P, cval, span); })
ECGCORE_RESAMPLE_CHUNK(float)
ECGCORE_RESAMPLE_CHUNK(double)
#undef ECGCORE_RESAMPLE_CHUNK

}  // namespace

template <class T>
void resample_poly(RowsView<const T> x, RowsView<T> y, int up, int down, const std::vector<double>& h, double cval,
                   int n_threads) {
  if (up < 1 || down < 1) throw std::invalid_argument("up and down must be >= 1");
  if (h.empty() || h.size() % 2 == 0) throw std::invalid_argument("the resampling filter must have odd length");
  if (x.n < 1) throw std::invalid_argument("cannot resample an empty signal");
  const int64_t n_out = resample_poly_length(x.n, up, down);
  if (y.n != n_out || y.batch != x.batch) throw std::invalid_argument("resample_poly: wrong output shape");
  const int64_t half = (static_cast<int64_t>(h.size()) - 1) / 2;
  const int64_t pre_pad = down - half % down;
  const int64_t pre_remove = (half + pre_pad) / down;
  const Polyphase P(h, up);
  const int64_t chunk = 4096;
  const int64_t n_chunks = (n_out + chunk - 1) / chunk;
  const int64_t work = x.batch * n_chunks;
  const int threads = resolve_threads(n_threads, work);
#pragma omp parallel num_threads(threads)
  {
    std::vector<double> span;
#pragma omp for schedule(static)
    for (int64_t w = 0; w < work; ++w) {
      const int64_t r = w / n_chunks;
      const int64_t j0 = (w % n_chunks) * chunk;
      const int64_t j1 = std::min(n_out, j0 + chunk);
      resample_chunk(x.data + r * x.row_stride, x.sample_stride, x.n, y.data + r * y.row_stride, y.sample_stride, j0,
                     j1, up, down, pre_pad, pre_remove, P, cval, span);
    }
  }
}

#define ECGCORE_INSTANTIATE(T) \
  template void resample_poly<T>(RowsView<const T>, RowsView<T>, int, int, const std::vector<double>&, double, int);

ECGCORE_INSTANTIATE(float)
ECGCORE_INSTANTIATE(double)
#undef ECGCORE_INSTANTIATE

}  // namespace ecgcore
