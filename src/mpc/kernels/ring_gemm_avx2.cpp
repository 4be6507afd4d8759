// The AVX2 kernels of gemm_u64: a*b mod 2^64 from three vpmuludq, the cross terms summed lazily
// (ring_gemm_avx2.hpp). Compiled for AVX2 by target attributes only: nothing here may use an
// AVX-512 instruction, since these kernels are what machines without AVX-512 run.
#include "ring_gemm_avx2.hpp"

#include <immintrin.h>

#include <algorithm>

namespace veil::mpc::detail {
namespace {

// Macros, not functions or lambdas: lambdas do not inherit the target attribute, and the
// accumulators must stay in registers.
//
// v's high halves moved into the low 32 bits of each lane (vpmuludq reads only those); a
// shuffle, not a shift, so it does not compete with the multiplies for their ports.
#define VEIL_HI(v) _mm256_shuffle_epi32(v, 0xF5)
// Both halves of *p broadcast: its low half (as a 64-bit broadcast; vpmuludq ignores the high
// half) and its high half (a 32-bit broadcast from the upper four bytes: a load, no shift).
#define VEIL_BCAST_LO(p) _mm256_set1_epi64x(static_cast<long long>(*(p)))
#define VEIL_BCAST_HI(p) \
  _mm256_broadcastd_epi32(_mm_loadu_si32(reinterpret_cast<const char*>(p) + 4))
// lo += lo(a) lo(b); cross += lo(a) hi(b) + hi(a) lo(b)
#define VEIL_MAC(lo, cross, al, ah, bv, bh)                            \
  do {                                                                 \
    (lo) = _mm256_add_epi64((lo), _mm256_mul_epu32((al), (bv)));       \
    (cross) = _mm256_add_epi64((cross), _mm256_mul_epu32((al), (bh))); \
    (cross) = _mm256_add_epi64((cross), _mm256_mul_epu32((ah), (bv))); \
  } while (0)
// The product: lo + (cross << 32) mod 2^64.
#define VEIL_COMBINE(lo, cross) _mm256_add_epi64((lo), _mm256_slli_epi64((cross), 32))

// M rows of C, 4W columns from column j (the last vector masked to its lanes of `mask` when
// kMasked), over all of K. 2MW accumulators, the broadcasts of A's column, B's vector and its
// high halves: 2MW + 2M + 2 <= 16 ymm registers for the shapes instantiated below.
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
      const __m256i bh = VEIL_HI(bv);
      for (int i = 0; i < M; ++i) {
        const uint64_t* ai = a + i * lda + p;
        VEIL_MAC(lo[i][v], cross[i][v], VEIL_BCAST_LO(ai), VEIL_BCAST_HI(ai), bv, bh);
      }
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
  // Two rows of the tile per pass over K: 8 accumulators, B's 4 vectors and one row's two
  // broadcasts fit the 16 registers (the whole 8 x 8 tile would need 32 accumulators). Passes
  // stop at `mr`, so a short panel does not pay for its zero rows.
  for (int64_t r = 0; r < mr; r += 2) {
    __m256i l00 = _mm256_setzero_si256(), l01 = l00, l10 = l00, l11 = l00;
    __m256i x00 = l00, x01 = l00, x10 = l00, x11 = l00;
    for (int64_t p = 0; p < kc; ++p) {
      const auto* bv = reinterpret_cast<const __m256i*>(bp + p * 2 * kRingNr);
      const __m256i b0 = _mm256_load_si256(bv), b1 = _mm256_load_si256(bv + 1);
      const __m256i h0 = _mm256_load_si256(bv + 2), h1 = _mm256_load_si256(bv + 3);
      const uint64_t* av = ap + p * kRingMr + r;
      __m256i al = VEIL_BCAST_LO(av), ah = VEIL_BCAST_HI(av);
      VEIL_MAC(l00, x00, al, ah, b0, h0);
      VEIL_MAC(l01, x01, al, ah, b1, h1);
      al = VEIL_BCAST_LO(av + 1), ah = VEIL_BCAST_HI(av + 1);
      VEIL_MAC(l10, x10, al, ah, b0, h0);
      VEIL_MAC(l11, x11, al, ah, b1, h1);
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
#undef VEIL_BCAST_HI
#undef VEIL_BCAST_LO
#undef VEIL_HI

}  // namespace veil::mpc::detail
