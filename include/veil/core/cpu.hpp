// The x86 instruction-set extensions veil's run-time kernel dispatch asks about, read once.
// Every module that picks a vector kernel (he NTTs, mpc ring GEMM, PrivateCompare, Z_67
// sampling) asks here instead of querying CPUID itself. Extensions that also need the OS's
// consent (AMX tile state) are checked where they are used.
#pragma once

namespace veil {

struct CpuFeatures {
  bool avx512f = false;
  bool avx512dq = false;
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512vbmi = false;
  bool avx512vbmi2 = false;
  bool avx512ifma = false;
};

const CpuFeatures& cpu_features();

}  // namespace veil
