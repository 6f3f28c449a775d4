// IIR filter design, numerically equal to scipy.signal (_filter_design.py).
//
// Design follows scipy's analog-prototype route (prototype -> frequency transform -> bilinear
// transform with pre-warping -> zpk2sos with "nearest" pairing), so second-order sections come out
// in the same order with the same coefficients (tested to 1e-12).
#pragma once

#include <complex>
#include <string>
#include <vector>

namespace ecgcore {

using cplx = std::complex<double>;

enum class BandType { lowpass, highpass, bandpass, bandstop };

BandType parse_band_type(const std::string& name);

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

}  // namespace ecgcore
