#include "ecgcore/mfcc.hpp"

#include "ecgcore/detail/simd.hpp"
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <type_traits>
#include <stdexcept>
#include <string>

#include "ecgcore/detail/config.hpp"
#include "ecgcore/detail/lanes.hpp"
#include "ecgcore/detail/parallel.hpp"
#include "ecgcore/fft.hpp"

#pragma GCC diagnostic ignored "-Wpsabi"  // v4d values stay inside this unit

namespace ecgcore {
namespace {

using lanes::load_bc;
using lanes::log4;

constexpr double kPi = 3.14159265358979323846;
constexpr double kPowerDbPerLog = 4.3429448190325182765112891891661;  // 10 / ln(10)

double hz_to_mel(double f, bool htk) {
  if (htk) return 2595.0 * std::log10(1.0 + f / 700.0);
  const double f_sp = 200.0 / 3.0, min_log_hz = 1000.0, min_log_mel = min_log_hz / f_sp;
  const double logstep = std::log(6.4) / 27.0;
  return f >= min_log_hz ? min_log_mel + std::log(f / min_log_hz) / logstep : f / f_sp;
}

double mel_to_hz(double m, bool htk) {
  if (htk) return 700.0 * (std::pow(10.0, m / 2595.0) - 1.0);
  const double f_sp = 200.0 / 3.0, min_log_hz = 1000.0, min_log_mel = min_log_hz / f_sp;
  const double logstep = std::log(6.4) / 27.0;
  return m >= min_log_mel ? min_log_hz * std::exp(logstep * (m - min_log_mel)) : f_sp * m;
}

double kaldi_mel(double f) { return 1127.0 * std::log(1.0 + f / 700.0); }

// Solves the (P+1) x (P+1) normal equations of a polynomial least-squares fit at positions pos and returns
// the weights w such that the order-`deriv` derivative of the fit at t0 is sum_j w[j] * y[j].
std::vector<double> poly_derivative_weights(const std::vector<double>& pos, double t0, int poly, int deriv) {
  const int k = poly + 1;
  const auto w = static_cast<int64_t>(pos.size());
  std::vector<double> a(w * k);
  for (int64_t j = 0; j < w; ++j) {
    double v = 1.0;
    for (int c = 0; c < k; ++c) {
      a[j * k + c] = v;
      v *= pos[j] - t0;
    }
  }
  // M = A^T A, solve M Z = A^T (k x w) by Gauss-Jordan with partial pivoting.
  std::vector<double> m(k * k, 0.0), z(k * w, 0.0);
  for (int r = 0; r < k; ++r) {
    for (int c = 0; c < k; ++c)
      for (int64_t j = 0; j < w; ++j) m[r * k + c] += a[j * k + r] * a[j * k + c];
    for (int64_t j = 0; j < w; ++j) z[r * w + j] = a[j * k + r];
  }
  for (int col = 0; col < k; ++col) {
    int piv = col;
    for (int r = col + 1; r < k; ++r)
      if (std::fabs(m[r * k + col]) > std::fabs(m[piv * k + col])) piv = r;
    if (piv != col) {
      for (int c = 0; c < k; ++c) std::swap(m[col * k + c], m[piv * k + c]);
      for (int64_t j = 0; j < w; ++j) std::swap(z[col * w + j], z[piv * w + j]);
    }
    const double d = m[col * k + col];
    for (int r = 0; r < k; ++r) {
      if (r == col) continue;
      const double f = m[r * k + col] / d;
      if (f == 0.0) continue;
      for (int c = 0; c < k; ++c) m[r * k + c] -= f * m[col * k + c];
      for (int64_t j = 0; j < w; ++j) z[r * w + j] -= f * z[col * w + j];
    }
  }
  double fact = 1.0;
  for (int i = 2; i <= deriv; ++i) fact *= i;
  std::vector<double> out(w);
  for (int64_t j = 0; j < w; ++j) out[j] = fact * z[deriv * w + j] / m[deriv * k + deriv];
  return out;
}

void check(const MfccParams& p, int64_t n) {
  auto bad = [](const std::string& s) { throw std::invalid_argument(s); };
  if (!(p.fs > 0.0)) bad("fs must be positive");
  if (p.n_mels < 1) bad("n_mels must be positive");
  if (p.n_mfcc < 1 || p.n_mfcc > p.n_mels)
    bad("n_mfcc must be in 1..n_mels (" + std::to_string(p.n_mels) + "), got " + std::to_string(p.n_mfcc));
  if (p.delta_order < 0 || p.delta_order > 2) bad("delta order must be 0, 1 or 2");
  if (n < 1) bad("cannot compute MFCCs of an empty signal");
  if (p.mode == MfccMode::Librosa) {
    if (p.n_fft < 1 || p.hop < 1) bad("n_fft and hop must be positive");
    const int64_t wl = p.win_length > 0 ? p.win_length : p.n_fft;
    if (wl > p.n_fft) bad("win_length must not exceed n_fft");
    if (p.delta_order > 0 && (p.delta_width < 3 || p.delta_width % 2 == 0))
      bad("delta width must be an odd integer >= 3, got " + std::to_string(p.delta_width));
  } else {
    if (p.frame_length < 2 || p.frame_shift < 1) bad("frame length must be >= 2 samples and frame shift >= 1");
    if (p.delta_order > 0 && p.delta_width < 3) bad("delta window must be >= 3");
  }
}

double nyquist_high(const MfccParams& p) {
  const double nyq = p.fs / 2.0;
  if (p.mode == MfccMode::Kaldi) return p.fmax <= 0.0 ? nyq + p.fmax : p.fmax;
  return p.fmax <= 0.0 ? nyq : p.fmax;
}

int64_t kaldi_padded(const MfccParams& p) {
  if (!p.round_pow2) return p.frame_length;
  int64_t v = 1;
  while (v < p.frame_length) v *= 2;
  return v;
}

}  // namespace

std::vector<double> mel_filterbank_librosa(double fs, int64_t n_fft, int64_t n_mels, double fmin, double fmax,
                                           bool htk) {
  const int64_t nb = n_fft / 2 + 1;
  if (fmax <= 0.0) fmax = fs / 2.0;
  std::vector<double> mel_f(n_mels + 2);
  const double lo = hz_to_mel(fmin, htk), hi = hz_to_mel(fmax, htk);
  for (int64_t i = 0; i < n_mels + 2; ++i) {
    // numpy.linspace(lo, hi, n_mels + 2)
    const double step = (hi - lo) / static_cast<double>(n_mels + 1);
    const double m = i == n_mels + 1 ? hi : static_cast<double>(i) * step + lo;
    mel_f[i] = mel_to_hz(m, htk);
  }
  std::vector<double> w(n_mels * nb, 0.0);
  for (int64_t i = 0; i < n_mels; ++i) {
    const double d0 = mel_f[i + 1] - mel_f[i], d1 = mel_f[i + 2] - mel_f[i + 1];
    const double enorm = 2.0 / (mel_f[i + 2] - mel_f[i]);  // Slaney area normalisation
    for (int64_t k = 0; k < nb; ++k) {
      const double f = static_cast<double>(k) * fs / static_cast<double>(n_fft);
      const double lower = -(mel_f[i] - f) / d0;
      const double upper = (mel_f[i + 2] - f) / d1;
      w[i * nb + k] = std::max(0.0, std::min(lower, upper)) * enorm;
    }
  }
  return w;
}

std::vector<double> mel_filterbank_kaldi(double fs, int64_t padded_length, int64_t n_mels, double low, double high) {
  const int64_t nfb = padded_length / 2, nb = nfb + 1;
  const double bin_width = fs / static_cast<double>(padded_length);
  const double mlo = kaldi_mel(low), mhi = kaldi_mel(high);
  const double delta = (mhi - mlo) / static_cast<double>(n_mels + 1);
  std::vector<double> w(n_mels * nb, 0.0);
  for (int64_t b = 0; b < n_mels; ++b) {
    const double left = mlo + static_cast<double>(b) * delta, center = mlo + static_cast<double>(b + 1) * delta,
                 right = mlo + static_cast<double>(b + 2) * delta;
    for (int64_t k = 0; k < nfb; ++k) {  // the Nyquist bin keeps weight 0, as in Kaldi
      const double mel = kaldi_mel(bin_width * static_cast<double>(k));
      const double up = (mel - left) / (center - left), down = (right - mel) / (right - center);
      w[b * nb + k] = std::max(0.0, std::min(up, down));
    }
  }
  return w;
}

namespace {

// Value-generic delta filters: V is double (one signal) or v4d (four signals, one per lane); the arithmetic
// of each lane is that of the scalar loop, so results do not depend on how signals are grouped.
template <class V>
ECGCORE_INLINE V splat(double w) {
  if constexpr (std::is_same_v<V, double>) return w;
  else return V{w, w, w, w};
}

template <class V>
ECGCORE_INLINE void kaldi_delta_rows(const V* data, int64_t rows, int64_t n, int64_t width, V* out) {
  const int64_t h = (width - 1) / 2;
  const V inv = splat<V>(3.0 / static_cast<double>(h * (h + 1) * (2 * h + 1)));
  for (int64_t r = 0; r < rows; ++r) {
    const V* d = data + r * n;
    for (int64_t t = 0; t < n; ++t) {
      // Symmetric pairs, so a constant sequence (e.g. a single frame) gives exactly 0.
      V acc = splat<V>(0.0);
      for (int64_t k = 1; k <= h; ++k)
        acc += splat<V>(static_cast<double>(k)) *
               (d[std::clamp<int64_t>(t + k, 0, n - 1)] - d[std::clamp<int64_t>(t - k, 0, n - 1)]);
      out[r * n + t] = acc * inv;
    }
  }
}

// Savitzky-Golay derivative weights for librosa.feature.delta(width, order, mode="interp"): the centre
// window's weights and, at each of the h = width / 2 edge positions, those of the polynomial fitted to the
// first / last window.
struct SavgolWeights {
  int64_t width = 0;
  std::vector<double> centre, left, right;  // [width], [h * width], [h * width]
};

SavgolWeights savgol_weights(int64_t width, int order) {
  const int64_t h = width / 2;
  std::vector<double> pos(width);
  for (int64_t j = 0; j < width; ++j) pos[j] = static_cast<double>(j);
  SavgolWeights w;
  w.width = width;
  w.centre = poly_derivative_weights(pos, static_cast<double>(h), order, order);
  for (int64_t t = 0; t < h; ++t) {
    const auto l = poly_derivative_weights(pos, static_cast<double>(t), order, order);
    const auto r = poly_derivative_weights(pos, static_cast<double>(width - h + t), order, order);
    w.left.insert(w.left.end(), l.begin(), l.end());
    w.right.insert(w.right.end(), r.begin(), r.end());
  }
  return w;
}

template <class V>
ECGCORE_INLINE void savgol_rows(const SavgolWeights& w, const V* data, int64_t rows, int64_t n, V* out) {
  const int64_t width = w.width, h = width / 2;
  for (int64_t r = 0; r < rows; ++r) {
    const V* d = data + r * n;
    V* o = out + r * n;
    for (int64_t t = 0; t < n; ++t) {
      const double* wts;
      int64_t start;
      if (t < h) {
        wts = w.left.data() + t * width;
        start = 0;
      } else if (t >= n - h) {
        wts = w.right.data() + (t - (n - h)) * width;
        start = n - width;
      } else {
        wts = w.centre.data();
        start = t - h;
      }
      V acc = splat<V>(0.0);
      for (int64_t j = 0; j < width; ++j) acc += splat<V>(wts[j]) * d[start + j];
      o[t] = acc;
    }
  }
}

}  // namespace

void kaldi_delta(const double* data, int64_t rows, int64_t n, int64_t width, double* out) {
  if (width < 3) throw std::invalid_argument("delta window must be >= 3, got " + std::to_string(width));
  kaldi_delta_rows<double>(data, rows, n, width, out);
}

void savgol_delta(const double* data, int64_t rows, int64_t n, int64_t width, int order, double* out) {
  if (width > n)
    throw std::invalid_argument("delta width " + std::to_string(width) + " exceeds the number of frames (" +
                                std::to_string(n) + "); use a smaller width or longer signals");
  savgol_rows<double>(savgol_weights(width, order), data, rows, n, out);
}

int64_t mfcc_rows(const MfccParams& p) { return p.n_mfcc * (1 + p.delta_order); }

int64_t mfcc_frames(const MfccParams& p, int64_t n) {
  if (p.mode == MfccMode::Librosa) {
    const int64_t ext = p.center ? n + 2 * (p.n_fft / 2) : n;
    return ext < p.n_fft ? 0 : 1 + (ext - p.n_fft) / p.hop;
  }
  return n < p.frame_length ? 0 : 1 + (n - p.frame_length) / p.frame_shift;  // snip_edges=True
}

namespace {

// Everything a window needs, computed once per call and shared by the threads.
struct MfccPlan {
  bool kaldi = false;
  int64_t n = 0, nf = 0, nfft = 0, nb = 0, flen = 0, step = 0, pad = 0, ext = 0;
  int64_t nm = 0, nmel = 0, rows = 0, delta_order = 0, delta_width = 0;
  double top_db = -1.0, preemphasis = 0.0;
  bool remove_dc = false;
  std::vector<double> fb;          // [nmel, nb]
  std::vector<int64_t> b0, b1;     // non-zero span of each mel band
  std::vector<double> win;         // [flen] (inside the FFT buffer)
  std::vector<double> dct;         // [nm, nmel], lifter folded in
  SavgolWeights d1, d2;            // librosa deltas
  std::unique_ptr<RealFftPlan> fft;
};

// Per-thread buffers, one v4d per (value, window lane).
struct MfccWork {
  LaneBuffer sig, buf, re, im, pw, mel, ceps, scratch;
  explicit MfccWork(const MfccPlan& P)
      : sig(P.ext), buf(P.nfft, v4d{0.0, 0.0, 0.0, 0.0}), re(P.nb), im(P.nb), pw(P.nb), mel(P.nmel * P.nf),
        ceps(P.rows * P.nf), scratch(2 * P.fft->scratch_size()) {}
};


// MFCCs of four windows at once (w.sig holds them, one per lane, already zero-padded) into w.ceps
// [rows, nf]. Every stage works lane by lane, so a window's result does not depend on its neighbours.
ECGCORE_MULTIVERSION(void, mfcc_lanes, (const MfccPlan& P, MfccWork& w), (P, w), {
  const int64_t nf = P.nf, nb = P.nb, nmel = P.nmel, flen = P.flen;
  const v4d zero = {0.0, 0.0, 0.0, 0.0};
  const double* win = P.win.data();
  v4d* buf = w.buf.data();
  for (int64_t f = 0; f < nf; ++f) {
    const v4d* src = w.sig.data() + f * P.step;
    if (P.kaldi) {
      v4d mean = zero;
      if (P.remove_dc) {
        for (int64_t j = 0; j < flen; ++j) mean += src[j];
        mean /= splat<v4d>(static_cast<double>(flen));
      }
      // Pre-emphasis with the first sample replicated: y[j] = x[j] - c * x[max(j - 1, 0)].
      const v4d c = splat<v4d>(P.preemphasis);
      v4d prev = src[0] - mean;
      for (int64_t j = 0; j < flen; ++j) {
        const v4d cur = src[j] - mean;
        buf[j] = (cur - c * prev) * splat<v4d>(win[j]);
        prev = cur;
      }
      P.fft->forward4(buf, w.re.data(), w.im.data(), w.scratch.data());
    } else {
      P.fft->forward4(src, win, w.re.data(), w.im.data(), w.scratch.data());  // window applied on the way in
    }
    for (int64_t k = 0; k < nb; ++k) w.pw[k] = w.re[k] * w.re[k] + w.im[k] * w.im[k];
    for (int64_t m = 0; m < nmel; ++m) {
      v4d acc = zero;
      const double* fw = P.fb.data() + m * nb;
      for (int64_t k = P.b0[m]; k < P.b1[m]; ++k) acc += splat<v4d>(fw[k]) * w.pw[k];
      w.mel[m * nf + f] = acc;
    }
  }
  v4d* mel = w.mel.data();
  const int64_t total = nmel * nf;
  if (P.kaldi) {
    const v4d floor = splat<v4d>(static_cast<double>(std::numeric_limits<float>::epsilon()));  // torch's eps
    for (int64_t i = 0; i < total; ++i) mel[i] = log4(mel[i] < floor ? floor : mel[i]);  // std::max(mel, eps)
  } else {
    // power_to_db(ref=1, amin=1e-10, top_db): the floor is relative to this window's maximum.
    const v4d amin = splat<v4d>(1e-10), db = splat<v4d>(kPowerDbPerLog);
    v4d top = splat<v4d>(-std::numeric_limits<double>::infinity());
    for (int64_t i = 0; i < total; ++i) {
      mel[i] = db * log4(amin < mel[i] ? mel[i] : amin);  // std::max(1e-10, mel): NaN -> 1e-10, as before
      top = top < mel[i] ? mel[i] : top;  // std::max, lane by lane
    }
    if (P.top_db >= 0.0) {
      const v4d lo = top - splat<v4d>(P.top_db);
      for (int64_t i = 0; i < total; ++i) mel[i] = mel[i] < lo ? lo : mel[i];
    }
  }
  v4d* ceps = w.ceps.data();
  // DCT with eight frames' sums held in registers across the mel bands (same summation order per value).
  for (int64_t k = 0; k < P.nm; ++k) {
    v4d* c = ceps + k * nf;
    const double* d = P.dct.data() + k * nmel;
    int64_t f = 0;
    for (; f + 8 <= nf; f += 8) {
      v4d acc[8] = {zero, zero, zero, zero, zero, zero, zero, zero};
      for (int64_t j = 0; j < nmel; ++j) {
        const v4d dj = load_bc(d + j);
        const v4d* mr = mel + j * nf + f;
        for (int u = 0; u < 8; ++u) acc[u] += dj * mr[u];
      }
      for (int u = 0; u < 8; ++u) c[f + u] = acc[u];
    }
    for (; f < nf; ++f) {
      v4d acc = zero;
      for (int64_t j = 0; j < nmel; ++j) acc += load_bc(d + j) * mel[j * nf + f];
      c[f] = acc;
    }
  }
  const int64_t nm = P.nm;
  if (P.delta_order >= 1) {
    if (P.kaldi) {
      kaldi_delta_rows<v4d>(ceps, nm, nf, P.delta_width, ceps + nm * nf);
      if (P.delta_order == 2) kaldi_delta_rows<v4d>(ceps + nm * nf, nm, nf, P.delta_width, ceps + 2 * nm * nf);
    } else {
      savgol_rows<v4d>(P.d1, ceps, nm, nf, ceps + nm * nf);
      if (P.delta_order == 2) savgol_rows<v4d>(P.d2, ceps, nm, nf, ceps + 2 * nm * nf);
    }
  }
})

}  // namespace

template <class T>
void mfcc(const T* x, int64_t batch, int64_t n, const MfccParams& p, T* out, int n_threads) {
  check(p, n);
  MfccPlan P;
  P.kaldi = p.mode == MfccMode::Kaldi;
  const bool kaldi = P.kaldi;
  P.n = n;
  P.nf = mfcc_frames(p, n);
  const int64_t nf = P.nf;
  if (nf < 1)
    throw std::invalid_argument("signal of " + std::to_string(n) + " samples is shorter than one MFCC frame");
  if (!kaldi && p.delta_order > 0 && p.delta_width > nf)
    throw std::invalid_argument("delta width " + std::to_string(p.delta_width) + " exceeds the number of frames (" +
                                std::to_string(nf) + ")");
  const double high = nyquist_high(p);
  const double low = p.fmin;
  if (!(high > low) || high > p.fs / 2.0 + 1e-9 || low < 0.0)
    throw std::invalid_argument("mel band edges must satisfy 0 <= fmin < fmax <= fs / 2");
  P.nfft = kaldi ? kaldi_padded(p) : p.n_fft;
  P.nb = P.nfft / 2 + 1;
  P.flen = kaldi ? p.frame_length : P.nfft;
  P.step = kaldi ? p.frame_shift : p.hop;
  P.pad = (!kaldi && p.center) ? p.n_fft / 2 : 0;
  // Samples the frames read: the signal, its centre padding and (librosa, no centring) nothing past the end.
  P.ext = std::max(n + 2 * P.pad, (nf - 1) * P.step + P.flen);
  P.nm = p.n_mfcc;
  P.nmel = p.n_mels;
  P.rows = mfcc_rows(p);
  P.delta_order = p.delta_order;
  P.delta_width = p.delta_width;
  P.top_db = p.top_db;
  P.preemphasis = p.preemphasis;
  P.remove_dc = p.remove_dc;
  const int64_t nb = P.nb, nmel = P.nmel, nm = P.nm;
  P.fb = kaldi ? mel_filterbank_kaldi(p.fs, P.nfft, nmel, low, high)
               : mel_filterbank_librosa(p.fs, P.nfft, nmel, low, high, p.htk);
  P.b0.resize(nmel);
  P.b1.resize(nmel);
  for (int64_t m = 0; m < nmel; ++m) {
    int64_t a = 0, b = nb;
    while (a < nb && P.fb[m * nb + a] == 0.0) ++a;
    while (b > a && P.fb[m * nb + b - 1] == 0.0) --b;
    P.b0[m] = a;
    P.b1[m] = b;
  }
  P.win.assign(P.flen, 0.0);
  if (kaldi) {
    const int64_t flen = P.flen;
    for (int64_t j = 0; j < flen; ++j)  // Povey: symmetric Hann to the power 0.85
      P.win[j] = std::pow(0.5 - 0.5 * std::cos(2.0 * kPi * static_cast<double>(j) / static_cast<double>(flen - 1)), 0.85);
  } else {
    const int64_t wl = p.win_length > 0 ? p.win_length : p.n_fft;
    const int64_t left = (p.n_fft - wl) / 2;
    for (int64_t j = 0; j < wl; ++j)  // periodic Hann, centred in n_fft (librosa.filters.get_window + pad_center)
      P.win[left + j] = 0.5 - 0.5 * std::cos(2.0 * kPi * static_cast<double>(j) / static_cast<double>(wl));
  }
  // DCT-II (orthonormal) rows, with the lifter folded in.
  P.dct.resize(nm * nmel);
  for (int64_t k = 0; k < nm; ++k) {
    double lift = 1.0;
    if (p.lifter > 0.0) {
      lift = kaldi ? 1.0 + 0.5 * p.lifter * std::sin(kPi * static_cast<double>(k) / p.lifter)
                   : 1.0 + (p.lifter / 2.0) * std::sin(kPi * static_cast<double>(k + 1) / p.lifter);
    }
    const double norm = k == 0 ? std::sqrt(1.0 / static_cast<double>(nmel)) : std::sqrt(2.0 / static_cast<double>(nmel));
    for (int64_t j = 0; j < nmel; ++j)
      P.dct[k * nmel + j] =
          lift * norm * std::cos(kPi / static_cast<double>(nmel) * (static_cast<double>(j) + 0.5) * static_cast<double>(k));
  }
  if (!kaldi && p.delta_order >= 1) P.d1 = savgol_weights(p.delta_width, 1);
  if (!kaldi && p.delta_order >= 2) P.d2 = savgol_weights(p.delta_width, 2);
  P.fft = std::make_unique<RealFftPlan>(P.nfft);

  const int64_t rows = P.rows, pad = P.pad, ext = P.ext;
  const int64_t groups = (batch + 3) / 4;  // four windows per pass, one per SIMD lane
  const int threads = resolve_threads(n_threads, groups);
#pragma omp parallel num_threads(threads)
  {
    MfccWork w(P);
    // Dynamic: on a shared machine a thread that gets less CPU takes fewer groups.
#pragma omp for schedule(dynamic, 1)
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t lanes = std::min<int64_t>(4, batch - 4 * g);
      const T* rows_in[4];
      for (int64_t l = 0; l < 4; ++l) rows_in[l] = x + (4 * g + std::min(l, lanes - 1)) * n;  // idle lanes repeat
      v4d* sig = w.sig.data();
      for (int64_t i = 0; i < pad; ++i) sig[i] = v4d{0.0, 0.0, 0.0, 0.0};
      for (int64_t i = 0; i < n; ++i)
        sig[pad + i] = v4d{static_cast<double>(rows_in[0][i]), static_cast<double>(rows_in[1][i]),
                           static_cast<double>(rows_in[2][i]), static_cast<double>(rows_in[3][i])};
      for (int64_t i = pad + n; i < ext; ++i) sig[i] = v4d{0.0, 0.0, 0.0, 0.0};
      mfcc_lanes(P, w);
      for (int64_t l = 0; l < lanes; ++l) {
        T* o = out + (4 * g + l) * rows * nf;
        const v4d* c = w.ceps.data();
        for (int64_t i = 0; i < rows * nf; ++i) o[i] = static_cast<T>(c[i][l]);
      }
    }
  }
}

template void mfcc<float>(const float*, int64_t, int64_t, const MfccParams&, float*, int);
template void mfcc<double>(const double*, int64_t, int64_t, const MfccParams&, double*, int);

}  // namespace ecgcore
