// Run-time choice between the AVX2+FMA and the baseline (x86-64-v2) builds of the hot kernels.
//
// GCC's `target_clones` resolvers picked the baseline clone on this project's AMD EPYC (Zen) machines
// even though the CPU has AVX2 and FMA (`__builtin_cpu_supports` says so), so every multi-versioned
// kernel is dispatched explicitly on `use_avx2()` instead. ECGCORE_SIMD=baseline in the environment
// forces the baseline build (tests use it to check both builds against the references).
#pragma once

#include "ecgcore/detail/config.hpp"  // ECGCORE_TARGET_AVX2

namespace ecgcore {

bool use_avx2();          // the CPU has AVX2 and FMA, and ECGCORE_SIMD is not "baseline"
const char* simd_path();  // "avx2" or "baseline": what use_avx2() chose

}  // namespace ecgcore

// Defines NAME (the dispatcher) plus NAME_avx2 and NAME_base, compiled from the same body:
//   ECGCORE_MULTIVERSION(void, name, (const double* x, int n), (x, n), { ...body... })
#define ECGCORE_MULTIVERSION(RET, NAME, PARAMS, ARGS, ...) \
  ECGCORE_MULTIVERSION_T(ECGCORE_TARGET_AVX2, RET, NAME, PARAMS, ARGS, __VA_ARGS__)
#define ECGCORE_MULTIVERSION_T(TARGET, RET, NAME, PARAMS, ARGS, ...)                         \
  TARGET RET NAME##_avx2 PARAMS __VA_ARGS__                                                  \
  RET NAME##_base PARAMS __VA_ARGS__                                                         \
  RET NAME PARAMS { return ::ecgcore::use_avx2() ? NAME##_avx2 ARGS : NAME##_base ARGS; }
