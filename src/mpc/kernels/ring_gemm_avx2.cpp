// The AVX2 kernels of gemm_u64: a*b mod 2^64 from one vpmuludq and one vpmulld, the cross terms
// summed lazily (ring_gemm_avx2.hpp). Compiled for AVX2 by target attributes only: nothing here may
// use an AVX-512 instruction, since these kernels are what machines without AVX-512 run.
#include "ring_gemm_avx2.hpp"

#include <immintrin.h>

#include <algorithm>

namespace veil::mpc::detail {
namespace {

// Macros, not functions or lambdas: lambdas do not inherit the target attribute, and the
// accumulators must stay in registers.
//
// v with the two 32-bit halves of each lane swapped: (lo(b), hi(b)) -> (hi(b), lo(b)). A shuffle,
// not shifts, so it does not compete with the multiplies for their ports.
#define VEIL_SWAP(v) _mm256_shuffle_epi32(v, 0xB1)
#define VEIL_BCAST(p) _mm256_set1_epi64x(static_cast<long long>(*(p)))
// With a = (lo(a), hi(a)) and bs = VEIL_SWAP(b): lo += lo(a) lo(b) (vpmuludq, 64-bit lanes);
// cross += (lo(a) hi(b), hi(a) lo(b)) (vpmulld, 32-bit lanes, no carries between them).
#define VEIL_MAC(lo, cross, a, b, bs)                                   \
  do {                                                                  \
    (lo) = _mm256_add_epi64((lo), _mm256_mul_epu32((a), (b)));          \
    (cross) = _mm256_add_epi32((cross), _mm256_mullo_epi32((a), (bs))); \
  } while (0)
// The product: lo + ((sum of cross's two halves) << 32) mod 2^64.
#define VEIL_COMBINE(lo, cross) \
  _mm256_add_epi64((lo), _mm256_slli_epi64(_mm256_add_epi32((cross), VEIL_SWAP(cross)), 32))

// M rows of C, 4W columns from column j (the last vector masked to its lanes of `mask` when
// kMasked), over all of K. 2MW accumulators, the broadcasts of A's column, B's vector and its
// swapped halves: 2MW + M + 2 <= 16 ymm registers for the shapes instantiated below.
template <int M, int W, bool kMasked>
__attribute__((target("avx2,fma,bmi2"))) void rows_block(int64_t k, const uint64_t* a, int64_t lda,
                                                         const uint64_t* b, int64_t ldb,
                                                         uint64_t* c, int64_t ldc, bool accumulate,
                                                         __m256i mask) {
  __m256i lo[M][W], cross[M][W];
  for (int i = 0; i < M; ++i)
    for (int v = 0; v < W; ++v) lo[i][v] = cross[i][v] = _mm256_setzero_si256();
  for (int64_t p = 0; p < k; ++p) {
    const uint64_t* row = b + p * ldb;
    for (int v = 0; v < W; ++v) {
      const __m256i bv =
          kMasked && v == W - 1
              ? _mm256_maskload_epi64(reinterpret_cast<const long long*>(row + 4 * v), mask)
              : _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 4 * v));
      const __m256i bs = VEIL_SWAP(bv);
      for (int i = 0; i < M; ++i)
        VEIL_MAC(lo[i][v], cross[i][v], VEIL_BCAST(a + i * lda + p), bv, bs);
    }
  }
  for (int i = 0; i < M; ++i)
    for (int v = 0; v < W; ++v) {
      auto* out = reinterpret_cast<long long*>(c + i * ldc + 4 * v);
      __m256i r = VEIL_COMBINE(lo[i][v], cross[i][v]);
      if (kMasked && v == W - 1) {
        if (accumulate) r = _mm256_add_epi64(r, _mm256_maskload_epi64(out, mask));
        _mm256_maskstore_epi64(out, mask, r);
      } else {
        if (accumulate)
          r = _mm256_add_epi64(r, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(out)));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), r);
      }
    }
}

// M rows over columns [j_begin, j_end): blocks of 4W columns, then single vectors, the last one
// masked.
template <int M>
__attribute__((target("avx2,fma,bmi2"))) void rows_group(int64_t j_begin, int64_t j_end, int64_t k,
                                                         const uint64_t* a, int64_t lda,
                                                         const uint64_t* b, int64_t ldb,
                                                         uint64_t* c, int64_t ldc,
                                                         bool accumulate) {
  constexpr int W = M == 1 ? 4 : M == 2 ? 2 : 1;
  const __m256i all = _mm256_set1_epi64x(-1);
  int64_t j = j_begin;
  for (; j + 4 * W <= j_end; j += 4 * W)
    rows_block<M, W, false>(k, a, lda, b + j, ldb, c + j, ldc, accumulate, all);
  for (; j + 4 <= j_end; j += 4)
    rows_block<M, 1, false>(k, a, lda, b + j, ldb, c + j, ldc, accumulate, all);
  if (j < j_end) {
    const __m256i lanes = _mm256_setr_epi64x(0, 1, 2, 3);
    const __m256i mask = _mm256_cmpgt_epi64(_mm256_set1_epi64x(j_end - j), lanes);
    rows_block<M, 1, true>(k, a, lda, b + j, ldb, c + j, ldc, accumulate, mask);
  }
}

}  // namespace

__attribute__((target("avx2,fma,bmi2"))) void micro_avx2(int64_t kc, int64_t mr, const uint64_t* ap,
                                                         const uint64_t* bp, uint64_t* tile) {
  static_assert(kRingNr == 8, "two vectors of B per step");
  // Two rows of the tile per pass over K: 8 accumulators, B's 4 vectors and a row's broadcast
  // fit the 16 registers (the whole 8 x 8 tile would need 32 accumulators). Passes
  // stop at `mr`, so a short panel does not pay for its zero rows.
  for (int64_t r = 0; r < mr; r += 2) {
    __m256i l00 = _mm256_setzero_si256(), l01 = l00, l10 = l00, l11 = l00;
    __m256i x00 = l00, x01 = l00, x10 = l00, x11 = l00;
    for (int64_t p = 0; p < kc; ++p) {
      const auto* bv = reinterpret_cast<const __m256i*>(bp + p * 2 * kRingNr);
      const __m256i b0 = _mm256_load_si256(bv), b1 = _mm256_load_si256(bv + 1);
      const __m256i s0 = _mm256_load_si256(bv + 2), s1 = _mm256_load_si256(bv + 3);
      const uint64_t* av = ap + p * kRingMr + r;
      __m256i a = VEIL_BCAST(av);
      VEIL_MAC(l00, x00, a, b0, s0);
      VEIL_MAC(l01, x01, a, b1, s1);
      a = VEIL_BCAST(av + 1);
      VEIL_MAC(l10, x10, a, b0, s0);
      VEIL_MAC(l11, x11, a, b1, s1);
    }
    auto* out = reinterpret_cast<__m256i*>(tile + r * kRingNr);
    _mm256_store_si256(out, VEIL_COMBINE(l00, x00));
    _mm256_store_si256(out + 1, VEIL_COMBINE(l01, x01));
    _mm256_store_si256(out + 2, VEIL_COMBINE(l10, x10));
    _mm256_store_si256(out + 3, VEIL_COMBINE(l11, x11));
  }
}

void gemm_rows_avx2(int64_t m, int64_t j_begin, int64_t j_end, int64_t k, const uint64_t* a,
                    int64_t lda, const uint64_t* b, int64_t ldb, uint64_t* c, int64_t ldc,
                    bool accumulate) {
  // Groups of at most 4 rows (each group reads B once more; 4 rows at 1 vector keep 12
  // registers busy).
  for (int64_t i = 0; i < m; i += 4) {
    const uint64_t* ai = a + i * lda;
    uint64_t* ci = c + i * ldc;
    switch (std::min<int64_t>(4, m - i)) {
      case 1:
        rows_group<1>(j_begin, j_end, k, ai, lda, b, ldb, ci, ldc, accumulate);
        break;
      case 2:
        rows_group<2>(j_begin, j_end, k, ai, lda, b, ldb, ci, ldc, accumulate);
        break;
      case 3:
        rows_group<3>(j_begin, j_end, k, ai, lda, b, ldb, ci, ldc, accumulate);
        break;
      default:
        rows_group<4>(j_begin, j_end, k, ai, lda, b, ldb, ci, ldc, accumulate);
        break;
    }
  }
}

#undef VEIL_COMBINE
#undef VEIL_MAC
#undef VEIL_BCAST
#undef VEIL_SWAP

}  // namespace veil::mpc::detail
