// Vector kernels behind the NTT and the RNS pointwise operations, selected at run time.
//
// The library is built for x86-64-v2 (no AVX), so the vector kernels are compiled with function
// target attributes and picked by `active_isa()` from the CPU flags (AVX-512 F/DQ/VL/IFMA, or
// AVX2 + FMA) within the kernel path the user allows (core/cpu.hpp: `--kernels`, VEIL_KERNELS).
// Every kernel returns canonical residues in [0, q), so all implementations give bit-identical
// output (tested). VEIL_HE_SCALAR=1 (older spelling) forces the scalar kernels for CKKS only.
//
// AVX-512 arithmetic: for primes q < 2^50 the IFMA52 instructions give exact 52x52-bit products
// (Shoup's multiplication with a 2^52 radix, as in Intel HEXL, Boemer et al., WAHC 2021); for
// larger primes the high half of a 64x64-bit product is assembled from four 32x32-bit products.
// AVX2 arithmetic (kernels_avx2.cpp; the set also needs BMI2): for q < 2^50 exact products in
// doubles (FMA with a fixed split point); otherwise 32x32-bit products, or the scalar code where
// that is as fast (the inner products and the sparse layer). The AVX2 kernels do whole 4-lane
// vectors and leave the last n % 4 coefficients to the scalar code.
#pragma once

#include <cstddef>
#include <cstdint>

#include "modarith.hpp"

namespace veil::he {

enum class Isa { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };

// The best kernel set the CPU supports (ignores the kernel path and VEIL_HE_SCALAR).
Isa detected_isa();
// Whether the CPU can run the kernels of `isa` (tests run every one that is).
bool isa_supported(Isa isa);
// What the kernels use: the best supported set within kernel_path(), scalar if VEIL_HE_SCALAR.
Isa active_isa();
const char* isa_name(Isa isa);  // "scalar", "avx2", "avx512-ifma"

// True if the IFMA52 path applies to q (Harvey's lazy forms need 4q < 2^52).
inline bool ifma_friendly(uint64_t q) { return q < (uint64_t{1} << 50); }

namespace kernels {

// out[c] = (x[c] - y[c]) * w mod q with x, y in [0, q) (y may be null: out = x * w). In place
// (out == x) is allowed.
void sub_mul_const(Isa isa, uint64_t* out, const uint64_t* x, const uint64_t* y, uint64_t w,
                   const Modulus& m, size_t n);

// out[c] = x[perm ? perm[c] : c] + y[c] mod q, inputs in [0, q). out may alias y (not x when
// perm is set).
void add_mod(Isa isa, uint64_t* out, const uint64_t* x, const uint64_t* y, const uint32_t* perm,
             uint64_t q, size_t n);

// Lifts residues x[c] modulo a prime s (in [0, s)) to the prime t: out = x mod t, or, if
// centered, the residue of the centered representative (x > s/2 ? x - s : x) mod t.
void lift(Isa isa, uint64_t* out, const uint64_t* x, uint64_t s, bool centered, const Modulus& t,
          size_t n);

// True if dot2 has a vector kernel for q on `isa` (AVX-512 IFMA or AVX2 doubles, q < 2^50): then
// even single products (terms = 1) beat a scalar mul_mod loop (the evaluator's tensor product).
bool vector_products(Isa isa, uint64_t q);

// Inner products modulo q: out0[c] = sum_j d_j[i(c)] * k0_j[c] and, if out1 is not null,
// out1[c] = sum_j d_j[i(c)] * k1_j[c], with i(c) = perm ? perm[c] : c. All inputs in [0, q).
void dot2(Isa isa, uint64_t* out0, uint64_t* out1, const uint64_t* const* d,
          const uint64_t* const* k0, const uint64_t* const* k1, size_t terms, const uint32_t* perm,
          const Modulus& m, size_t n);

// A sparse matrix of residues times residue vectors modulo q, the plaintext-weight linear layer
// of batch packing (src/he/inference/batch_program.cpp): for every row r,
//   out[r][c] = sum_{t in [start[r], start[r+1])} w[t] * x[col[t]][c] mod q,  c < n,
// with all inputs in [0, q). Products are summed lazily (128-bit, or 52-bit IFMA halves) and
// reduced once per row and coefficient block; out must not alias any x.
void sparse_matmul(Isa isa, uint64_t* const* out, const uint64_t* const* x, const uint32_t* start,
                   const uint32_t* col, const uint64_t* w, size_t rows, const Modulus& m, size_t n);

}  // namespace kernels
}  // namespace veil::he
