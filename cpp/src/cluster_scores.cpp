// Clustering quality scores; see cluster_scores.hpp for the contracts.
#include "ecgcore/cluster_scores.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "ecgcore/detail/cluster_rows.hpp"
#include "ecgcore/detail/parallel.hpp"

namespace ecgcore {
namespace {

using detail::check_shape;
using detail::cluster_sums;
using detail::column_mean;
using detail::group_rows;
using detail::Groups;
using detail::n_chunks;
using detail::sqdist;

void check_labels(const int64_t* labels, int64_t n, int64_t n_labels, const char* what) {
  if (n_labels < 2 || n_labels > n - 1)
    throw std::invalid_argument(std::string(what) + ": number of labels is " + std::to_string(n_labels) +
                                ". Valid values are 2 to n_samples - 1 (inclusive)");
  for (int64_t i = 0; i < n; ++i)
    if (labels[i] < 0 || labels[i] >= n_labels)
      throw std::invalid_argument(std::string(what) + ": labels must be encoded as 0..n_labels-1");
}

Groups group_labels(const int64_t* labels, int64_t n, int64_t k) {
  std::vector<int32_t> l32(n);
  for (int64_t i = 0; i < n; ++i) l32[i] = static_cast<int32_t>(labels[i]);
  return group_rows(l32.data(), n, k);
}

// Cluster means in double: [k, d].
template <class T>
std::vector<double> cluster_means(const T* X, int64_t d, int64_t k, const Groups& g, int nt) {
  std::vector<double> sums = cluster_sums<T>(X, d, k, g.start, g.order, nt);
  for (int64_t c = 0; c < k; ++c) {
    const double m = static_cast<double>(g.start[c + 1] - g.start[c]);
    for (int64_t t = 0; t < d; ++t) sums[c * d + t] /= m;
  }
  return sums;
}

}  // namespace

template <class T>
double davies_bouldin(const T* X, int64_t n, int64_t d, const int64_t* labels, int64_t k, int n_threads) {
  check_shape(n, d, "davies_bouldin");
  check_labels(labels, n, k, "davies_bouldin");
  const int nt = resolve_threads(n_threads, k);
  const Groups g = group_labels(labels, n, k);
  const std::vector<double> mu = cluster_means(X, d, k, g, nt);
  std::vector<double> intra(k, 0.0);
#pragma omp parallel for num_threads(nt) schedule(dynamic, 4)
  for (int64_t c = 0; c < k; ++c) {
    double s = 0.0;
    for (int64_t m = g.start[c]; m < g.start[c + 1]; ++m) {
      const T* row = X + g.order[m] * d;
      double q = 0.0;
      for (int64_t t = 0; t < d; ++t) {
        const double v = row[t] - mu[c * d + t];
        q += v * v;
      }
      s += std::sqrt(q);
    }
    intra[c] = s / static_cast<double>(g.start[c + 1] - g.start[c]);
  }
  std::vector<double> cdist(static_cast<size_t>(k * k));
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t a = 0; a < k; ++a)
    for (int64_t b = 0; b < k; ++b) cdist[a * k + b] = std::sqrt(sqdist(&mu[a * d], &mu[b * d], d));
  // scikit-learn returns 0 when all spreads or all center distances are (close to) zero.
  const auto near0 = [](double v) { return std::fabs(v) <= 1e-8; };
  if (std::all_of(intra.begin(), intra.end(), near0) || std::all_of(cdist.begin(), cdist.end(), near0)) return 0.0;
  double total = 0.0;
  for (int64_t a = 0; a < k; ++a) {
    double worst = 0.0;
    for (int64_t b = 0; b < k; ++b) {
      if (cdist[a * k + b] == 0.0) continue;  // ratio to an identical center counts as 0 (x / inf)
      worst = std::max(worst, (intra[a] + intra[b]) / cdist[a * k + b]);
    }
    total += worst;
  }
  return total / static_cast<double>(k);
}

template <class T>
double calinski_harabasz(const T* X, int64_t n, int64_t d, const int64_t* labels, int64_t k, int n_threads) {
  check_shape(n, d, "calinski_harabasz");
  check_labels(labels, n, k, "calinski_harabasz");
  const int nt = resolve_threads(n_threads, k);
  const Groups g = group_labels(labels, n, k);
  const std::vector<double> mu = cluster_means(X, d, k, g, nt);
  const std::vector<double> mean = column_mean(X, n, d, resolve_threads(n_threads, n_chunks(n)), nullptr);
  std::vector<double> intra(k, 0.0);
#pragma omp parallel for num_threads(nt) schedule(dynamic, 4)
  for (int64_t c = 0; c < k; ++c) {
    double s = 0.0;
    for (int64_t m = g.start[c]; m < g.start[c + 1]; ++m) {
      const T* row = X + g.order[m] * d;
      for (int64_t t = 0; t < d; ++t) {
        const double v = row[t] - mu[c * d + t];
        s += v * v;
      }
    }
    intra[c] = s;
  }
  double extra = 0.0, within = 0.0;
  for (int64_t c = 0; c < k; ++c) {
    double q = 0.0;
    for (int64_t t = 0; t < d; ++t) {
      const double v = mu[c * d + t] - mean[t];
      q += v * v;
    }
    extra += static_cast<double>(g.start[c + 1] - g.start[c]) * q;
    within += intra[c];
  }
  if (within == 0.0) return 1.0;
  return extra * static_cast<double>(n - k) / (within * static_cast<double>(k - 1));
}

template <class T>
void silhouette_samples(const T* X, int64_t n, int64_t d, const int64_t* labels, int64_t k, double* out,
                        int n_threads) {
  check_shape(n, d, "silhouette_samples");
  check_labels(labels, n, k, "silhouette_samples");
  const int nt = resolve_threads(n_threads, n);
  std::vector<int64_t> size(k, 0);
  for (int64_t i = 0; i < n; ++i) ++size[labels[i]];
#pragma omp parallel num_threads(nt)
  {
    std::vector<double> per(k);
#pragma omp for schedule(dynamic, 16)
    for (int64_t i = 0; i < n; ++i) {
      std::fill(per.begin(), per.end(), 0.0);
      const T* xi = X + i * d;
      for (int64_t j = 0; j < n; ++j) {
        if (j == i) continue;
        per[labels[j]] += std::sqrt(sqdist(xi, X + j * d, d));
      }
      const int64_t own = labels[i];
      if (size[own] <= 1) {  // scikit-learn: a singleton cluster scores 0
        out[i] = 0.0;
        continue;
      }
      const double a = per[own] / static_cast<double>(size[own] - 1);
      double b = std::numeric_limits<double>::infinity();
      for (int64_t c = 0; c < k; ++c)
        if (c != own) b = std::min(b, per[c] / static_cast<double>(size[c]));
      const double den = std::max(a, b);
      out[i] = den > 0.0 ? (b - a) / den : 0.0;
    }
  }
}

#define ECGCORE_SCORES_INSTANTIATE(T)                                                             \
  template double davies_bouldin<T>(const T*, int64_t, int64_t, const int64_t*, int64_t, int);    \
  template double calinski_harabasz<T>(const T*, int64_t, int64_t, const int64_t*, int64_t, int); \
  template void silhouette_samples<T>(const T*, int64_t, int64_t, const int64_t*, int64_t, double*, int);

ECGCORE_SCORES_INSTANTIATE(float)
ECGCORE_SCORES_INSTANTIATE(double)
#undef ECGCORE_SCORES_INSTANTIATE

}  // namespace ecgcore
