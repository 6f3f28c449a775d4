// QRS (R-peak) detection for single-lead ECG at any sampling rate.
//
// A Pan-Tompkins-class detector (Pan & Tompkins, IEEE TBME 32(3), 1985; Hamilton & Tompkins,
// IEEE TBME 33(12), 1986) with the stages moved to zero phase so that no group delay has to be undone:
//   1. band-pass 5-15 Hz (Butterworth, forward-backward),
//   2. derivative, squaring, 120 ms moving-window integration (centred); the same for a second band,
//      15-30 Hz, and the two energies mixed, each in units of its local QRS level, with weights
//      (local QRS level / local mean energy)^8 computed per 50 ms block over +-4 s: electrode-motion
//      noise lives mostly below 15 Hz and muscle noise mostly above, so each noise loses to the band it
//      spares; a weight floor of 0.2 keeps wide PVCs (low-band energy) detectable (issue 25: EC57
//      noise-stress F1 at 12 dB em 97.1 -> 99.2 % pooled over 10 records, the 48 clean records
//      99.75/99.82 -> 99.82/99.87 % Se/+P),
//   3. candidate peaks of the integrated signal, at most one per refractory period (250 ms),
//   4. adaptive signal/noise peak levels with a threshold between them that moves towards the signal
//      level as the noise-to-signal level ratio grows (noise-aware; issue 25: EC57 noise-stress cells
//      behind the better of XQRS and neurokit2 on five held-out records 18 -> 11 of 80), T-wave rejection
//      by slope within 300 ms of the previous beat, search-back at half threshold when no beat was found
//      for 1.4 mean RR intervals, and a level decay after 3 s without a beat (amplitude drops, lead off);
//      then a wide-complex search-back in the gaps that stayed empty (low-band energy, and the shape of two of the
//      previous 32 beats: 208's missed PVCs have 0.15-0.29 of a normal beat's 5-15 Hz energy),
//   5. refinement of every detection to the largest absolute deflection within +-75 ms of a zero-phase
//      band-passed copy (+-10 ms centred average minus a +-100 ms centred baseline average), so beats
//      are centred consistently on the R wave.
// With detect_fs set (ecgcore.dsp.detect_r_peaks' default: 120 Hz), stages 1-4 run on a decimated copy.
// Everything runs in double precision whatever the input type; rows are independent records/leads and
// are processed in parallel with OpenMP.
// Pan-Tompkins' own constants are 200 ms / 360 ms / 1.66; the defaults here (250 ms / 300 ms / 1.4)
// were chosen on MIT-BIH (fewer double detections on large T waves, fewer misses of premature beats);
// the second band, its mixing and the 120 ms integration on the EC57 noise-stress records of MIT-BIH
// records 100, 103, 105, 118, 119, 203, 208, 213, 219 and 228 (band2_low = 0 restores the single band).
#pragma once

#include <cstdint>
#include <vector>

namespace ecgcore {

struct QrsOptions {
  double fs = 360.0;      // sampling rate, Hz
  double band_low = 5.0;  // detection band, Hz
  double band_high = 15.0;
  // Second detection band (0 = off, or when band2_low >= 0.45 fs): the two slope energies are mixed,
  // each on the scale of its local QRS level L, weighted by max(floor, (k / k_max)^power) where
  // k = L / local mean energy is the band's contrast and k_max the larger of the two.
  double band2_low = 15.0;
  double band2_high = 30.0;
  int contrast_power = 8;
  double contrast_floor = 0.2;
  double level_window_s = 4.0;   // half-width of the windows for the local level and mean energy
  double integration_s = 0.120;  // moving-window integration width
  double refractory_s = 0.250;   // no two beats closer than this (240 bpm)
  double t_wave_s = 0.300;       // a candidate this close to the previous beat must have its slope
  double t_wave_slope = 0.5;     //   at least t_wave_slope x the previous beat's slope
  double search_back = 1.40;     // search back after this many mean RR intervals without a beat
  double threshold = 0.25;       // threshold = noise + c * (signal - noise), c = min(0.9, threshold
  double noise_gain = 1.5;       //   + noise_gain * max(0, noise / signal - noise_knee)): noisy stretches
  double noise_knee = 0.05;      //   (a high noise-to-signal level ratio) need a clearer peak; gain 0 = fixed
  // Early beats in noise: where the noise level is above early_noise x the signal level, a candidate closer than
  // early_rr x the mean RR interval to the previous beat counts as a beat only when it is at least early_level x
  // the signal level (else it is noise). early_rr = 0 switches the rule off.
  double early_rr = 0.5;
  double early_noise = 0.08;
  double early_level = 1.0;
  // Wide-complex search-back: in a gap of search_back mean RR intervals (the mean of the 8 before it) that stage 4
  // left empty, in a clean stretch (noise level <= wide_noise x signal level at both of its beats), the largest
  // slope-energy peak of a box band-pass (+-30 ms minus +-150 ms averages, power peak near 5 Hz) at least t_wave_s
  // (and the refractory period) from both beats becomes a beat when that energy reaches wide_level x
  // the median of the previous 8 beats' and its complex (+-100 ms of the 1-40 Hz band, best lag within +-30 ms)
  // correlates at least wide_corr with two of the previous 32 beats: a wide ventricular beat whose 5-30 Hz slope
  // energy is a fraction of a normal beat's, but whose shape the record has shown before. Gaps from the third beat
  // on; the stretches before the first and after the last beat are not examined. The 1-40 Hz band's top is 0.45 fs
  // below 89 Hz. wide_level = 0 switches it off.
  double wide_level = 0.7;
  double wide_corr = 0.95;
  double wide_noise = 0.08;
  bool refine = true;  // move detections to the R-wave extremum
  double refine_radius_s = 0.075;
  // Stages 1-4 run at fs / D, D = floor(fs / detect_fs) when that is at least 2 (0 = always at fs): the
  // signal is low-passed by a triangular (two D-sample boxes) filter and every D-th sample kept; the
  // detections map back to fs, where stage 5 refines them. 360 Hz -> 120 Hz, 250 -> 125, 500 -> 125.
  double detect_fs = 0.0;
};

// Throws std::invalid_argument when the options make no sense for the sampling rate.
void validate_qrs_options(const QrsOptions& opt);

// R-peak sample indices of one lead x[0..n), increasing. Non-finite samples are treated as gaps.
template <class T>
std::vector<int64_t> detect_r_peaks(const T* x, int64_t n, const QrsOptions& opt);

// Rows of a contiguous [batch, n] array, in parallel; out[r] holds the peaks of row r.
template <class T>
std::vector<std::vector<int64_t>> detect_r_peaks_batch(const T* x, int64_t batch, int64_t n, const QrsOptions& opt,
                                                       int n_threads);

// Moves each peak to the largest |deflection| of the refinement signal (stage 5 above) within
// +-radius samples (the refinement stage of detect_r_peaks, for peaks found elsewhere).
// Peaks must lie in [0, n). The result is sorted and free of duplicates.
template <class T>
std::vector<int64_t> refine_r_peaks(const T* x, int64_t n, const int64_t* peaks, int64_t n_peaks,
                                    const QrsOptions& opt);

// The detector's two band-passes of one row at rate fs (order-2 Butterworth [lo1, hi1] and [lo2, hi2] Hz, zero-phase
// with scipy's odd padding of one second), as detect_r_peaks computes them: both at once in float32 lanes where
// the row is long enough (returns true), else each by sosfiltfilt in double (false). Exposed for the tests that
// hold the float path to the double reference.
bool qrs_bandpasses(const double* x, int64_t n, double fs, double lo1, double hi1, double lo2, double hi2,
                    std::vector<double>& y1, std::vector<double>& y2);

}  // namespace ecgcore
