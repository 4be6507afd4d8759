// Internal: AVX2 (+FMA, BMI2) kernel entry points (src/he/kernels_avx2.cpp). Callable only when
// isa_supported(Isa::kAvx2); see kernels.hpp for the contracts. Each one handles the first
// n & ~3 coefficients (whole vectors) and returns that count; the caller finishes the rest with
// the scalar code.
#pragma once

#include <cstddef>
#include <cstdint>

#include "modarith.hpp"

namespace veil::he::avx2 {

// True if the double-precision path applies to q (exact 52-bit products, as IFMA on AVX-512).
inline bool fp_friendly(uint64_t q) { return q < (uint64_t{1} << 50); }

size_t sub_mul_const(uint64_t* out, const uint64_t* x, const uint64_t* y, uint64_t w,
                     const Modulus& m, size_t n);
size_t add_mod(uint64_t* out, const uint64_t* x, const uint64_t* y, const uint32_t* perm,
               uint64_t q, size_t n);
size_t lift(uint64_t* out, const uint64_t* x, uint64_t s, bool centered, const Modulus& t,
            size_t n);
// Only for fp_friendly(q); terms >= 1.
size_t dot2_fp(uint64_t* out0, uint64_t* out1, const uint64_t* const* d, const uint64_t* const* k0,
               const uint64_t* const* k1, size_t terms, const uint32_t* perm, uint64_t q, size_t n);
// Only for fp_friendly(q).
size_t sparse_matmul_fp(uint64_t* const* out, const uint64_t* const* x, const uint32_t* start,
                        const uint32_t* col, const uint64_t* w, size_t rows, uint64_t q, size_t n);

}  // namespace veil::he::avx2
