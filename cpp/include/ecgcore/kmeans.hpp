// k-means clustering (k-means++ seeding, Lloyd, mini-batch); the quality scores are in cluster_scores.hpp.
//
// Every array is row-major and contiguous: observations X are [n, d], centers are [k, d].
// Kernels take float or double; sums are accumulated in double.
//
// Determinism: results depend only on the inputs and the seed, never on the thread count.
// Rows are processed in fixed chunks of 256 (handed out to whichever thread is free; each chunk's
// result has its own slot) and every reduction over rows (potentials, inertia, column means) adds
// the chunk partial sums in chunk order; cluster sums add their members in a fixed row order.
// Small calls use fewer threads than asked (about 2^24 multiply-adds per thread at least).
//
// Distances use ||x - m||^2 - 2 (x - m).(c - m) + ||c - m||^2 with a shift m (the data mean
// for fitting, the center mean for prediction) so that large feature offsets do not cancel
// away float precision, the same trick scikit-learn uses by centering X. The dot products come
// from one register-tiled micro-kernel (256-bit vectors; AVX2+FMA and baseline builds chosen at
// load time), used by k-means++, Lloyd, predict and transform. Fitting works on a shifted copy
// of X (as scikit-learn's copy_x): memory of about twice X during kmeans_plusplus/kmeans_lloyd.
#pragma once
#include <cstdint>

namespace ecgcore {

struct KMeansFit {
  double inertia = 0.0;  // sum of squared distances of the rows to their centers
  int n_iter = 0;        // Lloyd iterations run
  bool converged = false;
};

// Greedy k-means++ seeding (scikit-learn's variant): each new center is the best, by potential,
// of n_local_trials candidates drawn with probability proportional to D(x)^2.
// n_local_trials <= 0 means 2 + floor(ln k). Writes centers [k, d] and their row indices [k].
template <class T>
void kmeans_plusplus(const T* X, int64_t n, int64_t d, int64_t k, uint64_t seed, int n_local_trials,
                     T* centers, int64_t* indices, int n_threads);

// Lloyd iterations from the given centers (in: initial [k, d], out: final). Stops when the labels
// no longer change or when the summed squared center shift is <= tol * mean(var(X, axis=0)), as
// scikit-learn does. An empty cluster is re-seeded with the row farthest from its current center
// (the farthest rows go to the empty clusters in ascending cluster order; ties -> lower row index).
// labels: [n] int32, consistent with the returned centers. Accelerated with Yinyang group bounds
// (groups of 16 float / 8 double centers), which skip the rows whose label provably cannot change:
// the labels are those of plain Lloyd (ties -> lower center index).
template <class T>
KMeansFit kmeans_lloyd(const T* X, int64_t n, int64_t d, int64_t k, T* centers, int32_t* labels,
                       int max_iter, double tol, int n_threads);

// Nearest center of every row (ties -> lower center index). Returns the inertia.
template <class T>
double kmeans_assign(const T* X, int64_t n, int64_t d, const T* centers, int64_t k, int32_t* labels,
                     int n_threads);

// Euclidean (or squared) distance of every row to every center: out [n, k].
template <class T>
void kmeans_distances(const T* X, int64_t n, int64_t d, const T* centers, int64_t k, T* out,
                      bool squared, int n_threads);

// One mini-batch step (scikit-learn's MiniBatchKMeans update without random reassignment):
// rows are assigned to the current centers, then each center that received rows moves to the
// running mean  (c * count + sum(rows)) / (count + n_rows). Centers that received no rows keep
// their place. centers [k, d] and counts [k] are updated in place; labels [n] are the
// assignments to the centers before the update. Returns the batch inertia before the update.
template <class T>
double kmeans_minibatch_update(const T* X, int64_t n, int64_t d, T* centers, int64_t k, double* counts,
                               int32_t* labels, int n_threads);

// Rows divided by their L2 norm; all-zero rows stay zero (scikit-learn's Normalizer).
template <class T>
void l2_normalize_rows(const T* X, int64_t n, int64_t d, T* out, int n_threads);

}  // namespace ecgcore
