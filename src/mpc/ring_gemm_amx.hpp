// Private to src/mpc: the Intel AMX path of gemm_u64 (ring_gemm_amx.cpp).
#pragma once

#include <cstdint>

namespace veil::mpc::detail {

// True when the CPU has AMX-TILE + AMX-INT8 + AVX-512 VBMI and the kernel granted this process
// the AMX tile state (arch_prctl ARCH_REQ_XCOMP_PERM, Linux >= 5.16). Checked once.
bool amx_ring_gemm_usable();

// C[:, j_begin:j_end] (+)= A * B[:, j_begin:j_end] over Z_2^64 with the AMX int8 engine. Only
// call when amx_ring_gemm_usable().
void gemm_u64_amx_columns(int64_t m, int64_t j_begin, int64_t j_end, int64_t k, const uint64_t* a,
                          int64_t lda, const uint64_t* b, int64_t ldb, uint64_t* c, int64_t ldc,
                          bool accumulate);

}  // namespace veil::mpc::detail
