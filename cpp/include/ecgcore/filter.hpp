// IIR/FIR filter design and zero-phase filtering, numerically equal to scipy.signal.
//
// Design follows scipy's analog-prototype route (prototype -> frequency transform -> bilinear
// transform with pre-warping -> zpk2sos with "nearest" pairing), so second-order sections come out
// in the same order with the same coefficients (tested to 1e-12).
// Filtering runs in double precision whatever the storage type, over blocks of rows processed as
// SIMD lanes, and parallel over blocks with OpenMP.
#pragma once

#include <complex>
#include <cstdint>
#include <string>
#include <vector>

namespace ecgcore {

using cplx = std::complex<double>;

enum class BandType { lowpass, highpass, bandpass, bandstop };
enum class PadType { none, odd, even, constant };

BandType parse_band_type(const std::string& name);
PadType parse_pad_type(const std::string& name);

struct Zpk {
  std::vector<cplx> z;
  std::vector<cplx> p;
  double k = 1.0;
};

// Analog prototypes (cutoff 1 rad/s).
Zpk butter_prototype(int order);
Zpk cheby1_prototype(int order, double ripple_db);

// Digital IIR design. `wn` holds one (low/high-pass) or two (band) critical frequencies in Hz;
// fs is the sampling rate in Hz. Mirrors scipy.signal.iirfilter(output="zpk").
Zpk iir_zpk(const Zpk& prototype, const std::vector<double>& wn, BandType btype, double fs);

// scipy.signal.zpk2sos(z, p, k, pairing="nearest") for digital filters: row-major [n_sections, 6].
std::vector<double> zpk_to_sos(const Zpk& zpk);
// scipy.signal.zpk2tf: numerator b and denominator a (real parts).
void zpk_to_tf(const Zpk& zpk, std::vector<double>& b, std::vector<double>& a);

// scipy.signal.iirnotch(w0, Q, fs): b[3], a[3].
void iirnotch(double w0, double quality, double fs, double b[3], double a[3]);

// Steady-state initial conditions, scipy.signal.lfilter_zi / sosfilt_zi.
std::vector<double> lfilter_zi(const std::vector<double>& b, const std::vector<double>& a);
std::vector<double> sosfilt_zi(const double* sos, int n_sections);

// Default pad length of scipy's sosfiltfilt / filtfilt.
int64_t sosfiltfilt_default_padlen(const double* sos, int n_sections);
int64_t filtfilt_default_padlen(int64_t len_b, int64_t len_a);

// A strided [batch, n] view: element (r, t) is at data[r * row_stride + t * sample_stride]
// (strides in elements, may be any sign).
template <class T>
struct RowsView {
  T* data;
  int64_t batch;
  int64_t n;
  int64_t row_stride;
  int64_t sample_stride;
};

// Causal cascade, scipy.signal.sosfilt. zi: optional [batch, n_sections, 2] initial state,
// zf: optional [batch, n_sections, 2] final state out.
template <class T>
void sosfilt(const double* sos, int n_sections, RowsView<const T> x, RowsView<T> y, const double* zi,
             double* zf, int n_threads);

// Zero-phase forward-backward cascade, scipy.signal.sosfiltfilt(padtype, padlen).
template <class T>
void sosfiltfilt(const double* sos, int n_sections, RowsView<const T> x, RowsView<T> y, PadType pad,
                 int64_t padlen, int n_threads);

// Direct-form II transposed, scipy.signal.lfilter(b, a, x, zi).
template <class T>
void lfilter(const std::vector<double>& b, const std::vector<double>& a, RowsView<const T> x,
             RowsView<T> y, const double* zi, double* zf, int n_threads);

// Zero-phase forward-backward, scipy.signal.filtfilt(b, a, padtype, padlen, method="pad").
template <class T>
void filtfilt(const std::vector<double>& b, const std::vector<double>& a, RowsView<const T> x,
              RowsView<T> y, PadType pad, int64_t padlen, int n_threads);

// Kaiser-windowed low-pass FIR used by resample_poly (scipy.signal.firwin(2*half+1, 1/max(up,down),
// window=("kaiser", beta))), already multiplied by `up`.
std::vector<double> resample_poly_filter(int up, int down, double kaiser_beta);

// Output length of resample_poly for n_in input samples (up and down already reduced by gcd).
int64_t resample_poly_length(int64_t n_in, int up, int down);

// Polyphase rational resampling, scipy.signal.resample_poly(x, up, down, padtype="constant", cval).
// `h` is the prototype filter (from resample_poly_filter or a user window), half_len its (len-1)/2.
template <class T>
void resample_poly(RowsView<const T> x, RowsView<T> y, int up, int down, const std::vector<double>& h,
                   double cval, int n_threads);

}  // namespace ecgcore
