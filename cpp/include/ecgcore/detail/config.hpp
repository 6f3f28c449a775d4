// What every kernel unit shares about the compiler: the forced-inline marker, the SIMD vector types and
// the target attributes of the AVX2 builds. Internal (cpp/ and bindings/ only), like the rest of detail/.
#pragma once
#include <cstdint>

// Forced inlining for the small helpers of the hot loops: inlined into a kernel's AVX2 build they become
// AVX2 code, whereas an out-of-line instance would be compiled once, for the baseline.
#if defined(__GNUC__)
#define ECGCORE_INLINE inline __attribute__((always_inline))
#else
#define ECGCORE_INLINE inline
#endif

// Target attributes of the AVX2 builds; simd.hpp chooses between them and the baseline at run time.
#if defined(__GNUC__) && (defined(__x86_64__) || defined(_M_X64))
#define ECGCORE_TARGET_AVX2 __attribute__((target("avx2,fma")))
// AVX2 without FMA contraction, for recursions whose rounding must follow the reference's
// unfused multiply-adds (the ill-conditioned transfer-function form of filtfilt/lfilter), and for
// integer code (the WFDB decoders).
#define ECGCORE_TARGET_AVX2_NOFMA __attribute__((target("avx2")))
#define ECGCORE_HAS_AVX2_BUILD 1
#else
#define ECGCORE_TARGET_AVX2
#define ECGCORE_TARGET_AVX2_NOFMA
#define ECGCORE_HAS_AVX2_BUILD 0
#endif

namespace ecgcore {

// GCC/Clang vector extensions. A 256-bit type is one ymm register in an AVX2 build and a pair of xmm
// registers in the baseline (x86-64-v2) build.
typedef double v4d __attribute__((vector_size(32)));     // four float64 lanes (one signal or frame per lane)
typedef int64_t v4i __attribute__((vector_size(32)));    // masks and shuffle indices of v4d
typedef float v8f __attribute__((vector_size(32)));      // eight float32 lanes
typedef int32_t v8i32 __attribute__((vector_size(32)));  // masks and shuffle indices of v8f
typedef float v4f __attribute__((vector_size(16)));      // four float32 lanes (v4d rounded for float output)
typedef int32_t v4i32 __attribute__((vector_size(16)));  // masks and shuffle indices of v4f

}  // namespace ecgcore
