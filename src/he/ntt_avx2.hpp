// Internal: the AVX2 (+FMA) negacyclic NTT (src/he/ntt_avx2.cpp), called by NttTables when
// isa_supported(Isa::kAvx2) and n >= kMinN. Same transforms and contracts as the scalar code in
// ntt.cpp (input and output in [0, q)); the output is bit-identical.
//
// Two arithmetics, chosen by the size of q:
// - q < 2^50: double precision. FMA gives the exact product y w = h + l, the quotient estimate
//   comes from y * (w / q) rounded with the 1.5 * 2^52 trick, and the remainder y w - c q is
//   exact (van der Hoeven, Lecerf, Quintin, "Modular SIMD arithmetic in Mathemagix", ACM TOMS
//   2016). Values are signed doubles in a bounded range between stages, converted from and back
//   to canonical words at the first and the last stage.
// - otherwise: Harvey's lazy butterflies with Shoup's products (as the scalar code), the 64-bit
//   products assembled from 32x32-bit multiplications (_mm256_mul_epu32).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace veil::he::avx2 {

// The three narrowest stages run together on blocks of 8 coefficients.
constexpr size_t kMinN = 8;

inline bool fp_friendly(uint64_t q) { return q < (uint64_t{1} << 50); }

// The double-precision path's twiddles for the bit-reversed powers w[0..n): wd = w as doubles,
// wqd = w / q rounded.
void fp_twiddles(const uint64_t* w, size_t n, uint64_t q, std::vector<double>& wd,
                 std::vector<double>& wqd);

// q < 2^50, tables from fp_twiddles.
void ntt_forward_fp(uint64_t* a, size_t n, uint64_t q, const double* wd, const double* wqd);
void ntt_inverse_fp(uint64_t* a, size_t n, uint64_t q, const double* wd, const double* wqd,
                    uint64_t inv_n, uint64_t last_w);

// Any q < 2^61; w, ws the scalar tables (powers and their Shoup companions).
void ntt_forward_int(uint64_t* a, size_t n, uint64_t q, const uint64_t* w, const uint64_t* ws);
void ntt_inverse_int(uint64_t* a, size_t n, uint64_t q, const uint64_t* w, const uint64_t* ws,
                     uint64_t inv_n, uint64_t inv_n_s, uint64_t last_w, uint64_t last_w_s);

}  // namespace veil::he::avx2
