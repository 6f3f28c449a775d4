// Zero-phase and causal IIR filtering of the rows of a [batch, n] view, numerically equal to scipy.signal
// (sosfilt, sosfiltfilt, lfilter, filtfilt; _signaltools.py, _sosfilt.pyx).
//
// Filtering runs in double precision whatever the storage type, over blocks of rows processed as
// SIMD lanes, and parallel over blocks with OpenMP.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ecgcore {

enum class PadType { none, odd, even, constant };

PadType parse_pad_type(const std::string& name);

// Steady-state initial conditions, scipy.signal.lfilter_zi / sosfilt_zi.
std::vector<double> lfilter_zi(const std::vector<double>& b, const std::vector<double>& a);
std::vector<double> sosfilt_zi(const double* sos, int n_sections);

// Default pad length of scipy's sosfiltfilt / filtfilt.
int64_t sosfiltfilt_default_padlen(const double* sos, int n_sections);

// The largest pole radius of a cascade of n_sections biquads (|z| of the roots of z^2 + a1 z + a2).
double sos_pole_radius(const double* sos, int n_sections);
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
void sosfilt(const double* sos, int n_sections, RowsView<const T> x, RowsView<T> y, const double* zi, double* zf,
             int n_threads);

// Zero-phase forward-backward cascade, scipy.signal.sosfiltfilt(padtype, padlen).
template <class T>
void sosfiltfilt(const double* sos, int n_sections, RowsView<const T> x, RowsView<T> y, PadType pad, int64_t padlen,
                 int n_threads);

// Direct-form II transposed, scipy.signal.lfilter(b, a, x, zi).
template <class T>
void lfilter(const std::vector<double>& b, const std::vector<double>& a, RowsView<const T> x, RowsView<T> y,
             const double* zi, double* zf, int n_threads);

// Zero-phase forward-backward, scipy.signal.filtfilt(b, a, padtype, padlen, method="pad").
template <class T>
void filtfilt(const std::vector<double>& b, const std::vector<double>& a, RowsView<const T> x, RowsView<T> y,
              PadType pad, int64_t padlen, int n_threads);

}  // namespace ecgcore
