// Clustering quality scores (internal: computed from the rows and their labels), as scikit-learn's
// davies_bouldin_score, calinski_harabasz_score and silhouette_samples. The Python layer
// (ecgcore.cluster._scores) adds the external scores computed from labels alone (NMI, purity).
//
// X is row-major and contiguous [n, d], float or double; sums are accumulated in double, in an order
// that does not depend on the thread count.
#pragma once
#include <cstdint>

namespace ecgcore {

// labels [n] are encoded 0..n_labels-1, every value present, 2 <= n_labels <= n - 1.
template <class T>
double davies_bouldin(const T* X, int64_t n, int64_t d, const int64_t* labels, int64_t n_labels, int n_threads);
template <class T>
double calinski_harabasz(const T* X, int64_t n, int64_t d, const int64_t* labels, int64_t n_labels, int n_threads);
// Silhouette coefficient of every row (O(n^2 d); sample rows first for large n). out: [n] double.
template <class T>
void silhouette_samples(const T* X, int64_t n, int64_t d, const int64_t* labels, int64_t n_labels, double* out,
                        int n_threads);

}  // namespace ecgcore
