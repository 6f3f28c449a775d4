#include "ecgcore/detail/simd.hpp"

#include <cstdlib>
#include <cstring>

namespace ecgcore {

bool use_avx2() {
  static const bool chosen = [] {
#if ECGCORE_HAS_AVX2_BUILD
    const char* env = std::getenv("ECGCORE_SIMD");
    if (env && std::strcmp(env, "baseline") == 0) return false;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return false;
#endif
  }();
  return chosen;
}

const char* simd_path() { return use_avx2() ? "avx2" : "baseline"; }

}  // namespace ecgcore
