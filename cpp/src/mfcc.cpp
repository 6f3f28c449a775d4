#include "ecgcore/mfcc.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "ecgcore/fft.hpp"
#include "ecgcore/parallel.hpp"

namespace ecgcore {
namespace {

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

void kaldi_delta(const double* data, int64_t rows, int64_t n, int64_t width, double* out) {
  if (width < 3) throw std::invalid_argument("delta window must be >= 3, got " + std::to_string(width));
  const int64_t h = (width - 1) / 2;
  const double denom = static_cast<double>(h * (h + 1) * (2 * h + 1)) / 3.0;
  for (int64_t r = 0; r < rows; ++r) {
    const double* d = data + r * n;
    for (int64_t t = 0; t < n; ++t) {
      // Symmetric pairs, so a constant sequence (e.g. a single frame) gives exactly 0.
      double acc = 0.0;
      for (int64_t k = 1; k <= h; ++k)
        acc += static_cast<double>(k) *
               (d[std::clamp<int64_t>(t + k, 0, n - 1)] - d[std::clamp<int64_t>(t - k, 0, n - 1)]);
      out[r * n + t] = acc / denom;
    }
  }
}

void savgol_delta(const double* data, int64_t rows, int64_t n, int64_t width, int order, double* out) {
  if (width > n)
    throw std::invalid_argument("delta width " + std::to_string(width) + " exceeds the number of frames (" +
                                std::to_string(n) + "); use a smaller width or longer signals");
  const int64_t h = width / 2;
  std::vector<double> pos(width);
  for (int64_t j = 0; j < width; ++j) pos[j] = static_cast<double>(j);
  const auto centre = poly_derivative_weights(pos, static_cast<double>(h), order, order);
  // Edges ("interp"): the polynomial fitted to the first / last window, evaluated at each edge position.
  std::vector<std::vector<double>> left(h), right(h);
  for (int64_t t = 0; t < h; ++t) {
    left[t] = poly_derivative_weights(pos, static_cast<double>(t), order, order);
    right[t] = poly_derivative_weights(pos, static_cast<double>(width - h + t), order, order);
  }
  for (int64_t r = 0; r < rows; ++r) {
    const double* d = data + r * n;
    double* o = out + r * n;
    for (int64_t t = 0; t < n; ++t) {
      const std::vector<double>* wts;
      int64_t start;
      if (t < h) {
        wts = &left[t];
        start = 0;
      } else if (t >= n - h) {
        wts = &right[t - (n - h)];
        start = n - width;
      } else {
        wts = &centre;
        start = t - h;
      }
      double acc = 0.0;
      for (int64_t j = 0; j < width; ++j) acc += (*wts)[j] * d[start + j];
      o[t] = acc;
    }
  }
}

int64_t mfcc_rows(const MfccParams& p) { return p.n_mfcc * (1 + p.delta_order); }

int64_t mfcc_frames(const MfccParams& p, int64_t n) {
  if (p.mode == MfccMode::Librosa) {
    const int64_t ext = p.center ? n + 2 * (p.n_fft / 2) : n;
    return ext < p.n_fft ? 0 : 1 + (ext - p.n_fft) / p.hop;
  }
  return n < p.frame_length ? 0 : 1 + (n - p.frame_length) / p.frame_shift;  // snip_edges=True
}

template <class T>
void mfcc(const T* x, int64_t batch, int64_t n, const MfccParams& p, T* out, int n_threads) {
  check(p, n);
  const bool kaldi = p.mode == MfccMode::Kaldi;
  const int64_t nf = mfcc_frames(p, n);
  if (nf < 1)
    throw std::invalid_argument("signal of " + std::to_string(n) + " samples is shorter than one MFCC frame");
  if (!kaldi && p.delta_order > 0 && p.delta_width > nf)
    throw std::invalid_argument("delta width " + std::to_string(p.delta_width) + " exceeds the number of frames (" +
                                std::to_string(nf) + ")");
  const double high = nyquist_high(p);
  const double low = p.fmin;
  if (!(high > low) || high > p.fs / 2.0 + 1e-9 || low < 0.0)
    throw std::invalid_argument("mel band edges must satisfy 0 <= fmin < fmax <= fs / 2");
  const int64_t nfft = kaldi ? kaldi_padded(p) : p.n_fft;
  const int64_t nb = nfft / 2 + 1;
  const int64_t flen = kaldi ? p.frame_length : nfft;
  const std::vector<double> fb = kaldi ? mel_filterbank_kaldi(p.fs, nfft, p.n_mels, low, high)
                                       : mel_filterbank_librosa(p.fs, nfft, p.n_mels, low, high, p.htk);
  // Non-zero span of each mel band, so the mel products skip the zeros.
  std::vector<int64_t> b0(p.n_mels), b1(p.n_mels);
  for (int64_t m = 0; m < p.n_mels; ++m) {
    int64_t a = 0, b = nb;
    while (a < nb && fb[m * nb + a] == 0.0) ++a;
    while (b > a && fb[m * nb + b - 1] == 0.0) --b;
    b0[m] = a;
    b1[m] = b;
  }
  // Window inside the FFT buffer.
  std::vector<double> win(flen, 0.0);
  if (kaldi) {
    for (int64_t j = 0; j < flen; ++j)  // Povey: symmetric Hann to the power 0.85
      win[j] = std::pow(0.5 - 0.5 * std::cos(2.0 * kPi * static_cast<double>(j) / static_cast<double>(flen - 1)), 0.85);
  } else {
    const int64_t wl = p.win_length > 0 ? p.win_length : p.n_fft;
    const int64_t left = (p.n_fft - wl) / 2;
    for (int64_t j = 0; j < wl; ++j)  // periodic Hann, centred in n_fft (librosa.filters.get_window + pad_center)
      win[left + j] = 0.5 - 0.5 * std::cos(2.0 * kPi * static_cast<double>(j) / static_cast<double>(wl));
  }
  // DCT-II (orthonormal) rows, with the lifter folded in.
  const int64_t nm = p.n_mfcc, nmel = p.n_mels;
  std::vector<double> dct(nm * nmel);
  for (int64_t k = 0; k < nm; ++k) {
    double lift = 1.0;
    if (p.lifter > 0.0) {
      lift = kaldi ? 1.0 + 0.5 * p.lifter * std::sin(kPi * static_cast<double>(k) / p.lifter)
                   : 1.0 + (p.lifter / 2.0) * std::sin(kPi * static_cast<double>(k + 1) / p.lifter);
    }
    const double norm = k == 0 ? std::sqrt(1.0 / static_cast<double>(nmel)) : std::sqrt(2.0 / static_cast<double>(nmel));
    for (int64_t j = 0; j < nmel; ++j)
      dct[k * nmel + j] =
          lift * norm * std::cos(kPi / static_cast<double>(nmel) * (static_cast<double>(j) + 0.5) * static_cast<double>(k));
  }
  const int64_t rows = mfcc_rows(p);
  const int64_t pad = (!kaldi && p.center) ? p.n_fft / 2 : 0;
  const double log_floor = static_cast<double>(std::numeric_limits<float>::epsilon());  // torch.finfo(float32).eps
  RealFftPlan plan(nfft);
  const int threads = resolve_threads(n_threads, batch);
#pragma omp parallel num_threads(threads)
  {
    LaneBuffer buf(nfft), re(nb), im(nb), pw(nb), scratch(2 * plan.scratch_size());
    std::vector<double> frame(flen), mel(nmel * nf), ceps(rows * nf);
#pragma omp for schedule(static)
    for (int64_t b = 0; b < batch; ++b) {
      const T* row = x + b * n;
      for (int64_t f0 = 0; f0 < nf; f0 += 4) {
        const int64_t lanes = std::min<int64_t>(4, nf - f0);
        for (int64_t j = 0; j < nfft; ++j) buf[j] = v4d{0.0, 0.0, 0.0, 0.0};
        for (int64_t l = 0; l < lanes; ++l) {
          const int64_t f = f0 + l;
          if (kaldi) {
            const int64_t s = f * p.frame_shift;
            double mean = 0.0;
            for (int64_t j = 0; j < flen; ++j) frame[j] = static_cast<double>(row[s + j]);
            if (p.remove_dc) {
              for (int64_t j = 0; j < flen; ++j) mean += frame[j];
              mean /= static_cast<double>(flen);
              for (int64_t j = 0; j < flen; ++j) frame[j] -= mean;
            }
            // Pre-emphasis with the first sample replicated: y[j] = x[j] - c * x[max(j - 1, 0)].
            for (int64_t j = flen - 1; j >= 1; --j) frame[j] -= p.preemphasis * frame[j - 1];
            frame[0] -= p.preemphasis * frame[0];
            for (int64_t j = 0; j < flen; ++j) buf[j][l] = frame[j] * win[j];
          } else {
            const int64_t s = f * p.hop - pad;
            if (s >= 0 && s + flen <= n) {  // interior frames: no bounds checks
              const T* src = row + s;
              for (int64_t j = 0; j < flen; ++j) buf[j][l] = static_cast<double>(src[j]) * win[j];
            } else {
              for (int64_t j = 0; j < flen; ++j) {
                const int64_t i = s + j;
                buf[j][l] = (i >= 0 && i < n) ? static_cast<double>(row[i]) * win[j] : 0.0;
              }
            }
          }
        }
        plan.forward4(buf.data(), re.data(), im.data(), scratch.data());
        // Power and mel products on all 4 frames at once (one vector lane per frame); each lane's sums run
        // in the same order as a scalar loop would, so results do not depend on how frames are grouped.
        for (int64_t k = 0; k < nb; ++k) pw[k] = re[k] * re[k] + im[k] * im[k];
        for (int64_t m = 0; m < nmel; ++m) {
          v4d acc = {0.0, 0.0, 0.0, 0.0};
          const double* w = fb.data() + m * nb;
          for (int64_t k = b0[m]; k < b1[m]; ++k) acc += w[k] * pw[k];
          for (int64_t l = 0; l < lanes; ++l) mel[m * nf + f0 + l] = acc[l];
        }
      }
      if (kaldi) {
        for (int64_t i = 0; i < nmel * nf; ++i) mel[i] = std::log(std::max(mel[i], log_floor));
      } else {
        // power_to_db(ref=1, amin=1e-10, top_db): the floor is relative to this row's maximum.
        double top = -std::numeric_limits<double>::infinity();
        for (int64_t i = 0; i < nmel * nf; ++i) {
          mel[i] = kPowerDbPerLog * std::log(std::max(1e-10, mel[i]));  // 10 log10, via the faster log
          top = std::max(top, mel[i]);
        }
        if (p.top_db >= 0.0)
          for (int64_t i = 0; i < nmel * nf; ++i) mel[i] = std::max(mel[i], top - p.top_db);
      }
      for (int64_t k = 0; k < nm; ++k) {
        double* c = ceps.data() + k * nf;
        for (int64_t f = 0; f < nf; ++f) c[f] = 0.0;
        for (int64_t j = 0; j < nmel; ++j) {
          const double w = dct[k * nmel + j];
          const double* mr = mel.data() + j * nf;
          for (int64_t f = 0; f < nf; ++f) c[f] += w * mr[f];
        }
      }
      if (p.delta_order >= 1) {
        if (kaldi) {
          kaldi_delta(ceps.data(), nm, nf, p.delta_width, ceps.data() + nm * nf);
          if (p.delta_order == 2) kaldi_delta(ceps.data() + nm * nf, nm, nf, p.delta_width, ceps.data() + 2 * nm * nf);
        } else {
          savgol_delta(ceps.data(), nm, nf, p.delta_width, 1, ceps.data() + nm * nf);
          if (p.delta_order == 2) savgol_delta(ceps.data(), nm, nf, p.delta_width, 2, ceps.data() + 2 * nm * nf);
        }
      }
      T* o = out + b * rows * nf;
      for (int64_t i = 0; i < rows * nf; ++i) o[i] = static_cast<T>(ceps[i]);
    }
  }
}

template void mfcc<float>(const float*, int64_t, int64_t, const MfccParams&, float*, int);
template void mfcc<double>(const double*, int64_t, int64_t, const MfccParams&, double*, int);

}  // namespace ecgcore
