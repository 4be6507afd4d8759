#include "veil/core/cpu.hpp"

namespace veil {

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = [] {
    CpuFeatures f;
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    // __builtin_cpu_supports also checks that the OS saves the AVX-512 state (XCR0).
    f.avx512f = __builtin_cpu_supports("avx512f");
    f.avx512dq = __builtin_cpu_supports("avx512dq");
    f.avx512bw = __builtin_cpu_supports("avx512bw");
    f.avx512vl = __builtin_cpu_supports("avx512vl");
    f.avx512vbmi = __builtin_cpu_supports("avx512vbmi");
    f.avx512vbmi2 = __builtin_cpu_supports("avx512vbmi2");
    f.avx512ifma = __builtin_cpu_supports("avx512ifma");
#endif
    return f;
  }();
  return features;
}

}  // namespace veil
