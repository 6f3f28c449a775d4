// Row-wise helpers shared by the k-means kernels (kmeans.cpp) and the clustering scores (cluster_scores.cpp):
// argument checks, sums over rows in fixed chunks, rows grouped by label. Internal.
//
// Determinism: every reduction over rows adds per-chunk partial sums in chunk order, and cluster sums add
// their members in row order, so results never depend on the thread count.
#pragma once

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace ecgcore {
namespace detail {

constexpr int64_t kChunk = 256;  // rows per work item; fixed so reductions do not depend on threads

inline int64_t n_chunks(int64_t n) { return (n + kChunk - 1) / kChunk; }

inline void check_shape(int64_t n, int64_t d, const char* what) {
  if (n < 1) throw std::invalid_argument(std::string(what) + ": expected at least one row, got 0");
  if (d < 1) throw std::invalid_argument(std::string(what) + ": expected at least one feature column, got 0");
}

template <class T>
double sqdist(const T* a, const T* b, int64_t d) {
  double s = 0.0;
  for (int64_t t = 0; t < d; ++t) {
    const double v = static_cast<double>(a[t]) - static_cast<double>(b[t]);
    s += v * v;
  }
  return s;
}

// Column means (and optionally the mean of the column variances), summed chunk by chunk in order.
template <class T>
std::vector<double> column_mean(const T* X, int64_t n, int64_t d, int nt, double* mean_var) {
  const int64_t nc = n_chunks(n);
  std::vector<double> part(static_cast<size_t>(nc * d), 0.0);
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t c = 0; c < nc; ++c) {
    double* p = &part[c * d];
    for (int64_t i = c * kChunk; i < std::min(n, (c + 1) * kChunk); ++i)
      for (int64_t t = 0; t < d; ++t) p[t] += X[i * d + t];
  }
  std::vector<double> mean(d, 0.0);
  for (int64_t c = 0; c < nc; ++c)
    for (int64_t t = 0; t < d; ++t) mean[t] += part[c * d + t];
  for (auto& m : mean) m /= static_cast<double>(n);
  if (mean_var) {
    std::fill(part.begin(), part.end(), 0.0);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t c = 0; c < nc; ++c) {
      double* p = &part[c * d];
      for (int64_t i = c * kChunk; i < std::min(n, (c + 1) * kChunk); ++i)
        for (int64_t t = 0; t < d; ++t) {
          const double v = X[i * d + t] - mean[t];
          p[t] += v * v;
        }
    }
    std::vector<double> var(d, 0.0);
    for (int64_t c = 0; c < nc; ++c)
      for (int64_t t = 0; t < d; ++t) var[t] += part[c * d + t];
    double s = 0.0;
    for (auto v : var) s += v / static_cast<double>(n);
    *mean_var = s / static_cast<double>(d);
  }
  return mean;
}

// Rows grouped by label (counting sort, stable) and the per-cluster sums of their rows in double.
struct Groups {
  std::vector<int64_t> start, order;
};

// Into the caller's buffers (start: k + 1, order: n, pos: k scratch), so that it can run inside a
// parallel region.
inline void group_rows_into(const int32_t* labels, int64_t n, int64_t k, int64_t* start, int64_t* order, int64_t* pos) {
  std::fill(start, start + k + 1, int64_t(0));
  for (int64_t i = 0; i < n; ++i) ++start[labels[i] + 1];
  for (int64_t c = 0; c < k; ++c) start[c + 1] += start[c];
  std::copy(start, start + k, pos);
  for (int64_t i = 0; i < n; ++i) order[pos[labels[i]]++] = i;
}

inline Groups group_rows(const int32_t* labels, int64_t n, int64_t k) {
  Groups g;
  g.start.resize(k + 1);
  g.order.resize(n);
  std::vector<int64_t> pos(k);
  group_rows_into(labels, n, k, g.start.data(), g.order.data(), pos.data());
  return g;
}

template <class T>
std::vector<double> cluster_sums(const T* X, int64_t d, int64_t k, const std::vector<int64_t>& start,
                                 const std::vector<int64_t>& order, int nt) {
  std::vector<double> sums(static_cast<size_t>(k * d), 0.0);
#pragma omp parallel for num_threads(nt) schedule(dynamic, 4)
  for (int64_t c = 0; c < k; ++c) {
    double* s = &sums[c * d];
    for (int64_t m = start[c]; m < start[c + 1]; ++m) {
      const T* row = X + order[m] * d;
      for (int64_t t = 0; t < d; ++t) s[t] += row[t];
    }
  }
  return sums;
}

}  // namespace detail
}  // namespace ecgcore
