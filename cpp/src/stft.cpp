#include "ecgcore/stft.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "ecgcore/fft.hpp"
#include "ecgcore/parallel.hpp"

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

template <class T>
void stft(const T* x, int64_t batch, int64_t n, const double* window, const StftParams& p, std::complex<T>* out_c,
          T* out_r, int n_threads) {
  check(p, n);
  const int64_t nf = p.n_frames, nfft = p.n_fft, nb = stft_bins(p), half = nfft / 2 + 1;
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
    LaneBuffer buf(nfft, v4d{0.0, 0.0, 0.0, 0.0}), re(half), im(half), scratch(2 * plan.scratch_size());
#pragma omp for schedule(static)
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t lanes = std::min<int64_t>(4, items - 4 * g);
      for (int64_t l = 0; l < 4; ++l) {
        if (l >= lanes) {
          for (int64_t j = w0; j < w1; ++j) buf[j][l] = 0.0;
          continue;
        }
        const int64_t it = 4 * g + l;
        const int64_t b = it / nf, f = it % nf;
        const T* row = x + b * n;
        const int64_t start = f * p.hop - p.pad_left;
        if (start + w0 >= 0 && start + w1 <= n) {
          for (int64_t j = w0; j < w1; ++j) buf[j][l] = static_cast<double>(row[start + j]) * window[j];
        } else {
          for (int64_t j = w0; j < w1; ++j) {
            const int64_t i = extend_index(start + j, n, p.pad);
            buf[j][l] = i < 0 ? 0.0 : static_cast<double>(row[i]) * window[j];
          }
        }
      }
      plan.forward4(buf.data(), re.data(), im.data(), scratch.data());
      int64_t base[4];
      for (int64_t l = 0; l < lanes; ++l) {
        const int64_t it = 4 * g + l;
        base[l] = (it / nf) * nb * nf + it % nf;
      }
      // Bin-major writes: the (up to) four frames of a bin are neighbours in the output.
      for (int64_t k = 0; k < nb; ++k) {
        // Negative frequencies of a real frame are the conjugates of the positive ones.
        const int64_t kk = k < half ? k : nfft - k;
        const double sgn = k < half ? 1.0 : -1.0;
        for (int64_t l = 0; l < lanes; ++l) {
          const double vr = re[kk][l], vi = sgn * im[kk][l];
          const int64_t o = base[l] + k * nf;
          switch (p.output) {
            case StftOutput::Complex:
              out_c[o] = std::complex<T>(static_cast<T>(vr), static_cast<T>(vi));
              break;
            case StftOutput::Magnitude:
              out_r[o] = static_cast<T>(std::sqrt(vr * vr + vi * vi));
              break;
            case StftOutput::Power:
              out_r[o] = static_cast<T>(vr * vr + vi * vi);
              break;
            case StftOutput::Decibel:
              out_r[o] = static_cast<T>(kDbPerLog * std::log(std::sqrt(vr * vr + vi * vi) + p.db_offset));
              break;
          }
        }
      }
    }
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
