// Private to src/mpc: the AVX2 kernels of z67.cpp (Z_67 packing, unpacking and the rejection
// step of ByteSampler::fill_below), for CPUs with AVX2 but no AVX-512. Callers check
// z67_avx2_usable() and the kernel path first.
#pragma once

#include <cstddef>
#include <cstdint>

namespace veil::mpc::detail {

// AVX2 + FMA + BMI2 (the avx2 kernel path's extensions).
bool z67_avx2_usable();

// Four groups (36 digits <-> 28 bytes) per block.
inline constexpr size_t kZ67Avx2BlockDigits = 36;
inline constexpr size_t kZ67Avx2BlockBytes = 28;

// The number of blocks the kernels below may run over `digits` digits: they read and write a
// few bytes past their last block, so at least 7 digits (6 packed bytes) are left to the
// scalar code.
inline size_t z67_avx2_blocks(size_t digits) {
  return digits < 7 ? 0 : (digits - 7) / kZ67Avx2BlockDigits;
}

// `blocks` blocks of digits (< 67) -> packed bytes, as pack_z67.
void pack_z67_blocks_avx2(const uint8_t* digits, size_t blocks, uint8_t* out);
// Packed bytes -> digits; false if some group is >= 67^9 (the digits are then garbage).
bool unpack_z67_blocks_avx2(const uint8_t* bytes, size_t blocks, uint8_t* out);

// fill_below's vector step: rejection sampling of 32 candidate bytes at a time from
// in[0, avail) while at least 32 values are still wanted (so that a step never draws a byte the
// byte-at-a-time loop would not). Accepted bytes (b < limit) are stored reduced mod bound at
// out[*k...]; advances *k and returns the bytes consumed (a multiple of 32).
size_t reject_avx2(const uint8_t* in, size_t avail, unsigned bound, unsigned limit, uint8_t* out,
                   size_t* k, size_t count);

}  // namespace veil::mpc::detail
