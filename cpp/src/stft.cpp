#include "ecgcore/stft.hpp"

#include "ecgcore/detail/simd.hpp"
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "ecgcore/detail/config.hpp"
#include "ecgcore/detail/lanes.hpp"
#include "ecgcore/detail/parallel.hpp"
#include "ecgcore/fft.hpp"

#pragma GCC diagnostic ignored "-Wpsabi"  // v4d values stay inside this unit

namespace ecgcore {
namespace {

// 20 log10(v) as a multiple of log(v): glibc's log is several times faster than its log10.
constexpr double kDbPerLog = 8.6858896380650365530225783783321;  // 20 / ln(10)

void check(const StftParams& p, int64_t n) {
  if (p.n_fft < 1) throw std::invalid_argument("n_fft must be positive, got " + std::to_string(p.n_fft));
  if (p.hop < 1) throw std::invalid_argument("hop must be positive, got " + std::to_string(p.hop));
  if (p.n_frames < 0) throw std::invalid_argument("number of frames must be non-negative");
  if (p.pad_left < 0) throw std::invalid_argument("padding must be non-negative");
  if (n < 1) throw std::invalid_argument("cannot compute the STFT of an empty signal");
  if (p.pad == StftPad::Reflect && n < 2 && p.pad_left > 0)
    throw std::invalid_argument("reflect padding needs at least 2 samples");
}

// Index into [0, n) of extended sample i (numpy.pad modes: 'reflect' mirrors without repeating the edge).
inline int64_t extend_index(int64_t i, int64_t n, StftPad pad) {
  if (i >= 0 && i < n) return i;
  if (pad == StftPad::Zeros) return -1;
  if (pad == StftPad::Edge) return i < 0 ? 0 : n - 1;
  const int64_t period = 2 * (n - 1);
  int64_t r = i % period;
  if (r < 0) r += period;
  return r < n ? r : period - r;
}

}  // namespace

int64_t stft_bins(const StftParams& p) { return p.onesided ? p.n_fft / 2 + 1 : p.n_fft; }

namespace {


// Unaligned vector store (the output rows have no particular alignment).
template <class Vec, class Dst>
ECGCORE_INLINE void store_unaligned(Dst* dst, const Vec& v) {
  __builtin_memcpy(static_cast<void*>(dst), &v, sizeof v);
}

// Where the (up to four) frames of a group come from and go to.
struct Group {
  int64_t lanes;
  int64_t start[4];       // first extended sample of each frame
  int64_t out[4];         // output offset of bin 0 of each frame
  bool contiguous;        // four consecutive frames of one row: outputs are neighbours
};

// Frames of a group into the lanes of buf[w0 .. w1) (window applied), for rows of T.
template <class T>
ECGCORE_INLINE void frames_into_lanes(const T* x, int64_t n, const double* window, const StftParams& p, int64_t w0,
                                      int64_t w1, const int64_t* row, const Group& g, v4d* buf) {
  const T* r0 = x + row[0] * n;
  if (g.contiguous && g.start[0] + w0 >= 0 && g.start[3] + w1 <= n) {
    // Interior frames of one row: four loads per sample, no bounds checks.
    const T* s0 = r0 + g.start[0];
    const int64_t h = p.hop;
    for (int64_t j = w0; j < w1; ++j)
      buf[j] = v4d{static_cast<double>(s0[j]), static_cast<double>(s0[h + j]), static_cast<double>(s0[2 * h + j]),
                   static_cast<double>(s0[3 * h + j])} *
               lanes::load_bc(window + j);
    return;
  }
  for (int64_t l = 0; l < 4; ++l) {
    if (l >= g.lanes) {
      for (int64_t j = w0; j < w1; ++j) buf[j][l] = 0.0;
      continue;
    }
    const T* r = x + row[l] * n;
    const int64_t start = g.start[l];
    if (start + w0 >= 0 && start + w1 <= n) {
      for (int64_t j = w0; j < w1; ++j) buf[j][l] = static_cast<double>(r[start + j]) * window[j];
    } else {
      for (int64_t j = w0; j < w1; ++j) {
        const int64_t i = extend_index(start + j, n, p.pad);
        buf[j][l] = i < 0 ? 0.0 : static_cast<double>(r[i]) * window[j];
      }
    }
  }
}

ECGCORE_INLINE v4d magnitude(v4d re, v4d im) {
  const v4d p = re * re + im * im;
  v4d m;
  for (int l = 0; l < 4; ++l) m[l] = std::sqrt(p[l]);
  return m;
}

// The bins of a group's frames into the output, T = float or double.
template <class T>
ECGCORE_INLINE void store_bins(const v4d* re, const v4d* im, const StftParams& p, int64_t nb, int64_t nf,
                               const Group& g, std::complex<T>* out_c, T* out_r) {
  const int64_t nfft = p.n_fft, half = nfft / 2 + 1;
  for (int64_t k = 0; k < nb; ++k) {
    // Negative frequencies of a real frame are the conjugates of the positive ones.
    const int64_t kk = k < half ? k : nfft - k;
    const v4d vr = re[kk], vi = k < half ? im[kk] : -im[kk];
    if (p.output == StftOutput::Complex) {
      if (g.contiguous) {  // four neighbouring outputs: two vector stores
        const int64_t o = g.out[0] + k * nf;
        const v4d lo = __builtin_shuffle(vr, vi, v4i{0, 4, 1, 5}), hi = __builtin_shuffle(vr, vi, v4i{2, 6, 3, 7});
        if constexpr (std::is_same_v<T, double>) {
          store_unaligned(out_c + o, lo);
          store_unaligned(out_c + o + 2, hi);
        } else {
          store_unaligned(out_c + o, __builtin_convertvector(lo, v4f));
          store_unaligned(out_c + o + 2, __builtin_convertvector(hi, v4f));
        }
      } else {
        for (int64_t l = 0; l < g.lanes; ++l)
          out_c[g.out[l] + k * nf] = std::complex<T>(static_cast<T>(vr[l]), static_cast<T>(vi[l]));
      }
      continue;
    }
    v4d v;
    if (p.output == StftOutput::Power) v = vr * vr + vi * vi;
    else if (p.output == StftOutput::Magnitude) v = magnitude(vr, vi);
    else v = kDbPerLog * lanes::log4_any(magnitude(vr, vi) + p.db_offset);
    if (g.contiguous) {
      const int64_t o = g.out[0] + k * nf;
      if constexpr (std::is_same_v<T, double>) store_unaligned(out_r + o, v);
      else store_unaligned(out_r + o, __builtin_convertvector(v, v4f));
    } else {
      for (int64_t l = 0; l < g.lanes; ++l) out_r[g.out[l] + k * nf] = static_cast<T>(v[l]);
    }
  }
}

struct StftWork {
  LaneBuffer buf, re, im, scratch;
};

// One group of up to four frames: framing, transform, output. Compiled for AVX2/FMA and the baseline.
template <class T>
ECGCORE_INLINE void stft_group(const T* x, int64_t n, const double* window, const StftParams& p, int64_t nb,
                               int64_t nf, int64_t w0, int64_t w1, const RealFftPlan& plan, int64_t g_index,
                               int64_t items, StftWork& w, std::complex<T>* out_c, T* out_r) {
  Group g;
  g.lanes = std::min<int64_t>(4, items - 4 * g_index);
  int64_t row[4];
  for (int64_t l = 0; l < g.lanes; ++l) {
    const int64_t it = 4 * g_index + l;
    row[l] = it / nf;
    const int64_t f = it % nf;
    g.start[l] = f * p.hop - p.pad_left;
    g.out[l] = row[l] * nb * nf + f;
  }
  g.contiguous = g.lanes == 4 && row[0] == row[3];
  frames_into_lanes(x, n, window, p, w0, w1, row, g, w.buf.data());
  plan.forward4(w.buf.data(), w.re.data(), w.im.data(), w.scratch.data());
  store_bins(w.re.data(), w.im.data(), p, nb, nf, g, out_c, out_r);
}

ECGCORE_MULTIVERSION(void, stft_groups_f64, (const double* x, int64_t n, const double* window, const StftParams& p, int64_t nb,
                                    int64_t nf, int64_t w0, int64_t w1, const RealFftPlan& plan, int64_t g_index,
                                    int64_t items, StftWork& w, std::complex<double>* out_c, double* out_r), (x, n, window, p, nb, nf, w0, w1, plan, g_index, items, w, out_c, out_r), {
  stft_group<double>(x, n, window, p, nb, nf, w0, w1, plan, g_index, items, w, out_c, out_r);
})

ECGCORE_MULTIVERSION(void, stft_groups_f32, (const float* x, int64_t n, const double* window, const StftParams& p, int64_t nb,
                                    int64_t nf, int64_t w0, int64_t w1, const RealFftPlan& plan, int64_t g_index,
                                    int64_t items, StftWork& w, std::complex<float>* out_c, float* out_r), (x, n, window, p, nb, nf, w0, w1, plan, g_index, items, w, out_c, out_r), {
  stft_group<float>(x, n, window, p, nb, nf, w0, w1, plan, g_index, items, w, out_c, out_r);
})

inline void stft_group_any(const double* x, int64_t n, const double* window, const StftParams& p, int64_t nb,
                           int64_t nf, int64_t w0, int64_t w1, const RealFftPlan& plan, int64_t g, int64_t items,
                           StftWork& w, std::complex<double>* out_c, double* out_r) {
  stft_groups_f64(x, n, window, p, nb, nf, w0, w1, plan, g, items, w, out_c, out_r);
}
inline void stft_group_any(const float* x, int64_t n, const double* window, const StftParams& p, int64_t nb,
                           int64_t nf, int64_t w0, int64_t w1, const RealFftPlan& plan, int64_t g, int64_t items,
                           StftWork& w, std::complex<float>* out_c, float* out_r) {
  stft_groups_f32(x, n, window, p, nb, nf, w0, w1, plan, g, items, w, out_c, out_r);
}

}  // namespace

template <class T>
void stft(const T* x, int64_t batch, int64_t n, const double* window, const StftParams& p, std::complex<T>* out_c,
          T* out_r, int n_threads) {
  check(p, n);
  const int64_t nf = p.n_frames, nfft = p.n_fft, nb = stft_bins(p);
  if (nf == 0 || batch == 0) return;
  RealFftPlan plan(nfft);
  const int64_t items = batch * nf;
  const int64_t groups = (items + 3) / 4;  // four frames per transform, one per SIMD lane
  const int threads = resolve_threads(n_threads, groups);
  // First window sample that is non-zero and the last: frames read only that span.
  int64_t w0 = 0, w1 = nfft;
  while (w0 < nfft && window[w0] == 0.0) ++w0;
  while (w1 > w0 && window[w1 - 1] == 0.0) --w1;
#pragma omp parallel num_threads(threads)
  {
    StftWork w{LaneBuffer(nfft, v4d{0.0, 0.0, 0.0, 0.0}), LaneBuffer(nfft / 2 + 1), LaneBuffer(nfft / 2 + 1),
               LaneBuffer(2 * plan.scratch_size())};
    // Dynamic: on a shared machine a thread that gets less CPU takes fewer groups.
#pragma omp for schedule(dynamic, 16)
    for (int64_t g = 0; g < groups; ++g) stft_group_any(x, n, window, p, nb, nf, w0, w1, plan, g, items, w, out_c, out_r);
    if (p.output == StftOutput::Decibel && p.top_db >= 0.0) {
#pragma omp for schedule(static)
      for (int64_t rb = 0; rb < batch * nb; ++rb) {
        T* r = out_r + rb * nf;
        T top = -std::numeric_limits<T>::infinity();
        for (int64_t f = 0; f < nf; ++f) top = std::max(top, r[f]);
        const T floor = static_cast<T>(static_cast<double>(top) - p.top_db);
        for (int64_t f = 0; f < nf; ++f) r[f] = std::max(r[f], floor);
      }
    }
  }
}

template void stft<float>(const float*, int64_t, int64_t, const double*, const StftParams&, std::complex<float>*,
                          float*, int);
template void stft<double>(const double*, int64_t, int64_t, const double*, const StftParams&, std::complex<double>*,
                           double*, int);

}  // namespace ecgcore
