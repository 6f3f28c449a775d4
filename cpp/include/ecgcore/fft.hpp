// Discrete Fourier transforms of any length: mixed radix (4, 2, 3, 5 and generic odd factors) with
// Bluestein's chirp-z algorithm for lengths that hold a large prime factor. Arithmetic is float64.
// Every transform exists in a scalar form and in a 4-lane form that transforms four signals at once
// (one per SIMD lane; used by the STFT/MFCC kernels, which have many equal-length frames).
#pragma once
#include <complex>
#include <cstdint>
#include <cstddef>
#include <memory>
#include <new>
#include <vector>

#include "ecgcore/detail/config.hpp"  // v4d

namespace ecgcore {

using cplx = std::complex<double>;

// Heap buffers of lanes must be 32-byte aligned (the AVX code path uses aligned moves).
template <class T>
struct LaneAllocator {
  using value_type = T;
  LaneAllocator() = default;
  template <class U>
  LaneAllocator(const LaneAllocator<U>&) {}
  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t{64})); }
  void deallocate(T* p, std::size_t) { ::operator delete(p, std::align_val_t{64}); }
  template <class U>
  bool operator==(const LaneAllocator<U>&) const { return true; }
  template <class U>
  bool operator!=(const LaneAllocator<U>&) const { return false; }
};
using LaneBuffer = std::vector<v4d, LaneAllocator<v4d>>;

// Unnormalised complex DFT of length n: X[k] = sum_j x[j] exp(sign * 2 pi i j k / n), sign = -1 forward.
// A plan is immutable after construction and can be shared by threads; each call needs its own scratch.
class FftPlan {
 public:
  explicit FftPlan(int64_t n);
  ~FftPlan();
  FftPlan(const FftPlan&) = delete;
  FftPlan& operator=(const FftPlan&) = delete;

  int64_t size() const { return n_; }
  // Scratch (complex values, or v4d pairs for the 4-lane calls) besides the in/out buffers.
  int64_t scratch_size() const;
  // out may not alias in. inverse() is unnormalised (multiply by 1/n yourself).
  void forward(const cplx* in, cplx* out, cplx* scratch) const { transform(in, out, scratch, false); }
  void inverse(const cplx* in, cplx* out, cplx* scratch) const { transform(in, out, scratch, true); }
  // Four transforms at once, split real/imaginary parts; out may not alias in. scratch: 2 * scratch_size().
  void transform4(const v4d* in_re, const v4d* in_im, v4d* out_re, v4d* out_im, v4d* scratch, bool inverse) const;
  // Four transforms of z[j] = x[j] a[j] + c[j] b[j] (x, c: one signal per lane; a, b: shared by the lanes),
  // without materialising z: a filter applied in the frequency domain on the way into an inverse transform.
  // scratch: 2 * scratch_size() v4d.
  void transform4_product_sum(const v4d* x_re, const v4d* x_im, const double* a_re, const double* a_im,
                              const v4d* c_re, const v4d* c_im, const double* b_re, const double* b_im, v4d* out_re,
                              v4d* out_im, v4d* scratch, bool inverse) const;

  // Internal data, read by the transform templates in fft.cpp.
  int64_t n_;
  std::vector<int64_t> factors_;     // radices, first used at the top of the recursion
  std::vector<int64_t> perm_;        // input index of each position before the first butterfly pass
  std::vector<double> twr_, twi_;    // exp(-2 pi i j / n), j < n
  // Per level (same order as factors_): offset into stw_ of that pass's twiddles, laid out contiguously as
  // (re, im) of exp(-2 pi i q k fstride / n) for k = 1 .. m - 1 (k major), q = 1 .. p - 1.
  std::vector<int64_t> stw_off_;
  std::vector<double> stw_;
  bool bluestein_ = false;           // chirp w[j] = exp(-i pi j^2 / n); FFT of conj chirp padded to m_
  int64_t m_ = 0;
  std::vector<double> chr_, chi_, cfr_, cfi_;
  std::unique_ptr<FftPlan> sub_;

 private:
  void transform(const cplx* in, cplx* out, cplx* scratch, bool inverse) const;
};

// Real DFT of length n: n/2 + 1 non-negative frequency bins (X[k] = sum_j x[j] exp(-2 pi i j k / n)).
// Even n uses a half-length complex transform; odd n a full-length one.
class RealFftPlan {
 public:
  explicit RealFftPlan(int64_t n);
  int64_t size() const { return n_; }
  int64_t n_bins() const { return n_ / 2 + 1; }
  int64_t scratch_size() const;  // complex values (scalar calls) or v4d pairs (4-lane calls)
  void forward(const double* in, cplx* out, cplx* scratch) const;
  // Inverse of forward (unnormalised: forward then inverse multiplies by n). in holds n/2 + 1 bins.
  void inverse(const cplx* in, double* out, cplx* scratch) const;
  // Four real signals x[n] (one per lane) -> n/2 + 1 bins, split re/im. scratch: 2 * scratch_size() v4d.
  void forward4(const v4d* in, v4d* out_re, v4d* out_im, v4d* scratch) const;
  // The same with in[j] multiplied by window[j] on the way in (the frame need not be copied first).
  void forward4(const v4d* in, const double* window, v4d* out_re, v4d* out_im, v4d* scratch) const;

  // Internal data, read by the transform templates in fft.cpp.
  int64_t n_;
  std::unique_ptr<FftPlan> plan_;
  std::vector<double> pr_, pi_;  // exp(-2 pi i k / n), k <= n/2 (even n)
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
