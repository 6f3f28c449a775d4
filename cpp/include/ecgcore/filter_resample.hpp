// Polyphase rational resampling, numerically equal to scipy.signal.resample_poly (_signaltools.py, _upfirdn.py).
#pragma once

#include <cstdint>
#include <vector>

#include "ecgcore/filter_sos.hpp"  // RowsView

namespace ecgcore {

// Kaiser-windowed low-pass FIR used by resample_poly (scipy.signal.firwin(2*half+1, 1/max(up,down),
// window=("kaiser", beta))), already multiplied by `up`.
std::vector<double> resample_poly_filter(int up, int down, double kaiser_beta);

// Output length of resample_poly for n_in input samples (up and down already reduced by gcd).
int64_t resample_poly_length(int64_t n_in, int up, int down);

// Polyphase rational resampling, scipy.signal.resample_poly(x, up, down, padtype="constant", cval).
// `h` is the prototype filter (from resample_poly_filter or a user window), half_len its (len-1)/2.
template <class T>
void resample_poly(RowsView<const T> x, RowsView<T> y, int up, int down, const std::vector<double>& h, double cval,
                   int n_threads);

}  // namespace ecgcore
