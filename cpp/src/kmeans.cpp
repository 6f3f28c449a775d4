// k-means kernels; see kmeans.hpp for the contracts.
#include "ecgcore/kmeans.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "ecgcore/parallel.hpp"

// The distance tile is the hot loop: compile it for AVX-512 and AVX2+FMA as well as the portable
// baseline and let the loader pick (GCC function multi-versioning). Results can differ in the last
// bits between CPUs (FMA), never between runs or thread counts on one machine.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(ECGCORE_NO_CLONES)
#define ECGCORE_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define ECGCORE_CLONES
#endif
#if defined(__GNUC__)
// The 512-bit vector helpers are always inlined, so the ABI note about passing them by value is moot.
#pragma GCC diagnostic ignored "-Wpsabi"
#define ECGCORE_INLINE __attribute__((always_inline)) inline
#else
#define ECGCORE_INLINE inline
#endif

namespace ecgcore {
namespace {

constexpr int64_t kChunk = 256;  // rows per work item; fixed so reductions do not depend on threads
constexpr int kTile = 4;         // rows per register tile

// 512-bit vectors through GCC/Clang vector extensions: one zmm on AVX-512, two ymm on AVX2, four
// xmm on the x86-64-v2 baseline. A panel is two vectors of centers wide.
template <class T>
struct Vec;
template <>
struct Vec<float> {
  typedef float type __attribute__((vector_size(64)));
  typedef int32_t index __attribute__((vector_size(64)));
};
template <>
struct Vec<double> {
  typedef double type __attribute__((vector_size(64)));
  typedef int64_t index __attribute__((vector_size(64)));
};
template <class T>
using VecT = typename Vec<T>::type;
template <class T>
using VecI = typename Vec<T>::index;
template <class T>
constexpr int kVL = 64 / static_cast<int>(sizeof(T));  // lanes per vector
template <class T>
constexpr int kLanes = 2 * kVL<T>;  // centers per panel
template <class T>
using IdxOf = std::conditional_t<sizeof(T) == 4, int32_t, int64_t>;

template <class V, class T>
ECGCORE_INLINE V load_vec(const T* p) {
  V v;
  std::memcpy(&v, p, sizeof(V));
  return v;
}
template <class V, class T>
ECGCORE_INLINE void store_vec(T* p, const V& v) {
  std::memcpy(p, &v, sizeof(V));
}

int64_t n_chunks(int64_t n) { return (n + kChunk - 1) / kChunk; }

void check_shape(int64_t n, int64_t d, const char* what) {
  if (n < 1) throw std::invalid_argument(std::string(what) + ": expected at least one row, got 0");
  if (d < 1) throw std::invalid_argument(std::string(what) + ": expected at least one feature column, got 0");
}

template <class T>
void check_finite(const T* X, int64_t count, const char* what, int nt) {
  int bad = 0;
#pragma omp parallel for num_threads(nt) schedule(static) reduction(| : bad)
  for (int64_t i = 0; i < count; ++i) bad |= !std::isfinite(X[i]);
  if (bad) throw std::invalid_argument(std::string(what) + " contains NaN or infinity; k-means needs finite values");
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

// Centers shifted by m, transposed into panels of kLanes<T> columns: ct[p][t][j].
template <class T>
struct Panel {
  int64_t k = 0, d = 0, np = 0;
  std::vector<T> shift, ct, cn;
};

template <class T>
Panel<T> make_panel(const T* C, int64_t k, int64_t d, const std::vector<double>& shift) {
  constexpr int L = kLanes<T>;
  Panel<T> P;
  P.k = k;
  P.d = d;
  P.np = (k + L - 1) / L;
  P.shift.resize(d);
  for (int64_t t = 0; t < d; ++t) P.shift[t] = static_cast<T>(shift[t]);
  P.ct.assign(static_cast<size_t>(P.np * d * L), T(0));
  // Padding columns get a huge norm so that they never win an argmin.
  P.cn.assign(static_cast<size_t>(P.np * L), std::numeric_limits<T>::max() / 4);
  for (int64_t c = 0; c < k; ++c) {
    const int64_t p = c / L, j = c % L;
    double nrm = 0.0;
    for (int64_t t = 0; t < d; ++t) {
      const T v = C[c * d + t] - P.shift[t];
      P.ct[(p * d + t) * L + j] = v;
      nrm += static_cast<double>(v) * v;
    }
    P.cn[c] = static_cast<T>(nrm);
  }
  return P;
}

template <class T>
std::vector<double> center_mean(const T* C, int64_t k, int64_t d) {
  std::vector<double> m(d, 0.0);
  for (int64_t c = 0; c < k; ++c)
    for (int64_t t = 0; t < d; ++t) m[t] += C[c * d + t];
  for (auto& v : m) v /= static_cast<double>(k);
  return m;
}

// Rows (r0.. or idx[..]) shifted into xs, padded with zero rows to a multiple of kTile, and their norms.
template <class T>
void pack_rows(const T* X, int64_t r0, const int64_t* idx, int64_t nr, int64_t d, const T* shift, T* xs, T* xn) {
  const int64_t padded = (nr + kTile - 1) / kTile * kTile;
  for (int64_t r = 0; r < nr; ++r) {
    const T* row = X + (idx ? idx[r] : r0 + r) * d;
    T* out = xs + r * d;
    double s = 0.0;
    for (int64_t t = 0; t < d; ++t) {
      const T v = row[t] - shift[t];
      out[t] = v;
      s += static_cast<double>(v) * v;
    }
    xn[r] = static_cast<T>(s);
  }
  for (int64_t r = nr; r < padded; ++r) {
    std::fill(xs + r * d, xs + (r + 1) * d, T(0));
    xn[r] = T(0);
  }
}

// Dot products of kTile packed rows with one panel (2 vectors of columns): a GEMM micro-kernel
// with 8 vector accumulators. acc[2 r + h] holds row r against the columns of half h.
template <class T>
ECGCORE_INLINE void tile_dots(const T* xs, int64_t d, const T* panel, VecT<T> (&acc)[2 * kTile]) {
  using V = VecT<T>;
  constexpr int VL = kVL<T>;
  for (auto& a : acc) a = V{};
  const T* x0 = xs;
  const T* x1 = xs + d;
  const T* x2 = xs + 2 * d;
  const T* x3 = xs + 3 * d;
  for (int64_t t = 0; t < d; ++t) {
    const V c0 = load_vec<V>(panel + t * 2 * VL);
    const V c1 = load_vec<V>(panel + t * 2 * VL + VL);
    const T a0 = x0[t], a1 = x1[t], a2 = x2[t], a3 = x3[t];  // scalar operands broadcast
    acc[0] += c0 * a0;
    acc[1] += c1 * a0;
    acc[2] += c0 * a1;
    acc[3] += c1 * a1;
    acc[4] += c0 * a2;
    acc[5] += c1 * a2;
    acc[6] += c0 * a3;
    acc[7] += c1 * a3;
  }
}

// Nearest (and with Second, second-nearest) center of nr packed rows. Outputs per packed row:
// lab, d1 = squared distance to the nearest, d2 = to the second nearest (expanded form, >= 0).
// Each vector lane keeps its own running minimum over the panels (strict <, so the earliest panel
// wins a tie); the lanes are then reduced with ties going to the lower center index.
template <class T, bool Second>
ECGCORE_INLINE void nearest_packed_impl(const Panel<T>& P, const T* xs, const T* xn, int64_t nr, int32_t* lab,
                                        T* d1, T* d2) {
  using V = VecT<T>;
  using VI = VecI<T>;
  using I = IdxOf<T>;
  constexpr int VL = kVL<T>;
  constexpr int L = kLanes<T>;
  const int64_t d = P.d;
  constexpr T big = std::numeric_limits<T>::max();
  VI iota0, iota1;
  for (int j = 0; j < VL; ++j) {
    iota0[j] = static_cast<I>(j);
    iota1[j] = static_cast<I>(VL + j);
  }
  for (int64_t rt = 0; rt < nr; rt += kTile) {
    V b1[2 * kTile], b2[2 * kTile];
    VI bi[2 * kTile];
    for (int q = 0; q < 2 * kTile; ++q) {
      b1[q] = V{} + big;
      b2[q] = V{} + big;
      bi[q] = VI{};
    }
    for (int64_t p = 0; p < P.np; ++p) {
      V acc[2 * kTile];
      tile_dots(xs + rt * d, d, P.ct.data() + p * d * L, acc);
      const V cn[2] = {load_vec<V>(P.cn.data() + p * L), load_vec<V>(P.cn.data() + p * L + VL)};
      const VI base[2] = {iota0 + static_cast<I>(p * L), iota1 + static_cast<I>(p * L)};
      for (int q = 0; q < 2 * kTile; ++q) {
        const V v = cn[q & 1] - acc[q] * T(2);
        const VI m = v < b1[q];
        if (Second) b2[q] = m ? b1[q] : (v < b2[q] ? v : b2[q]);
        b1[q] = m ? v : b1[q];
        bi[q] = m ? base[q & 1] : bi[q];
      }
    }
    const int rows = static_cast<int>(std::min<int64_t>(kTile, nr - rt));
    for (int r = 0; r < rows; ++r) {
      T best = big;
      I idx = std::numeric_limits<I>::max();
      int win = 0;
      for (int h = 0; h < 2; ++h)
        for (int j = 0; j < VL; ++j) {
          const T v = b1[2 * r + h][j];
          const I i = bi[2 * r + h][j];
          if (v < best || (v == best && i < idx)) {
            best = v;
            idx = i;
            win = h * VL + j;
          }
        }
      lab[rt + r] = static_cast<int32_t>(idx);
      d1[rt + r] = std::max(T(0), xn[rt + r] + best);
      if (Second) {
        T second = big;
        for (int h = 0; h < 2; ++h)
          for (int j = 0; j < VL; ++j) {
            second = std::min(second, b2[2 * r + h][j]);
            if (h * VL + j != win) second = std::min(second, b1[2 * r + h][j]);
          }
        d2[rt + r] = second >= big / 2 ? big : std::max(T(0), xn[rt + r] + second);
      }
    }
  }
}

// Distances of nr packed rows to every center into out[r * ldo + c].
template <class T>
ECGCORE_INLINE void distance_packed_impl(const Panel<T>& P, const T* xs, const T* xn, int64_t nr, T* out,
                                         int64_t ldo, bool squared) {
  using V = VecT<T>;
  constexpr int VL = kVL<T>;
  constexpr int L = kLanes<T>;
  const int64_t d = P.d;
  for (int64_t rt = 0; rt < nr; rt += kTile) {
    const int rows = static_cast<int>(std::min<int64_t>(kTile, nr - rt));
    for (int64_t p = 0; p < P.np; ++p) {
      V acc[2 * kTile];
      tile_dots(xs + rt * d, d, P.ct.data() + p * d * L, acc);
      const int cols = static_cast<int>(std::min<int64_t>(L, P.k - p * L));
      const T* cn = P.cn.data() + p * L;
      for (int r = 0; r < rows; ++r) {
        T* o = out + (rt + r) * ldo + p * L;
        for (int j = 0; j < cols; ++j) {
          const T dot = j < VL ? acc[2 * r][j] : acc[2 * r + 1][j - VL];
          const T v = std::max(T(0), xn[rt + r] + cn[j] - T(2) * dot);
          o[j] = squared ? v : std::sqrt(v);
        }
      }
    }
  }
}

// k-means++ candidate sweep over data panels p0..p1 (the rows are the panel columns here, the few
// candidates are the packed tile rows): D[t * n + row] = min(closest[row], d(candidate t, row)^2),
// sums[t] = the sum of those over the panels' rows (in row order, double).
template <class T>
ECGCORE_INLINE void plusplus_panels_impl(const Panel<T>& XP, int64_t p0, int64_t p1, const T* cs, const T* cnorm,
                                         int ntr, const T* closest, T* D, double* sums) {
  using V = VecT<T>;
  constexpr int VL = kVL<T>;
  constexpr int L = kLanes<T>;
  const int64_t d = XP.d, n = XP.k;
  for (int t = 0; t < ntr; ++t) sums[t] = 0.0;
  for (int64_t p = p0; p < p1; ++p) {
    const int64_t row0 = p * L;
    const int cols = static_cast<int>(std::min<int64_t>(L, n - row0));
    for (int tt = 0; tt < ntr; tt += kTile) {
      V acc[2 * kTile];
      tile_dots(cs + tt * d, d, XP.ct.data() + p * d * L, acc);
      const int rows = std::min(kTile, ntr - tt);
      for (int r = 0; r < rows; ++r) {
        T* out = D + static_cast<int64_t>(tt + r) * n + row0;
        T buf[L];
        for (int j = 0; j < L; ++j) {
          const T dot = j < VL ? acc[2 * r][j] : acc[2 * r + 1][j - VL];
          buf[j] = std::max(T(0), XP.cn[row0 + j] + cnorm[tt + r] - T(2) * dot);
        }
        double s = 0.0;
        for (int j = 0; j < cols; ++j) {
          const T v = std::min(closest[row0 + j], buf[j]);
          out[j] = v;
          s += v;
        }
        sums[tt + r] += s;
      }
    }
  }
}

// Multi-versioned entry points (one per dtype; the template bodies above are inlined into each clone).
#define ECGCORE_KMEANS_CLONES(T)                                                                                  \
  ECGCORE_CLONES void nearest_packed(const Panel<T>& P, const T* xs, const T* xn, int64_t nr, int32_t* lab, T* d1, \
                                     T* d2) {                                                                     \
    if (d2)                                                                                                       \
      nearest_packed_impl<T, true>(P, xs, xn, nr, lab, d1, d2);                                                  \
    else                                                                                                          \
      nearest_packed_impl<T, false>(P, xs, xn, nr, lab, d1, d2);                                                 \
  }                                                                                                               \
  ECGCORE_CLONES void distance_packed(const Panel<T>& P, const T* xs, const T* xn, int64_t nr, T* out,           \
                                      int64_t ldo, bool squared) {                                                \
    distance_packed_impl(P, xs, xn, nr, out, ldo, squared);                                                       \
  }                                                                                                               \
  ECGCORE_CLONES void plusplus_panels(const Panel<T>& XP, int64_t p0, int64_t p1, const T* cs, const T* cnorm,   \
                                      int ntr, const T* closest, T* D, double* sums) {                            \
    plusplus_panels_impl(XP, p0, p1, cs, cnorm, ntr, closest, D, sums);                                           \
  }
ECGCORE_KMEANS_CLONES(float)
ECGCORE_KMEANS_CLONES(double)
#undef ECGCORE_KMEANS_CLONES

template <class T>
double sqdist(const T* a, const T* b, int64_t d) {
  double s = 0.0;
  for (int64_t t = 0; t < d; ++t) {
    const double v = static_cast<double>(a[t]) - static_cast<double>(b[t]);
    s += v * v;
  }
  return s;
}

// sqdist with eight independent partial sums (fixed order, so still deterministic): the bound
// tightening in the Yinyang step is latency-bound otherwise.
template <class T>
ECGCORE_INLINE double sqdist8(const T* a, const T* b, int64_t d) {
  double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t t = 0;
  for (; t + 8 <= d; t += 8)
    for (int j = 0; j < 8; ++j) {
      const double v = static_cast<double>(a[t + j]) - static_cast<double>(b[t + j]);
      s[j] += v * v;
    }
  for (int j = 0; t < d; ++t, ++j) {
    const double v = static_cast<double>(a[t]) - static_cast<double>(b[t]);
    s[j] += v * v;
  }
  return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
}

// Per-thread scratch for packed rows.
template <class T>
struct Scratch {
  std::vector<T> xs, xn, d1, d2;
  std::vector<int32_t> lab;
  std::vector<int64_t> idx;
  Scratch(int64_t d) : xs((kChunk + kTile) * d), xn(kChunk + kTile), d1(kChunk + kTile), d2(kChunk + kTile),
                       lab(kChunk + kTile), idx(kChunk) {}
};

// Labels of all rows against a panel.
template <class T>
void assign_all(const Panel<T>& P, const T* X, int64_t n, int32_t* labels, int nt) {
  const int64_t nc = n_chunks(n);
#pragma omp parallel num_threads(nt)
  {
    Scratch<T> s(P.d);
#pragma omp for schedule(static)
    for (int64_t c = 0; c < nc; ++c) {
      const int64_t r0 = c * kChunk, nr = std::min(kChunk, n - r0);
      pack_rows(X, r0, static_cast<const int64_t*>(nullptr), nr, P.d, P.shift.data(), s.xs.data(), s.xn.data());
      nearest_packed(P, s.xs.data(), s.xn.data(), nr, labels + r0, s.d1.data(), static_cast<T*>(nullptr));
    }
  }
}

// Exact (difference form) inertia in double, summed chunk by chunk in order.
template <class T>
double exact_inertia(const T* X, int64_t n, int64_t d, const T* C, const int32_t* labels, int nt) {
  const int64_t nc = n_chunks(n);
  std::vector<double> part(nc, 0.0);
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t c = 0; c < nc; ++c) {
    double s = 0.0;
    for (int64_t i = c * kChunk; i < std::min(n, (c + 1) * kChunk); ++i)
      s += sqdist(X + i * d, C + static_cast<int64_t>(labels[i]) * d, d);
    part[c] = s;
  }
  double s = 0.0;
  for (double v : part) s += v;
  return s;
}

// Rows grouped by label (counting sort, stable) and the per-cluster sums of their rows in double.
struct Groups {
  std::vector<int64_t> start, order;
};

Groups group_rows(const int32_t* labels, int64_t n, int64_t k) {
  Groups g;
  g.start.assign(k + 1, 0);
  for (int64_t i = 0; i < n; ++i) ++g.start[labels[i] + 1];
  for (int64_t c = 0; c < k; ++c) g.start[c + 1] += g.start[c];
  g.order.resize(n);
  std::vector<int64_t> pos(g.start.begin(), g.start.end() - 1);
  for (int64_t i = 0; i < n; ++i) g.order[pos[labels[i]]++] = i;
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

// Lloyd M-step with scikit-learn's empty-cluster relocation. sums/counts are the per-cluster row
// sums and sizes for `labels` (left untouched: relocation works on copies). centers_old ->
// centers_new; returns the summed squared center shift.
template <class T>
double update_centers(const T* X, int64_t n, int64_t d, int64_t k, const int32_t* labels, const T* centers_old,
                      T* centers_new, const std::vector<double>& cluster_sum, const std::vector<int64_t>& cluster_size,
                      int nt) {
  std::vector<int64_t> empty;
  for (int64_t c = 0; c < k; ++c)
    if (cluster_size[c] == 0) empty.push_back(c);
  std::vector<double> relocated_sums;
  std::vector<int64_t> relocated_counts;
  const std::vector<double>* sums_p = &cluster_sum;
  const std::vector<int64_t>* counts_p = &cluster_size;
  if (!empty.empty()) {
    relocated_sums = cluster_sum;
    relocated_counts = cluster_size;
    sums_p = &relocated_sums;
    counts_p = &relocated_counts;
    std::vector<double>& sums = relocated_sums;
    std::vector<int64_t>& counts = relocated_counts;
    std::vector<double> dist(n);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t i = 0; i < n; ++i) dist[i] = sqdist(X + i * d, centers_old + static_cast<int64_t>(labels[i]) * d, d);
    const double dmax = *std::max_element(dist.begin(), dist.end());
    if (dmax > 0.0) {  // otherwise there are more clusters than distinct rows: nothing to gain
      const int64_t ne = static_cast<int64_t>(empty.size());
      std::vector<int64_t> idx(n);
      for (int64_t i = 0; i < n; ++i) idx[i] = i;
      std::partial_sort(idx.begin(), idx.begin() + ne, idx.end(), [&](int64_t a, int64_t b) {
        return dist[a] > dist[b] || (dist[a] == dist[b] && a < b);
      });
      for (int64_t e = 0; e < ne; ++e) {
        const int64_t far = idx[e], to = empty[e], from = labels[far];
        const T* row = X + far * d;
        for (int64_t t = 0; t < d; ++t) {
          sums[from * d + t] -= row[t];
          sums[to * d + t] = row[t];
        }
        --counts[from];
        counts[to] = 1;
      }
    }
  }
  double shift = 0.0;
  for (int64_t c = 0; c < k; ++c) {
    for (int64_t t = 0; t < d; ++t) {
      // A cluster left without rows keeps its previous center.
      const T v = (*counts_p)[c] > 0 ? static_cast<T>((*sums_p)[c * d + t] / static_cast<double>((*counts_p)[c]))
                                     : centers_old[c * d + t];
      const double diff = static_cast<double>(v) - centers_old[c * d + t];
      shift += diff * diff;
      centers_new[c * d + t] = v;
    }
  }
  return shift;
}

// Small deterministic generator (xoshiro256**, seeded through splitmix64): identical streams on
// every platform, unlike std::uniform_real_distribution.
class Rng {
 public:
  explicit Rng(uint64_t seed) {
    for (auto& s : s_) {
      seed += 0x9E3779B97F4A7C15ULL;
      uint64_t z = seed;
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
      s = z ^ (z >> 31);
    }
  }
  uint64_t next() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }  // [0, 1)

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

}  // namespace

template <class T>
void kmeans_plusplus(const T* X, int64_t n, int64_t d, int64_t k, uint64_t seed, int n_local_trials, T* centers,
                     int64_t* indices, int n_threads) {
  check_shape(n, d, "kmeans_plusplus");
  if (k < 1 || k > n)
    throw std::invalid_argument("kmeans_plusplus: n_clusters must be between 1 and the number of rows (" +
                                std::to_string(n) + "), got " + std::to_string(k));
  const int64_t nc = n_chunks(n);
  const int nt = resolve_threads(n_threads, nc);
  check_finite(X, n * d, "X", nt);
  const int trials = n_local_trials > 0 ? n_local_trials : 2 + static_cast<int>(std::log(static_cast<double>(k)));
  const std::vector<double> shift = column_mean(X, n, d, nt, nullptr);
  // The data become the panel columns (packed once); the few candidates per step are the tile rows.
  const Panel<T> XP = make_panel(X, n, d, shift);
  constexpr int64_t kPanelsPerChunk = kChunk / kLanes<T>;

  Rng rng(seed);
  std::vector<T> closest(n, std::numeric_limits<T>::max());
  std::vector<double> chunk_pot(nc), prefix(nc), part(static_cast<size_t>(nc * trials));
  std::vector<T> D(static_cast<size_t>(trials * n));
  std::vector<T> cs(static_cast<size_t>((trials + kTile) * d)), cnorm(trials + kTile);

  // D[t] = min(closest, d(cand[t], .)^2) for every row; part[c * trials + t] = its chunk sums.
  auto sweep = [&](const std::vector<int64_t>& cand) {
    const int m = static_cast<int>(cand.size());
    pack_rows(X, 0, cand.data(), m, d, XP.shift.data(), cs.data(), cnorm.data());
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t c = 0; c < nc; ++c) {
      const int64_t p0 = c * kPanelsPerChunk, p1 = std::min(XP.np, (c + 1) * kPanelsPerChunk);
      plusplus_panels(XP, p0, p1, cs.data(), cnorm.data(), m, closest.data(), D.data(), &part[c * trials]);
    }
  };
  auto choose = [&](int t) {  // make candidate t's distances the current ones
    std::copy(D.begin() + t * n, D.begin() + (t + 1) * n, closest.begin());
    for (int64_t c = 0; c < nc; ++c) chunk_pot[c] = part[c * trials + t];
  };

  int64_t first = std::min(static_cast<int64_t>(rng.uniform() * static_cast<double>(n)), n - 1);
  indices[0] = first;
  std::copy(X + first * d, X + (first + 1) * d, centers);
  sweep({first});
  choose(0);

  std::vector<int64_t> cand(trials);
  for (int64_t ci = 1; ci < k; ++ci) {
    double pot = 0.0;
    for (int64_t c = 0; c < nc; ++c) {
      pot += chunk_pot[c];
      prefix[c] = pot;
    }
    // Draw candidates: first row whose running potential reaches u * pot (numpy searchsorted, left).
    for (int tr = 0; tr < trials; ++tr) {
      const double target = rng.uniform() * pot;
      const int64_t c = std::lower_bound(prefix.begin(), prefix.end(), target) - prefix.begin();
      int64_t pick = n - 1;  // round-off can leave target above the total: take the last row
      if (c < nc) {
        const int64_t end = std::min(n, (c + 1) * kChunk);
        double run = c > 0 ? prefix[c - 1] : 0.0;
        pick = end - 1;
        for (int64_t i = c * kChunk; i < end; ++i) {
          run += closest[i];
          if (run >= target) {
            pick = i;
            break;
          }
        }
      }
      cand[tr] = pick;
    }
    sweep(cand);
    int best = 0;
    double best_pot = std::numeric_limits<double>::infinity();
    for (int tr = 0; tr < trials; ++tr) {
      double s = 0.0;
      for (int64_t c = 0; c < nc; ++c) s += part[c * trials + tr];
      if (s < best_pot) {
        best_pot = s;
        best = tr;
      }
    }
    indices[ci] = cand[best];
    std::copy(X + cand[best] * d, X + (cand[best] + 1) * d, centers + ci * d);
    choose(best);
  }
}

namespace {

// Center half-separations s[j] = min_{j' != j} ||c_j - c_j'|| / 2 (Hamerly's bound).
template <class T>
std::vector<T> half_separation(const T* C, int64_t k, int64_t d, int nt) {
  std::vector<T> s(k, std::numeric_limits<T>::max());
#pragma omp parallel for num_threads(nt) schedule(dynamic, 8)
  for (int64_t a = 0; a < k; ++a) {
    double best = std::numeric_limits<double>::infinity();
    for (int64_t b = 0; b < k; ++b)
      if (b != a) best = std::min(best, sqdist(C + a * d, C + b * d, d));
    if (k > 1) s[a] = static_cast<T>(0.5 * std::sqrt(best));
  }
  return s;
}

// Hamerly's accelerated E-step: rows whose bounds prove their label cannot change are skipped; the
// others get the nearest and second-nearest center from the GEMM kernel. u: upper bound on the
// distance to the own center, l: lower bound on the distance to any other center.
template <class T>
void bounded_assign(const Panel<T>& P, const T* X, int64_t n, const T* C, int32_t* labels, T* u, T* l, bool all,
                    int nt) {
  const int64_t d = P.d, nc = n_chunks(n);
  const std::vector<T> s = half_separation(C, P.k, d, nt);
#pragma omp parallel num_threads(nt)
  {
    Scratch<T> w(d);
#pragma omp for schedule(dynamic, 4)
    for (int64_t c = 0; c < nc; ++c) {
      const int64_t r0 = c * kChunk, r1 = std::min(n, (c + 1) * kChunk);
      int64_t m = 0;
      for (int64_t i = r0; i < r1; ++i) {
        if (!all) {
          const T bound = std::max(s[labels[i]], l[i]);
          if (u[i] <= bound) continue;
          u[i] = static_cast<T>(std::sqrt(sqdist(X + i * d, C + static_cast<int64_t>(labels[i]) * d, d)));
          if (u[i] <= bound) continue;
        }
        w.idx[m++] = i;
      }
      if (m == 0) continue;
      pack_rows(X, 0, w.idx.data(), m, d, P.shift.data(), w.xs.data(), w.xn.data());
      nearest_packed(P, w.xs.data(), w.xn.data(), m, w.lab.data(), w.d1.data(), w.d2.data());
      for (int64_t q = 0; q < m; ++q) {
        const int64_t i = w.idx[q];
        labels[i] = w.lab[q];
        u[i] = std::sqrt(w.d1[q]);
        l[i] = w.d2[q] >= std::numeric_limits<T>::max() ? std::numeric_limits<T>::max() : std::sqrt(w.d2[q]);
      }
    }
  }
}


// ---- Yinyang k-means (Ding et al., 2015): one lower bound per group of centers -------------------
// A group is one vector of kVL<T> centers (16 float / 8 double). The groups are formed once from the
// initial centers (greedy: each group is a far-out center plus its nearest unassigned neighbours), so
// that a group's bound is tight. Per row: u = upper bound on the distance to its own center, lb[g] =
// lower bound on the distance to every center of group g other than its own. A row whose bounds
// prove its label is unchanged is skipped; otherwise its own group and every group whose bound is
// below u are recomputed with the GEMM micro-kernel, and the nearest of those centers is the label
// (ties -> lower center index, as in the dense kernel).
constexpr int kYRows = 8;     // rows per register tile of the group kernel
constexpr int64_t kYBlock = 64;  // rows per packed block

template <class T>
struct GPanel {
  int64_t k = 0, d = 0, G = 0;
  std::vector<int32_t> slot;      // [G * VL] original center index per slot (padding: INT32_MAX)
  std::vector<int32_t> group_of;  // [k] group of each center
  std::vector<T> shift, gt, gn;   // shifted centers gt[(g * d + t) * VL + j], squared norms gn[g * VL + j]
};

template <class T>
GPanel<T> make_groups(const T* C, int64_t k, int64_t d, const std::vector<double>& shift) {
  constexpr int VL = kVL<T>;
  GPanel<T> P;
  P.k = k;
  P.d = d;
  P.G = (k + VL - 1) / VL;
  P.shift.resize(d);
  for (int64_t t = 0; t < d; ++t) P.shift[t] = static_cast<T>(shift[t]);
  P.slot.assign(static_cast<size_t>(P.G * VL), std::numeric_limits<int32_t>::max());
  P.group_of.assign(k, 0);
  const std::vector<double> mean = center_mean(C, k, d);
  std::vector<char> used(k, 0);
  std::vector<std::pair<double, int64_t>> cand;
  for (int64_t g = 0; g < P.G; ++g) {
    int64_t seed = -1;
    double far = -1.0;
    for (int64_t c = 0; c < k; ++c) {
      if (used[c]) continue;
      double s = 0.0;
      for (int64_t t = 0; t < d; ++t) {
        const double v = C[c * d + t] - mean[t];
        s += v * v;
      }
      if (s > far) {
        far = s;
        seed = c;
      }
    }
    cand.clear();
    for (int64_t c = 0; c < k; ++c)
      if (!used[c]) cand.emplace_back(c == seed ? -1.0 : sqdist(C + seed * d, C + c * d, d), c);
    const int64_t take = std::min<int64_t>(VL, static_cast<int64_t>(cand.size()));
    std::partial_sort(cand.begin(), cand.begin() + take, cand.end());
    std::vector<int32_t> members;
    for (int64_t j = 0; j < take; ++j) members.push_back(static_cast<int32_t>(cand[j].second));
    std::sort(members.begin(), members.end());  // lanes in center order: first equal lane = lower index
    for (int64_t j = 0; j < take; ++j) {
      P.slot[g * VL + j] = members[j];
      P.group_of[members[j]] = static_cast<int32_t>(g);
      used[members[j]] = 1;
    }
  }
  P.gt.assign(static_cast<size_t>(P.G * d * VL), T(0));
  P.gn.assign(static_cast<size_t>(P.G * VL), std::numeric_limits<T>::max() / 4);
  return P;
}

// Refresh the packed (shifted) centers of the groups from C.
template <class T>
void fill_groups(GPanel<T>& P, const T* C) {
  constexpr int VL = kVL<T>;
  const int64_t d = P.d;
  for (int64_t s = 0; s < P.G * VL; ++s) {
    const int32_t c = P.slot[s];
    if (c == std::numeric_limits<int32_t>::max()) continue;
    const int64_t g = s / VL, j = s % VL;
    double nrm = 0.0;
    for (int64_t t = 0; t < d; ++t) {
      const T v = C[c * d + t] - P.shift[t];
      P.gt[(g * d + t) * VL + j] = v;
      nrm += static_cast<double>(v) * v;
    }
    P.gn[s] = static_cast<T>(nrm);
  }
}

template <class T>
ECGCORE_INLINE T hmin(VecT<T> v) {
  constexpr int VL = kVL<T>;
#if defined(__GNUC__) && !defined(__clang__)
  using VI = VecI<T>;
  using I = IdxOf<T>;
  for (int s = VL / 2; s >= 1; s /= 2) {
    VI m;
    for (int j = 0; j < VL; ++j) m[j] = static_cast<I>(j ^ s);
    const VecT<T> w = __builtin_shuffle(v, m);
    v = w < v ? w : v;
  }
  return v[0];
#else
  T b = v[0];
  for (int j = 1; j < VL; ++j) b = std::min(b, v[j]);
  return b;
#endif
}

// Squared distances of the packed rows rows[0..m) (xs rows, norms xn) to the centers of group g:
// dist[rows[q] * G + g][0..VL) and their minimum m1[rows[q] * G + g].
template <class T>
ECGCORE_INLINE void group_rows_impl(const GPanel<T>& P, int64_t g, const T* xs, const T* xn, const int32_t* rows,
                                    int m, const T* zero, T* dist, T* m1) {
  using V = VecT<T>;
  constexpr int VL = kVL<T>;
  const int64_t d = P.d, G = P.G;
  const T* gp = P.gt.data() + g * d * VL;
  const V cn = load_vec<V>(P.gn.data() + g * VL);
  for (int q0 = 0; q0 < m; q0 += kYRows) {
    const int rows_here = std::min(kYRows, m - q0);
    const T* xr[kYRows];
    for (int r = 0; r < kYRows; ++r) xr[r] = r < rows_here ? xs + rows[q0 + r] * d : zero;
    V acc[kYRows];
    for (auto& a : acc) a = V{};
    for (int64_t t = 0; t < d; ++t) {
      const V c = load_vec<V>(gp + t * VL);
      for (int r = 0; r < kYRows; ++r) acc[r] += c * xr[r][t];  // scalar operand: broadcast
    }
    for (int r = 0; r < rows_here; ++r) {
      const int64_t q = rows[q0 + r];
      const V v = (V{} + xn[q]) + cn - acc[r] * T(2);
      store_vec(dist + (q * G + g) * VL, v);
      m1[q * G + g] = hmin<T>(v);
    }
  }
}

#define ECGCORE_YY_CLONES(T)                                                                                   \
  ECGCORE_CLONES void group_rows_kernel(const GPanel<T>& P, int64_t g, const T* xs, const T* xn,              \
                                        const int32_t* rows, int m, const T* zero, T* dist, T* m1) {          \
    group_rows_impl(P, g, xs, xn, rows, m, zero, dist, m1);                                                   \
  }
ECGCORE_YY_CLONES(float)
ECGCORE_YY_CLONES(double)
#undef ECGCORE_YY_CLONES

template <class T>
struct YScratch {
  std::vector<T> xs, xn, dist, m1, zero;
  std::vector<int64_t> idx, fail;
  std::vector<int32_t> rows;
  std::vector<char> need;
  YScratch(int64_t d, int64_t G)
      : xs((kYBlock + kTile) * d), xn(kYBlock + kTile), dist(static_cast<size_t>(kYBlock * G * kVL<T>)),
        m1(static_cast<size_t>(kYBlock * G)), zero(d, T(0)), idx(kChunk), fail(kChunk + 1), rows(kYBlock),
        need(static_cast<size_t>(kYBlock * G)) {}
};

// Yinyang E-step at step `step`. delta[c]: how far center c moved in the last update, dmax: the
// largest delta; S[s * G + g]: summed largest drift of group g over the updates before step s. The
// group bounds lb[i * G + g] are stored as of step stamp[i] and brought up to date (lb - S[step] +
// S[stamp]) only for rows whose single global bound lglob (lowered by dmax every step) fails.
// With all set, every row is compared with every center and the bounds are initialised.
template <class T>
void yinyang_assign(const GPanel<T>& P, const T* X, const T* xnorm, int64_t n, const T* C, int32_t* labels, T* u,
                    T* lglob, T* lb, int32_t* stamp, const T* delta, T dmax, const double* S, int32_t step, bool all,
                    int nt) {
  constexpr int VL = kVL<T>;
  constexpr T big = std::numeric_limits<T>::max();
  const int64_t d = P.d, G = P.G, nc = n_chunks(n);
  const double* Sn = S + static_cast<int64_t>(step) * G;
#pragma omp parallel num_threads(nt)
  {
    YScratch<T> w(d, G);
#pragma omp for schedule(dynamic, 4)
    for (int64_t c = 0; c < nc; ++c) {
      const int64_t r0 = c * kChunk, r1 = std::min(n, (c + 1) * kChunk);
      int64_t m = 0;
      if (all) {
        for (int64_t i = r0; i < r1; ++i) w.idx[m++] = i;
      } else {
        // Pass 1: the global bound. Pass 2: the group bounds of the rows that fail it. Pass 3:
        // tighten u with the exact distance (prefetching the sparse rows ahead); rows that still
        // fail go to the distance kernel.
        int64_t nf = 0;
        for (int64_t i = r0; i < r1; ++i) {
          u[i] += delta[labels[i]];
          lglob[i] -= dmax;
          w.fail[nf] = i;
          nf += u[i] > lglob[i];
        }
        int64_t nf2 = 0;
        for (int64_t j = 0; j < nf; ++j) {
          const int64_t i = w.fail[j];
          T* lbi = lb + i * G;
          const double* So = S + static_cast<int64_t>(stamp[i]) * G;
          T gmin = big;
          for (int64_t g = 0; g < G; ++g) {
            lbi[g] = static_cast<T>(lbi[g] - (Sn[g] - So[g]));
            gmin = lbi[g] < gmin ? lbi[g] : gmin;
          }
          stamp[i] = step;
          lglob[i] = gmin;
          w.fail[nf2] = i;
          nf2 += u[i] > gmin;
        }
        nf = nf2;
        constexpr int64_t ahead = 6;
        for (int64_t j = 0; j < nf; ++j) {
          if (j + ahead < nf) {
            const char* p = reinterpret_cast<const char*>(X + w.fail[j + ahead] * d);
            for (int64_t b = 0; b < static_cast<int64_t>(d * sizeof(T)); b += 64) __builtin_prefetch(p + b);
          }
          const int64_t i = w.fail[j];
          u[i] = static_cast<T>(std::sqrt(sqdist8(X + i * d, C + static_cast<int64_t>(labels[i]) * d, d)));
          if (u[i] > lglob[i]) w.idx[m++] = i;
        }
      }
      for (int64_t b0 = 0; b0 < m; b0 += kYBlock) {
        const int mb = static_cast<int>(std::min(kYBlock, m - b0));
        const int64_t* idx = w.idx.data() + b0;
        for (int q = 0; q < mb; ++q) {
          const int64_t i = idx[q];
          const T* row = X + i * d;
          T* out = w.xs.data() + q * d;
          for (int64_t t = 0; t < d; ++t) out[t] = row[t] - P.shift[t];
          w.xn[q] = xnorm[i];
          char* nq = w.need.data() + q * G;
          if (all) {
            std::fill(nq, nq + G, char(1));
          } else {
            const T* lbi = lb + i * G;
            for (int64_t g = 0; g < G; ++g) nq[g] = lbi[g] < u[i];
            nq[P.group_of[labels[i]]] = 1;
          }
        }
        for (int64_t g = 0; g < G; ++g) {
          int cnt = 0;
          for (int q = 0; q < mb; ++q)
            if (w.need[q * G + g]) w.rows[cnt++] = q;
          if (cnt)
            group_rows_kernel(P, g, w.xs.data(), w.xn.data(), w.rows.data(), cnt, w.zero.data(), w.dist.data(),
                              w.m1.data());
        }
        for (int q = 0; q < mb; ++q) {
          const int64_t i = idx[q];
          const char* nq = w.need.data() + q * G;
          const T* mq = w.m1.data() + q * G;
          const T* dq = w.dist.data() + q * G * VL;
          T best = big;
          int64_t bg = -1;
          for (int64_t g = 0; g < G; ++g)
            if (nq[g] && mq[g] < best) {
              best = mq[g];
              bg = g;
            }
          int lane = 0;
          while (dq[bg * VL + lane] != best) ++lane;
          for (int64_t g = bg + 1; g < G; ++g)  // exact ties across groups: lower center index wins
            if (nq[g] && mq[g] == best) {
              int j = 0;
              while (dq[g * VL + j] != best) ++j;
              if (P.slot[g * VL + j] < P.slot[bg * VL + lane]) {
                bg = g;
                lane = j;
              }
            }
          T second = big;
          for (int j = 0; j < VL; ++j)
            if (j != lane) second = std::min(second, dq[bg * VL + j]);
          labels[i] = P.slot[bg * VL + lane];
          u[i] = std::sqrt(std::max(T(0), best));
          T* lbi = lb + i * G;
          T gmin = big;
          for (int64_t g = 0; g < G; ++g) {
            if (nq[g]) lbi[g] = std::sqrt(std::max(T(0), g == bg ? second : mq[g]));
            gmin = lbi[g] < gmin ? lbi[g] : gmin;
          }
          lglob[i] = gmin;
          stamp[i] = step;
        }
      }
    }
  }
}

}  // namespace

template <class T>
KMeansFit kmeans_lloyd(const T* X, int64_t n, int64_t d, int64_t k, T* centers, int32_t* labels, int max_iter,
                       double tol, int n_threads) {
  check_shape(n, d, "kmeans_lloyd");
  if (k < 1 || k > n)
    throw std::invalid_argument("kmeans_lloyd: n_clusters must be between 1 and the number of rows (" +
                                std::to_string(n) + "), got " + std::to_string(k));
  if (k > std::numeric_limits<int32_t>::max()) throw std::invalid_argument("kmeans_lloyd: too many clusters");
  if (max_iter < 1) throw std::invalid_argument("kmeans_lloyd: max_iter must be >= 1, got " + std::to_string(max_iter));
  if (!(tol >= 0.0)) throw std::invalid_argument("kmeans_lloyd: tol must be >= 0");
  const int64_t nc = n_chunks(n);
  const int nt = resolve_threads(n_threads, nc);
  check_finite(X, n * d, "X", nt);
  check_finite(centers, k * d, "initial centers", 1);
  double mean_var = 0.0;
  const std::vector<double> shift = column_mean(X, n, d, nt, &mean_var);
  const double tol_abs = tol * mean_var;

  // Lloyd's algorithm with Yinyang group bounds (or Hamerly's single bound when k fits in one group
  // or the group bounds would take too much memory): same labels as plain Lloyd, far fewer distances.
  constexpr int VL = kVL<T>;
  const int64_t G = (k + VL - 1) / VL;
  const bool yinyang = G >= 2 && static_cast<double>(n) * G * sizeof(T) <= 1024.0 * 1024 * 1024;
  GPanel<T> GP;
  std::vector<T> xnorm;  // squared norms of the shifted rows, fixed for the whole fit
  if (yinyang) {
    GP = make_groups(centers, k, d, shift);
    xnorm.resize(n);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t i = 0; i < n; ++i) xnorm[i] = static_cast<T>(sqdist8(X + i * d, GP.shift.data(), d));
  }
  std::vector<T> u(n), l(yinyang ? static_cast<size_t>(n * G) : static_cast<size_t>(n));
  std::vector<int32_t> labels_old(n, -1);
  std::vector<T> next(static_cast<size_t>(k * d));
  std::vector<T> delta(k, T(0)), drift(yinyang ? G : 0, T(0));
  std::vector<T> lglob(yinyang ? n : 0);
  std::vector<int32_t> stamp(yinyang ? n : 0, 0);
  std::vector<double> S(yinyang ? static_cast<size_t>((max_iter + 1) * G) : 0, 0.0);
  int32_t step = 0;
  T dmax = 0, dmax2 = 0;
  std::vector<double> sums;
  std::vector<int64_t> sizes(k);
  KMeansFit fit;
  bool strict = false;
  auto assign = [&](bool all) {
    if (yinyang) {
      fill_groups(GP, centers);
      yinyang_assign(GP, X, xnorm.data(), n, centers, labels, u.data(), lglob.data(), l.data(), stamp.data(),
                     delta.data(), dmax, S.data(), step, all, nt);
    } else {
      bounded_assign(make_panel(centers, k, d, shift), X, n, centers, labels, u.data(), l.data(), all, nt);
    }
  };
  int it = 0;
  for (; it < max_iter; ++it) {
    assign(it == 0);
    // Cluster sums: from scratch once, then only the rows that changed cluster move their share
    // (sequentially in row order, so the result does not depend on the thread count).
    if (it == 0) {
      const Groups g = group_rows(labels, n, k);
      sums = cluster_sums<T>(X, d, k, g.start, g.order, nt);
      for (int64_t c = 0; c < k; ++c) sizes[c] = g.start[c + 1] - g.start[c];
    } else {
      for (int64_t i = 0; i < n; ++i) {
        const int32_t from = labels_old[i], to = labels[i];
        if (from == to) continue;
        const T* row = X + i * d;
        double* sf = &sums[static_cast<int64_t>(from) * d];
        double* st = &sums[static_cast<int64_t>(to) * d];
        for (int64_t t = 0; t < d; ++t) {
          sf[t] -= row[t];
          st[t] += row[t];
        }
        --sizes[from];
        ++sizes[to];
      }
    }
    const double moved = update_centers(X, n, d, k, labels, centers, next.data(), sums, sizes, nt);
    // How far each center moved: widen the bounds by it.
    dmax = 0;
    dmax2 = 0;
    int64_t arg = -1;
    for (int64_t c = 0; c < k; ++c) {
      delta[c] = static_cast<T>(std::sqrt(sqdist(centers + c * d, next.data() + c * d, d)));
      if (delta[c] > dmax) {
        dmax2 = dmax;
        dmax = delta[c];
        arg = c;
      } else if (delta[c] > dmax2) {
        dmax2 = delta[c];
      }
    }
    if (yinyang) {  // applied lazily by the next yinyang_assign
      std::fill(drift.begin(), drift.end(), T(0));
      for (int64_t c = 0; c < k; ++c) drift[GP.group_of[c]] = std::max(drift[GP.group_of[c]], delta[c]);
      for (int64_t g = 0; g < G; ++g) S[(step + 1) * G + g] = S[step * G + g] + drift[g];
      ++step;
    } else {
#pragma omp parallel for num_threads(nt) schedule(static)
      for (int64_t i = 0; i < n; ++i) {
        u[i] += delta[labels[i]];
        l[i] -= labels[i] == arg ? dmax2 : dmax;
      }
    }
    std::copy(next.begin(), next.end(), centers);
    if (std::equal(labels, labels + n, labels_old.begin())) {
      strict = true;
      fit.converged = true;
      break;
    }
    if (moved <= tol_abs) {
      fit.converged = true;
      break;
    }
    std::copy(labels, labels + n, labels_old.begin());
  }
  fit.n_iter = std::min(it + 1, max_iter);
  if (!strict) assign(false);
  fit.inertia = exact_inertia(X, n, d, centers, labels, nt);
  return fit;
}

template <class T>
double kmeans_assign(const T* X, int64_t n, int64_t d, const T* centers, int64_t k, int32_t* labels, int n_threads) {
  check_shape(n, d, "kmeans_assign");
  if (k < 1) throw std::invalid_argument("kmeans_assign: need at least one center");
  const int nt = resolve_threads(n_threads, n_chunks(n));
  check_finite(X, n * d, "X", nt);
  assign_all(make_panel(centers, k, d, center_mean(centers, k, d)), X, n, labels, nt);
  return exact_inertia(X, n, d, centers, labels, nt);
}

template <class T>
void kmeans_distances(const T* X, int64_t n, int64_t d, const T* centers, int64_t k, T* out, bool squared,
                      int n_threads) {
  check_shape(n, d, "kmeans_distances");
  if (k < 1) throw std::invalid_argument("kmeans_distances: need at least one center");
  const int64_t nc = n_chunks(n);
  const int nt = resolve_threads(n_threads, nc);
  check_finite(X, n * d, "X", nt);
  const Panel<T> P = make_panel(centers, k, d, center_mean(centers, k, d));
#pragma omp parallel num_threads(nt)
  {
    Scratch<T> s(d);
#pragma omp for schedule(static)
    for (int64_t c = 0; c < nc; ++c) {
      const int64_t r0 = c * kChunk, nr = std::min(kChunk, n - r0);
      pack_rows(X, r0, static_cast<const int64_t*>(nullptr), nr, d, P.shift.data(), s.xs.data(), s.xn.data());
      distance_packed(P, s.xs.data(), s.xn.data(), nr, out + r0 * k, k, squared);
    }
  }
}

template <class T>
double kmeans_minibatch_update(const T* X, int64_t n, int64_t d, T* centers, int64_t k, double* counts,
                               int32_t* labels, int n_threads) {
  check_shape(n, d, "kmeans_minibatch_update");
  if (k < 1) throw std::invalid_argument("kmeans_minibatch_update: need at least one center");
  const int nt = resolve_threads(n_threads, n_chunks(n));
  check_finite(X, n * d, "X", nt);
  for (int64_t c = 0; c < k; ++c)
    if (!(counts[c] >= 0.0)) throw std::invalid_argument("kmeans_minibatch_update: counts must be >= 0");
  assign_all(make_panel(centers, k, d, center_mean(centers, k, d)), X, n, labels, nt);
  const double inertia = exact_inertia(X, n, d, centers, labels, nt);
  const Groups g = group_rows(labels, n, k);
  const std::vector<double> sums = cluster_sums<T>(X, d, k, g.start, g.order, nt);
  for (int64_t c = 0; c < k; ++c) {
    const int64_t m = g.start[c + 1] - g.start[c];
    if (m == 0) continue;
    const double total = counts[c] + static_cast<double>(m);
    for (int64_t t = 0; t < d; ++t)
      centers[c * d + t] = static_cast<T>((static_cast<double>(centers[c * d + t]) * counts[c] + sums[c * d + t]) / total);
    counts[c] = total;
  }
  return inertia;
}

template <class T>
void l2_normalize_rows(const T* X, int64_t n, int64_t d, T* out, int n_threads) {
  check_shape(n, d, "l2_normalize_rows");
  const int nt = resolve_threads(n_threads, n_chunks(n));
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    double s = 0.0;
    for (int64_t t = 0; t < d; ++t) s += static_cast<double>(X[i * d + t]) * X[i * d + t];
    const T norm = static_cast<T>(std::sqrt(s));
    const T div = norm == T(0) ? T(1) : norm;
    for (int64_t t = 0; t < d; ++t) out[i * d + t] = X[i * d + t] / div;
  }
}

namespace {

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

#define ECGCORE_KMEANS_INSTANTIATE(T)                                                                          \
  template void kmeans_plusplus<T>(const T*, int64_t, int64_t, int64_t, uint64_t, int, T*, int64_t*, int);     \
  template KMeansFit kmeans_lloyd<T>(const T*, int64_t, int64_t, int64_t, T*, int32_t*, int, double, int);     \
  template double kmeans_assign<T>(const T*, int64_t, int64_t, const T*, int64_t, int32_t*, int);              \
  template void kmeans_distances<T>(const T*, int64_t, int64_t, const T*, int64_t, T*, bool, int);             \
  template double kmeans_minibatch_update<T>(const T*, int64_t, int64_t, T*, int64_t, double*, int32_t*, int); \
  template void l2_normalize_rows<T>(const T*, int64_t, int64_t, T*, int);                                     \
  template double davies_bouldin<T>(const T*, int64_t, int64_t, const int64_t*, int64_t, int);                 \
  template double calinski_harabasz<T>(const T*, int64_t, int64_t, const int64_t*, int64_t, int);              \
  template void silhouette_samples<T>(const T*, int64_t, int64_t, const int64_t*, int64_t, double*, int);

ECGCORE_KMEANS_INSTANTIATE(float)
ECGCORE_KMEANS_INSTANTIATE(double)
#undef ECGCORE_KMEANS_INSTANTIATE

}  // namespace ecgcore
