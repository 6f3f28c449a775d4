// k-means kernels; see kmeans.hpp for the contracts.
#include "ecgcore/kmeans.hpp"

#include "ecgcore/detail/simd.hpp"
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <exception>
#include <limits>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "ecgcore/detail/cluster_rows.hpp"
#include "ecgcore/detail/config.hpp"
#include "ecgcore/detail/parallel.hpp"

// The distance kernels are compiled for AVX2+FMA as well as the portable baseline, and use_avx2()
// picks one at run time (simd.hpp). Results can differ in the last bits between the two builds (FMA),
// never between runs or thread counts on one machine.
#if defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

namespace ecgcore {
namespace {

using detail::check_shape;
using detail::cluster_sums;
using detail::column_mean;
using detail::group_rows;
using detail::group_rows_into;
using detail::Groups;
using detail::kChunk;
using detail::n_chunks;
using detail::sqdist;

constexpr int kBlock = 64;       // rows per block of the distance kernels (their rows stay in L1)

// 256-bit vectors through GCC/Clang vector extensions: one ymm on AVX2, two xmm on the baseline.
// A panel is two vectors of centers wide (16 float / 8 double columns); the register tile is
// 6 rows x 2 vectors (12 accumulators), or 12 rows x 1 vector, so that it fits the 16 registers.
template <class T>
struct Vec;
template <>
struct Vec<float> {
  using type = v8f;
  using index = v8i32;
};
template <>
struct Vec<double> {
  using type = v4d;
  using index = v4i;
};
template <class T>
using VecT = typename Vec<T>::type;
template <class T>
using VecI = typename Vec<T>::index;

// Lane-wise sums of vectors of T in double (plain arrays, unaligned loads: any storage will do).
template <class T>
struct DSum;
template <>
struct DSum<float> {
  double lo[4] = {0, 0, 0, 0}, hi[4] = {0, 0, 0, 0};
  ECGCORE_INLINE void add(VecT<float> e) {
    v4d a, b;
    std::memcpy(&a, lo, sizeof a);
    std::memcpy(&b, hi, sizeof b);
    a += __builtin_convertvector(__builtin_shufflevector(e, e, 0, 1, 2, 3), v4d);
    b += __builtin_convertvector(__builtin_shufflevector(e, e, 4, 5, 6, 7), v4d);
    std::memcpy(lo, &a, sizeof a);
    std::memcpy(hi, &b, sizeof b);
  }
  double lane(int j) const { return j < 4 ? lo[j] : hi[j - 4]; }
};
template <>
struct DSum<double> {
  double a[4] = {0, 0, 0, 0};
  ECGCORE_INLINE void add(VecT<double> e) {
    v4d v;
    std::memcpy(&v, a, sizeof v);
    v += e;
    std::memcpy(a, &v, sizeof v);
  }
  double lane(int j) const { return a[j]; }
};
template <class T>
constexpr int kVL = 32 / static_cast<int>(sizeof(T));  // lanes per vector
template <class T>
constexpr int kPW = 2 * kVL<T>;  // columns per panel
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

// Allocator of the large working arrays (a copy of X, the bounds, k-means++'s panels): on Linux a
// block of 2 MiB or more is 2 MiB-aligned and advised for transparent huge pages, which cuts the
// page faults of a fresh array and, above all, the TLB misses of the scattered row reads (a fit
// ran ~20 % faster with huge pages). Elements are default-initialised: BigVec<T> v(n) is not
// zeroed (give a value where it matters).
template <class T>
struct BigAlloc {
  using value_type = T;
  static constexpr size_t kHuge = size_t(1) << 21;
  BigAlloc() = default;
  template <class U>
  BigAlloc(const BigAlloc<U>&) noexcept {}
  T* allocate(size_t n) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    const size_t bytes = n * sizeof(T);
    if (bytes >= kHuge) {
      const size_t size = (bytes + kHuge - 1) / kHuge * kHuge;
      void* p = std::aligned_alloc(kHuge, size);
      if (!p) throw std::bad_alloc();
      madvise(p, size, MADV_HUGEPAGE);  // (advice only: ignored where THP is off)
      return static_cast<T*>(p);
    }
#endif
    return std::allocator<T>{}.allocate(n);
  }
  void deallocate(T* p, size_t n) noexcept {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (n * sizeof(T) >= kHuge) {
      std::free(p);
      return;
    }
#endif
    std::allocator<T>{}.deallocate(p, n);
  }
  template <class U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;
  }
  template <class U, class... A>
  void construct(U* p, A&&... a) {
    ::new (static_cast<void*>(p)) U(std::forward<A>(a)...);
  }
  template <class U>
  bool operator==(const BigAlloc<U>&) const noexcept {
    return true;
  }
  template <class U>
  bool operator!=(const BigAlloc<U>&) const noexcept {
    return false;
  }
};
template <class T>
using BigVec = std::vector<T, BigAlloc<T>>;

// Threads worth starting for `work` multiply-adds over `items` work items: at most the requested
// count, and at least 2^24 multiply-adds (a few milliseconds) each. A parallel region costs more than
// that much compute when a core is busy with other work (its partner is descheduled and the barrier
// waits for it), so small kernels such as one mini-batch step run on one thread. The results do not
// depend on the thread count.
int threads_for(int n_threads, int64_t items, double work) {
  const int nt = resolve_threads(n_threads, items);
  const double per = 16777216.0;
  return work < per * nt ? std::max(1, static_cast<int>(work / per)) : nt;
}

// The threads of one parallel region running an iterative fit in lockstep: work items are handed out
// one at a time to whichever thread asks (each item's result goes to its own slot, so nothing depends
// on who computed it), and the barrier waits by spinning briefly and then yielding the CPU. On a
// busy machine a partner thread may be descheduled; OpenMP's default barrier spins on it and burns
// the very time slice it needs, which made two threads slower than one on a shared 2-core machine.
// One region per fit (two barriers per step) instead of one region per step.
class Team {
 public:
  explicit Team(int n) : n_(n) {}
  void barrier() {
    const int g = gen_.load(std::memory_order_acquire);
    if (count_.fetch_add(1, std::memory_order_acq_rel) == n_ - 1) {
      count_.store(0, std::memory_order_relaxed);
      gen_.store(g + 1, std::memory_order_release);
      return;
    }
    for (int spins = 0; gen_.load(std::memory_order_acquire) == g; ++spins) {
      if (spins < 200) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
      } else {
        std::this_thread::yield();
      }
    }
  }
  // f(i) for i in [0, count), shared out among the threads that call it; reset() (by one thread,
  // between two barriers) before the next use.
  template <class F>
  void each(int64_t count, F&& f) {
    for (int64_t i; (i = next_.fetch_add(1, std::memory_order_relaxed)) < count;) f(i);
  }
  void reset() { next_.store(0, std::memory_order_relaxed); }

 private:
  const int n_;
  std::atomic<int> count_{0}, gen_{0};
  std::atomic<int64_t> next_{0};
};

template <class T>
void check_finite(const T* X, int64_t count, const char* what, int nt) {
  int bad = 0;
#pragma omp parallel for num_threads(nt) schedule(static) reduction(| : bad)
  for (int64_t i = 0; i < count; ++i) bad |= !std::isfinite(X[i]);
  if (bad) throw std::invalid_argument(std::string(what) + " contains NaN or infinity; k-means needs finite values");
}

template <class T>
std::vector<double> center_mean(const T* C, int64_t k, int64_t d) {
  std::vector<double> m(d, 0.0);
  for (int64_t c = 0; c < k; ++c)
    for (int64_t t = 0; t < d; ++t) m[t] += C[c * d + t];
  for (auto& v : m) v /= static_cast<double>(k);
  return m;
}

template <class T>
std::vector<T> to_type(const std::vector<double>& v) {
  return std::vector<T>(v.begin(), v.end());
}

template <class T>
ECGCORE_INLINE double sqnorm(const T* a, int64_t d) {
  double s = 0.0;
  for (int64_t t = 0; t < d; ++t) s += static_cast<double>(a[t]) * a[t];
  return s;
}

// ---- the GEMM-style micro-kernel ------------------------------------------------------------------
// acc[r][v] = sum_t rows[r][t] * panel[t][v * VL + lane]: R rows (scalar operands, broadcast) against
// a panel NV vectors wide stored as panel[t * NV * VL + column]. Each dot product is one FMA chain
// over t, so its value does not depend on R, on the tile a row lands in, or on the thread.
template <class T, int R, int NV>
ECGCORE_INLINE void tile_dot(const T* const* rows, int64_t d, const T* panel, VecT<T> (&acc)[R][NV]) {
  using V = VecT<T>;
  constexpr int VL = kVL<T>;
  const T* x[R];
  for (int r = 0; r < R; ++r) x[r] = rows[r];
  V a[R][NV];  // local (never escapes), so that it lives in registers
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) a[r][v] = V{};
  for (int64_t t = 0; t < d; ++t) {
    V c[NV];
    for (int v = 0; v < NV; ++v) c[v] = load_vec<V>(panel + (t * NV + v) * VL);
    for (int r = 0; r < R; ++r) {
      const T b = x[r][t];
      for (int v = 0; v < NV; ++v) a[r][v] += c[v] * b;
    }
  }
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = a[r][v];
}

template <class T, int NV, int R, class Epi>
ECGCORE_INLINE void tiles_of(const T* const* rows, int& q, int m, int64_t d, const T* panel, Epi& epi) {
  for (; q + R <= m; q += R) {
    VecT<T> acc[R][NV];
    tile_dot<T, R, NV>(rows + q, d, panel, acc);
    for (int r = 0; r < R; ++r) epi(q + r, acc[r]);
  }
}

// epi(q, acc) for every row q < m, in increasing q: full tiles of 12 / NV rows, the rest in tiles of
// 8 (NV = 1), 4, 2 and 1 rows (no padding rows are computed).
template <class T, int NV, class Epi>
ECGCORE_INLINE void block_dot(const T* const* rows, int m, int64_t d, const T* panel, Epi&& epi) {
  int q = 0;
  tiles_of<T, NV, 12 / NV>(rows, q, m, d, panel, epi);
  if constexpr (NV == 1) tiles_of<T, NV, 8>(rows, q, m, d, panel, epi);
  tiles_of<T, NV, 4>(rows, q, m, d, panel, epi);
  tiles_of<T, NV, 2>(rows, q, m, d, panel, epi);
  tiles_of<T, NV, 1>(rows, q, m, d, panel, epi);
}

template <class T>
ECGCORE_INLINE T hmin(VecT<T> v) {
#if defined(__GNUC__) && !defined(__clang__)
  using V = VecT<T>;
  using VI = VecI<T>;
  if constexpr (kVL<T> == 8) {
    V w = __builtin_shuffle(v, VI{4, 5, 6, 7, 0, 1, 2, 3});
    v = w < v ? w : v;
    w = __builtin_shuffle(v, VI{2, 3, 0, 1, 6, 7, 4, 5});
    v = w < v ? w : v;
    w = __builtin_shuffle(v, VI{1, 0, 3, 2, 5, 4, 7, 6});
    v = w < v ? w : v;
  } else {
    static_assert(kVL<T> == 4, "256-bit vectors of float or double");
    V w = __builtin_shuffle(v, VI{2, 3, 0, 1});
    v = w < v ? w : v;
    w = __builtin_shuffle(v, VI{1, 0, 3, 2});
    v = w < v ? w : v;
  }
  return v[0];
#else
  T b = v[0];
  for (int j = 1; j < kVL<T>; ++j) b = std::min(b, v[j]);
  return b;
#endif
}

// Horizontal minimum and sum of an integer vector (shuffle trees, as hmin).
template <class T, class Op>
ECGCORE_INLINE IdxOf<T> hreduce_int(VecI<T> v, Op op) {
#if defined(__GNUC__) && !defined(__clang__)
  using VI = VecI<T>;
  if constexpr (kVL<T> == 8) {
    v = op(v, __builtin_shuffle(v, VI{4, 5, 6, 7, 0, 1, 2, 3}));
    v = op(v, __builtin_shuffle(v, VI{2, 3, 0, 1, 6, 7, 4, 5}));
    v = op(v, __builtin_shuffle(v, VI{1, 0, 3, 2, 5, 4, 7, 6}));
  } else {
    v = op(v, __builtin_shuffle(v, VI{2, 3, 0, 1}));
    v = op(v, __builtin_shuffle(v, VI{1, 0, 3, 2}));
  }
  return v[0];
#else
  VecI<T> b = v;
  for (int j = 1; j < kVL<T>; ++j) {
    VecI<T> w = VecI<T>{} + v[j];
    b = op(b, w);
  }
  return b[0];
#endif
}
template <class T>
ECGCORE_INLINE IdxOf<T> hmin_int(VecI<T> v) {
  return hreduce_int<T>(v, [](VecI<T> a, VecI<T> b) { return a < b ? a : b; });
}
template <class T>
ECGCORE_INLINE IdxOf<T> hsum_int(VecI<T> v) {
  return hreduce_int<T>(v, [](VecI<T> a, VecI<T> b) { return a + b; });
}

// Lane-wise square root (the loop becomes one vsqrtps / vsqrtpd where the target has it).
template <class T>
ECGCORE_INLINE VecT<T> vsqrt(VecT<T> v) {
  VecT<T> r;
  for (int j = 0; j < kVL<T>; ++j) r[j] = std::sqrt(v[j]);
  return r;
}

// Centers (shifted) transposed into panels of kPW<T> columns: ct[(p * d + t) * PW + j], squared
// norms cn[p * PW + j]. slot[p * PW + j] is the center in that column (-1: padding, which has zero
// coordinates and a huge norm so that it never is the nearest).
template <class T>
struct Panels {
  int64_t k = 0, d = 0, np = 0;
  int w = kPW<T>;  // columns per panel
  std::vector<int32_t> slot;
  std::vector<T> ct, cn;
};

// (Re)fill the panel columns and squared norms from centers C, shifted by `shift` (nullptr: C as is).
template <class T>
void fill_panels(Panels<T>& P, const T* C, const T* shift = nullptr) {
  const int PW = P.w;
  const int64_t d = P.d;
  for (int64_t s = 0; s < P.np * PW; ++s) {
    const int32_t c = P.slot[s];
    if (c < 0) continue;
    const int64_t p = s / PW, j = s % PW;
    double nrm = 0.0;
    for (int64_t t = 0; t < d; ++t) {
      const T v = shift ? C[c * d + t] - shift[t] : C[c * d + t];
      P.ct[(p * d + t) * PW + j] = v;
      nrm += static_cast<double>(v) * v;
    }
    P.cn[s] = static_cast<T>(nrm);
  }
}

// Panels with the columns in `slot` order (identity when slot is empty) from centers C shifted by `shift`.
template <class T>
Panels<T> make_panels(const T* C, int64_t k, int64_t d, const T* shift, std::vector<int32_t> slot = {},
                      int width = kPW<T>) {
  const int PW = width;
  Panels<T> P;
  P.w = width;
  P.k = k;
  P.d = d;
  P.np = (k + PW - 1) / PW;
  if (slot.empty()) {
    slot.assign(static_cast<size_t>(P.np * PW), -1);
    for (int64_t c = 0; c < k; ++c) slot[c] = static_cast<int32_t>(c);
  }
  P.slot = std::move(slot);
  P.ct.assign(static_cast<size_t>(P.np * d * PW), T(0));
  P.cn.assign(static_cast<size_t>(P.np * PW), std::numeric_limits<T>::max() / 4);
  fill_panels(P, C, shift);
  return P;
}

// Nearest center (ties -> lower index) of m <= kBlock rows and its squared distance (>= 0). The
// comparison is on ||c||^2 - 2 x.c, as in scikit-learn; each lane keeps its own running minimum
// over the panels (strict <, so the earliest panel wins a tie) and the lanes are reduced at the end.
template <class T>
ECGCORE_INLINE void nearest_impl(const Panels<T>& P, const T* const* rows, const T* xn, int m, int32_t* lab, T* d1) {
  using V = VecT<T>;
  using VI = VecI<T>;
  using I = IdxOf<T>;
  constexpr int VL = kVL<T>;
  constexpr int PW = kPW<T>;
  constexpr T big = std::numeric_limits<T>::max();
  V best[kBlock][2];
  VI arg[kBlock][2];
  for (int q = 0; q < m; ++q)
    for (int h = 0; h < 2; ++h) {
      best[q][h] = V{} + big;
      arg[q][h] = VI{};
    }
  VI iota0, iota1;
  for (int j = 0; j < VL; ++j) {
    iota0[j] = static_cast<I>(j);
    iota1[j] = static_cast<I>(VL + j);
  }
  for (int64_t p = 0; p < P.np; ++p) {
    const V cn0 = load_vec<V>(P.cn.data() + p * PW), cn1 = load_vec<V>(P.cn.data() + p * PW + VL);
    const VI b0 = iota0 + static_cast<I>(p * PW), b1 = iota1 + static_cast<I>(p * PW);
    block_dot<T, 2>(rows, m, P.d, P.ct.data() + p * P.d * PW, [&](int q, const V* acc) {
      const V v0 = cn0 - acc[0] * T(2), v1 = cn1 - acc[1] * T(2);
      const VI m0 = v0 < best[q][0], m1 = v1 < best[q][1];
      best[q][0] = m0 ? v0 : best[q][0];
      arg[q][0] = m0 ? b0 : arg[q][0];
      best[q][1] = m1 ? v1 : best[q][1];
      arg[q][1] = m1 ? b1 : arg[q][1];
    });
  }
  for (int q = 0; q < m; ++q) {
    T b = big;
    I idx = std::numeric_limits<I>::max();
    for (int h = 0; h < 2; ++h)
      for (int j = 0; j < VL; ++j) {
        const T v = best[q][h][j];
        const I i = arg[q][h][j];
        if (v < b || (v == b && i < idx)) {
          b = v;
          idx = i;
        }
      }
    lab[q] = static_cast<int32_t>(idx);
    d1[q] = std::max(T(0), xn[q] + b);
  }
}

// Distances of m rows to every center into out[q * ldo + c].
template <class T>
ECGCORE_INLINE void distance_impl(const Panels<T>& P, const T* const* rows, const T* xn, int m, T* out, int64_t ldo,
                                  bool squared) {
  using V = VecT<T>;
  constexpr int VL = kVL<T>;
  constexpr int PW = kPW<T>;
  for (int64_t p = 0; p < P.np; ++p) {
    const V cn0 = load_vec<V>(P.cn.data() + p * PW), cn1 = load_vec<V>(P.cn.data() + p * PW + VL);
    const int cols = static_cast<int>(std::min<int64_t>(PW, P.k - p * PW));
    block_dot<T, 2>(rows, m, P.d, P.ct.data() + p * P.d * PW, [&](int q, const V* acc) {
      const V x = V{} + xn[q];
      const V v[2] = {x + cn0 - acc[0] * T(2), x + cn1 - acc[1] * T(2)};
      T* o = out + q * ldo + p * PW;
      for (int j = 0; j < cols; ++j) {
        const T s = std::max(T(0), v[j / VL][j % VL]);
        o[j] = squared ? s : std::sqrt(s);
      }
    });
  }
}

// Yinyang distance step for one block of m rows: for every group (panel) g and every row q with
// need[q * Gp + g] (a mask: 0 or -1), dist[(q * Gp + g) * PW + j] = ||c_j||^2 - 2 x_q.c_j over the
// group's columns and m1[q * Gp + g] = their minimum. sub: scratch for kBlock row pointers.
template <class T, int GV>
ECGCORE_INLINE void yinyang_impl(const Panels<T>& P, int64_t Gp, const T* const* rows, int m, const IdxOf<T>* need,
                                 T* dist, T* m1, const T** sub, int* pos) {
  using V = VecT<T>;
  constexpr int VL = kVL<T>;
  constexpr int PW = GV * VL;
  const int64_t G = P.np;
  for (int64_t g = 0; g < G; ++g) {
    int cnt = 0;
    for (int q = 0; q < m; ++q)
      if (need[q * Gp + g]) {
        sub[cnt] = rows[q];
        pos[cnt++] = q;
      }
    if (!cnt) continue;
    V cn[GV];
    for (int v = 0; v < GV; ++v) cn[v] = load_vec<V>(P.cn.data() + g * PW + v * VL);
    block_dot<T, GV>(sub, cnt, P.d, P.ct.data() + g * P.d * PW, [&](int i, const V* acc) {
      const int64_t q = pos[i];
      V mn = V{} + std::numeric_limits<T>::max();
      for (int v = 0; v < GV; ++v) {
        const V e = cn[v] - acc[v] * T(2);
        store_vec(dist + (q * Gp + g) * PW + v * VL, e);
        mn = e < mn ? e : mn;
      }
      m1[q * Gp + g] = hmin<T>(mn);
    });
  }
}

// k-means++ sweep of the rows of one chunk, stored transposed in panels of PW rows (the vector
// lanes: panel[t * PW + j] = feature t of row j), against the m candidates (rows of length d, the
// broadcast operands; cn: their squared norms). Row j's current distance is cl[j] (copied to
// closest[j]); D[q * ldD + j] = min(it, d(row j, candidate q)^2) and sums[q] += that in double
// (lanes fixed, panels in order).
template <class T>
ECGCORE_INLINE void plusplus_impl(const T* const* cand, const T* cn, int m, int64_t d, const T* xt, const T* xn,
                                  const T* cl, T* closest, int64_t np, T* D, int64_t ldD, DSum<T>* sums) {
  using V = VecT<T>;
  constexpr int VL = kVL<T>;
  constexpr int PW = kPW<T>;
  for (int64_t p = 0; p < np; ++p) {
    if (p + 1 < np) {  // the next panel, ahead of the hardware prefetcher (k-means++ ~20 % faster)
      const char* nx = reinterpret_cast<const char*>(xt + (p + 1) * d * PW);
      for (int64_t b = 0; b < static_cast<int64_t>(d * PW * sizeof(T)); b += 64) __builtin_prefetch(nx + b);
    }
    const V x0 = load_vec<V>(xn + p * PW), x1 = load_vec<V>(xn + p * PW + VL);
    const V c0 = load_vec<V>(cl + p * PW), c1 = load_vec<V>(cl + p * PW + VL);
    store_vec(closest + p * PW, c0);
    store_vec(closest + p * PW + VL, c1);
    block_dot<T, 2>(cand, m, d, xt + p * d * PW, [&](int q, const V* acc) {
      const V cq = V{} + cn[q];
      V e0 = x0 + cq - acc[0] * T(2), e1 = x1 + cq - acc[1] * T(2);
      e0 = e0 < V{} ? V{} : e0;
      e1 = e1 < V{} ? V{} : e1;
      e0 = c0 < e0 ? c0 : e0;
      e1 = c1 < e1 ? c1 : e1;
      store_vec(D + q * ldD + p * PW, e0);
      store_vec(D + q * ldD + p * PW + VL, e1);
      sums[q].add(e0);
      sums[q].add(e1);
    });
  }
}

// Multi-versioned entry points (the template bodies above are inlined into each clone).
#define ECGCORE_KMEANS_CLONES(T)                                                                                  \
  ECGCORE_MULTIVERSION(void, nearest_block, (const Panels<T>& P, const T* const* rows, const T* xn, int m, int32_t* lab,   \
                                    T* d1), (P, rows, xn, m, lab, d1), {                                                                      \
    nearest_impl(P, rows, xn, m, lab, d1);                                                                        \
  })                                                                                                               \
  ECGCORE_MULTIVERSION(void, distance_block, (const Panels<T>& P, const T* const* rows, const T* xn, int m, T* out,       \
                                     int64_t ldo, bool squared), (P, rows, xn, m, out, ldo, squared), {                                                 \
    distance_impl(P, rows, xn, m, out, ldo, squared);                                                             \
  })                                                                                                              \
  ECGCORE_MULTIVERSION(void, plusplus_chunk, (const T* const* cand, const T* cn, int m, int64_t d, const T* xt,   \
                                              const T* xn, const T* cl, T* closest, int64_t np, T* D, int64_t ldD, \
                                              DSum<T>* sums),                                                    \
                       (cand, cn, m, d, xt, xn, cl, closest, np, D, ldD, sums), {                                \
    plusplus_impl(cand, cn, m, d, xt, xn, cl, closest, np, D, ldD, sums);                                         \
  })
ECGCORE_KMEANS_CLONES(float)
ECGCORE_KMEANS_CLONES(double)
#undef ECGCORE_KMEANS_CLONES

// Rows shifted by `shift` (and their squared norms), for the kernels that read a block at a time.
template <class T>
struct Block {
  std::vector<T> xs, xn, d1;
  std::vector<const T*> ptr;
  std::vector<int32_t> lab;
  explicit Block(int64_t d) : xs(kBlock * d), xn(kBlock), d1(kBlock), ptr(kBlock), lab(kBlock) {}
  void pack(const T* X, int64_t r0, int m, int64_t d, const T* shift) {
    for (int q = 0; q < m; ++q) {
      const T* row = X + (r0 + q) * d;
      T* out = xs.data() + q * d;
      for (int64_t t = 0; t < d; ++t) out[t] = row[t] - shift[t];
      xn[q] = static_cast<T>(sqnorm(out, d));
      ptr[q] = out;
    }
  }
};

// Labels of all rows against panels built with `shift`.
template <class T>
void assign_all(const Panels<T>& P, const T* shift, const T* X, int64_t n, int32_t* labels, int nt) {
  const int64_t nb = (n + kBlock - 1) / kBlock;
#pragma omp parallel num_threads(nt)
  {
    Block<T> b(P.d);
#pragma omp for schedule(static)
    for (int64_t c = 0; c < nb; ++c) {
      const int64_t r0 = c * kBlock;
      const int m = static_cast<int>(std::min<int64_t>(kBlock, n - r0));
      b.pack(X, r0, m, P.d, shift);
      nearest_block(P, b.ptr.data(), b.xn.data(), m, labels + r0, b.d1.data());
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

// Lloyd M-step with scikit-learn's empty-cluster relocation. sums/counts are the per-cluster row
// sums and sizes for `labels` (left untouched: relocation works on copies). centers_old ->
// centers_new; returns the summed squared center shift. rowid[i] (optional): the number of row i
// in the caller's order, for the tie rule of the relocation (equal distances: lower row first).
template <class T>
double update_centers(const T* X, int64_t n, int64_t d, int64_t k, const int32_t* labels, const T* centers_old,
                      T* centers_new, const std::vector<double>& cluster_sum, const std::vector<int64_t>& cluster_size,
                      int nt, const int64_t* rowid = nullptr) {
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
        return dist[a] > dist[b] || (dist[a] == dist[b] && (rowid ? rowid[a] < rowid[b] : a < b));
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

// X shifted by `shift` (a copy) and the squared norms of its rows: what the fitting loops work on.
template <class T>
struct Shifted {
  BigVec<T> x, xn;
  Shifted(const T* X, int64_t n, int64_t d, const T* shift, int nt) : x(static_cast<size_t>(n * d)), xn(n) {
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t t = 0; t < d; ++t) x[i * d + t] = X[i * d + t] - shift[t];
      xn[i] = static_cast<T>(sqnorm(&x[i * d], d));
    }
  }
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
  const int trials = n_local_trials > 0 ? n_local_trials : 2 + static_cast<int>(std::log(static_cast<double>(k)));
  const int nt1 = threads_for(n_threads, nc, static_cast<double>(n) * d);  // one pass over X
  const int nt = threads_for(n_threads, nc, static_cast<double>(n) * d * trials * k);
  check_finite(X, n * d, "X", nt1);
  const std::vector<T> shift = to_type<T>(column_mean(X, n, d, nt1, nullptr));
  // X shifted and transposed into panels of PW rows (xt[(p * d + t) * PW + j] = feature t of row
  // p * PW + j), streamed once per step; padding rows are zero with a zero distance (they add
  // nothing to a potential). A chunk of kChunk rows is kChunk / PW panels.
  constexpr int PW = kPW<T>;
  constexpr int64_t ppc = kChunk / PW;
  const int64_t np = nc * ppc, npad = np * PW;
  BigVec<T> xt(static_cast<size_t>(npad * d), T(0));  // (padding rows stay zero)
  std::vector<T> xn(npad, T(0));
#pragma omp parallel for num_threads(nt1) schedule(static)
  for (int64_t p = 0; p < np; ++p)
    for (int64_t j = 0; j < PW && p * PW + j < n; ++j) {
      const T* row = X + (p * PW + j) * d;
      double s = 0.0;
      for (int64_t t = 0; t < d; ++t) {
        const T v = row[t] - shift[t];
        xt[(p * d + t) * PW + j] = v;
        s += static_cast<double>(v) * v;
      }
      xn[p * PW + j] = static_cast<T>(s);
    }

  Rng rng(seed);
  std::vector<T> closest(npad, std::numeric_limits<T>::max());
  for (int64_t i = n; i < npad; ++i) closest[i] = T(0);
  std::vector<double> chunk_pot(nc), prefix(nc), part(static_cast<size_t>(nc * trials));
  // D[j * npad + row] = min(current, d(cand[j], row)^2). The chosen candidate's distances are
  // taken over lazily: while prev >= 0 the current distance of a row is D[prev * npad + row], and
  // the next sweep copies it into closest (one pass per step).
  BigVec<T> D(static_cast<size_t>(trials * npad));  // (each trial row written by the sweep before it is read)
  int prev = -1;
  auto current = [&](int64_t i) { return prev >= 0 ? D[prev * npad + i] : closest[i]; };
  // The candidates: their shifted rows (the broadcast operands) and squared norms.
  std::vector<T> cs(static_cast<size_t>(trials * d)), cn(trials);
  std::vector<const T*> cp(trials);
  auto pack = [&](const int64_t* cand, int m) {
    for (int j = 0; j < m; ++j) {
      double s = 0.0;
      for (int64_t t = 0; t < d; ++t) {
        const T v = X[cand[j] * d + t] - shift[t];
        cs[j * d + t] = v;
        s += static_cast<double>(v) * v;
      }
      cn[j] = static_cast<T>(s);
      cp[j] = &cs[j * d];
    }
  };
  int m = 1;  // candidates in this step
  std::vector<DSum<T>> thread_sums(static_cast<size_t>(nt * trials));  // (no allocation in the region)
  auto sweep_chunk = [&](int64_t c) {
    DSum<T>* sums = &thread_sums[omp_get_thread_num() * trials];
    for (int j = 0; j < m; ++j) sums[j] = DSum<T>{};
    const int64_t r0 = c * kChunk;
    plusplus_chunk(cp.data(), cn.data(), m, d, &xt[r0 * d], &xn[r0], prev >= 0 ? &D[prev * npad + r0] : &closest[r0],
                   &closest[r0], ppc, &D[r0], npad, sums);
    for (int j = 0; j < m; ++j) {
      double s = 0.0;
      for (int l = 0; l < kVL<T>; ++l) s += sums[j].lane(l);
      part[c * trials + j] = s;
    }
  };
  auto take = [&](int64_t ci, int64_t row, int t) {  // candidate t (row) becomes center ci
    indices[ci] = row;
    std::copy(X + row * d, X + (row + 1) * d, centers + ci * d);
    prev = t;
    for (int64_t c = 0; c < nc; ++c) chunk_pot[c] = part[c * trials + t];
  };
  std::vector<int64_t> cand(trials);
  auto draw = [&]() {  // the next candidates: rows drawn with probability proportional to D(x)^2
    double pot = 0.0;
    for (int64_t c = 0; c < nc; ++c) {
      pot += chunk_pot[c];
      prefix[c] = pot;
    }
    // First row whose running potential reaches u * pot (numpy searchsorted, left).
    for (int tr = 0; tr < trials; ++tr) {
      const double target = rng.uniform() * pot;
      const int64_t c = std::lower_bound(prefix.begin(), prefix.end(), target) - prefix.begin();
      int64_t pick = n - 1;  // round-off can leave target above the total: take the last row
      if (c < nc) {
        const int64_t end = std::min(n, (c + 1) * kChunk);
        double run = c > 0 ? prefix[c - 1] : 0.0;
        pick = end - 1;
        for (int64_t i = c * kChunk; i < end; ++i) {
          run += current(i);
          if (run >= target) {
            pick = i;
            break;
          }
        }
      }
      cand[tr] = pick;
    }
  };
  auto best_candidate = [&]() {  // lowest potential, first on ties
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
    return best;
  };

  // Step ci: every thread sweeps chunks against the candidates, then thread 0 takes the best one as
  // center ci and draws the next candidates.
  const int64_t first = std::min(static_cast<int64_t>(rng.uniform() * static_cast<double>(n)), n - 1);
  pack(&first, 1);
  Team team(nt);
#pragma omp parallel num_threads(nt)
  for (int64_t ci = 0; ci < k; ++ci) {
    team.each(nc, sweep_chunk);
    team.barrier();
    if (omp_get_thread_num() == 0) {
      team.reset();
      if (ci == 0) {
        take(0, first, 0);
      } else {
        const int best = best_candidate();
        take(ci, cand[best], best);
      }
      if (ci + 1 < k) {
        draw();
        pack(cand.data(), trials);
        m = trials;
      }
    }
    team.barrier();
  }
}

namespace {

// ---- Yinyang k-means (Ding et al., 2015): one lower bound per group of centers -------------------
// A group is one panel of kPW<T> centers (16 float / 8 double). The groups are formed once from the
// initial centers (greedy: each group is a far-out center plus its nearest unassigned neighbours), so
// that a group's bound is tight. Per row: u = upper bound on the distance to its own center, lb[g] =
// lower bound on the distance to every center of group g other than its own. A row whose bounds
// prove its label is unchanged is skipped; otherwise its own group and every group whose bound is
// below u are recomputed with the micro-kernel, and the nearest of those centers is the label
// (ties -> lower center index, as in the dense kernel).
template <class T>
std::vector<int32_t> group_slots(const T* C, int64_t k, int64_t d, int PW) {
  const int64_t G = (k + PW - 1) / PW;
  std::vector<int32_t> slot(static_cast<size_t>(G * PW), -1);
  const std::vector<double> mean = center_mean(C, k, d);
  std::vector<char> used(k, 0);
  std::vector<std::pair<double, int64_t>> cand;
  for (int64_t g = 0; g < G; ++g) {
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
    const int64_t take = std::min<int64_t>(PW, static_cast<int64_t>(cand.size()));
    std::partial_sort(cand.begin(), cand.begin() + take, cand.end());
    std::vector<int32_t> members;
    for (int64_t j = 0; j < take; ++j) members.push_back(static_cast<int32_t>(cand[j].second));
    std::sort(members.begin(), members.end());  // columns in center order: first equal lane = lower index
    for (int64_t j = 0; j < take; ++j) {
      slot[g * PW + j] = members[j];
      used[members[j]] = 1;
    }
  }
  return slot;
}

template <class T>
struct YScratch {
  std::vector<const T*> ptr, sub;
  std::vector<int> pos;
  std::vector<T> dist, m1;
  std::vector<IdxOf<T>> need;
  std::vector<int64_t> idx;
  explicit YScratch(int64_t Gp)
      : ptr(kBlock), sub(kBlock), pos(kBlock), dist(static_cast<size_t>(kBlock * Gp * kPW<T>)),
        m1(static_cast<size_t>(kBlock * Gp)), need(static_cast<size_t>(kBlock * Gp)), idx(kChunk) {}
};

struct Change {
  int64_t row;
  int32_t from;
};

// State of a Yinyang E-step on the shifted rows Xs (norms xn) and the shifted centers in panels P.
// The bounds are stored relative to cumulative moves, so that a step only
// reads them: dc[c] = how far center c has moved in total (the sum of its moves), dg[g] = the sum
// over the steps of the largest move in group g (padded with zeros to Gp, a whole number of
// vectors). Row i's upper bound on the distance to its center is u[i] + dc[labels[i]], its lower
// bound on the distance to the centers of group g (other than its own) lb[i * Gp + g] - dg[g]
// (the padding lanes stay huge); a row whose distances are computed stores its new bounds with the
// current offsets. With all set, every row is compared with every center (lb == nullptr: plain
// Lloyd, no bounds kept).
template <class T>
struct YStep {
  const Panels<T>* P;
  const int32_t* group_of;
  const T *Xs, *xn, *dc, *dg;
  int64_t n, Gp;
  bool all;
  int32_t* labels;
  T *u, *lb;
  // Rounding allowance: the stored bounds and the offsets are rounded to T, an error of a few ulps
  // of the offsets, which only grow. A row is sent to the kernel unless its margin exceeds this
  // slack (and exact ties too), so that the bounds never skip a center plain Lloyd would pick.
  T slack;
};

// One chunk of rows [r0, r1) of a Yinyang E-step; the rows that change cluster are appended to ch.
template <class T, int GV>
ECGCORE_INLINE void yinyang_chunk_impl(const YStep<T>& A, YScratch<T>& w, int64_t r0, int64_t r1,
                                       std::vector<Change>& ch) {
  constexpr int PW = GV * kVL<T>;
  constexpr T big = std::numeric_limits<T>::max();
  const Panels<T>& P = *A.P;
  const int64_t d = P.d, G = P.np;
  const int64_t Gp = A.Gp;
  int32_t* labels = A.labels;
  T* u = A.u;
  T* lb = A.lb;
  int64_t m = 0;
  if (A.all) {
    for (int64_t i = r0; i < r1; ++i) w.idx[m++] = i;
  } else {
    // A streaming, read-only pass over the bounds: the rows whose upper bound exceeds their
    // smallest group bound may change cluster and go to the distance kernel. Each such row is
    // prefetched as soon as it is found (every line it spans, the last one included), so that it
    // has arrived when the kernel reads it (the kernel waited mostly on these rows' memory: this
    // prefetch took about a fifth off the Lloyd iterations).
    using V = VecT<T>;
    constexpr int VL = kVL<T>;
    const int64_t bytes = d * static_cast<int64_t>(sizeof(T));
    for (int64_t i = r0; i < r1; ++i) {
      const T* lbi = lb + i * Gp;
      V mn = V{} + big;
      for (int64_t g = 0; g < Gp; g += VL) {
        const V x = load_vec<V>(lbi + g) - load_vec<V>(A.dg + g);
        mn = x < mn ? x : mn;
      }
      if (u[i] + A.dc[labels[i]] + A.slack >= hmin<T>(mn)) {
        const char* p = reinterpret_cast<const char*>(A.Xs + i * d);
        for (int64_t b = 0; b < bytes; b += 64) __builtin_prefetch(p + b);
        __builtin_prefetch(p + bytes - 1);
        w.idx[m++] = i;
      }
    }
  }
  for (int64_t b0 = 0; b0 < m; b0 += kBlock) {
    const int mb = static_cast<int>(std::min<int64_t>(kBlock, m - b0));
    const int64_t* idx = w.idx.data() + b0;
    using V = VecT<T>;
    using VI = VecI<T>;
    using I = IdxOf<T>;
    constexpr int VL = kVL<T>;
    constexpr I none = std::numeric_limits<I>::max();
    VI iota;
    for (int j = 0; j < VL; ++j) iota[j] = static_cast<I>(j);
    for (int q = 0; q < mb; ++q) {
      const int64_t i = idx[q];
      w.ptr[q] = A.Xs + i * d;
      I* nq = w.need.data() + q * Gp;
      if (A.all) {
        for (int64_t g = 0; g < Gp; ++g) nq[g] = g < G ? I(-1) : I(0);
      } else {
        const T* lbi = lb + i * Gp;
        const V uv = V{} + (u[i] + A.dc[labels[i]] + A.slack);
        for (int64_t g = 0; g < Gp; g += VL)
          store_vec(nq + g, VI(load_vec<V>(lbi + g) - load_vec<V>(A.dg + g) <= uv));
        nq[A.group_of[labels[i]]] = I(-1);  // always: the label is decided on one scale
      }
    }
    yinyang_impl<T, GV>(P, Gp, w.ptr.data(), mb, w.need.data(), w.dist.data(), w.m1.data(), w.sub.data(),
                        w.pos.data());
    for (int q = 0; q < mb; ++q) {
      const int64_t i = idx[q];
      const I* nq = w.need.data() + q * Gp;
      const T* mq = w.m1.data() + q * Gp;
      const T* dq = w.dist.data() + q * Gp * PW;
      // Nearest group (lowest group on ties), then the first lane holding that value.
      V bv = V{} + big;
      for (int64_t g = 0; g < Gp; g += VL) {
        const V e = load_vec<VI>(nq + g) ? load_vec<V>(mq + g) : V{} + big;
        bv = e < bv ? e : bv;
      }
      const T best = hmin<T>(bv);
      const V b = V{} + best;
      VI first = VI{} + none, count = VI{};
      for (int64_t g = 0; g < Gp; g += VL) {
        const VI eq = load_vec<VI>(nq + g) & VI(load_vec<V>(mq + g) == b);
        const VI gi = iota + static_cast<I>(g);
        first = eq ? (gi < first ? gi : first) : first;
        count -= eq;
      }
      int64_t bg = hmin_int<T>(first);
      VI ln = VI{} + none;
      for (int v = 0; v < GV; ++v)
        ln = VI(load_vec<V>(dq + bg * PW + v * VL) == b) ? (iota + static_cast<I>(v * VL) < ln ? iota + static_cast<I>(v * VL) : ln) : ln;
      int lane = static_cast<int>(hmin_int<T>(ln));
      if (hsum_int<T>(count) > 1) {  // exact ties across groups: lower center index wins
        for (int64_t g = bg + 1; g < G; ++g)
          if (nq[g] && mq[g] == best) {
            int j = 0;
            while (dq[g * PW + j] != best) ++j;
            if (P.slot[g * PW + j] < P.slot[bg * PW + lane]) {
              bg = g;
              lane = j;
            }
          }
      }
      const int32_t label = P.slot[bg * PW + lane];
      if (label != labels[i]) ch.push_back({i, labels[i]});
      labels[i] = label;
      const T xi = A.xn[i];
      u[i] = std::sqrt(std::max(T(0), xi + best));
      if (!lb) continue;
      u[i] -= A.dc[label];
      // Second nearest within the winning group: its lanes with the winner's lane masked out.
      V mn = V{} + big;
      for (int v = 0; v < GV; ++v) {
        const V e = load_vec<V>(dq + bg * PW + v * VL);
        const V f = iota + static_cast<I>(v * VL) == (VI{} + static_cast<I>(lane)) ? V{} + big : e;
        mn = f < mn ? f : mn;
      }
      const T second = hmin<T>(mn);
      // New bounds for the groups computed now (the winning group's is its second nearest).
      T* lbi = lb + i * Gp;
      const VI bgv = VI{} + static_cast<I>(bg);
      const V x = V{} + xi;
      for (int64_t g = 0; g < Gp; g += VL) {
        V e = iota + static_cast<I>(g) == bgv ? V{} + second : load_vec<V>(mq + g);
        e = x + e;
        e = e < V{} ? V{} : e;
        const V r = vsqrt<T>(e) + load_vec<V>(A.dg + g);
        store_vec(lbi + g, load_vec<VI>(nq + g) ? r : load_vec<V>(lbi + g));
      }
    }
  }
}

#define ECGCORE_YY_CLONES(T)                                                                                    \
  ECGCORE_MULTIVERSION(void, yinyang_chunk, (const YStep<T>& A, YScratch<T>& w, int64_t r0, int64_t r1,     \
                                             std::vector<Change>& ch), (A, w, r0, r1, ch), {                     \
    yinyang_chunk_impl<T, 2>(A, w, r0, r1, ch);                                                                \
  })
ECGCORE_YY_CLONES(float)
ECGCORE_YY_CLONES(double)
#undef ECGCORE_YY_CLONES

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
  const int nt1 = threads_for(n_threads, nc, static_cast<double>(n) * d);  // one pass over X
  const int nt = threads_for(n_threads, nc, static_cast<double>(n) * d * k * std::min(max_iter, 10));
  check_finite(X, n * d, "X", nt1);
  check_finite(centers, k * d, "initial centers", 1);
  double mean_var = 0.0;
  const std::vector<T> shift = to_type<T>(column_mean(X, n, d, nt1, &mean_var));
  const double tol_abs = tol * mean_var;

  // Everything runs on X and the centers shifted by the data mean (as scikit-learn centers X), so
  // that large feature offsets do not cancel away float precision in ||x||^2 - 2 x.c + ||c||^2.
  Shifted<T> XS(X, n, d, shift.data(), nt1);
  BigVec<T>& xs = XS.x;
  BigVec<T>& xn = XS.xn;
  std::vector<T> C(static_cast<size_t>(k * d)), next(static_cast<size_t>(k * d));
  for (int64_t c = 0; c < k; ++c)
    for (int64_t t = 0; t < d; ++t) C[c * d + t] = centers[c * d + t] - shift[t];

  // Lloyd's algorithm with Yinyang group bounds: same labels as plain Lloyd, far fewer distances.
  // (Plain Lloyd when the bounds would take more than 1 GiB.)
  const int gw = kPW<T>;  // centers per group: one panel
  Panels<T> P = make_panels(C.data(), k, d, static_cast<const T*>(nullptr), group_slots(C.data(), k, d, gw), gw);
  const int64_t G = P.np;
  std::vector<int32_t> group_of(k);
  for (int64_t s = 0; s < G * gw; ++s)
    if (P.slot[s] >= 0) group_of[P.slot[s]] = static_cast<int32_t>(s / gw);
  const bool bounds = static_cast<double>(n) * G * sizeof(T) <= 1024.0 * 1024 * 1024;
  const int64_t Gp = (G + kVL<T> - 1) / kVL<T> * kVL<T>;
  BigVec<T> u(n, T(0)), lb(bounds ? static_cast<size_t>(n * Gp) : 0, std::numeric_limits<T>::max());
  // Each center's move in the last update and the cumulative offsets of the bounds (summed in double).
  std::vector<T> delta(k, T(0)), dc(k, T(0)), dg(Gp, T(0));
  std::vector<double> dc_sum(k, 0.0), dg_sum(Gp, 0.0), drift(Gp, 0.0);
  std::vector<std::vector<Change>> changes(nc);
  // The loop works on its own row order (perm[pos] = row of X): after the first assignment the rows
  // are sorted by cluster, so that the rows a step revisits are close in memory and share groups.
  std::vector<int32_t> lab(n, -1);
  std::vector<int64_t> perm(n);
  for (int64_t i = 0; i < n; ++i) perm[i] = i;
  // After the first assignment: rows sorted by cluster and, within a cluster, by their bound
  // margin (smallest group bound minus u), so that the near-boundary rows that a step revisits are
  // contiguous in memory; then the cluster sums (each cluster's rows in order: the result does not
  // depend on the thread count). Run by every thread of the team, in phases; the buffers are
  // allocated up front (nothing in the parallel region allocates).
  Team team(nt);
  std::vector<double> sums(static_cast<size_t>(k * d), 0.0);
  std::vector<int64_t> sizes(k);
  BigVec<T> margin(n), xs2(xs.size()), xn2(n), u2(n), lb2(lb.size());  // (filled before use)
  std::vector<int32_t> lab2(n);
  std::vector<int64_t> perm2(n), order(n), cstart(k + 1);
  auto phase = [&](int64_t count, auto&& f) {  // f(i) for i < count over the team, then a barrier
    team.each(count, f);
    team.barrier();
    if (omp_get_thread_num() == 0) team.reset();
    team.barrier();
  };
  auto reorder = [&]() {
    phase(nc, [&](int64_t c) {
      for (int64_t i = c * kChunk; i < std::min(n, (c + 1) * kChunk); ++i) {
        T mn = std::numeric_limits<T>::max();
        for (int64_t g = 0; g < Gp && !lb.empty(); ++g) mn = std::min(mn, lb[i * Gp + g]);
        margin[i] = mn - u[i];
      }
    });
    phase(1, [&](int64_t) {  // by cluster (stable: row order within a cluster)
      group_rows_into(lab.data(), n, k, cstart.data(), order.data(), sizes.data());
      for (int64_t c = 0; c < k; ++c) sizes[c] = cstart[c + 1] - cstart[c];
    });
    phase(k, [&](int64_t c) {
      std::sort(order.begin() + cstart[c], order.begin() + cstart[c + 1], [&](int64_t a, int64_t b) {
        return margin[a] != margin[b] ? margin[a] < margin[b] : a < b;
      });
    });
    phase(nc, [&](int64_t c) {
      for (int64_t q = c * kChunk; q < std::min(n, (c + 1) * kChunk); ++q) {
        const int64_t i = order[q];
        std::copy(xs.begin() + i * d, xs.begin() + (i + 1) * d, xs2.begin() + q * d);
        if (!lb.empty()) std::copy(lb.begin() + i * Gp, lb.begin() + (i + 1) * Gp, lb2.begin() + q * Gp);
        xn2[q] = xn[i];
        u2[q] = u[i];
        lab2[q] = lab[i];
        perm2[q] = perm[i];
      }
    });
    phase(1, [&](int64_t) {  // (the old order's buffers are released)
      xs.swap(xs2);
      xn.swap(xn2);
      u.swap(u2);
      lb.swap(lb2);
      lab.swap(lab2);
      perm.swap(perm2);
      for (auto* v : {&xs2, &xn2, &u2, &lb2, &margin}) BigVec<T>().swap(*v);
      std::vector<int32_t>().swap(lab2);
      std::vector<int64_t>().swap(perm2);
      std::vector<int64_t>().swap(order);
    });
    phase(k, [&](int64_t c) {
      double* sc = &sums[c * d];
      for (int64_t q = cstart[c]; q < cstart[c + 1]; ++q) {
        const T* row = xs.data() + q * d;
        for (int64_t t = 0; t < d; ++t) sc[t] += row[t];
      }
    });
  };
  KMeansFit fit;
  bool strict = false;
  // One step = an E-step over the chunks (all threads), then the M-step and the stopping rules
  // (thread 0); after the last update, one more E-step so that the labels match the centers
  // (unless the labels did not change).
  YStep<T> A{};
  auto prepare = [&](bool all) {
    fill_panels(P, C.data());
    const T offsets = *std::max_element(dc.begin(), dc.end()) + *std::max_element(dg.begin(), dg.end());
    A = YStep<T>{&P, group_of.data(), xs.data(), xn.data(), dc.data(), dg.data(), n, Gp,
                 all || !bounds, lab.data(), u.data(), bounds ? lb.data() : nullptr,
                 T(8) * std::numeric_limits<T>::epsilon() * offsets};
  };
  auto m_step = [&](int it) -> bool {  // true when the fit stops here
    // Cluster sums: from scratch once, then only the rows that changed cluster move their share
    // (sequentially in row order, so the result does not depend on the thread count).
    int64_t changed = 0;
    if (it == 0) {  // (the rows were reordered and summed by the team: reorder())
      changed = n;
    } else {
      for (const auto& ch : changes)
        for (const Change& e : ch) {
          const int32_t from = e.from, to = lab[e.row];
          const T* row = xs.data() + e.row * d;
          double* sf = &sums[static_cast<int64_t>(from) * d];
          double* st = &sums[static_cast<int64_t>(to) * d];
          for (int64_t t = 0; t < d; ++t) {
            sf[t] -= row[t];
            st[t] += row[t];
          }
          --sizes[from];
          ++sizes[to];
          ++changed;
        }
    }
    const double moved =
        update_centers(xs.data(), n, d, k, lab.data(), C.data(), next.data(), sums, sizes, 1, perm.data());
    // How far each center moved (its own bound) and the largest move per group (the group bounds).
    std::fill(drift.begin(), drift.end(), 0.0);
    for (int64_t c = 0; c < k; ++c) {
      delta[c] = static_cast<T>(std::sqrt(sqdist(C.data() + c * d, next.data() + c * d, d)));
      drift[group_of[c]] = std::max(drift[group_of[c]], static_cast<double>(delta[c]));
      dc_sum[c] += delta[c];
      dc[c] = static_cast<T>(dc_sum[c]);
    }
    for (int64_t g = 0; g < Gp; ++g) {
      dg_sum[g] += drift[g];
      dg[g] = static_cast<T>(dg_sum[g]);
    }
    C.swap(next);
    fit.n_iter = it + 1;
    if (it > 0 && changed == 0) {
      strict = true;
      fit.converged = true;
      return true;
    }
    if (moved <= tol_abs) {
      fit.converged = true;
      return true;
    }
    return it + 1 >= max_iter;
  };
  prepare(true);
  bool done = false, last = false;
  // Everything the parallel region needs is allocated here (an exception cannot leave a region):
  // per-thread scratch, room for every chunk's changes; the M-step's own exceptions are carried out.
  std::vector<YScratch<T>> scratch;
  scratch.reserve(nt);
  for (int t = 0; t < nt; ++t) scratch.emplace_back(Gp);
  for (auto& ch : changes) ch.reserve(kChunk);
  std::exception_ptr error;
#pragma omp parallel num_threads(nt)
  {
    YScratch<T>& w = scratch[omp_get_thread_num()];
    for (int it = 0; !done; ++it) {
      team.each(nc, [&](int64_t c) {
        changes[c].clear();
        yinyang_chunk(A, w, c * kChunk, std::min(n, (c + 1) * kChunk), changes[c]);
      });
      team.barrier();
      if (it == 0) {
        if (omp_get_thread_num() == 0) team.reset();
        team.barrier();
        reorder();
      }
      if (omp_get_thread_num() == 0) {
        team.reset();
        try {
          if (last) {
            done = true;
          } else if (m_step(it)) {
            last = !strict;
            done = strict;
            prepare(false);
          } else {
            prepare(false);
          }
        } catch (...) {
          error = std::current_exception();
          done = true;
        }
      }
      team.barrier();
    }
  }
  if (error) std::rethrow_exception(error);
  for (int64_t q = 0; q < n; ++q) labels[perm[q]] = lab[q];
  for (int64_t c = 0; c < k; ++c)
    for (int64_t t = 0; t < d; ++t) centers[c * d + t] = C[c * d + t] + shift[t];
  fit.inertia = exact_inertia(X, n, d, centers, labels, nt1);
  return fit;
}

template <class T>
double kmeans_assign(const T* X, int64_t n, int64_t d, const T* centers, int64_t k, int32_t* labels, int n_threads) {
  check_shape(n, d, "kmeans_assign");
  if (k < 1) throw std::invalid_argument("kmeans_assign: need at least one center");
  const int nt1 = threads_for(n_threads, n_chunks(n), static_cast<double>(n) * d);
  const int nt = threads_for(n_threads, n_chunks(n), static_cast<double>(n) * d * k);
  check_finite(X, n * d, "X", nt1);
  const std::vector<T> shift = to_type<T>(center_mean(centers, k, d));
  assign_all(make_panels(centers, k, d, shift.data()), shift.data(), X, n, labels, nt);
  return exact_inertia(X, n, d, centers, labels, nt1);
}

template <class T>
void kmeans_distances(const T* X, int64_t n, int64_t d, const T* centers, int64_t k, T* out, bool squared,
                      int n_threads) {
  check_shape(n, d, "kmeans_distances");
  if (k < 1) throw std::invalid_argument("kmeans_distances: need at least one center");
  const int64_t nb = (n + kBlock - 1) / kBlock;
  const int nt = threads_for(n_threads, n_chunks(n), static_cast<double>(n) * d * k);
  check_finite(X, n * d, "X", threads_for(n_threads, n_chunks(n), static_cast<double>(n) * d));
  const std::vector<T> shift = to_type<T>(center_mean(centers, k, d));
  const Panels<T> P = make_panels(centers, k, d, shift.data());
#pragma omp parallel num_threads(nt)
  {
    Block<T> b(d);
#pragma omp for schedule(static)
    for (int64_t c = 0; c < nb; ++c) {
      const int64_t r0 = c * kBlock;
      const int m = static_cast<int>(std::min<int64_t>(kBlock, n - r0));
      b.pack(X, r0, m, d, shift.data());
      distance_block(P, b.ptr.data(), b.xn.data(), m, out + r0 * k, k, squared);
    }
  }
}

template <class T>
double kmeans_minibatch_update(const T* X, int64_t n, int64_t d, T* centers, int64_t k, double* counts,
                               int32_t* labels, int n_threads) {
  check_shape(n, d, "kmeans_minibatch_update");
  if (k < 1) throw std::invalid_argument("kmeans_minibatch_update: need at least one center");
  const int nt1 = threads_for(n_threads, n_chunks(n), static_cast<double>(n) * d);
  const int nt = threads_for(n_threads, n_chunks(n), static_cast<double>(n) * d * k);
  check_finite(X, n * d, "X", nt1);
  for (int64_t c = 0; c < k; ++c)
    if (!(counts[c] >= 0.0)) throw std::invalid_argument("kmeans_minibatch_update: counts must be >= 0");
  const std::vector<T> shift = to_type<T>(center_mean(centers, k, d));
  assign_all(make_panels(centers, k, d, shift.data()), shift.data(), X, n, labels, nt);
  const double inertia = exact_inertia(X, n, d, centers, labels, nt1);
  const Groups g = group_rows(labels, n, k);
  const std::vector<double> sums = cluster_sums<T>(X, d, k, g.start, g.order, nt1);
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
  const int nt = threads_for(n_threads, n_chunks(n), static_cast<double>(n) * d);
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    double s = 0.0;
    for (int64_t t = 0; t < d; ++t) s += static_cast<double>(X[i * d + t]) * X[i * d + t];
    const T norm = static_cast<T>(std::sqrt(s));
    const T div = norm == T(0) ? T(1) : norm;
    for (int64_t t = 0; t < d; ++t) out[i * d + t] = X[i * d + t] / div;
  }
}

#define ECGCORE_KMEANS_INSTANTIATE(T)                                                                          \
  template void kmeans_plusplus<T>(const T*, int64_t, int64_t, int64_t, uint64_t, int, T*, int64_t*, int);     \
  template KMeansFit kmeans_lloyd<T>(const T*, int64_t, int64_t, int64_t, T*, int32_t*, int, double, int);     \
  template double kmeans_assign<T>(const T*, int64_t, int64_t, const T*, int64_t, int32_t*, int);              \
  template void kmeans_distances<T>(const T*, int64_t, int64_t, const T*, int64_t, T*, bool, int);             \
  template double kmeans_minibatch_update<T>(const T*, int64_t, int64_t, T*, int64_t, double*, int32_t*, int); \
  template void l2_normalize_rows<T>(const T*, int64_t, int64_t, T*, int);

ECGCORE_KMEANS_INSTANTIATE(float)
ECGCORE_KMEANS_INSTANTIATE(double)
#undef ECGCORE_KMEANS_INSTANTIATE

}  // namespace ecgcore
