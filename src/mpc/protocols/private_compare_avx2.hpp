// Private to src/mpc: the AVX2 kernels of PrivateCompare (private_compare.cpp has the scalar
// and AVX-512 kernels and the arguments' meaning), for CPUs with AVX2 but no AVX-512. Callers
// validate m (1..63) and check private_compare_avx2_usable() and the kernel path first.
#pragma once

#include <cstddef>
#include <cstdint>

namespace veil::mpc::detail {

// AVX2 + FMA + BMI2 (the avx2 kernel path's extensions).
bool private_compare_avx2_usable();

// The scalar digits of one element (private_compare.cpp), for the cases the vector kernels
// leave to it.
void private_compare_element_scalar(int m, bool client, uint64_t r, unsigned beta,
                                    const uint8_t* xs, const uint8_t* sv, const uint8_t* uv,
                                    unsigned rot, uint8_t* out);

void private_compare_digits_avx2(int m, bool client, size_t n, const uint64_t* r,
                                 const uint8_t* beta, const uint8_t* xs, const uint8_t* sv,
                                 const uint8_t* uv, const uint8_t* rot, uint8_t* out);
void private_compare_bit_shares_avx2(int m, size_t n, const uint64_t* r, uint8_t* shares);
void private_compare_any_zero_avx2(int m, size_t n, const uint8_t* dc, const uint8_t* ds,
                                   uint8_t* any_zero);

}  // namespace veil::mpc::detail
