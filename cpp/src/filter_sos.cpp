// Running IIR filters over the rows of a [batch, n] view: second-order sections (sosfilt, sosfiltfilt) and the
// transfer-function form (lfilter, filtfilt), their steady-state initial conditions and default pad lengths.
// References: scipy.signal 1.11+ (_signaltools.py, _sosfilt.pyx), Oppenheim & Schafer for the DF-II-T
// recursions. See filter_sos.hpp.
#include "ecgcore/filter_sos.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "ecgcore/detail/config.hpp"
#include "ecgcore/detail/parallel.hpp"
#include "ecgcore/detail/simd.hpp"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif

namespace ecgcore {

PadType parse_pad_type(const std::string& name) {
  if (name == "odd") return PadType::odd;
  if (name == "even") return PadType::even;
  if (name == "constant") return PadType::constant;
  if (name == "none" || name.empty()) return PadType::none;
  throw std::invalid_argument("padtype must be 'odd', 'even', 'constant' or None, got '" + name + "'");
}

std::vector<double> lfilter_zi(const std::vector<double>& b_in, const std::vector<double>& a_in) {
  std::vector<double> a = a_in, b = b_in;
  while (a.size() > 1 && a[0] == 0.0) a.erase(a.begin());
  if (a.empty() || a[0] == 0.0) throw std::invalid_argument("there must be at least one nonzero `a` coefficient");
  if (b.empty()) throw std::invalid_argument("the numerator b must not be empty");
  if (a[0] != 1.0) {
    double a0 = a[0];
    for (auto& v : b) v /= a0;
    for (auto& v : a) v /= a0;
  }
  const size_t n = std::max(a.size(), b.size());
  a.resize(n, 0.0);
  b.resize(n, 0.0);
  const size_t m = n - 1;
  if (m == 0) return {};
  // (I - companion(a)^T) zi = b[1:] - a[1:] b[0], solved by Gaussian elimination with partial pivoting.
  std::vector<double> M(m * m, 0.0), rhs(m);
  for (size_t i = 0; i < m; ++i) {
    M[i * m + i] = 1.0;
    M[i * m + 0] += a[i + 1];
    if (i + 1 < m) M[i * m + i + 1] -= 1.0;
    rhs[i] = b[i + 1] - a[i + 1] * b[0];
  }
  for (size_t c = 0; c < m; ++c) {
    size_t piv = c;
    for (size_t r = c + 1; r < m; ++r)
      if (std::abs(M[r * m + c]) > std::abs(M[piv * m + c])) piv = r;
    if (M[piv * m + c] == 0.0) throw std::invalid_argument("lfilter_zi: singular system (pole at z = 1)");
    if (piv != c) {
      for (size_t k = 0; k < m; ++k) std::swap(M[c * m + k], M[piv * m + k]);
      std::swap(rhs[c], rhs[piv]);
    }
    for (size_t r = c + 1; r < m; ++r) {
      double f = M[r * m + c] / M[c * m + c];
      if (f == 0.0) continue;
      for (size_t k = c; k < m; ++k) M[r * m + k] -= f * M[c * m + k];
      rhs[r] -= f * rhs[c];
    }
  }
  std::vector<double> zi(m);
  for (size_t c = m; c-- > 0;) {
    double s = rhs[c];
    for (size_t k = c + 1; k < m; ++k) s -= M[c * m + k] * zi[k];
    zi[c] = s / M[c * m + c];
  }
  return zi;
}

std::vector<double> sosfilt_zi(const double* sos, int ns) {
  std::vector<double> zi(static_cast<size_t>(ns) * 2);
  double scale = 1.0;
  for (int s = 0; s < ns; ++s) {
    std::vector<double> b(sos + s * 6, sos + s * 6 + 3), a(sos + s * 6 + 3, sos + s * 6 + 6);
    std::vector<double> z = lfilter_zi(b, a);
    zi[s * 2] = scale * z[0];
    zi[s * 2 + 1] = scale * z[1];
    scale *= (b[0] + b[1] + b[2]) / (a[0] + a[1] + a[2]);
  }
  return zi;
}

int64_t sosfiltfilt_default_padlen(const double* sos, int ns) {
  int64_t zb = 0, za = 0;
  for (int s = 0; s < ns; ++s) {
    zb += sos[s * 6 + 2] == 0.0;
    za += sos[s * 6 + 5] == 0.0;
  }
  return 3 * (2 * ns + 1 - std::min(zb, za));
}

int64_t filtfilt_default_padlen(int64_t len_b, int64_t len_a) { return 3 * std::max(len_b, len_a); }

// The largest pole radius of the cascade (roots of z^2 + a1 z + a2 per section; filter_sos.hpp).
double sos_pole_radius(const double* sos, int ns) {
  double r = 0.0;
  for (int s = 0; s < ns; ++s) {
    const double a1 = sos[s * 6 + 4], a2 = sos[s * 6 + 5];
    const double disc = a1 * a1 - 4.0 * a2;
    if (disc < 0.0) {
      r = std::max(r, std::sqrt(a2));
    } else {
      const double sq = std::sqrt(disc);
      r = std::max({r, std::fabs((-a1 + sq) * 0.5), std::fabs((-a1 - sq) * 0.5)});
    }
  }
  return r;
}

// ---------------------------------------------------------------------------------------------
// Application. Rows are processed L at a time as SIMD lanes in an interleaved double buffer
// [N][L]; the recursions are written so GCC vectorises across lanes. Each kernel is compiled twice
// (AVX2+FMA and the portable baseline) and picked at run time (see simd.hpp).

namespace {

void validate_sos(const double* sos, int ns) {
  if (ns < 1) throw std::invalid_argument("sos must have at least one section (shape [n_sections, 6])");
  for (int s = 0; s < ns; ++s) {
    if (sos[s * 6 + 3] != 1.0)
      throw std::invalid_argument("sos[:, 3] must be all ones (normalised sections), section " + std::to_string(s) +
                                  " has " + std::to_string(sos[s * 6 + 3]));
    for (int j = 0; j < 6; ++j)
      if (!std::isfinite(sos[s * 6 + j])) throw std::invalid_argument("sos coefficients must be finite");
  }
}

template <int L>
ECGCORE_INLINE void sos_lanes_impl(const double* sos, int ns, double* buf, int64_t N, double* st, bool reverse) {
  for (int64_t i = 0; i < N; ++i) {
    const int64_t t = reverse ? N - 1 - i : i;
    double* v = buf + t * L;
    double x[L];
    for (int l = 0; l < L; ++l) x[l] = v[l];
    for (int s = 0; s < ns; ++s) {
      const double b0 = sos[s * 6], b1 = sos[s * 6 + 1], b2 = sos[s * 6 + 2];
      const double a1 = sos[s * 6 + 4], a2 = sos[s * 6 + 5];
      double* z0 = st + (2 * s) * L;
      double* z1 = st + (2 * s + 1) * L;
#pragma omp simd
      for (int l = 0; l < L; ++l) {
        const double y = b0 * x[l] + z0[l];
        z0[l] = b1 * x[l] - a1 * y + z1[l];
        z1[l] = b2 * x[l] - a2 * y;
        x[l] = y;
      }
    }
    for (int l = 0; l < L; ++l) v[l] = x[l];
  }
}

// Sign flip as a bitwise xor (m is 0 or the sign bit), so that it never costs a multiply.
ECGCORE_INLINE double flip_sign(double x, uint64_t m) {
  uint64_t u;
  std::memcpy(&u, &x, sizeof u);
  u ^= m;
  std::memcpy(&x, &u, sizeof u);
  return x;
}

// Butterworth and Chebyshev cascades from zpk_to_sos (like scipy's) keep the gain in the first
// section: every later numerator is exactly [1, b1, +-1] (zeros at z = +-1, or a band-pass's
// [1, 0, -1]). For those sections y = x + z0 needs an add instead of a multiply-add and
// z1 = +-x - a2*y one multiply-add instead of two operations, which moves work from the two
// multiply pipes to the add pipes; the result is bit-identical to the general recursion (1*x
// and +-1*x are exact).
bool unit_tail_sections(const double* sos, int ns) {
  for (int s = 1; s < ns; ++s)
    if (sos[s * 6] != 1.0 || std::fabs(sos[s * 6 + 2]) != 1.0) return false;
  return ns > 1;
}

// The same recursion with the section count fixed at compile time, so the state lives in registers
// instead of memory (a store-to-load round trip on the recursion's critical path otherwise).
template <int G, int L, int NS, bool UNIT>
ECGCORE_INLINE void sos_lanes_group(const double* sos, double* buf, int64_t N, double* st, bool reverse, int g0) {
  double b0[NS], b1[NS], b2[NS], a1[NS], a2[NS];
  uint64_t neg[NS];
  double z0[NS][G], z1[NS][G];
  for (int s = 0; s < NS; ++s) {
    b0[s] = sos[s * 6];
    b1[s] = sos[s * 6 + 1];
    b2[s] = sos[s * 6 + 2];
    a1[s] = sos[s * 6 + 4];
    a2[s] = sos[s * 6 + 5];
    neg[s] = b2[s] < 0.0 ? 0x8000000000000000ull : 0ull;
    for (int l = 0; l < G; ++l) {
      z0[s][l] = st[(2 * s) * L + g0 + l];
      z1[s][l] = st[(2 * s + 1) * L + g0 + l];
    }
  }
  for (int64_t i = 0; i < N; ++i) {
    const int64_t t = reverse ? N - 1 - i : i;
    double* v = buf + t * L + g0;
    double x[G];
    for (int l = 0; l < G; ++l) x[l] = v[l];
    for (int s = 0; s < NS; ++s) {
      if (UNIT && s > 0) {
#pragma omp simd
        for (int l = 0; l < G; ++l) {
          const double y = x[l] + z0[s][l];
          const double u = b1[s] * x[l] + z1[s][l];
          z0[s][l] = u - a1[s] * y;
          z1[s][l] = flip_sign(x[l], neg[s]) - a2[s] * y;
          x[l] = y;
        }
      } else {
#pragma omp simd
        for (int l = 0; l < G; ++l) {
          // b1*x + z1 does not wait for y, so the recursion's critical path is two multiply-adds.
          const double y = b0[s] * x[l] + z0[s][l];
          const double u = b1[s] * x[l] + z1[s][l];
          z0[s][l] = u - a1[s] * y;
          z1[s][l] = b2[s] * x[l] - a2[s] * y;
          x[l] = y;
        }
      }
    }
    for (int l = 0; l < G; ++l) v[l] = x[l];
  }
  for (int s = 0; s < NS; ++s)
    for (int l = 0; l < G; ++l) {
      st[(2 * s) * L + g0 + l] = z0[s][l];
      st[(2 * s + 1) * L + g0 + l] = z1[s][l];
    }
}

// Up to 4 lanes (one AVX2 vector) per block: wider blocks measured slower everywhere. Eight lanes
// as one group spill the state of 2 or more sections out of the 16 vector registers; as two groups
// they gain no parallelism, and the 8 row streams of the copies ran ~30 % slower than 4 on the
// 96-row benchmark (EPYC 7003, 2 cores).
template <int L, int NS>
ECGCORE_INLINE void sos_lanes_fixed(const double* sos, double* buf, int64_t N, double* st, bool reverse) {
  static_assert(L <= 4, "lanes per block");
  if (unit_tail_sections(sos, NS)) sos_lanes_group<L, L, NS, true>(sos, buf, N, st, reverse, 0);
  else sos_lanes_group<L, L, NS, false>(sos, buf, N, st, reverse, 0);
}

template <int L>
ECGCORE_INLINE void sos_lanes_dispatch(const double* sos, int ns, double* buf, int64_t N, double* st, bool reverse) {
  switch (ns) {
    case 1: return sos_lanes_fixed<L, 1>(sos, buf, N, st, reverse);
    case 2: return sos_lanes_fixed<L, 2>(sos, buf, N, st, reverse);
    case 3: return sos_lanes_fixed<L, 3>(sos, buf, N, st, reverse);
    case 4: return sos_lanes_fixed<L, 4>(sos, buf, N, st, reverse);
    case 5: return sos_lanes_fixed<L, 5>(sos, buf, N, st, reverse);
    case 6: return sos_lanes_fixed<L, 6>(sos, buf, N, st, reverse);
    default: return sos_lanes_impl<L>(sos, ns, buf, N, st, reverse);
  }
}

template <int L>
ECGCORE_INLINE void tf_lanes_impl(const double* b, const double* a, int m, double* buf, int64_t N, double* st,
                                  bool reverse) {
  // m = filter order; b, a have m+1 entries with a[0] == 1; st is [m][L].
  for (int64_t i = 0; i < N; ++i) {
    const int64_t t = reverse ? N - 1 - i : i;
    double* v = buf + t * L;
    double x[L], y[L];
    for (int l = 0; l < L; ++l) x[l] = v[l];
    if (m == 0) {
      for (int l = 0; l < L; ++l) v[l] = b[0] * x[l];
      continue;
    }
#pragma omp simd
    for (int l = 0; l < L; ++l) y[l] = st[l] + b[0] * x[l];
    for (int j = 1; j < m; ++j) {
#pragma omp simd
      for (int l = 0; l < L; ++l) st[(j - 1) * L + l] = st[j * L + l] + b[j] * x[l] - a[j] * y[l];
    }
#pragma omp simd
    for (int l = 0; l < L; ++l) st[(m - 1) * L + l] = b[m] * x[l] - a[m] * y[l];
    for (int l = 0; l < L; ++l) v[l] = y[l];
  }
}

#define ECGCORE_DEFINE_LANES(L)                                                                                       \
  ECGCORE_MULTIVERSION(void, sos_lanes_##L,                                                                           \
                       (const double* sos, int ns, double* buf, int64_t N, double* st, bool reverse),                 \
                       (sos, ns, buf, N, st, reverse), { sos_lanes_dispatch<L>(sos, ns, buf, N, st, reverse); })      \
  ECGCORE_MULTIVERSION_T(ECGCORE_TARGET_AVX2_NOFMA, void, tf_lanes_##L,                                               \
                         (const double* b, const double* a, int m, double* buf, int64_t N, double* st, bool reverse), \
                         (b, a, m, buf, N, st, reverse), { tf_lanes_impl<L>(b, a, m, buf, N, st, reverse); })

ECGCORE_DEFINE_LANES(1)
ECGCORE_DEFINE_LANES(2)
ECGCORE_DEFINE_LANES(4)

void sos_lanes(int L, const double* sos, int ns, double* buf, int64_t N, double* st, bool reverse) {
  switch (L) {
    case 1: return sos_lanes_1(sos, ns, buf, N, st, reverse);
    case 2: return sos_lanes_2(sos, ns, buf, N, st, reverse);
    default: return sos_lanes_4(sos, ns, buf, N, st, reverse);
  }
}

void tf_lanes(int L, const double* b, const double* a, int m, double* buf, int64_t N, double* st, bool reverse) {
  switch (L) {
    case 1: return tf_lanes_1(b, a, m, buf, N, st, reverse);
    case 2: return tf_lanes_2(b, a, m, buf, N, st, reverse);
    default: return tf_lanes_4(b, a, m, buf, N, st, reverse);
  }
}

constexpr int64_t kChunk = 256;

// Lanes per block: wide enough to fill SIMD registers, narrow enough that every thread gets work.
int lanes_for(int64_t batch, int threads) {
  int64_t per = (batch + threads - 1) / threads;
  if (per >= 4) return 4;
  // Never 1: the scalar build of the recursion may contract multiply-adds differently from the
  // vector builds, and a row must give the same bits whether it is filtered alone or in a batch.
  return 2;
}

// ---------------------------------------------------------------------------------------------
// Row <-> lane (de)interleaving: dst[i*L + l] = src[l][i] and back, for L = 4 or 8 contiguous rows.
// These copies were as costly as the recursion itself when done one sample at a time; the AVX2
// build moves 4x4 blocks through registers (two unpacks and two lane permutes per 4 vectors).

#if ECGCORE_HAS_AVX2_BUILD
ECGCORE_TARGET_AVX2 inline void transpose4(__m256d& r0, __m256d& r1, __m256d& r2, __m256d& r3) {
  const __m256d t0 = _mm256_unpacklo_pd(r0, r1), t1 = _mm256_unpackhi_pd(r0, r1);
  const __m256d t2 = _mm256_unpacklo_pd(r2, r3), t3 = _mm256_unpackhi_pd(r2, r3);
  r0 = _mm256_permute2f128_pd(t0, t2, 0x20);
  r1 = _mm256_permute2f128_pd(t1, t3, 0x20);
  r2 = _mm256_permute2f128_pd(t0, t2, 0x31);
  r3 = _mm256_permute2f128_pd(t1, t3, 0x31);
}
ECGCORE_TARGET_AVX2 inline __m256d load4(const double* p) { return _mm256_loadu_pd(p); }
ECGCORE_TARGET_AVX2 inline __m256d load4(const float* p) { return _mm256_cvtps_pd(_mm_loadu_ps(p)); }
ECGCORE_TARGET_AVX2 inline void store4(double* p, __m256d v) { _mm256_storeu_pd(p, v); }
ECGCORE_TARGET_AVX2 inline void store4(float* p, __m256d v) { _mm_storeu_ps(p, _mm256_cvtpd_ps(v)); }

// REV: lane l's element i is src[l][-i] (dst[l][-i]), for the backward passes over a row.
template <bool REV, class T>
ECGCORE_TARGET_AVX2 inline __m256d load_run(const T* p, int64_t i) {
  if (!REV) return load4(p + i);
  return _mm256_permute4x64_pd(load4(p - i - 3), 0x1B);
}
template <bool REV, class T>
ECGCORE_TARGET_AVX2 inline void store_run(T* p, int64_t i, __m256d v) {
  if (!REV) return store4(p + i, v);
  store4(p - i - 3, _mm256_permute4x64_pd(v, 0x1B));
}

template <bool REV, class T>
ECGCORE_TARGET_AVX2 int64_t interleave_avx2(const T* const* src, int L, double* dst, int64_t n) {
  const int64_t n4 = n & ~int64_t{3};
  for (int64_t i = 0; i < n4; i += 4)
    for (int g = 0; g < L; g += 4) {
      __m256d r0 = load_run<REV>(src[g], i), r1 = load_run<REV>(src[g + 1], i);
      __m256d r2 = load_run<REV>(src[g + 2], i), r3 = load_run<REV>(src[g + 3], i);
      transpose4(r0, r1, r2, r3);
      double* d = dst + i * L + g;
      store4(d, r0);
      store4(d + L, r1);
      store4(d + 2 * L, r2);
      store4(d + 3 * L, r3);
    }
  return n4;
}

template <bool REV, class T>
ECGCORE_TARGET_AVX2 int64_t deinterleave_avx2(const double* src, int L, T* const* dst, int64_t n) {
  const int64_t n4 = n & ~int64_t{3};
  for (int64_t i = 0; i < n4; i += 4)
    for (int g = 0; g < L; g += 4) {
      const double* s = src + i * L + g;
      __m256d r0 = load4(s), r1 = load4(s + L), r2 = load4(s + 2 * L), r3 = load4(s + 3 * L);
      transpose4(r0, r1, r2, r3);
      store_run<REV>(dst[g], i, r0);
      store_run<REV>(dst[g + 1], i, r1);
      store_run<REV>(dst[g + 2], i, r2);
      store_run<REV>(dst[g + 3], i, r3);
    }
  return n4;
}

// deinterleave for the final output of 4 double rows, with non-temporal stores: the rows are not read
// again, and streaming them skips reading every output line into the cache first (half of the output's
// DRAM traffic). Needs the 4 destinations equally aligned modulo 32 bytes; returns the samples done.
ECGCORE_TARGET_AVX2 int64_t deinterleave4_stream_avx2(const double* src, double* const* dst, int64_t n) {
  const uintptr_t mis = reinterpret_cast<uintptr_t>(dst[0]) & 31;
  if (mis % sizeof(double) != 0) return 0;
  for (int l = 1; l < 4; ++l)
    if ((reinterpret_cast<uintptr_t>(dst[l]) & 31) != mis) return 0;
  const int64_t head = std::min<int64_t>(n, static_cast<int64_t>((32 - mis) & 31) / 8);
  for (int64_t i = 0; i < head; ++i)
    for (int l = 0; l < 4; ++l) dst[l][i] = src[i * 4 + l];
  int64_t i = head;
  for (; i + 4 <= n; i += 4) {
    const double* s = src + i * 4;
    __m256d r0 = load4(s), r1 = load4(s + 4), r2 = load4(s + 8), r3 = load4(s + 12);
    transpose4(r0, r1, r2, r3);
    _mm256_stream_pd(dst[0] + i, r0);
    _mm256_stream_pd(dst[1] + i, r1);
    _mm256_stream_pd(dst[2] + i, r2);
    _mm256_stream_pd(dst[3] + i, r3);
  }
  _mm_sfence();
  return i;
}
#endif

// dst[i*L + l] = src[l][i] (REV: src[l][-i]) for i < n, l < L (src rows contiguous).
template <bool REV = false, class T>
void interleave(const T* const* src, int L, double* dst, int64_t n) {
  int64_t i = 0;
#if ECGCORE_HAS_AVX2_BUILD
  if ((L == 4 || L == 8) && use_avx2()) i = interleave_avx2<REV>(src, L, dst, n);
#endif
  for (; i < n; ++i)
    for (int l = 0; l < L; ++l) dst[i * L + l] = static_cast<double>(src[l][REV ? -i : i]);
}

// dst[l][i] (REV: dst[l][-i]) = src[i*L + l] for i < n, l < L (dst rows contiguous).
template <bool REV = false, class T>
void deinterleave(const double* src, int L, T* const* dst, int64_t n) {
  int64_t i = 0;
#if ECGCORE_HAS_AVX2_BUILD
  if ((L == 4 || L == 8) && use_avx2()) i = deinterleave_avx2<REV>(src, L, dst, n);
#endif
  for (; i < n; ++i)
    for (int l = 0; l < L; ++l) dst[l][REV ? -i : i] = static_cast<T>(src[i * L + l]);
}

// Extended sample t (0 <= t < n + 2*edge) of row x under the padding rule.
template <class T>
inline double ext_at(const T* row, int64_t ss, int64_t n, int64_t edge, PadType pad, int64_t t) {
  if (t >= edge && t < edge + n) return static_cast<double>(row[(t - edge) * ss]);
  if (t < edge) {
    const int64_t j = edge - t;  // mirror index
    switch (pad) {
      case PadType::odd: return 2.0 * row[0] - static_cast<double>(row[j * ss]);
      case PadType::even: return static_cast<double>(row[j * ss]);
      default: return static_cast<double>(row[0]);
    }
  }
  const int64_t j = t - (edge + n);
  switch (pad) {
    case PadType::odd: return 2.0 * row[(n - 1) * ss] - static_cast<double>(row[(n - 2 - j) * ss]);
    case PadType::even: return static_cast<double>(row[(n - 2 - j) * ss]);
    default: return static_cast<double>(row[(n - 1) * ss]);
  }
}

// Interleave rows r0..r0+nb-1 of x, extended by `edge` samples at each end, into buf[N][L]
// (time-major so that the buffer is written sequentially); unused lanes are zero.
template <class T>
void gather_ext(const RowsView<const T>& x, int64_t r0, int nb, int L, int64_t edge, PadType pad, double* buf,
                int64_t t0, int64_t t1) {
  const T* rows[8];
  for (int l = 0; l < nb; ++l) rows[l] = x.data + (r0 + l) * x.row_stride;
  const int64_t ss = x.sample_stride, n = x.n;
  // Interior part [a, b) is a plain copy; pick the loop order that reads memory sequentially.
  const int64_t a = std::max(t0, edge), b = std::min(t1, edge + n);
  for (int64_t t = t0; t < t1; ++t) {
    if (t >= a && t < b) {
      t = b - 1;
      continue;
    }
    double* v = buf + (t - t0) * L;
    for (int l = 0; l < nb; ++l) v[l] = ext_at(rows[l], ss, n, edge, pad, t);
    for (int l = nb; l < L; ++l) v[l] = 0.0;
  }
  if (a < b) {
    if (ss == 1 && nb == L) {
      const T* src[8];
      for (int l = 0; l < L; ++l) src[l] = rows[l] + (a - edge);
      interleave(src, L, buf + (a - t0) * L, b - a);
      return;
    }
    // Time-major with lanes inner: measured faster than row-by-row even for contiguous rows.
    for (int64_t t = a; t < b; ++t) {
      double* v = buf + (t - t0) * L;
      const int64_t off = (t - edge) * ss;
      for (int l = 0; l < nb; ++l) v[l] = static_cast<double>(rows[l][off]);
    }
    for (int l = nb; l < L; ++l)
      for (int64_t t = a; t < b; ++t) buf[(t - t0) * L + l] = 0.0;
  }
}

// Copy lanes of buf (time-major, L lanes) for signal samples [s0, s1) into y.
template <class T>
void store_rows(T* const* yrows, int64_t ys, int nb, int L, const double* buf, int64_t s0, int64_t s1,
                bool final_output = false) {
  if (ys == 1 && nb == L) {
    T* dst[8];
    for (int l = 0; l < L; ++l) dst[l] = yrows[l] + s0;
#if ECGCORE_HAS_AVX2_BUILD
    if constexpr (std::is_same<T, double>::value) {
      if (final_output && L == 4 && use_avx2()) {
        const int64_t done = deinterleave4_stream_avx2(buf, dst, s1 - s0);
        if (done > 0) {
          for (int l = 0; l < L; ++l) dst[l] += done;
          deinterleave(buf + done * L, L, dst, s1 - s0 - done);
          return;
        }
      }
    }
#endif
    deinterleave(buf, L, dst, s1 - s0);
    return;
  }
  for (int64_t i = 0; i < s1 - s0; ++i)
    for (int l = 0; l < nb; ++l) yrows[l][(s0 + i) * ys] = static_cast<T>(buf[i * L + l]);
}

template <class T>
void load_rows(T* const* yrows, int64_t ys, int nb, int L, double* buf, int64_t s0, int64_t s1) {
  if (ys == 1 && nb == L) {
    const T* src[8];
    for (int l = 0; l < L; ++l) src[l] = yrows[l] + s0;
    interleave(src, L, buf, s1 - s0);
    return;
  }
  for (int64_t i = 0; i < s1 - s0; ++i)
    for (int l = 0; l < nb; ++l) buf[i * L + l] = static_cast<double>(yrows[l][(s0 + i) * ys]);
  for (int l = nb; l < L; ++l)
    for (int64_t i = 0; i < s1 - s0; ++i) buf[i * L + l] = 0.0;
}

// De-interleave extended-time samples [t0, t1) of buf[N][L] (lanes 0..nb-1) into rows r0.. of y,
// keeping only the part inside the signal [edge, edge + n).
template <class T>
void scatter(const RowsView<T>& y, int64_t r0, int nb, int L, const double* buf, int64_t edge, int64_t t0, int64_t t1) {
  T* rows[8];
  for (int l = 0; l < nb; ++l) rows[l] = y.data + (r0 + l) * y.row_stride;
  const int64_t ss = y.sample_stride;
  const int64_t base = t0;
  t0 = std::max(t0, edge);
  t1 = std::min(t1, edge + y.n);
  for (int64_t te = t0; te < t1; ++te) {
    const int64_t t = te - edge;
    const double* v = buf + (te - base) * L;
    for (int l = 0; l < nb; ++l) rows[l][t * ss] = static_cast<T>(v[l]);
  }
}

template <class T>
void check_same_shape(const RowsView<const T>& x, const RowsView<T>& y) {
  if (x.batch != y.batch || x.n != y.n) throw std::invalid_argument("output shape must equal input shape");
}

// The output rows r0 .. r0+nb-1 of one block of L lanes (nb < L for the last block).
template <class T>
struct BlockRows {
  int nb;
  T* rows[8];
  BlockRows(const RowsView<T>& y, int64_t r0, int L) : nb(static_cast<int>(std::min<int64_t>(L, y.batch - r0))) {
    for (int l = 0; l < nb; ++l) rows[l] = y.data + (r0 + l) * y.row_stride;
  }
};

[[noreturn]] void throw_nonfinite() {
  throw std::invalid_argument(
      "the signal contains NaN or infinite samples; zero-phase filtering would spread them over the whole "
      "row - interpolate or drop the gaps first");
}

// Forward-backward driver shared by sosfiltfilt and filtfilt. `zi` is the steady-state vector of
// length n_state per lane; `run(L, buf, N, st, reverse)` runs the recursion.
template <class T, class Run>
void forward_backward(RowsView<const T> x, RowsView<T> y, PadType pad, int64_t edge, const std::vector<double>& zi,
                      int n_threads, Run run) {
  check_same_shape(x, y);
  if (x.batch == 0) return;
  if (pad == PadType::none) edge = 0;
  if (edge < 0) throw std::invalid_argument("padlen must be >= 0");
  if (x.n <= edge)
    throw std::invalid_argument("the signal is too short for zero-phase filtering: it has " + std::to_string(x.n) +
                                " samples but the edge padding needs more than " + std::to_string(edge));
  const int64_t N = x.n + 2 * edge;
  const int threads = resolve_threads(n_threads, x.batch);
  const int L = lanes_for(x.batch, threads);
  const int64_t n_blocks = (x.batch + L - 1) / L;
  const size_t ns = zi.size();
  bool nonfinite = false;
#pragma omp parallel num_threads(threads) reduction(|| : nonfinite)
  {
    // The forward pass stores its output in y itself (plus a small buffer for the right-hand padding);
    // the backward pass stops at the first signal sample because the left padding is discarded. No
    // signal-sized scratch memory, and y goes through the cache twice.
    std::vector<double> cbuf(static_cast<size_t>(kChunk) * L);
    std::vector<double> tail(static_cast<size_t>(std::max<int64_t>(edge, 1)) * L);
    std::vector<double> st(ns * L);
    double* C = cbuf.data();
#pragma omp for schedule(dynamic, 1)
    for (int64_t blk = 0; blk < n_blocks; ++blk) {
      const int64_t r0 = blk * L;
      const BlockRows<T> out(y, r0, L);
      const int nb = out.nb;
      T* const* yrows = out.rows;
      const int64_t ys = y.sample_stride;
      for (int64_t c0 = 0; c0 < N; c0 += kChunk) {
        const int64_t c1 = std::min(N, c0 + kChunk);
        gather_ext(x, r0, nb, L, edge, pad, C, c0, c1);
        if (c0 == 0)
          for (size_t s = 0; s < ns; ++s)
            for (int l = 0; l < L; ++l) st[s * L + l] = zi[s] * C[l];
        run(L, C, c1 - c0, st.data(), false);
        {
          const int64_t a = std::max(c0, edge), b = std::min(c1, edge + x.n);
          if (a < b) store_rows(yrows, ys, nb, L, C + (a - c0) * L, a - edge, b - edge);
          for (int64_t t = std::max(c0, edge + x.n); t < c1; ++t)
            for (int l = 0; l < L; ++l) tail[(t - edge - x.n) * L + l] = C[(t - c0) * L + l];
        }
      }
      for (size_t s = 0; s < ns; ++s)
        for (int l = 0; l < nb; ++l)
          if (!std::isfinite(st[s * L + l])) nonfinite = true;
      // The last forward output (kept in double) seeds the backward pass.
      const double* last = edge > 0 ? &tail[(edge - 1) * L] : C + ((N - 1) % kChunk) * L;
      for (size_t s = 0; s < ns; ++s)
        for (int l = 0; l < L; ++l) st[s * L + l] = zi[s] * last[l];
      for (int64_t c1 = N; c1 > edge; c1 -= kChunk) {
        const int64_t c0 = std::max<int64_t>(edge, c1 - kChunk);
        const int64_t b = std::min(c1, edge + x.n);
        if (c0 < b) load_rows(yrows, ys, nb, L, C, c0 - edge, b - edge);
        for (int64_t t = std::max(c0, edge + x.n); t < c1; ++t)
          for (int l = 0; l < L; ++l) C[(t - c0) * L + l] = tail[(t - edge - x.n) * L + l];
        run(L, C, c1 - c0, st.data(), true);
        if (c0 < b) store_rows(yrows, ys, nb, L, C, c0 - edge, b - edge);
      }
    }
  }
  if (nonfinite) throw_nonfinite();
}

// ---------------------------------------------------------------------------------------------
// Time-split lanes for a few long rows. One row is cut into kSplit consecutive segments that run
// side by side as SIMD lanes. Each segment after the first starts `warm` samples early from the
// steady state of its first input sample; the start-up error of a stable recursion decays like
// r^t (r: the largest pole radius), and `warm` is chosen so that it is below 1e-20 of the state
// by the time the segment's own samples begin — far below double rounding, so the output equals
// the sequential recursion to rounding (tests compare with scipy on every MIT-BIH record).

constexpr int kSplit = 4;

// Warm-up samples for a time-split segment, or -1 when the cascade is (nearly) marginally stable.
int64_t split_warmup(const double* sos, int ns) {
  const double r = sos_pole_radius(sos, ns);
  if (!(r < 1.0 - 1e-7)) return -1;
  if (r < 1e-3) return 16 + 2 * ns;
  // r^w <= 1e-20: three orders of magnitude below double rounding, which also covers the slow
  // polynomial growth (t^(m-1)) of nearly repeated poles over such spans.
  return static_cast<int64_t>(std::ceil(std::log(1e-20) / std::log(r))) + 16 + 2 * ns;
}

struct SplitLayout {
  int64_t len;            // steps every lane runs
  int64_t start[kSplit];  // first (warm-up) sample of each lane
  int64_t begin[kSplit];  // first sample the lane owns
};

SplitLayout split_layout(int64_t N, int64_t warm) {
  SplitLayout s{};
  s.len = (N + (kSplit - 1) * warm + kSplit - 1) / kSplit;
  for (int g = 0; g < kSplit; ++g) {
    s.start[g] = g == 0 ? 0 : g * (s.len - warm);
    s.begin[g] = g == 0 ? 0 : s.start[g] + warm;
  }
  return s;
}

// Worth it (and valid) when every lane owns at least 2 warm-ups worth of samples (at most ~25 % extra
// work, against 2x the throughput of the 2-lane rows-as-lanes block a single row would get).
bool split_applies(int64_t N, int64_t warm) { return warm >= 0 && N >= kSplit * 3 * warm && N >= 4096; }

template <class T>
void split_row(const double* sos, int ns, const std::vector<double>& zi, const T* xrow, int64_t xs, T* yrow, int64_t ys,
               int64_t n, int64_t edge, PadType pad, int64_t warm, double* C, double* tail, double* st,
               bool& nonfinite) {
  constexpr int L = kSplit;
  const size_t nst = zi.size();
  const int64_t N = n + 2 * edge;
  // Forward pass over the extended row e[0..N).
  SplitLayout f = split_layout(N, warm);
  for (int l = 0; l < L; ++l) {
    const double e0 = ext_at(xrow, xs, n, edge, pad, std::min(f.start[l], N - 1));
    for (size_t s = 0; s < nst; ++s) st[s * L + l] = zi[s] * e0;
  }
  double last = 0.0;  // forward output at N-1, in double
  for (int64_t i0 = 0; i0 < f.len; i0 += kChunk) {
    const int64_t i1 = std::min(f.len, i0 + kChunk);
    bool inner = xs == 1;  // every lane's piece inside the signal: one transposing copy
    for (int l = 0; l < L && inner; ++l) inner = f.start[l] + i0 >= edge && f.start[l] + i1 <= edge + n;
    if (inner) {
      const T* src[L];
      for (int l = 0; l < L; ++l) src[l] = xrow + (f.start[l] + i0 - edge);
      interleave(src, L, C, i1 - i0);
    }
    for (int l = 0; l < L && !inner; ++l) {
      const int64_t t0 = f.start[l] + i0, t1 = f.start[l] + i1;
      const int64_t a = std::max(t0, edge), b = std::min(t1, edge + n);  // interior: a plain strided copy
      double* v = C + l - t0 * L;
      for (int64_t t = t0; t < std::min(t1, a); ++t) v[t * L] = ext_at(xrow, xs, n, edge, pad, t);
      for (int64_t t = a; t < b; ++t) v[t * L] = static_cast<double>(xrow[(t - edge) * xs]);
      for (int64_t t = std::max(t0, b); t < t1; ++t) v[t * L] = t < N ? ext_at(xrow, xs, n, edge, pad, t) : 0.0;
    }
    sos_lanes(L, sos, ns, C, i1 - i0, st, false);
    bool owned = ys == 1;  // every lane owns its whole piece, inside the signal
    for (int l = 0; l < L && owned; ++l) {
      const int64_t own0 = std::max(f.begin[l], edge), own1 = std::min({N, l + 1 < L ? f.begin[l + 1] : N, edge + n});
      owned = f.start[l] + i0 >= own0 && f.start[l] + i1 <= own1;
    }
    if (owned) {
      T* dst[L];
      for (int l = 0; l < L; ++l) dst[l] = yrow + (f.start[l] + i0 - edge);
      deinterleave(C, L, dst, i1 - i0);
    }
    for (int l = 0; l < L; ++l) {
      const int64_t own0 = f.begin[l], own1 = std::min(N, l + 1 < L ? f.begin[l + 1] : N);
      const int64_t a = std::max(f.start[l] + i0, own0), b = std::min(f.start[l] + i1, own1);
      const double* v = C + l - (f.start[l] + i0) * L;
      if (!owned)
        for (int64_t t = std::max(a, edge); t < std::min(b, edge + n); ++t)
          yrow[(t - edge) * ys] = static_cast<T>(v[t * L]);
      for (int64_t t = std::max(a, edge + n); t < b; ++t) tail[t - edge - n] = v[t * L];
      if (a <= N - 1 && N - 1 < b) last = v[(N - 1) * L];
    }
  }
  for (size_t s = 0; s < nst; ++s)
    for (int l = 0; l < L; ++l)
      if (!std::isfinite(st[s * L + l])) nonfinite = true;
  // Backward pass over u = N-1-t for t in [edge, N): the left padding's output is discarded.
  const int64_t Nb = N - edge;
  auto fwd_at = [&](int64_t t) -> double {
    return t >= edge + n ? tail[t - edge - n] : static_cast<double>(yrow[(t - edge) * ys]);
  };
  SplitLayout b = split_layout(Nb, warm);
  for (int l = 0; l < L; ++l) {
    const double e0 = l == 0 ? last : fwd_at(N - 1 - std::min(b.start[l], Nb - 1));
    for (size_t s = 0; s < nst; ++s) st[s * L + l] = zi[s] * e0;
  }
  for (int64_t i0 = 0; i0 < b.len; i0 += kChunk) {
    const int64_t i1 = std::min(b.len, i0 + kChunk);
    const int64_t us = N - edge - n;  // first u inside the signal part
    bool inner = ys == 1;             // every lane's piece inside the signal part: one transposing copy
    for (int l = 0; l < L && inner; ++l) inner = b.start[l] + i0 >= us && b.start[l] + i1 <= Nb;
    if (inner) {
      const T* src[L];
      for (int l = 0; l < L; ++l) src[l] = yrow + (N - 1 - (b.start[l] + i0) - edge);
      interleave<true>(src, L, C, i1 - i0);
    }
    for (int l = 0; l < L && !inner; ++l) {
      // u -> t = N-1-u; the signal part [edge, edge+n) reads y, the right padding the tail buffer.
      const int64_t u0 = b.start[l] + i0, u1 = std::min(b.start[l] + i1, Nb);
      double* v = C + l - u0 * L;
      int64_t u = u0;
      for (; u < std::min(u1, us); ++u) v[u * L] = tail[N - 1 - u - edge - n];
      for (; u < u1; ++u) v[u * L] = static_cast<double>(yrow[(N - 1 - u - edge) * ys]);
      for (u = std::max(u0, u1); u < b.start[l] + i1; ++u) v[u * L] = 0.0;
    }
    sos_lanes(L, sos, ns, C, i1 - i0, st, false);
    bool owned = ys == 1;
    for (int l = 0; l < L && owned; ++l) {
      const int64_t own0 = std::max(b.begin[l], us), own1 = std::min(Nb, l + 1 < L ? b.begin[l + 1] : Nb);
      owned = b.start[l] + i0 >= own0 && b.start[l] + i1 <= own1;
    }
    if (owned) {
      T* dst[L];
      for (int l = 0; l < L; ++l) dst[l] = yrow + (N - 1 - (b.start[l] + i0) - edge);
      deinterleave<true>(C, L, dst, i1 - i0);
      continue;
    }
    for (int l = 0; l < L; ++l) {
      const int64_t own0 = b.begin[l], own1 = std::min(Nb, l + 1 < L ? b.begin[l + 1] : Nb);
      const int64_t a = std::max(b.start[l] + i0, own0), e = std::min(b.start[l] + i1, own1);
      const double* v = C + l - (b.start[l] + i0) * L;
      for (int64_t u = std::max(a, N - edge - n); u < e; ++u) yrow[(N - 1 - u - edge) * ys] = static_cast<T>(v[u * L]);
    }
  }
}

template <class T>
void sosfiltfilt_split(const double* sos, int ns, RowsView<const T> x, RowsView<T> y, int64_t edge, PadType pad,
                       const std::vector<double>& zi, int64_t warm, int n_threads) {
  const int threads = resolve_threads(n_threads, x.batch);
  bool nonfinite = false;
#pragma omp parallel num_threads(threads) reduction(|| : nonfinite)
  {
    std::vector<double> C(static_cast<size_t>(kChunk) * kSplit);
    std::vector<double> tail(static_cast<size_t>(std::max<int64_t>(edge, 1)));
    std::vector<double> st(zi.size() * kSplit);
#pragma omp for schedule(dynamic, 1)
    for (int64_t r = 0; r < x.batch; ++r)
      split_row(sos, ns, zi, x.data + r * x.row_stride, x.sample_stride, y.data + r * y.row_stride, y.sample_stride,
                x.n, edge, pad, warm, C.data(), tail.data(), st.data(), nonfinite);
  }
  if (nonfinite) throw_nonfinite();
}

// Forward-backward in cache-sized segments for many long rows (rows as lanes). The forward pass runs
// exactly, segment after segment; the backward pass of segment j starts `warm` samples inside
// segment j+1 (from the steady state of that sample) while both are still in cache, instead of
// waiting for the whole row. As with the time-split lanes, the start-up error has decayed below
// 1e-20 of the state before segment j's own samples begin; the segment that reaches the end of the
// row starts exactly as scipy does. Memory traffic drops from four passes over the row to two.
int64_t blocked_segment(int64_t warm) { return std::max<int64_t>(4 * warm, 16384); }

template <class T, class Run>
void forward_backward_blocked(RowsView<const T> x, RowsView<T> y, PadType pad, int64_t edge,
                              const std::vector<double>& zi, int64_t warm, int n_threads, Run run) {
  const int64_t n = x.n, N = n + 2 * edge;
  const int64_t S = blocked_segment(warm);
  const int64_t n_seg = (N + S - 1) / S;
  const int threads = resolve_threads(n_threads, x.batch);
  const int L = lanes_for(x.batch, threads);
  const int64_t n_blocks = (x.batch + L - 1) / L;
  const size_t ns = zi.size();
  bool nonfinite = false;
#pragma omp parallel num_threads(threads) reduction(|| : nonfinite)
  {
    std::vector<double> F(static_cast<size_t>(2 * S) * L);  // forward output of two segments
    std::vector<double> W(static_cast<size_t>(std::max<int64_t>(warm, 1)) * L);
    std::vector<double> stf(ns * L), stb(ns * L);
#pragma omp for schedule(dynamic, 1)
    for (int64_t blk = 0; blk < n_blocks; ++blk) {
      const int64_t r0 = blk * L;
      const BlockRows<T> out(y, r0, L);
      const int nb = out.nb;
      T* const* yrows = out.rows;
      const int64_t ys = y.sample_stride;
      auto seg = [&](int64_t j) { return F.data() + (j & 1) * S * L; };
      auto backward = [&](int64_t j) {
        const int64_t a = j * S, b = std::min(N, a + S);
        double* Fj = seg(j);
        const int64_t lo = std::max(a, edge);
        if (lo >= b) return;  // all left padding: its output is discarded
        if (b == N) {
          for (size_t s = 0; s < ns; ++s)
            for (int l = 0; l < L; ++l) stb[s * L + l] = zi[s] * Fj[(N - 1 - a) * L + l];
        } else {
          // Warm-up over the next segment's first samples (or exactly from the row's end if it is near).
          const int64_t w_end = std::min(N, b + warm), w = w_end - b;
          const double* Fn = seg(j + 1);
          std::copy(Fn, Fn + w * L, W.data());
          for (size_t s = 0; s < ns; ++s)
            for (int l = 0; l < L; ++l) stb[s * L + l] = zi[s] * W[(w - 1) * L + l];
          run(L, W.data(), w, stb.data(), true);
        }
        run(L, Fj + (lo - a) * L, b - lo, stb.data(), true);
        const int64_t s0 = lo, s1 = std::min(b, edge + n);
        if (s0 < s1) store_rows(yrows, ys, nb, L, Fj + (s0 - a) * L, s0 - edge, s1 - edge, true);
      };
      for (int64_t k = 0; k < n_seg; ++k) {
        const int64_t a = k * S, b = std::min(N, a + S);
        double* Fk = seg(k);
        gather_ext(x, r0, nb, L, edge, pad, Fk, a, b);
        if (k == 0)
          for (size_t s = 0; s < ns; ++s)
            for (int l = 0; l < L; ++l) stf[s * L + l] = zi[s] * Fk[l];
        if (k + 1 < n_seg && x.sample_stride == 1) {
          // Forward pass in pieces, each followed by prefetches of the matching part of the next
          // segment's input rows: their DRAM reads then overlap with the recursion instead of
          // stalling the next gather.
          const int64_t na = b, nbnd = std::min(N, b + S);
          const int64_t lo = std::max(na, edge) - edge, hi = std::min(nbnd, edge + n) - edge;
          constexpr int64_t kPrefetchPiece = 2048;
          const int64_t pieces = (b - a + kPrefetchPiece - 1) / kPrefetchPiece;
          const int64_t per = hi > lo ? ((hi - lo + pieces - 1) / pieces + 7) & ~int64_t{7} : 0;
          for (int64_t q = 0; q < pieces; ++q) {
            const int64_t q0 = a + q * kPrefetchPiece, q1 = std::min(b, q0 + kPrefetchPiece);
            run(L, Fk + (q0 - a) * L, q1 - q0, stf.data(), false);
            const int64_t p0 = lo + q * per, p1 = std::min(hi, p0 + per);
            for (int l = 0; l < nb; ++l) {
              const T* row = x.data + (r0 + l) * x.row_stride;
              for (int64_t t = p0; t < p1; t += 64 / static_cast<int64_t>(sizeof(T))) __builtin_prefetch(row + t, 0, 3);
            }
          }
        } else {
          run(L, Fk, b - a, stf.data(), false);
        }
        if (k >= 1) backward(k - 1);
      }
      for (size_t s = 0; s < ns; ++s)
        for (int l = 0; l < nb; ++l)
          if (!std::isfinite(stf[s * L + l])) nonfinite = true;
      backward(n_seg - 1);
    }
  }
  if (nonfinite) throw_nonfinite();
}

// Causal driver shared by sosfilt and lfilter.
template <class T, class Run>
void causal(RowsView<const T> x, RowsView<T> y, size_t n_state, const double* zi, double* zf, int n_threads, Run run) {
  check_same_shape(x, y);
  if (x.batch == 0) return;
  const int threads = resolve_threads(n_threads, x.batch);
  const int L = lanes_for(x.batch, threads);
  const int64_t n_blocks = (x.batch + L - 1) / L;
  const int64_t N = x.n;
#pragma omp parallel num_threads(threads)
  {
    std::vector<double> buf(static_cast<size_t>(kChunk) * L);
    std::vector<double> st(n_state * L);
#pragma omp for schedule(dynamic, 1)
    for (int64_t blk = 0; blk < n_blocks; ++blk) {
      const int64_t r0 = blk * L;
      const int nb = static_cast<int>(std::min<int64_t>(L, x.batch - r0));
      for (int l = 0; l < L; ++l)
        for (size_t s = 0; s < n_state; ++s) st[s * L + l] = (zi && l < nb) ? zi[(r0 + l) * n_state + s] : 0.0;
      for (int64_t c0 = 0; c0 < N; c0 += kChunk) {
        const int64_t c1 = std::min(N, c0 + kChunk);
        gather_ext(x, r0, nb, L, 0, PadType::none, buf.data(), c0, c1);
        run(L, buf.data(), c1 - c0, st.data(), false);
        scatter(y, r0, nb, L, buf.data(), 0, c0, c1);
      }
      if (zf)
        for (int l = 0; l < nb; ++l)
          for (size_t s = 0; s < n_state; ++s) zf[(r0 + l) * n_state + s] = st[s * L + l];
    }
  }
}

void normalise_tf(const std::vector<double>& b_in, const std::vector<double>& a_in, std::vector<double>& b,
                  std::vector<double>& a) {
  a = a_in;
  b = b_in;
  while (a.size() > 1 && a[0] == 0.0) a.erase(a.begin());
  if (a.empty() || a[0] == 0.0) throw std::invalid_argument("a[0] must be nonzero");
  if (b.empty()) throw std::invalid_argument("the numerator b must not be empty");
  for (double v : b)
    if (!std::isfinite(v)) throw std::invalid_argument("filter coefficients must be finite");
  for (double v : a)
    if (!std::isfinite(v)) throw std::invalid_argument("filter coefficients must be finite");
  const double a0 = a[0];
  for (auto& v : b) v /= a0;
  for (auto& v : a) v /= a0;
  const size_t n = std::max(a.size(), b.size());
  a.resize(n, 0.0);
  b.resize(n, 0.0);
}

}  // namespace

template <class T>
void sosfilt(const double* sos, int ns, RowsView<const T> x, RowsView<T> y, const double* zi, double* zf,
             int n_threads) {
  validate_sos(sos, ns);
  causal(x, y, static_cast<size_t>(2 * ns), zi, zf, n_threads,
         [&](int L, double* buf, int64_t N, double* st, bool rev) { sos_lanes(L, sos, ns, buf, N, st, rev); });
}

template <class T>
void sosfiltfilt(const double* sos, int ns, RowsView<const T> x, RowsView<T> y, PadType pad, int64_t padlen,
                 int n_threads) {
  validate_sos(sos, ns);
  if (padlen < 0) padlen = sosfiltfilt_default_padlen(sos, ns);
  std::vector<double> zi = sosfilt_zi(sos, ns);
  // A few long rows: split each row in time across the SIMD lanes (rows as lanes would leave them
  // idle). Chosen from the batch size and length only, so results never depend on the thread count.
  const int64_t edge = pad == PadType::none ? 0 : padlen;
  const int64_t warm = split_warmup(sos, ns);
  if (x.batch > 0 && x.batch < 4 && x.batch == y.batch && x.n == y.n && x.n > edge &&
      split_applies(x.n + 2 * edge, warm)) {
    sosfiltfilt_split(sos, ns, x, y, edge, pad, zi, warm, n_threads);
    return;
  }
  if (x.batch >= 4 && x.batch == y.batch && x.n == y.n && x.n > edge && warm >= 0 &&
      x.n + 2 * edge >= 3 * blocked_segment(warm)) {
    forward_backward_blocked(
        x, y, pad, edge, zi, warm, n_threads,
        [&](int L, double* buf, int64_t N, double* st, bool rev) { sos_lanes(L, sos, ns, buf, N, st, rev); });
    return;
  }
  forward_backward(x, y, pad, padlen, zi, n_threads, [&](int L, double* buf, int64_t N, double* st, bool rev) {
    sos_lanes(L, sos, ns, buf, N, st, rev);
  });
}

template <class T>
void lfilter(const std::vector<double>& b_in, const std::vector<double>& a_in, RowsView<const T> x, RowsView<T> y,
             const double* zi, double* zf, int n_threads) {
  std::vector<double> b, a;
  normalise_tf(b_in, a_in, b, a);
  const int m = static_cast<int>(b.size()) - 1;
  causal(x, y, static_cast<size_t>(m), zi, zf, n_threads, [&](int L, double* buf, int64_t N, double* st, bool rev) {
    tf_lanes(L, b.data(), a.data(), m, buf, N, st, rev);
  });
}

template <class T>
void filtfilt(const std::vector<double>& b_in, const std::vector<double>& a_in, RowsView<const T> x, RowsView<T> y,
              PadType pad, int64_t padlen, int n_threads) {
  if (padlen < 0)
    padlen = filtfilt_default_padlen(static_cast<int64_t>(b_in.size()), static_cast<int64_t>(a_in.size()));
  std::vector<double> b, a;
  normalise_tf(b_in, a_in, b, a);
  const int m = static_cast<int>(b.size()) - 1;
  std::vector<double> zi = lfilter_zi(b, a);
  forward_backward(x, y, pad, padlen, zi, n_threads, [&](int L, double* buf, int64_t N, double* st, bool rev) {
    tf_lanes(L, b.data(), a.data(), m, buf, N, st, rev);
  });
}

#define ECGCORE_INSTANTIATE(T)                                                                                      \
  template void sosfilt<T>(const double*, int, RowsView<const T>, RowsView<T>, const double*, double*, int);        \
  template void sosfiltfilt<T>(const double*, int, RowsView<const T>, RowsView<T>, PadType, int64_t, int);          \
  template void lfilter<T>(const std::vector<double>&, const std::vector<double>&, RowsView<const T>, RowsView<T>,  \
                           const double*, double*, int);                                                            \
  template void filtfilt<T>(const std::vector<double>&, const std::vector<double>&, RowsView<const T>, RowsView<T>, \
                            PadType, int64_t, int);

ECGCORE_INSTANTIATE(float)
ECGCORE_INSTANTIATE(double)
#undef ECGCORE_INSTANTIATE

}  // namespace ecgcore
