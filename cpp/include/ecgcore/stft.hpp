// Short-time Fourier transform over the rows of a [batch, n] array.
// Conventions (scipy.signal.stft, torch.stft, mlx_stft) differ only in where frames start, how the signal is
// extended past its ends and where the window sits inside the n_fft buffer: the caller states all three.
#pragma once
#include <complex>
#include <cstdint>

namespace ecgcore {

enum class StftPad { Zeros, Reflect, Edge };               // extension of the signal outside [0, n)
enum class StftOutput { Complex, Magnitude, Power, Decibel };

struct StftParams {
  int64_t n_fft = 256;
  int64_t hop = 128;
  int64_t n_frames = 0;     // frame f covers extended samples [f * hop - pad_left, f * hop - pad_left + n_fft)
  int64_t pad_left = 0;
  StftPad pad = StftPad::Zeros;
  bool onesided = true;     // n_fft / 2 + 1 bins; otherwise n_fft bins (negative frequencies mirrored)
  StftOutput output = StftOutput::Complex;
  double db_offset = 1e-5;  // Decibel: 20 log10(|X| + db_offset)
  double top_db = -1.0;     // Decibel: floor each (row, bin) at its maximum over frames minus top_db (< 0: none)
};

// x [batch, n]; window [n_fft] (already placed and scaled inside the FFT buffer).
// Complex output -> out_c [batch, n_bins, n_frames]; other outputs -> out_r [batch, n_bins, n_frames].
template <class T>
void stft(const T* x, int64_t batch, int64_t n, const double* window, const StftParams& p, std::complex<T>* out_c,
          T* out_r, int n_threads);

int64_t stft_bins(const StftParams& p);

}  // namespace ecgcore
