// Cutting ECG signals into beats (fixed windows around R-peaks) and sliding windows, and the RR-interval
// features inter-patient beat classifiers use (de Chazal, O'Dwyer & Reilly, IEEE TBME 51(7), 2004).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ecgcore {

// What to do with a beat whose window runs past either end of the signal.
enum class EdgePolicy { drop, pad };
EdgePolicy parse_edge_policy(const std::string& name);

// Which beats can be cut around R-peaks `peaks` (any order, each must lie in [0, n)): indices into
// peaks of all of them with EdgePolicy::pad, of those whose window [p - before, p + after] fits with
// EdgePolicy::drop.
std::vector<int64_t> kept_beats(const int64_t* peaks, int64_t n_peaks, int64_t n, int64_t before,
                                int64_t after, EdgePolicy edge);

// Beats of `n_leads` leads x[lead * n + t] that share the R-peaks: out[lead, b, 0 .. before + after] =
// x[lead, peaks[kept[b]] - before + k] (the R sample in the middle), `pad_value` outside the signal.
// out is [n_leads, n_kept, before + 1 + after].
template <class T>
void segment_beats(const T* x, int64_t n_leads, int64_t n, const int64_t* peaks, const int64_t* kept,
                   int64_t n_kept, int64_t before, int64_t after, T pad_value, T* out, int n_threads);

// Number of windows of `size` samples every `step` samples that fit in n samples (starts 0, step, ...).
int64_t n_windows(int64_t n, int64_t size, int64_t step);

// Sliding windows of the rows of a [batch, n] array: out[batch, n_windows, size].
template <class T>
void segment_windows(const T* x, int64_t batch, int64_t n, int64_t size, int64_t step, T* out, int n_threads);

// RR features of sorted R-peaks, in seconds, row-major [n_peaks, 4]:
// pre-RR, post-RR (NaN at the first / last beat), local RR (mean of the pre-RRs of the last
// `local_beats` beats up to this one), and the record-average RR (mean of all RR intervals).
void rr_features(const int64_t* peaks, int64_t n_peaks, double fs, int64_t local_beats, double* out);

}  // namespace ecgcore
