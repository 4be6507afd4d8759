// Internal: AVX-512 kernel entry points (src/he/kernels_avx512.cpp). Callable only when
// detected_isa() == Isa::kAvx512; see kernels.hpp for the contracts.
#pragma once

#include <cstddef>
#include <cstdint>

#include "modarith.hpp"

namespace veil::he::avx512 {

void sub_mul_const(uint64_t* out, const uint64_t* x, const uint64_t* y, uint64_t w,
                   const Modulus& m, size_t n);
void add_mod(uint64_t* out, const uint64_t* x, const uint64_t* y, const uint32_t* perm, uint64_t q,
             size_t n);
void lift(uint64_t* out, const uint64_t* x, uint64_t s, bool centered, const Modulus& t, size_t n);
// Only for q < 2^50 (IFMA); terms >= 1.
void dot2_ifma(uint64_t* out0, uint64_t* out1, const uint64_t* const* d, const uint64_t* const* k0,
               const uint64_t* const* k1, size_t terms, const uint32_t* perm, uint64_t q, size_t n);
// Only for q < 2^50 (IFMA) and n % 8 == 0.
void sparse_matmul_ifma(uint64_t* const* out, const uint64_t* const* x, const uint32_t* start,
                        const uint32_t* col, const uint64_t* w, size_t rows, uint64_t q, size_t n);
void ntt_forward(uint64_t* a, size_t n, uint64_t q, const uint64_t* w, const uint64_t* ws,
                 bool ifma);
void ntt_inverse(uint64_t* a, size_t n, uint64_t q, const uint64_t* w, const uint64_t* ws,
                 uint64_t inv_n, uint64_t inv_n_s, uint64_t last_w, uint64_t last_w_s, bool ifma);

}  // namespace veil::he::avx512
