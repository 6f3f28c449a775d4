// Helpers for the kernels that work on four signals (or frames) at once, one per lane of a v4d
// (see config.hpp). Header-only and always inlined, so that each kernel's AVX2 clone gets AVX2 code.
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>

#include "ecgcore/detail/config.hpp"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"  // v4d values never cross a non-inlined call

namespace ecgcore {
namespace lanes {

ECGCORE_INLINE v4d splat(double w) { return v4d{w, w, w, w}; }

// One value broadcast to the four lanes, straight from memory.
ECGCORE_INLINE v4d load_bc(const double* p) { return v4d{p[0], p[0], p[0], p[0]}; }

// Natural log of four positive values, fdlibm's e_log.c algorithm (error < 1 ulp) without its branches:
// x = 2^k (1 + f), 1 + f in [sqrt(2)/2, sqrt(2)), log(1 + f) from the series of s = f / (2 + f).
// Zero, negative and subnormal inputs are not handled (callers floor the values first); +inf and NaN are.
ECGCORE_INLINE v4d log4(v4d x) {
  const v4i bits = (v4i)x;
  v4i hx = bits >> 32;
  v4i k = (hx >> 20) - 1023;
  hx &= 0x000fffff;
  const v4i i = (hx + 0x95f64) & 0x100000;  // mantissa above sqrt(2): halve it, k + 1
  const v4d m = (v4d)(((hx | (i ^ 0x3ff00000)) << 32) | (bits & 0xffffffff));
  k += i >> 20;
  // k as a double: add it to the mantissa of 1.5 * 2^52 and subtract that number again (exact, |k| < 2^31).
  const v4d magic = splat(6755399441055744.0);
  const v4d dk = (v4d)((v4i)magic + k) - magic;
  const v4d f = m - 1.0;
  const v4d s = f / (2.0 + f);
  const v4d z = s * s, w = z * z;
  const v4d t1 = w * (3.999999999940941908e-01 + w * (2.222219843214978396e-01 + w * 1.531383769920937332e-01));
  const v4d t2 = z * (6.666666666666735130e-01 +
                      w * (2.857142874366239149e-01 + w * (1.818357216161805012e-01 + w * 1.479819860511658591e-01)));
  const v4d R = t2 + t1;
  const v4d ln2_hi = splat(6.93147180369123816490e-01), ln2_lo = splat(1.90821492927058770002e-10);
  const v4d hfsq = 0.5 * f * f;
  const v4d near = dk * ln2_hi - ((hfsq - (s * (hfsq + R) + dk * ln2_lo)) - f);
  const v4d far = dk * ln2_hi - ((s * (f - R) - dk * ln2_lo) - f);
  const v4i use_near = ((hx - 0x6147a) | (0x6b851 - hx)) > 0;
  v4d r = use_near ? near : far;
  const v4d inf = splat(std::numeric_limits<double>::infinity());
  r = x == inf ? inf : r;
  return x != x ? x : r;  // NaN stays NaN
}

// log of any four values (zero, negative, subnormal, NaN included), as std::log lane by lane.
ECGCORE_INLINE v4d log4_any(v4d x) {
  const v4i normal = x >= splat(std::numeric_limits<double>::min());
  if ((normal[0] & normal[1] & normal[2] & normal[3]) != 0) return log4(x);
  return v4d{std::log(x[0]), std::log(x[1]), std::log(x[2]), std::log(x[3])};
}

}  // namespace lanes
}  // namespace ecgcore

#pragma GCC diagnostic pop
