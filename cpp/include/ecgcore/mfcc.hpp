// Mel-frequency cepstral coefficients with deltas, in two flavours:
// * Librosa: librosa.feature.mfcc (power mel spectrogram, power_to_db with an 80 dB floor, DCT-II ortho,
//   optional lifter) with librosa.feature.delta (Savitzky-Golay, width 9, mode "interp").
// * Kaldi: torchaudio.compliance.kaldi.mfcc (DC removal, pre-emphasis, Povey window, power-of-two FFT,
//   Kaldi mel banks, natural log, DCT, cepstral lifter) with torchaudio.functional.compute_deltas
//   (window 5, replicate edges).
#pragma once
#include <cstdint>
#include <vector>

namespace ecgcore {

enum class MfccMode { Librosa, Kaldi };

struct MfccParams {
  MfccMode mode = MfccMode::Librosa;
  double fs = 22050.0;
  int64_t n_mfcc = 13;
  int64_t n_mels = 128;
  double fmin = 0.0;
  double fmax = -1.0;       // <= 0: Nyquist (Kaldi: a negative value is an offset from Nyquist, as in Kaldi)
  double lifter = 0.0;      // librosa: 0 disables; Kaldi: cepstral_lifter (22)
  int delta_order = 0;      // 0: n_mfcc rows; 1: + delta; 2: + delta and delta-delta
  int64_t delta_width = 9;  // librosa: Savitzky-Golay window (odd, >= 3); Kaldi: compute_deltas win_length
  // librosa framing
  int64_t n_fft = 2048;
  int64_t hop = 512;
  int64_t win_length = 0;   // <= 0: n_fft
  bool center = true;       // zero-pad n_fft / 2 on both sides
  bool htk = false;         // HTK mel scale instead of Slaney's
  double top_db = 80.0;     // < 0: no floor
  // Kaldi framing (samples)
  int64_t frame_length = 0;
  int64_t frame_shift = 0;
  bool round_pow2 = true;
  double preemphasis = 0.97;
  bool remove_dc = true;
};

// Number of frames for a signal of n samples.
int64_t mfcc_frames(const MfccParams& p, int64_t n);
// Rows per frame: n_mfcc * (1 + delta_order).
int64_t mfcc_rows(const MfccParams& p);

// x [batch, n] -> out [batch, mfcc_rows, n_frames]; arithmetic in float64.
template <class T>
void mfcc(const T* x, int64_t batch, int64_t n, const MfccParams& p, T* out, int n_threads);

// Mel filterbanks [n_mels, n_bins] (row-major), exposed for tests and for users who want the matrix.
std::vector<double> mel_filterbank_librosa(double fs, int64_t n_fft, int64_t n_mels, double fmin, double fmax,
                                           bool htk);
std::vector<double> mel_filterbank_kaldi(double fs, int64_t padded_length, int64_t n_mels, double low, double high);

// librosa.feature.delta(data, width, order, mode="interp") along the last axis of [rows, n] (in place into out).
void savgol_delta(const double* data, int64_t rows, int64_t n, int64_t width, int order, double* out);
// torchaudio.functional.compute_deltas(data, win_length=width) (replicated edges) along the last axis of [rows, n].
void kaldi_delta(const double* data, int64_t rows, int64_t n, int64_t width, double* out);

}  // namespace ecgcore
