#include "ecgcore/fft.hpp"

#include <omp.h>

#include <cmath>
#include <stdexcept>
#include <string>

#include "ecgcore/parallel.hpp"

namespace ecgcore {
namespace {

constexpr double kPi = 3.14159265358979323846;
// Largest prime factor handled by a generic O(p^2) butterfly; larger ones go through Bluestein.
constexpr int64_t kMaxGenericRadix = 61;

// std::complex's operator* checks for NaN/inf (a libgcc call) unless -ffast-math; these stay inline.
inline cplx mul(cplx a, cplx b) {
  return {a.real() * b.real() - a.imag() * b.imag(), a.real() * b.imag() + a.imag() * b.real()};
}
inline cplx mulc(cplx a, cplx b) {  // a * conj(b)
  return {a.real() * b.real() + a.imag() * b.imag(), a.imag() * b.real() - a.real() * b.imag()};
}
inline cplx tw_mul(cplx a, cplx w, bool inverse) { return inverse ? mulc(a, w) : mul(a, w); }

std::vector<int64_t> factorize(int64_t n) {
  std::vector<int64_t> f;
  while (n % 4 == 0) { f.push_back(4); n /= 4; }
  while (n % 2 == 0) { f.push_back(2); n /= 2; }
  for (int64_t p = 3; p * p <= n; p += 2)
    while (n % p == 0) { f.push_back(p); n /= p; }
  if (n > 1) f.push_back(n);
  return f;
}

std::vector<cplx> unit_roots(int64_t n) {
  std::vector<cplx> w(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j) {
    const double a = -2.0 * kPi * static_cast<double>(j) / static_cast<double>(n);
    w[j] = {std::cos(a), std::sin(a)};
  }
  return w;
}

}  // namespace

FftPlan::FftPlan(int64_t n) : n_(n) {
  if (n < 1) throw std::invalid_argument("FFT length must be positive, got " + std::to_string(n));
  factors_ = factorize(n);
  int64_t largest = 1;
  for (auto p : factors_) largest = std::max(largest, p);
  if (largest > kMaxGenericRadix) {
    bluestein_ = true;
    m_ = 1;
    while (m_ < 2 * n - 1) m_ *= 2;
    chirp_.resize(n);
    for (int64_t j = 0; j < n; ++j) {
      // j^2 mod 2n keeps the angle small so that long transforms stay accurate.
      const int64_t jj = (j * j) % (2 * n);
      const double a = -kPi * static_cast<double>(jj) / static_cast<double>(n);
      chirp_[j] = {std::cos(a), std::sin(a)};
    }
    sub_ = std::make_unique<FftPlan>(m_);
    std::vector<cplx> b(m_, cplx(0.0, 0.0));
    b[0] = std::conj(chirp_[0]);
    for (int64_t j = 1; j < n; ++j) b[j] = b[m_ - j] = std::conj(chirp_[j]);
    chirp_fft_.resize(m_);
    sub_->forward(b.data(), chirp_fft_.data(), nullptr);
  } else {
    tw_ = unit_roots(n);
  }
}

FftPlan::~FftPlan() = default;

int64_t FftPlan::scratch_size() const { return bluestein_ ? 2 * m_ + sub_->scratch_size() : 0; }

void FftPlan::transform(const cplx* in, cplx* out, cplx* scratch, bool inverse) const {
  if (!bluestein_) {
    mixed_radix(in, out, inverse);
    return;
  }
  // Inverse DFT = conj(DFT(conj(x))): conjugate on the way in and out.
  cplx* a = scratch;
  cplx* fa = scratch + m_;
  for (int64_t j = 0; j < n_; ++j) a[j] = mul(inverse ? std::conj(in[j]) : in[j], chirp_[j]);
  for (int64_t j = n_; j < m_; ++j) a[j] = 0.0;
  sub_->forward(a, fa, nullptr);
  for (int64_t j = 0; j < m_; ++j) fa[j] = mul(fa[j], chirp_fft_[j]);
  sub_->inverse(fa, a, nullptr);
  const double s = 1.0 / static_cast<double>(m_);
  for (int64_t k = 0; k < n_; ++k) {
    cplx v = mul(a[k], chirp_[k]) * s;
    out[k] = inverse ? std::conj(v) : v;
  }
}

void FftPlan::mixed_radix(const cplx* in, cplx* out, bool inverse) const {
  if (n_ == 1) {
    out[0] = in[0];
    return;
  }
  recurse(out, in, 1, 0, inverse);
}

// Decimation in time: the p interleaved sub-sequences (input stride fstride * p) are transformed into
// p consecutive blocks of m outputs, then combined by one radix-p pass.
void FftPlan::recurse(cplx* out, const cplx* in, int64_t fstride, int64_t level, bool inverse) const {
  const int64_t p = factors_[level];
  const int64_t len = n_ / fstride;
  const int64_t m = len / p;
  if (m == 1) {
    for (int64_t q = 0; q < p; ++q) out[q] = in[q * fstride];
  } else {
    for (int64_t q = 0; q < p; ++q) recurse(out + q * m, in + q * fstride, fstride * p, level + 1, inverse);
  }
  pass(out, fstride, p, m, inverse);
}

void FftPlan::pass(cplx* out, int64_t fstride, int64_t p, int64_t m, bool inverse) const {
  const cplx* tw = tw_.data();
  if (p == 2) {
    for (int64_t k = 0; k < m; ++k) {
      const cplx a = out[k];
      const cplx b = tw_mul(out[k + m], tw[k * fstride], inverse);
      out[k] = a + b;
      out[k + m] = a - b;
    }
  } else if (p == 4) {
    for (int64_t k = 0; k < m; ++k) {
      const cplx t0 = out[k];
      const cplx t1 = tw_mul(out[k + m], tw[k * fstride], inverse);
      const cplx t2 = tw_mul(out[k + 2 * m], tw[2 * k * fstride], inverse);
      const cplx t3 = tw_mul(out[k + 3 * m], tw[3 * k * fstride], inverse);
      const cplx s02 = t0 + t2, d02 = t0 - t2, s13 = t1 + t3, d13 = t1 - t3;
      // forward: W4 = -i, so X1 = d02 - i d13, X3 = d02 + i d13; inverse swaps them.
      const cplx jd13 = inverse ? cplx(-d13.imag(), d13.real()) : cplx(d13.imag(), -d13.real());
      out[k] = s02 + s13;
      out[k + m] = d02 + jd13;
      out[k + 2 * m] = s02 - s13;
      out[k + 3 * m] = d02 - jd13;
    }
  } else if (p == 3) {
    const double s3 = (inverse ? 1.0 : -1.0) * std::sqrt(3.0) / 2.0;
    for (int64_t k = 0; k < m; ++k) {
      const cplx t0 = out[k];
      const cplx t1 = tw_mul(out[k + m], tw[k * fstride], inverse);
      const cplx t2 = tw_mul(out[k + 2 * m], tw[2 * k * fstride], inverse);
      const cplx s = t1 + t2, d = t1 - t2;
      const cplx c = t0 - 0.5 * s;
      const cplx jd(-d.imag() * s3, d.real() * s3);  // i * s3 * d
      out[k] = t0 + s;
      out[k + m] = c + jd;
      out[k + 2 * m] = c - jd;
    }
  } else {
    cplx tbuf[kMaxGenericRadix];
    const int64_t wstep = m * fstride;  // W_p = tw[wstep]
    for (int64_t k = 0; k < m; ++k) {
      for (int64_t q = 0; q < p; ++q) tbuf[q] = tw_mul(out[k + q * m], tw[(q * k * fstride) % n_], inverse);
      for (int64_t u = 0; u < p; ++u) {
        cplx acc = tbuf[0];
        int64_t idx = 0;
        for (int64_t q = 1; q < p; ++q) {
          idx += u;
          if (idx >= p) idx -= p;
          acc += tw_mul(tbuf[q], tw[idx * wstep], inverse);
        }
        out[k + u * m] = acc;
      }
    }
  }
}

RealFftPlan::RealFftPlan(int64_t n) : n_(n) {
  if (n < 1) throw std::invalid_argument("FFT length must be positive, got " + std::to_string(n));
  if (n % 2 == 0) {
    plan_ = std::make_unique<FftPlan>(n / 2);
    post_.resize(n / 2 + 1);
    for (int64_t k = 0; k <= n / 2; ++k) {
      const double a = -2.0 * kPi * static_cast<double>(k) / static_cast<double>(n);
      post_[k] = {std::cos(a), std::sin(a)};
    }
  } else {
    plan_ = std::make_unique<FftPlan>(n);
  }
}

int64_t RealFftPlan::scratch_size() const { return 2 * n_ + 2 + plan_->scratch_size(); }

void RealFftPlan::forward(const double* in, cplx* out, cplx* scratch) const {
  cplx* z = scratch;
  cplx* zf = scratch + n_ + 1;
  cplx* sub = scratch + 2 * n_ + 2;
  if (n_ % 2 == 1) {
    for (int64_t j = 0; j < n_; ++j) z[j] = {in[j], 0.0};
    plan_->forward(z, zf, sub);
    for (int64_t k = 0; k <= n_ / 2; ++k) out[k] = zf[k];
    return;
  }
  const int64_t h = n_ / 2;
  for (int64_t j = 0; j < h; ++j) z[j] = {in[2 * j], in[2 * j + 1]};
  plan_->forward(z, zf, sub);
  for (int64_t k = 0; k <= h; ++k) {
    const cplx zk = zf[k == h ? 0 : k];
    const cplx zc = std::conj(zf[k == 0 ? 0 : h - k]);
    const cplx e = 0.5 * (zk + zc);
    const cplx d = 0.5 * (zk - zc);
    const cplx o(d.imag(), -d.real());  // -i * d
    out[k] = e + mul(post_[k], o);
  }
}

void RealFftPlan::inverse(const cplx* in, double* out, cplx* scratch) const {
  cplx* z = scratch;
  cplx* zt = scratch + n_ + 1;
  cplx* sub = scratch + 2 * n_ + 2;
  const int64_t h = n_ / 2;
  if (n_ % 2 == 1) {
    z[0] = {in[0].real(), 0.0};
    for (int64_t k = 1; k <= h; ++k) {
      z[k] = in[k];
      z[n_ - k] = std::conj(in[k]);
    }
    plan_->inverse(z, zt, sub);
    for (int64_t j = 0; j < n_; ++j) out[j] = zt[j].real();
    return;
  }
  // DC and Nyquist bins of a real signal are real: their imaginary parts are ignored (numpy.fft.irfft).
  for (int64_t k = 0; k < h; ++k) {
    const cplx xk = k == 0 ? cplx(in[0].real(), 0.0) : in[k];
    const cplx xc = k == 0 ? cplx(in[h].real(), 0.0) : std::conj(in[h - k]);
    const cplx e = xk + xc;
    const cplx o = mulc(xk - xc, post_[k]);
    z[k] = e + cplx(-o.imag(), o.real());  // e + i o
  }
  plan_->inverse(z, zt, sub);
  for (int64_t j = 0; j < h; ++j) {
    out[2 * j] = zt[j].real();
    out[2 * j + 1] = zt[j].imag();
  }
}

template <class T>
void rfft_batch(const T* x, int64_t batch, int64_t n, int64_t n_fft, std::complex<T>* out, int n_threads) {
  if (n_fft < 1) throw std::invalid_argument("n_fft must be positive, got " + std::to_string(n_fft));
  RealFftPlan plan(n_fft);
  const int64_t nb = plan.n_bins();
  const int threads = resolve_threads(n_threads, batch);
#pragma omp parallel num_threads(threads)
  {
    std::vector<double> buf(n_fft);
    std::vector<cplx> spec(nb), scratch(plan.scratch_size());
#pragma omp for schedule(static)
    for (int64_t b = 0; b < batch; ++b) {
      const T* row = x + b * n;
      const int64_t c = std::min(n, n_fft);
      for (int64_t j = 0; j < c; ++j) buf[j] = static_cast<double>(row[j]);
      for (int64_t j = c; j < n_fft; ++j) buf[j] = 0.0;
      plan.forward(buf.data(), spec.data(), scratch.data());
      std::complex<T>* o = out + b * nb;
      for (int64_t k = 0; k < nb; ++k) o[k] = std::complex<T>(static_cast<T>(spec[k].real()), static_cast<T>(spec[k].imag()));
    }
  }
}

template <class T>
void fft_batch(const std::complex<T>* x, int64_t batch, int64_t n, int64_t n_fft, bool inverse,
               std::complex<T>* out, int n_threads) {
  if (n_fft < 1) throw std::invalid_argument("n_fft must be positive, got " + std::to_string(n_fft));
  FftPlan plan(n_fft);
  const int threads = resolve_threads(n_threads, batch);
  const double scale = inverse ? 1.0 / static_cast<double>(n_fft) : 1.0;
#pragma omp parallel num_threads(threads)
  {
    std::vector<cplx> buf(n_fft), res(n_fft), scratch(plan.scratch_size());
#pragma omp for schedule(static)
    for (int64_t b = 0; b < batch; ++b) {
      const std::complex<T>* row = x + b * n;
      const int64_t c = std::min(n, n_fft);
      for (int64_t j = 0; j < c; ++j) buf[j] = cplx(row[j].real(), row[j].imag());
      for (int64_t j = c; j < n_fft; ++j) buf[j] = 0.0;
      if (inverse) plan.inverse(buf.data(), res.data(), scratch.data());
      else plan.forward(buf.data(), res.data(), scratch.data());
      std::complex<T>* o = out + b * n_fft;
      for (int64_t k = 0; k < n_fft; ++k)
        o[k] = std::complex<T>(static_cast<T>(res[k].real() * scale), static_cast<T>(res[k].imag() * scale));
    }
  }
}

template <class T>
void irfft_batch(const std::complex<T>* x, int64_t batch, int64_t n_bins, int64_t n_out, T* out, int n_threads) {
  if (n_out < 1) throw std::invalid_argument("output length must be positive, got " + std::to_string(n_out));
  RealFftPlan plan(n_out);
  const int64_t nb = plan.n_bins();
  const int threads = resolve_threads(n_threads, batch);
  const double scale = 1.0 / static_cast<double>(n_out);
#pragma omp parallel num_threads(threads)
  {
    std::vector<cplx> spec(nb), scratch(plan.scratch_size());
    std::vector<double> res(n_out);
#pragma omp for schedule(static)
    for (int64_t b = 0; b < batch; ++b) {
      const std::complex<T>* row = x + b * n_bins;
      const int64_t c = std::min(n_bins, nb);
      for (int64_t k = 0; k < c; ++k) spec[k] = cplx(row[k].real(), row[k].imag());
      for (int64_t k = c; k < nb; ++k) spec[k] = 0.0;
      plan.inverse(spec.data(), res.data(), scratch.data());
      T* o = out + b * n_out;
      for (int64_t j = 0; j < n_out; ++j) o[j] = static_cast<T>(res[j] * scale);
    }
  }
}

template void rfft_batch<float>(const float*, int64_t, int64_t, int64_t, std::complex<float>*, int);
template void rfft_batch<double>(const double*, int64_t, int64_t, int64_t, std::complex<double>*, int);
template void fft_batch<float>(const std::complex<float>*, int64_t, int64_t, int64_t, bool, std::complex<float>*, int);
template void fft_batch<double>(const std::complex<double>*, int64_t, int64_t, int64_t, bool, std::complex<double>*,
                                int);
template void irfft_batch<float>(const std::complex<float>*, int64_t, int64_t, int64_t, float*, int);
template void irfft_batch<double>(const std::complex<double>*, int64_t, int64_t, int64_t, double*, int);

}  // namespace ecgcore
