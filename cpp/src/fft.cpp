#include "ecgcore/fft.hpp"

#include "ecgcore/detail/simd.hpp"
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "ecgcore/detail/config.hpp"
#include "ecgcore/detail/parallel.hpp"

// Vector values are passed between inlined helpers of this unit only: the psABI note does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace ecgcore {
namespace {

constexpr double kPi = 3.14159265358979323846;
// Largest prime factor handled by a generic O(p^2) butterfly; larger ones go through Bluestein.
constexpr int64_t kMaxGenericRadix = 61;

// A complex value (or four of them, one per lane) with split parts.
template <class V>
struct C {
  V r, i;
};
// Explicit broadcasts: letting the compiler widen a scalar operand spills it through the stack.
template <class V>
ECGCORE_INLINE V bc(double w);
template <>
ECGCORE_INLINE double bc<double>(double w) { return w; }
template <>
ECGCORE_INLINE v4d bc<v4d>(double w) { return v4d{w, w, w, w}; }

template <class V>
ECGCORE_INLINE C<V> operator+(C<V> a, C<V> b) { return {a.r + b.r, a.i + b.i}; }
template <class V>
ECGCORE_INLINE C<V> operator-(C<V> a, C<V> b) { return {a.r - b.r, a.i - b.i}; }
template <class V>
ECGCORE_INLINE C<V> scale(C<V> a, double s) {
  const V v = bc<V>(s);
  return {a.r * v, a.i * v};
}
// a * (wr + i wi) with scalar twiddle parts.
template <class V>
ECGCORE_INLINE C<V> twiddle(C<V> a, double wr, double wi) {
  const V r = bc<V>(wr), i = bc<V>(wi);
  return {a.r * r - a.i * i, a.r * i + a.i * r};
}
template <class V>
ECGCORE_INLINE C<V> times_i(C<V> a, double s) {  // i * s * a
  const V v = bc<V>(s);
  return {-a.i * v, a.r * v};
}

// Broadcast straight from memory (one vbroadcastsd).
template <class V>
ECGCORE_INLINE V load_bc(const double* p) {
  if constexpr (std::is_same_v<V, double>) return *p;
  else return V{p[0], p[0], p[0], p[0]};
}

template <class V>
ECGCORE_INLINE V splat(double v) {
  return bc<V>(v);
}

template <class V>
ECGCORE_INLINE void pass(const FftPlan& P, V* re, V* im, int64_t fstride, int64_t p, int64_t m, bool inv) {
  const double* twr = P.twr_.data();
  const double* twi = P.twi_.data();
  const double sg = inv ? -1.0 : 1.0;  // conjugate twiddles for the inverse
  auto ld = [&](int64_t j) { return C<V>{re[j], im[j]}; };
  auto st = [&](int64_t j, C<V> v) { re[j] = v.r; im[j] = v.i; };
  auto tw = [&](C<V> a, int64_t j) { return twiddle(a, twr[j], sg * twi[j]); };
  if (p == 2) {
    for (int64_t k = 0; k < m; ++k) {
      const C<V> a = ld(k), b = tw(ld(k + m), k * fstride);
      st(k, a + b);
      st(k + m, a - b);
    }
  } else if (p == 4) {
    for (int64_t k = 0; k < m; ++k) {
      const C<V> t0 = ld(k), t1 = tw(ld(k + m), k * fstride), t2 = tw(ld(k + 2 * m), 2 * k * fstride),
                 t3 = tw(ld(k + 3 * m), 3 * k * fstride);
      const C<V> s02 = t0 + t2, d02 = t0 - t2, s13 = t1 + t3, d13 = t1 - t3;
      const C<V> jd = times_i(d13, -sg);  // forward W4 = -i
      st(k, s02 + s13);
      st(k + m, d02 + jd);
      st(k + 2 * m, s02 - s13);
      st(k + 3 * m, d02 - jd);
    }
  } else if (p == 3) {
    const double s3 = -sg * std::sqrt(3.0) / 2.0;
    for (int64_t k = 0; k < m; ++k) {
      const C<V> t0 = ld(k), t1 = tw(ld(k + m), k * fstride), t2 = tw(ld(k + 2 * m), 2 * k * fstride);
      const C<V> s = t1 + t2, d = t1 - t2;
      const C<V> c = t0 - scale(s, 0.5);
      const C<V> jd = times_i(d, s3);
      st(k, t0 + s);
      st(k + m, c + jd);
      st(k + 2 * m, c - jd);
    }
  } else if (p == 5) {
    const double c1 = std::cos(2 * kPi / 5), c2 = std::cos(4 * kPi / 5);
    const double s1 = std::sin(2 * kPi / 5), s2 = std::sin(4 * kPi / 5);
    for (int64_t k = 0; k < m; ++k) {
      const C<V> t0 = ld(k), t1 = tw(ld(k + m), k * fstride), t2 = tw(ld(k + 2 * m), 2 * k * fstride),
                 t3 = tw(ld(k + 3 * m), 3 * k * fstride), t4 = tw(ld(k + 4 * m), 4 * k * fstride);
      const C<V> a1 = t1 + t4, b1 = t1 - t4, a2 = t2 + t3, b2 = t2 - t3;
      const C<V> r1 = t0 + scale(a1, c1) + scale(a2, c2);
      const C<V> r2 = t0 + scale(a1, c2) + scale(a2, c1);
      // forward: X1 = r1 - i(s1 b1 + s2 b2), X2 = r2 - i(s2 b1 - s1 b2); the inverse flips the i terms.
      const C<V> j1 = times_i(scale(b1, s1) + scale(b2, s2), -sg);
      const C<V> j2 = times_i(scale(b1, s2) - scale(b2, s1), -sg);
      st(k, t0 + a1 + a2);
      st(k + m, r1 + j1);
      st(k + 4 * m, r1 - j1);
      st(k + 2 * m, r2 + j2);
      st(k + 3 * m, r2 - j2);
    }
  } else {
    C<V> t[kMaxGenericRadix];
    const int64_t n = P.n_;
    const int64_t wstep = m * fstride;  // W_p = tw[wstep]
    for (int64_t k = 0; k < m; ++k) {
      for (int64_t q = 0; q < p; ++q) t[q] = tw(ld(k + q * m), (q * k * fstride) % n);
      for (int64_t u = 0; u < p; ++u) {
        C<V> acc = t[0];
        int64_t idx = 0;
        for (int64_t q = 1; q < p; ++q) {
          idx += u;
          if (idx >= p) idx -= p;
          acc = acc + tw(t[q], idx * wstep);
        }
        st(k + u * m, acc);
      }
    }
  }
}

// Radix-p butterfly (p in {2, 3, 4, 5}) on values held in t[0 .. p - 1], in place, outputs in natural order.
// Inv selects the conjugate roots.
template <class V, bool Inv, int p>
ECGCORE_INLINE void butterfly(C<V>* t) {
  const double sg = Inv ? -1.0 : 1.0;
  if constexpr (p == 2) {
    const C<V> a = t[0], b = t[1];
    t[0] = a + b;
    t[1] = a - b;
  } else if constexpr (p == 4) {
    const C<V> s02 = t[0] + t[2], d02 = t[0] - t[2], s13 = t[1] + t[3], d13 = t[1] - t[3];
    // forward W4 = -i: -i d13 = (d13.i, -d13.r); the inverse uses +i
    const C<V> jd = Inv ? C<V>{-d13.i, d13.r} : C<V>{d13.i, -d13.r};
    t[0] = s02 + s13;
    t[1] = d02 + jd;
    t[2] = s02 - s13;
    t[3] = d02 - jd;
  } else if constexpr (p == 3) {
    const double s3 = -sg * std::sqrt(3.0) / 2.0;
    const C<V> t0 = t[0], s = t[1] + t[2], d = t[1] - t[2];
    const C<V> c = t0 - scale(s, 0.5);
    const C<V> jd = times_i(d, s3);
    t[0] = t0 + s;
    t[1] = c + jd;
    t[2] = c - jd;
  } else {  // p == 5
    const double c1 = std::cos(2 * kPi / 5), c2 = std::cos(4 * kPi / 5);
    const double s1 = std::sin(2 * kPi / 5), s2 = std::sin(4 * kPi / 5);
    const C<V> t0 = t[0];
    const C<V> a1 = t[1] + t[4], b1 = t[1] - t[4], a2 = t[2] + t[3], b2 = t[2] - t[3];
    const C<V> r1 = t0 + scale(a1, c1) + scale(a2, c2);
    const C<V> r2 = t0 + scale(a1, c2) + scale(a2, c1);
    // forward: X1 = r1 - i(s1 b1 + s2 b2), X2 = r2 - i(s2 b1 - s1 b2); the inverse flips the i terms.
    const C<V> j1 = times_i(scale(b1, s1) + scale(b2, s2), -sg);
    const C<V> j2 = times_i(scale(b1, s2) - scale(b2, s1), -sg);
    t[0] = t0 + a1 + a2;
    t[1] = r1 + j1;
    t[4] = r1 - j1;
    t[2] = r2 + j2;
    t[3] = r2 - j2;
  }
}

// a * w (a * conj(w) when Inv), w = (w[0], w[1]) broadcast from memory.
template <class V, bool Inv>
ECGCORE_INLINE C<V> mul_tw(C<V> a, const double* w) {
  const V wr = load_bc<V>(w), wi = load_bc<V>(w + 1);
  if constexpr (Inv) return C<V>{a.r * wr + a.i * wi, a.i * wr - a.r * wi};
  else return C<V>{a.r * wr - a.i * wi, a.r * wi + a.i * wr};
}

// A pass of radix p in {2, 3, 4, 5} over fstride blocks of p * m values, twiddles from the plan's table.
template <class V, bool Inv, int p>
ECGCORE_INLINE void fast_pass(V* re, V* im, int64_t fstride, int64_t m, const double* tw) {
  const int64_t len = p * m, step = 2 * (p - 1);
  for (int64_t b = 0; b < fstride; ++b) {
    V* r = re + b * len;
    V* i = im + b * len;
    for (int64_t k = 0; k < m; ++k) {
      C<V> t[p];
      t[0] = C<V>{r[k], i[k]};
      if (k == 0) {
        for (int q = 1; q < p; ++q) t[q] = C<V>{r[q * m], i[q * m]};
      } else {
        const double* w = tw + (k - 1) * step;
        for (int q = 1; q < p; ++q) t[q] = mul_tw<V, Inv>(C<V>{r[k + q * m], i[k + q * m]}, w + 2 * (q - 1));
      }
      butterfly<V, Inv, p>(t);
      for (int q = 0; q < p; ++q) {
        r[k + q * m] = t[q].r;
        i[k + q * m] = t[q].i;
      }
    }
  }
}

// The deepest pass (m = 1, no twiddles), reading the input through the permutation.
template <class V, bool Inv, int p, class In>
ECGCORE_INLINE void first_pass(const int64_t* perm, const In& in, V* ore, V* oim, int64_t blocks) {
  for (int64_t b = 0; b < blocks; ++b) {
    C<V> t[p];
    for (int q = 0; q < p; ++q) t[q] = in(perm[b * p + q]);
    butterfly<V, Inv, p>(t);
    for (int q = 0; q < p; ++q) {
      ore[b * p + q] = t[q].r;
      oim[b * p + q] = t[q].i;
    }
  }
}

inline bool fast_radix(int64_t p) { return p >= 2 && p <= 5; }

// Input of a transform: split real / imaginary arrays.
template <class V>
struct SplitInput {
  const V *re, *im;
  ECGCORE_INLINE C<V> operator()(int64_t j) const { return {re[j], im[j]}; }
};

// Decimation in time, iteratively: the input (value j from in(j)) is read in the order in which the recursive
// algorithm's leaves would read it, straight into the deepest radix pass, then each level's radix-p passes
// combine p blocks of m outputs.
template <class V, bool Inv, class In>
ECGCORE_INLINE void mixed_dir(const FftPlan& P, const In& in, V* ore, V* oim) {
  const int64_t n = P.n_;
  const int64_t* perm = P.perm_.data();
  const auto levels = static_cast<int64_t>(P.factors_.size());
  int64_t fstride = n;
  int64_t level = levels - 1;
  if (levels > 0 && fast_radix(P.factors_[level])) {
    const int64_t p = P.factors_[level];
    fstride /= p;
    switch (p) {
      case 2: first_pass<V, Inv, 2>(perm, in, ore, oim, fstride); break;
      case 3: first_pass<V, Inv, 3>(perm, in, ore, oim, fstride); break;
      case 4: first_pass<V, Inv, 4>(perm, in, ore, oim, fstride); break;
      default: first_pass<V, Inv, 5>(perm, in, ore, oim, fstride); break;
    }
    --level;
  } else {
    for (int64_t j = 0; j < n; ++j) {
      const C<V> v = in(perm[j]);
      ore[j] = v.r;
      oim[j] = v.i;
    }
  }
  for (; level >= 0; --level) {
    const int64_t p = P.factors_[level];
    fstride /= p;  // product of the radices above this level
    const int64_t len = n / fstride, m = len / p;
    if (fast_radix(p)) {
      const double* tw = P.stw_.data() + P.stw_off_[level];
      switch (p) {
        case 2: fast_pass<V, Inv, 2>(ore, oim, fstride, m, tw); break;
        case 3: fast_pass<V, Inv, 3>(ore, oim, fstride, m, tw); break;
        case 4: fast_pass<V, Inv, 4>(ore, oim, fstride, m, tw); break;
        default: fast_pass<V, Inv, 5>(ore, oim, fstride, m, tw); break;
      }
    } else {
      for (int64_t b = 0; b < fstride; ++b) pass(P, ore + b * len, oim + b * len, fstride, p, m, Inv);
    }
  }
}

template <class V>
ECGCORE_INLINE void mixed(const FftPlan& P, const V* ire, const V* iim, V* ore, V* oim, bool inv) {
  const SplitInput<V> in{ire, iim};
  if (inv) mixed_dir<V, true>(P, in, ore, oim);
  else mixed_dir<V, false>(P, in, ore, oim);
}

void build_permutation(const std::vector<int64_t>& f, int64_t n, std::vector<int64_t>& perm, int64_t out_off,
                       int64_t in_off, int64_t fstride, size_t level) {
  const int64_t p = f[level];
  const int64_t m = n / fstride / p;
  for (int64_t q = 0; q < p; ++q) {
    if (m == 1) perm[out_off + q] = in_off + q * fstride;
    else build_permutation(f, n, perm, out_off + q * m, in_off + q * fstride, fstride * p, level + 1);
  }
}

// scratch: 4 * m_ values of V for Bluestein, unused otherwise.
template <class V>
ECGCORE_INLINE void run(const FftPlan& P, const V* ire, const V* iim, V* ore, V* oim, V* scratch, bool inv) {
  const int64_t n = P.n_;
  if (!P.bluestein_) {
    mixed(P, ire, iim, ore, oim, inv);
    return;
  }
  // Inverse DFT = conj(DFT(conj(x))): conjugate on the way in and out.
  const int64_t m = P.m_;
  V *ar = scratch, *ai = scratch + m, *fr = scratch + 2 * m, *fi = scratch + 3 * m;
  const double sg = inv ? -1.0 : 1.0;
  for (int64_t j = 0; j < n; ++j) {
    const C<V> v = twiddle(C<V>{ire[j], iim[j] * sg}, P.chr_[j], P.chi_[j]);
    ar[j] = v.r;
    ai[j] = v.i;
  }
  for (int64_t j = n; j < m; ++j) ar[j] = ai[j] = splat<V>(0.0);
  mixed<V>(*P.sub_, ar, ai, fr, fi, false);
  for (int64_t j = 0; j < m; ++j) {
    const C<V> v = twiddle(C<V>{fr[j], fi[j]}, P.cfr_[j], P.cfi_[j]);
    fr[j] = v.r;
    fi[j] = v.i;
  }
  mixed<V>(*P.sub_, fr, fi, ar, ai, true);
  const double s = 1.0 / static_cast<double>(m);
  for (int64_t k = 0; k < n; ++k) {
    const C<V> v = scale(twiddle(C<V>{ar[k], ai[k]}, P.chr_[k], P.chi_[k]), s);
    ore[k] = v.r;
    oim[k] = v.i * sg;
  }
}

std::vector<int64_t> factorize(int64_t n) {
  std::vector<int64_t> f;
  while (n % 4 == 0) { f.push_back(4); n /= 4; }
  while (n % 2 == 0) { f.push_back(2); n /= 2; }
  for (int64_t p = 3; p * p <= n; p += 2)
    while (n % p == 0) { f.push_back(p); n /= p; }
  if (n > 1) f.push_back(n);
  return f;
}

// Even-length real FFT from the half-length complex FFT z of (x[2j] + i x[2j+1]).
template <class V>
ECGCORE_INLINE void real_post(const double* pr, const double* pi, int64_t h, const V* zr, const V* zi, V* out_re, V* out_im) {
  for (int64_t k = 0; k <= h; ++k) {
    const int64_t a = k == h ? 0 : k, b = k == 0 ? 0 : h - k;
    const C<V> zk{zr[a], zi[a]}, zc{zr[b], -zi[b]};
    const C<V> e = scale(zk + zc, 0.5);
    const C<V> d = scale(zk - zc, 0.5);
    const C<V> o{d.i, -d.r};  // -i * d
    const C<V> v = e + twiddle(o, pr[k], pi[k]);
    out_re[k] = v.r;
    out_im[k] = v.i;
  }
}


// Entry points compiled twice (AVX2/FMA and baseline) with the engine inlined into each; chosen at load time.
ECGCORE_MULTIVERSION(void, run_scalar, (const FftPlan& P, const double* ire, const double* iim, double* ore, double* oim,
                               double* scratch, bool inv), (P, ire, iim, ore, oim, scratch, inv), {
  run<double>(P, ire, iim, ore, oim, scratch, inv);
})

ECGCORE_MULTIVERSION(void, run_lanes, (const FftPlan& P, const v4d* ire, const v4d* iim, v4d* ore, v4d* oim, v4d* scratch,
                              bool inv), (P, ire, iim, ore, oim, scratch, inv), {
  run<v4d>(P, ire, iim, ore, oim, scratch, inv);
})

// Inputs of a transform computed on the fly, so that no pass is spent preparing them.
// Half-length transform of an even-length real signal: z[j] = x[2j] w[2j] + i x[2j + 1] w[2j + 1].
template <bool Windowed>
struct RealPairs {
  const v4d* x;
  const double* w;
  ECGCORE_INLINE C<v4d> operator()(int64_t j) const {
    if constexpr (Windowed) return {x[2 * j] * load_bc<v4d>(w + 2 * j), x[2 * j + 1] * load_bc<v4d>(w + 2 * j + 1)};
    else return {x[2 * j], x[2 * j + 1]};
  }
};
// Full-length transform of an odd-length real signal.
template <bool Windowed>
struct RealValues {
  const v4d* x;
  const double* w;
  ECGCORE_INLINE C<v4d> operator()(int64_t j) const {
    if constexpr (Windowed) return {x[j] * load_bc<v4d>(w + j), splat<v4d>(0.0)};
    else return {x[j], splat<v4d>(0.0)};
  }
};
// z[j] = x[j] a[j] + c[j] b[j]: x, c per lane, a, b shared by the lanes.
struct ProductSum {
  const v4d *xr, *xi, *cr, *ci;
  const double *ar, *ai, *br, *bi;
  ECGCORE_INLINE C<v4d> operator()(int64_t j) const {
    const v4d Ar = load_bc<v4d>(ar + j), Ai = load_bc<v4d>(ai + j), Br = load_bc<v4d>(br + j),
              Bi = load_bc<v4d>(bi + j);
    return {xr[j] * Ar - xi[j] * Ai + cr[j] * Br - ci[j] * Bi, xr[j] * Ai + xi[j] * Ar + cr[j] * Bi + ci[j] * Br};
  }
};

// The transform of in(j), j < n: straight into the passes, or (Bluestein) through scratch.
template <class V, class In>
ECGCORE_INLINE void run_from(const FftPlan& P, const In& in, V* ore, V* oim, V* scratch, bool inv) {
  if (!P.bluestein_) {
    if (inv) mixed_dir<V, true>(P, in, ore, oim);
    else mixed_dir<V, false>(P, in, ore, oim);
    return;
  }
  const int64_t n = P.n_;
  V *zr = scratch, *zi = scratch + n;
  for (int64_t j = 0; j < n; ++j) {
    const C<V> v = in(j);
    zr[j] = v.r;
    zi[j] = v.i;
  }
  run<V>(P, zr, zi, ore, oim, scratch + 2 * n, inv);
}

template <bool Windowed>
ECGCORE_INLINE void real_forward(const RealFftPlan& R, const v4d* in, const double* window, v4d* out_re,
                                 v4d* out_im, v4d* scratch) {
  const int64_t n = R.n_;
  const int64_t c = n % 2 ? n : n / 2;
  v4d *fr = scratch + 2 * c, *fi = scratch + 3 * c, *rest = scratch + 4 * n + 8;
  if (n % 2) {
    run_from<v4d>(*R.plan_, RealValues<Windowed>{in, window}, fr, fi, rest, false);
    for (int64_t k = 0; k <= n / 2; ++k) {
      out_re[k] = fr[k];
      out_im[k] = fi[k];
    }
    return;
  }
  run_from<v4d>(*R.plan_, RealPairs<Windowed>{in, window}, fr, fi, rest, false);
  real_post<v4d>(R.pr_.data(), R.pi_.data(), c, fr, fi, out_re, out_im);
}

ECGCORE_MULTIVERSION(void, real_forward_lanes, (const RealFftPlan& R, const v4d* in, const double* window, v4d* out_re,
                                       v4d* out_im, v4d* scratch), (R, in, window, out_re, out_im, scratch), {
  if (window) real_forward<true>(R, in, window, out_re, out_im, scratch);
  else real_forward<false>(R, in, nullptr, out_re, out_im, scratch);
})

ECGCORE_MULTIVERSION(void, product_sum_lanes, (const FftPlan& P, const ProductSum& in, v4d* ore, v4d* oim, v4d* scratch,
                                      bool inv), (P, in, ore, oim, scratch, inv), {
  run_from<v4d>(P, in, ore, oim, scratch, inv);
})

}  // namespace

FftPlan::FftPlan(int64_t n) : n_(n) {
  if (n < 1) throw std::invalid_argument("FFT length must be positive, got " + std::to_string(n));
  factors_ = factorize(n);
  int64_t largest = 1;
  for (auto p : factors_) largest = std::max(largest, p);
  if (largest > kMaxGenericRadix) {
    bluestein_ = true;
    m_ = 1;
    while (m_ < 2 * n - 1) m_ *= 2;
    chr_.resize(n);
    chi_.resize(n);
    for (int64_t j = 0; j < n; ++j) {
      // j^2 mod 2n keeps the angle small so that long transforms stay accurate.
      const int64_t jj = (j * j) % (2 * n);
      const double a = -kPi * static_cast<double>(jj) / static_cast<double>(n);
      chr_[j] = std::cos(a);
      chi_[j] = std::sin(a);
    }
    sub_ = std::make_unique<FftPlan>(m_);
    std::vector<double> br(m_, 0.0), bi(m_, 0.0);
    br[0] = chr_[0];
    bi[0] = -chi_[0];
    for (int64_t j = 1; j < n; ++j) {
      br[j] = br[m_ - j] = chr_[j];
      bi[j] = bi[m_ - j] = -chi_[j];
    }
    cfr_.resize(m_);
    cfi_.resize(m_);
    run_scalar(*sub_, br.data(), bi.data(), cfr_.data(), cfi_.data(), nullptr, false);
  } else {
    perm_.assign(n, 0);
    if (n > 1) build_permutation(factors_, n, perm_, 0, 0, 1, 0);
    twr_.resize(n);
    twi_.resize(n);
    for (int64_t j = 0; j < n; ++j) {
      const double a = -2.0 * kPi * static_cast<double>(j) / static_cast<double>(n);
      twr_[j] = std::cos(a);
      twi_[j] = std::sin(a);
    }
    const auto levels = static_cast<int64_t>(factors_.size());
    stw_off_.assign(levels, 0);
    int64_t fstride = n;
    for (int64_t level = levels - 1; level >= 0; --level) {
      const int64_t p = factors_[level];
      fstride /= p;
      const int64_t m = n / fstride / p;
      stw_off_[level] = static_cast<int64_t>(stw_.size());
      for (int64_t k = 1; k < m; ++k)
        for (int64_t q = 1; q < p; ++q) {
          const int64_t j = (q * k * fstride) % n;
          stw_.push_back(twr_[j]);
          stw_.push_back(twi_[j]);
        }
    }
  }
}

FftPlan::~FftPlan() = default;

int64_t FftPlan::scratch_size() const { return 2 * n_ + (bluestein_ ? 2 * m_ : 0); }

void FftPlan::transform(const cplx* in, cplx* out, cplx* scratch, bool inverse) const {
  double* d = reinterpret_cast<double*>(scratch);
  double *ir = d, *ii = d + n_, *outr = d + 2 * n_, *outi = d + 3 * n_;
  for (int64_t j = 0; j < n_; ++j) {
    ir[j] = in[j].real();
    ii[j] = in[j].imag();
  }
  run_scalar(*this, ir, ii, outr, outi, d + 4 * n_, inverse);
  for (int64_t j = 0; j < n_; ++j) out[j] = {outr[j], outi[j]};
}

void FftPlan::transform4(const v4d* in_re, const v4d* in_im, v4d* out_re, v4d* out_im, v4d* scratch,
                         bool inverse) const {
  run_lanes(*this, in_re, in_im, out_re, out_im, scratch, inverse);
}

void FftPlan::transform4_product_sum(const v4d* x_re, const v4d* x_im, const double* a_re, const double* a_im,
                                     const v4d* c_re, const v4d* c_im, const double* b_re, const double* b_im,
                                     v4d* out_re, v4d* out_im, v4d* scratch, bool inverse) const {
  product_sum_lanes(*this, ProductSum{x_re, x_im, c_re, c_im, a_re, a_im, b_re, b_im}, out_re, out_im, scratch,
                    inverse);
}

RealFftPlan::RealFftPlan(int64_t n) : n_(n) {
  if (n < 1) throw std::invalid_argument("FFT length must be positive, got " + std::to_string(n));
  if (n % 2 == 0) {
    plan_ = std::make_unique<FftPlan>(n / 2);
    pr_.resize(n / 2 + 1);
    pi_.resize(n / 2 + 1);
    for (int64_t k = 0; k <= n / 2; ++k) {
      const double a = -2.0 * kPi * static_cast<double>(k) / static_cast<double>(n);
      pr_[k] = std::cos(a);
      pi_[k] = std::sin(a);
    }
  } else {
    plan_ = std::make_unique<FftPlan>(n);
  }
}

// Complex units: input and output buffers (2 n_ + 4 as split doubles) plus the complex plan's own.
int64_t RealFftPlan::scratch_size() const { return 2 * n_ + 4 + plan_->scratch_size(); }

void RealFftPlan::forward(const double* in, cplx* out, cplx* scratch) const {
  double* d = reinterpret_cast<double*>(scratch);
  const int64_t c = n_ % 2 ? n_ : n_ / 2;  // complex length
  double *zr = d, *zi = d + c, *fr = d + 2 * c, *fi = d + 3 * c, *rest = d + 4 * n_ + 8;
  if (n_ % 2) {
    for (int64_t j = 0; j < n_; ++j) {
      zr[j] = in[j];
      zi[j] = 0.0;
    }
    run_scalar(*plan_, zr, zi, fr, fi, rest, false);
    for (int64_t k = 0; k <= n_ / 2; ++k) out[k] = {fr[k], fi[k]};
    return;
  }
  for (int64_t j = 0; j < c; ++j) {
    zr[j] = in[2 * j];
    zi[j] = in[2 * j + 1];
  }
  run_scalar(*plan_, zr, zi, fr, fi, rest, false);
  double* ore = d + 2 * n_;  // after z and its transform
  double* oim = d + 3 * n_ + 2;
  real_post<double>(pr_.data(), pi_.data(), c, fr, fi, ore, oim);
  for (int64_t k = 0; k <= c; ++k) out[k] = {ore[k], oim[k]};
}

void RealFftPlan::forward4(const v4d* in, v4d* out_re, v4d* out_im, v4d* scratch) const {
  real_forward_lanes(*this, in, nullptr, out_re, out_im, scratch);
}

void RealFftPlan::forward4(const v4d* in, const double* window, v4d* out_re, v4d* out_im, v4d* scratch) const {
  real_forward_lanes(*this, in, window, out_re, out_im, scratch);
}

void RealFftPlan::inverse(const cplx* in, double* out, cplx* scratch) const {
  double* d = reinterpret_cast<double*>(scratch);
  const int64_t h = n_ / 2;
  const int64_t c = n_ % 2 ? n_ : h;
  double *zr = d, *zi = d + c, *fr = d + 2 * c, *fi = d + 3 * c, *rest = d + 4 * n_ + 8;
  if (n_ % 2) {
    zr[0] = in[0].real();
    zi[0] = 0.0;
    for (int64_t k = 1; k <= h; ++k) {
      zr[k] = zr[n_ - k] = in[k].real();
      zi[k] = in[k].imag();
      zi[n_ - k] = -in[k].imag();
    }
    run_scalar(*plan_, zr, zi, fr, fi, rest, true);
    for (int64_t j = 0; j < n_; ++j) out[j] = fr[j];
    return;
  }
  // DC and Nyquist bins of a real signal are real: their imaginary parts are ignored (numpy.fft.irfft).
  for (int64_t k = 0; k < h; ++k) {
    const cplx xk = k == 0 ? cplx(in[0].real(), 0.0) : in[k];
    const cplx xc = k == 0 ? cplx(in[h].real(), 0.0) : std::conj(in[h - k]);
    const cplx e = xk + xc;
    const cplx dd = xk - xc;
    // o = dd * conj(W^k); z = e + i o
    const double orr = dd.real() * pr_[k] + dd.imag() * pi_[k];
    const double oi = dd.imag() * pr_[k] - dd.real() * pi_[k];
    zr[k] = e.real() - oi;
    zi[k] = e.imag() + orr;
  }
  run_scalar(*plan_, zr, zi, fr, fi, rest, true);
  for (int64_t j = 0; j < h; ++j) {
    out[2 * j] = fr[j];
    out[2 * j + 1] = fi[j];
  }
}

template <class T>
void rfft_batch(const T* x, int64_t batch, int64_t n, int64_t n_fft, std::complex<T>* out, int n_threads) {
  if (n_fft < 1) throw std::invalid_argument("n_fft must be positive, got " + std::to_string(n_fft));
  RealFftPlan plan(n_fft);
  const int64_t nb = plan.n_bins();
  const int64_t groups = (batch + 3) / 4;  // four rows per transform, one per lane
  const int threads = resolve_threads(n_threads, groups);
  const int64_t c = std::min(n, n_fft);
#pragma omp parallel num_threads(threads)
  {
    LaneBuffer buf(n_fft), re(nb), im(nb), scratch(2 * plan.scratch_size());
#pragma omp for schedule(static)
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t lanes = std::min<int64_t>(4, batch - 4 * g);
      for (int64_t j = 0; j < n_fft; ++j) buf[j] = v4d{0.0, 0.0, 0.0, 0.0};
      for (int64_t l = 0; l < lanes; ++l) {
        const T* row = x + (4 * g + l) * n;
        for (int64_t j = 0; j < c; ++j) buf[j][l] = static_cast<double>(row[j]);
      }
      plan.forward4(buf.data(), re.data(), im.data(), scratch.data());
      for (int64_t l = 0; l < lanes; ++l) {
        std::complex<T>* o = out + (4 * g + l) * nb;
        for (int64_t k = 0; k < nb; ++k) o[k] = std::complex<T>(static_cast<T>(re[k][l]), static_cast<T>(im[k][l]));
      }
    }
  }
}

template <class T>
void fft_batch(const std::complex<T>* x, int64_t batch, int64_t n, int64_t n_fft, bool inverse,
               std::complex<T>* out, int n_threads) {
  if (n_fft < 1) throw std::invalid_argument("n_fft must be positive, got " + std::to_string(n_fft));
  FftPlan plan(n_fft);
  const int threads = resolve_threads(n_threads, batch);
  const double scale = inverse ? 1.0 / static_cast<double>(n_fft) : 1.0;
#pragma omp parallel num_threads(threads)
  {
    std::vector<cplx> buf(n_fft), res(n_fft), scratch(plan.scratch_size());
#pragma omp for schedule(static)
    for (int64_t b = 0; b < batch; ++b) {
      const std::complex<T>* row = x + b * n;
      const int64_t c = std::min(n, n_fft);
      for (int64_t j = 0; j < c; ++j) buf[j] = cplx(row[j].real(), row[j].imag());
      for (int64_t j = c; j < n_fft; ++j) buf[j] = 0.0;
      if (inverse) plan.inverse(buf.data(), res.data(), scratch.data());
      else plan.forward(buf.data(), res.data(), scratch.data());
      std::complex<T>* o = out + b * n_fft;
      for (int64_t k = 0; k < n_fft; ++k)
        o[k] = std::complex<T>(static_cast<T>(res[k].real() * scale), static_cast<T>(res[k].imag() * scale));
    }
  }
}

template <class T>
void irfft_batch(const std::complex<T>* x, int64_t batch, int64_t n_bins, int64_t n_out, T* out, int n_threads) {
  if (n_out < 1) throw std::invalid_argument("output length must be positive, got " + std::to_string(n_out));
  RealFftPlan plan(n_out);
  const int64_t nb = plan.n_bins();
  const int threads = resolve_threads(n_threads, batch);
  const double scale = 1.0 / static_cast<double>(n_out);
#pragma omp parallel num_threads(threads)
  {
    std::vector<cplx> spec(nb), scratch(plan.scratch_size());
    std::vector<double> res(n_out);
#pragma omp for schedule(static)
    for (int64_t b = 0; b < batch; ++b) {
      const std::complex<T>* row = x + b * n_bins;
      const int64_t c = std::min(n_bins, nb);
      for (int64_t k = 0; k < c; ++k) spec[k] = cplx(row[k].real(), row[k].imag());
      for (int64_t k = c; k < nb; ++k) spec[k] = 0.0;
      plan.inverse(spec.data(), res.data(), scratch.data());
      T* o = out + b * n_out;
      for (int64_t j = 0; j < n_out; ++j) o[j] = static_cast<T>(res[j] * scale);
    }
  }
}

template void rfft_batch<float>(const float*, int64_t, int64_t, int64_t, std::complex<float>*, int);
template void rfft_batch<double>(const double*, int64_t, int64_t, int64_t, std::complex<double>*, int);
template void fft_batch<float>(const std::complex<float>*, int64_t, int64_t, int64_t, bool, std::complex<float>*, int);
template void fft_batch<double>(const std::complex<double>*, int64_t, int64_t, int64_t, bool, std::complex<double>*,
                                int);
template void irfft_batch<float>(const std::complex<float>*, int64_t, int64_t, int64_t, float*, int);
template void irfft_batch<double>(const std::complex<double>*, int64_t, int64_t, int64_t, double*, int);

}  // namespace ecgcore
