// Continuous wavelet transform scalograms with the Morlet wavelets, with PyWavelets' discretisation:
// pywt.cwt(x, scales, "morl" | "cmorB-C", method="conv", precision=12), then |.| as float32.
#pragma once
#include <cstdint>
#include <vector>

namespace ecgcore {

struct MorletWavelet {
  bool complex = false;     // false: real Morlet "morl"; true: complex Morlet "cmorB-C"
  double bandwidth = 1.0;   // B (cmor only)
  double center = 1.0;      // C (cmor only)
  int precision = 12;       // the wavelet is sampled on 2**precision points over [-8, 8]
};

// Per-scale filters, shared by every row: coef[t] = sum_m x[m] * h[t + shift - m] (h pre-differenced and
// pre-scaled by -sqrt(scale); h[i] = re[origin + i] (+ i im[origin + i]) for i < length, zero elsewhere).
struct CwtFilters {
  int64_t n = 0;                         // signal length the filters were laid out for
  std::vector<int64_t> length;           // support of each scale's h (taps L + 1)
  std::vector<int64_t> origin;           // index in re / im of h[0]
  std::vector<int64_t> shift;            // c in h[t + c - m]
  std::vector<std::vector<double>> re;   // real parts
  std::vector<std::vector<double>> im;   // imaginary parts (complex wavelets only)
};

CwtFilters morlet_filters(const MorletWavelet& w, const double* scales, int64_t n_scales, int64_t n);

// x [batch, n] -> out [batch, n_scales, n] magnitudes |coef| (float32). The filters are applied by FFT
// convolution in float64 (four signals per SIMD lane group; a signal's result does not depend on the others).
// Throws std::invalid_argument for non-positive scales, scales too small for the wavelet grid
// (fewer than 2 taps) or an empty signal.
template <class T>
void morlet_scalogram(const T* x, int64_t batch, int64_t n, const double* scales, int64_t n_scales,
                      const MorletWavelet& w, float* out, int n_threads);

// Centre frequency of the wavelet in cycles per sample at scale 1 (pywt.central_frequency, precision 8);
// frequency (Hz) of scale a at sampling rate fs is centre_frequency * fs / a.
double morlet_centre_frequency(const MorletWavelet& w);

}  // namespace ecgcore
