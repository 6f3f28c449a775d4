// Discrete Fourier transforms of any length: mixed radix (2, 3, 4, 5 and generic odd factors) with
// Bluestein's chirp-z algorithm for lengths that hold a large prime factor. Arithmetic is float64.
#pragma once
#include <complex>
#include <cstdint>
#include <memory>
#include <vector>

namespace ecgcore {

using cplx = std::complex<double>;

// Unnormalised complex DFT of length n: X[k] = sum_j x[j] exp(sign * 2 pi i j k / n), sign = -1 forward.
// A plan is immutable after construction and can be shared by threads; each call needs its own scratch.
class FftPlan {
 public:
  explicit FftPlan(int64_t n);
  ~FftPlan();
  FftPlan(const FftPlan&) = delete;
  FftPlan& operator=(const FftPlan&) = delete;

  int64_t size() const { return n_; }
  // Scratch (complex values) that forward()/inverse() need besides their in/out buffers.
  int64_t scratch_size() const;
  // out may not alias in. inverse() is unnormalised (multiply by 1/n yourself).
  void forward(const cplx* in, cplx* out, cplx* scratch) const { transform(in, out, scratch, false); }
  void inverse(const cplx* in, cplx* out, cplx* scratch) const { transform(in, out, scratch, true); }

 private:
  void transform(const cplx* in, cplx* out, cplx* scratch, bool inverse) const;
  void mixed_radix(const cplx* in, cplx* out, bool inverse) const;
  void pass(cplx* out, int64_t fstride, int64_t p, int64_t m, bool inverse) const;
  void recurse(cplx* out, const cplx* in, int64_t fstride, int64_t level, bool inverse) const;

  int64_t n_;
  std::vector<int64_t> factors_;  // radices, first used at the top of the recursion
  std::vector<cplx> tw_;          // exp(-2 pi i j / n), j < n
  // Bluestein: chirp w[j] = exp(-i pi j^2 / n), FFT of the conjugate chirp padded to m_.
  bool bluestein_ = false;
  int64_t m_ = 0;
  std::vector<cplx> chirp_, chirp_fft_;
  std::unique_ptr<FftPlan> sub_;
};

// Real DFT of length n: n/2 + 1 non-negative frequency bins (X[k] = sum_j x[j] exp(-2 pi i j k / n)).
// Even n uses a half-length complex transform; odd n a full-length one.
class RealFftPlan {
 public:
  explicit RealFftPlan(int64_t n);
  int64_t size() const { return n_; }
  int64_t n_bins() const { return n_ / 2 + 1; }
  int64_t scratch_size() const;  // complex values
  void forward(const double* in, cplx* out, cplx* scratch) const;
  // Inverse of forward (unnormalised: forward then inverse multiplies by n). in holds n/2 + 1 bins.
  void inverse(const cplx* in, double* out, cplx* scratch) const;

 private:
  int64_t n_;
  std::unique_ptr<FftPlan> plan_;
  std::vector<cplx> post_;  // exp(-2 pi i k / n), k <= n/2 (even n)
};

// Batch real FFT: x [batch, n] -> out [batch, n_fft/2 + 1]; rows shorter than n_fft are zero-padded,
// longer ones truncated (numpy.fft.rfft(x, n_fft) semantics). T is float or double.
template <class T>
void rfft_batch(const T* x, int64_t batch, int64_t n, int64_t n_fft, std::complex<T>* out, int n_threads);

// Batch complex FFT over the last axis (numpy.fft.fft / ifft semantics; the inverse is scaled by 1/n_fft).
template <class T>
void fft_batch(const std::complex<T>* x, int64_t batch, int64_t n, int64_t n_fft, bool inverse,
               std::complex<T>* out, int n_threads);

// Batch inverse real FFT: bins [batch, n_bins] -> out [batch, n_out] (numpy.fft.irfft(X, n_out)).
template <class T>
void irfft_batch(const std::complex<T>* x, int64_t batch, int64_t n_bins, int64_t n_out, T* out, int n_threads);

}  // namespace ecgcore
