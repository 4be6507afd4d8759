// Private to src/mpc: the AVX2 kernels of gemm_u64 (ring_gemm_avx2.cpp). AVX2 has no 64-bit
// multiply: a * b mod 2^64 = lo(a) lo(b) + ((lo(a) hi(b) + hi(a) lo(b)) << 32). The first term
// is one vpmuludq (32 x 32 -> 64 bits); of the cross terms only the low 32 bits survive the
// shift, so one vpmulld (low 32 bits of 32 x 32) on a against b with its halves swapped gives
// both, side by side in 32-bit lanes. They are summed over all of K (32-bit adds: no carry from
// one into the other) and folded and shifted once at the end. Two multiplies per product instead
// of the three vpmuludq of the schoolbook split; vpmulld is two micro-ops on Intel, one on AMD
// Zen 3 and later.
#pragma once

#include <cstdint>

namespace veil::mpc::detail {

// The packed GEMM's register tile (ring_kernels.cpp packs A and B in panels of these).
inline constexpr int64_t kRingMr = 8, kRingNr = 8;

// tile[kRingMr][kRingNr] = sum_p ap[p][i] * bp[p][j] over kc steps, rows below `mr` only (the
// rest of the tile is left as it was). `ap` is a packed A panel (kRingMr values per step), `bp`
// a split B panel: per step the kRingNr values, then the same with their 32-bit halves swapped,
// so the inner loop needs no shuffle.
void micro_avx2(int64_t kc, int64_t mr, const uint64_t* ap, const uint64_t* bp, uint64_t* tile);

// C[0:m, j_begin:j_end] (+)= A * B for 1 <= m <= kRingMr, straight from A and B (no packing:
// a batch-1 product would pad to 8 rows and copy B first).
void gemm_rows_avx2(int64_t m, int64_t j_begin, int64_t j_end, int64_t k, const uint64_t* a,
                    int64_t lda, const uint64_t* b, int64_t ldb, uint64_t* c, int64_t ldc,
                    bool accumulate);

}  // namespace veil::mpc::detail
