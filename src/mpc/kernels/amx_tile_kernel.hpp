// Private to src/mpc: the AMX tile kernel shared by the ring GEMM (ring_gemm_amx.cpp) and the
// direct ring convolution (ring_conv_amx.cpp). It multiplies byte planes of A and B (packed B,
// ring_gemm_amx.hpp) diagonal by diagonal, D_s = sum_(i+j=s) A_i B_j, and combines
// C = sum_s 2^(8s) D_s modulo 2^64 (the method: ring_gemm_amx.cpp).
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstdint>

#include "ring_gemm_amx.hpp"

namespace veil::mpc::detail {

// The kernel's names for the packed layout's steps.
inline constexpr int64_t kKb = kAmxStep;
inline constexpr int64_t kPanel = kAmxPanel;

// The tile configuration (Intel SDM vol. 1, 3.2 "AMX"): palette 1, eight tiles of 16 rows x 64 B.
struct alignas(64) TileConfig {
  uint8_t palette_id = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// One step i of a diagonal pair (s, s+1) for a 32 x 16 block: tiles 0/1 accumulate D_s (rows
// 0-15 / 16-31), tiles 2/3 accumulate D_(s+1); tiles 4/5 take A_i (rows 0-15 / 16-31), tile P
// holds B_(s+1-i), loaded by the previous step, and tile Q receives B_(s-i). Each load comes just
// before its first use and lands in a register whose last reader was issued at least one product
// earlier, so the load overlaps the products still running (tile registers are not renamed).
// Macros, not templates: GCC's tile intrinsics paste the register number into the assembly.
#define VEIL_PAIR_STEP(P, Q, a, b_new)        \
  do {                                        \
    _tile_loadd(4, (a), a_stride);            \
    _tile_dpbuud(2, 4, P);                    \
    _tile_loadd(Q, (b_new), kKb);             \
    _tile_dpbuud(0, 4, Q);                    \
    _tile_loadd(5, (a) + a_second, a_stride); \
    _tile_dpbuud(3, 5, P);                    \
    _tile_dpbuud(1, 5, Q);                    \
  } while (0)

// The same for a block of 16 rows (tiles 1, 3 and 5 unused).
#define VEIL_PAIR_STEP_1ROW(P, Q, a, b_new) \
  do {                                      \
    _tile_loadd(4, (a), a_stride);          \
    _tile_dpbuud(2, 4, P);                  \
    _tile_loadd(Q, (b_new), kKb);           \
    _tile_dpbuud(0, 4, Q);                  \
  } while (0)

// The last step i = s+1 contributes to D_(s+1) only (B_0 is in tile P).
#define VEIL_PAIR_LAST(P, a)                  \
  do {                                        \
    _tile_loadd(4, (a), a_stride);            \
    _tile_dpbuud(2, 4, P);                    \
    _tile_loadd(5, (a) + a_second, a_stride); \
    _tile_dpbuud(3, 5, P);                    \
  } while (0)
#define VEIL_PAIR_LAST_1ROW(P, a)  \
  do {                             \
    _tile_loadd(4, (a), a_stride); \
    _tile_dpbuud(2, 4, P);         \
  } while (0)

// All steps of diagonal pair (s, s+1) at one 64-byte step of K (a, b: the packed panels there)
// with the step macros of a 32- or 16-row block. s is even, so steps alternate P = 6, 7 and
// end on tile 7 holding B_0.
#define VEIL_PAIR_K_STEP(STEP, LAST)                                \
  do {                                                              \
    _tile_loadd(6, b + (s + 1) * b_plane, kKb);                     \
    for (int i = 0; i < s; i += 2) {                                \
      STEP(6, 7, a + i * a_plane, b + (s - i) * b_plane);           \
      STEP(7, 6, a + (i + 1) * a_plane, b + (s - i - 1) * b_plane); \
    }                                                               \
    STEP(6, 7, a + s * a_plane, b);                                 \
    LAST(7, a + (s + 1) * a_plane);                                 \
  } while (0)

// The same pair for a block of 16 rows and both column halves, sliding A instead of B: step j
// takes B_j of both halves (tiles 6 and 7) to D_(s+1) with A_(s+1-j), held in tile P since the
// previous step, and to D_s with A_(s-j), loaded into tile Q. Tiles 0 / 1 accumulate D_s of the
// left / right half, 2 / 3 D_(s+1). 3 tile loads per 4 products, as VEIL_PAIR_STEP, where one
// half at a time takes 10 per 9 (a 16-row block has a single A tile per step to share).
#define VEIL_COL2_STEP(P, Q, a_new, b_j) \
  do {                                   \
    _tile_loadd(6, (b_j), kKb);          \
    _tile_dpbuud(2, P, 6);               \
    _tile_loadd(Q, (a_new), a_stride);   \
    _tile_dpbuud(0, Q, 6);               \
    _tile_loadd(7, (b_j) + 1024, kKb);   \
    _tile_dpbuud(3, P, 7);               \
    _tile_dpbuud(1, Q, 7);               \
  } while (0)
#define VEIL_COL2_LAST(P, b_j)         \
  do {                                 \
    _tile_loadd(6, (b_j), kKb);        \
    _tile_dpbuud(2, P, 6);             \
    _tile_loadd(7, (b_j) + 1024, kKb); \
    _tile_dpbuud(3, P, 7);             \
  } while (0)
// All steps of the pair at one 64-byte step of K; s is even, so P alternates 4, 5 and ends on
// tile 5 holding A_0.
#define VEIL_COL2_K_STEP()                                                    \
  do {                                                                        \
    _tile_loadd(4, a + (s + 1) * a_plane, a_stride);                          \
    for (int j = 0; j < s; j += 2) {                                          \
      VEIL_COL2_STEP(4, 5, a + (s - j) * a_plane, b + j * b_plane);           \
      VEIL_COL2_STEP(5, 4, a + (s - j - 1) * a_plane, b + (j + 1) * b_plane); \
    }                                                                         \
    VEIL_COL2_STEP(4, 5, a, b + s * b_plane);                                 \
    VEIL_COL2_LAST(5, b + (s + 1) * b_plane);                                 \
  } while (0)

// Where one 16-column output tile of a block goes: up to 32 rows x 16 columns of C.
struct OutTile {
  uint64_t* c = nullptr;  // its top-left element
  int64_t ldc = 0;
  int rows = 0;  // valid rows (<= 32) and columns (<= 16): edge tiles store only these
  int cols = 0;
  bool add = false;  // add into C (accumulate, or a later pass over K) instead of writing it
  // Row r, column j goes to c[j * ldc + r] (a convolution whose tile rows are pixels and
  // columns output channels, into NCHW). Only with add == false.
  bool transposed = false;
};

// Layout of a tile's stored diagonals, in uint32: d[s][row tile][16 x 16].
constexpr int kDiagStride = 2 * 256;
constexpr int kRowTileStride = 256;

// C = sum_s 2^(8s) D_s (mod 2^64) for one output tile from its eight stored diagonals.
// D_4..D_7 are shifted by at least 32 bits, so only their low 64 - 8s bits survive, and their
// sum H = D_4 + 2^8 D_5 + 2^16 D_6 + 2^24 D_7 can be formed in 32-bit lanes (16 per register)
// and added as 2^32 H: only D_0..D_3 and H are widened to 64 bits. pack_b interleaves the
// columns (tile column 2i holds column i, 2i + 1 column 8 + i), so the widening is a mask and a
// shift per qword, without shuffles: the low dwords of a row are columns 0-7, the high ones
// 8-15. That is about a fifth of the vector work of adding each diagonal pair into a 64-bit
// accumulator, as this kernel used to.
__attribute__((target("avx512f,avx512bw,avx512dq"))) inline void combine(const uint32_t* d,
                                                                         const OutTile& t,
                                                                         int row_begin,
                                                                         int row_end) {
  const auto cols_mask = [&](int from) {
    const int n = std::clamp(t.cols - from, 0, 8);
    return static_cast<__mmask8>((1u << n) - 1);
  };
  const __mmask8 mask_lo = cols_mask(0), mask_hi = cols_mask(8);
  // Masked forms with all-ones masks, as in pack_b, for GCC 12's -Wmaybe-uninitialized.
  const __m512i low32 = _mm512_set1_epi64(0xffffffff), high32 = _mm512_set1_epi64(~0xffffffffull);
  // Transposed: element j of a row half goes j * ldc further.
  const __m512i at =
      _mm512_mullo_epi64(_mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7), _mm512_set1_epi64(t.ldc));
  for (int r = row_begin; r < row_end; ++r) {
    const uint32_t* row = d + (r / 16) * kRowTileStride + (r % 16) * 16;
    __m512i ds[8];
    for (int s = 0; s < 8; ++s) ds[s] = _mm512_load_si512(row + s * kDiagStride);
    const __m512i h =
        _mm512_add_epi32(_mm512_add_epi32(ds[4], _mm512_maskz_slli_epi32(0xffff, ds[5], 8)),
                         _mm512_add_epi32(_mm512_maskz_slli_epi32(0xffff, ds[6], 16),
                                          _mm512_maskz_slli_epi32(0xffff, ds[7], 24)));
    __m512i lo =
        _mm512_add_epi64(_mm512_and_si512(ds[0], low32), _mm512_maskz_slli_epi64(0xff, h, 32));
    __m512i hi =
        _mm512_add_epi64(_mm512_maskz_srli_epi64(0xff, ds[0], 32), _mm512_and_si512(h, high32));
    for (int s = 1; s < 4; ++s) {
      lo = _mm512_add_epi64(lo,
                            _mm512_maskz_slli_epi64(0xff, _mm512_and_si512(ds[s], low32), 8 * s));
      hi = _mm512_add_epi64(
          hi, _mm512_maskz_slli_epi64(0xff, _mm512_maskz_srli_epi64(0xff, ds[s], 32), 8 * s));
    }
    if (t.transposed) {
      _mm512_mask_i64scatter_epi64(t.c + r, mask_lo, at, lo, 8);
      _mm512_mask_i64scatter_epi64(t.c + r + 8 * t.ldc, mask_hi, at, hi, 8);
      continue;
    }
    uint64_t* out = t.c + r * t.ldc;
    if (t.add) {
      lo = _mm512_add_epi64(lo, _mm512_maskz_loadu_epi64(mask_lo, out));
      hi = _mm512_add_epi64(hi, _mm512_maskz_loadu_epi64(mask_hi, out + 8));
    }
    _mm512_mask_storeu_epi64(out, mask_lo, lo);
    _mm512_mask_storeu_epi64(out + 8, mask_hi, hi);
  }
}

// Runs 32 x 32 blocks: for each diagonal pair (s, s+1), a K loop between zeroing and storing
// its accumulator tiles. Tiles 0 and 2 hold D_s and D_(s+1) of the output tile of rows 0-15
// and columns 0-15; tiles 1 and 3 those of rows 16-31 (a 32-row block, one column half at a
// time) or of columns 16-31 (a 16-row block, both halves at once). The stored diagonals are
// combined into C while the next block's products run, so that vector work overlaps TDPBUUD.
//
// The diagonals are taken in pairs so that B_j, which D_s and D_(s+1) both need (with A_(s-j)
// and A_(s+1-j)), is loaded once for two steps (or A_i, for a 16-row block): 3 tile loads per 4
// products instead of the 4 of a 2 x 2 block of one diagonal. On Sapphire Rapids the tile loads
// from L2 limit this kernel more than TDPBUUD does (a loop of products on resident tiles runs
// about twice as fast).
// Where a block's A tiles are. Packed A (ring_gemm_amx.cpp) is tile by tile; a convolution
// reads its input's byte planes in place, 16 pixels at a stride (ring_conv_amx.cpp). K steps
// come in `segments` of `steps` each: step t of segment g is at g * segment + t * step.
struct ATiles {
  const uint8_t* base = nullptr;  // byte plane 0, first K step, rows 0-15
  int64_t plane = 0;              // bytes from one byte plane to the next
  int64_t stride = kAmxStep;      // bytes from one tile row to the next
  int64_t second = 1024;          // bytes from rows 0-15 to rows 16-31
  int64_t steps = 0, segments = 1, segment = 0, step = kAmxPanel * kAmxStep;
  const uint8_t* tails = nullptr;  // PassShape's concatenated tails, packed A only
};

class TileKernel {
 public:
  // One 32 x 32 block over a pass of K (PassShape; its `full` steps are a.segments * a.steps).
  // `bp`: the packed B panel. Only the first 16 rows are computed unless two_rows, and the
  // right half only if right.cols > 0: edge blocks and 16-channel layers would otherwise spend
  // half their products on padding.
  __attribute__((target("amx-tile,amx-int8,avx512f,avx512bw,avx512dq"))) void block(
      const ATiles& a, const uint8_t* bp, const PassShape& ps, bool two_rows, const OutTile& left,
      const OutTile& right) {
    if (two_rows) {
      run<Shape::TwoRows>(a, bp, 0, ps, {left, {}});
      if (right.cols > 0) run<Shape::TwoRows>(a, bp, 1, ps, {right, {}});
    } else if (right.cols > 0) {
      run<Shape::TwoColumns>(a, bp, 0, ps, {left, right});
    } else {
      run<Shape::OneTile>(a, bp, 0, ps, {left, {}});
    }
  }

  // Combines the tiles stored last. Call before C is read.
  __attribute__((target("avx512f,avx512bw,avx512dq"))) void finish() {
    const uint32_t* d = d_[slot_ ^ 1];
    // A 32-row tile reads rows 16-31 from the second sub-tile; so does a right column half.
    if (pending_[0].rows > 0) combine(d, pending_[0], 0, pending_[0].rows);
    if (pending_[1].rows > 0) combine(d + kRowTileStride, pending_[1], 0, pending_[1].rows);
    pending_[0].rows = pending_[1].rows = 0;
  }

 private:
  enum class Shape { OneTile, TwoRows, TwoColumns };

  // Column half `half` of the panels (TwoColumns: both, from 0).
  template <Shape shape>
  __attribute__((target("amx-tile,amx-int8,avx512f,avx512bw,avx512dq"))) void run(
      const ATiles& at, const uint8_t* bp, int half, const PassShape& ps,
      const std::array<OutTile, 2>& out) {
    constexpr int64_t kTile = kAmxPanel * kAmxStep;  // bytes of one K step of a packed panel
    constexpr bool four = shape != Shape::OneTile;   // tiles 1 and 3 in use
    const int64_t a_plane = at.plane, a_stride = at.stride, a_second = at.second;
    const int64_t b_plane = ps.b_plane();  // bytes from one byte plane of B to the next
    // The tails: B's rows of this half (TwoColumns: the right half's follow).
    const uint8_t* bt = bp + 8 * b_plane + half * ps.tail_rows * kKb;
    const int64_t half_rows = ps.tail_rows * kKb, tail_q = ps.tail / 4;
    uint32_t* d = d_[slot_];
    for (int s = 0; s < 8; s += 2) {
      _tile_zero(0);
      _tile_zero(2);
      if (four) {
        _tile_zero(1);
        _tile_zero(3);
      }
      const uint8_t* b = bp + half * 1024;
      for (int64_t g = 0; g < at.segments; ++g)
        for (int64_t t = 0; t < at.steps; ++t, b += kTile) {
          const uint8_t* a = at.base + g * at.segment + t * at.step;
          if constexpr (shape == Shape::TwoRows)
            VEIL_PAIR_K_STEP(VEIL_PAIR_STEP, VEIL_PAIR_LAST);
          else if constexpr (shape == Shape::TwoColumns)
            VEIL_COL2_K_STEP();
          else
            VEIL_PAIR_K_STEP(VEIL_PAIR_STEP_1ROW, VEIL_PAIR_LAST_1ROW);
        }
      // The tail windows of D_s and D_(s+1): step u takes A's tails at u * 64 against B's rows
      // from (7 - s) tail / 4 + 16 u (D_s) and (6 - s) tail / 4 + 16 u (D_(s+1)). Few products
      // (12 of 84 per block for K = 144), so no double buffering.
      const int64_t steps_s = ps.steps(s), steps_s1 = ps.steps(s + 1);
      for (int64_t u = 0; u < steps_s1; ++u) {
        const uint8_t* a = at.tails + u * kTile;
        const uint8_t* b0 = bt + ((7 - s) * tail_q + 16 * u) * kKb;
        const uint8_t* b1 = bt + ((6 - s) * tail_q + 16 * u) * kKb;
        _tile_loadd(4, a, kKb);
        if constexpr (shape == Shape::TwoRows) {
          _tile_loadd(5, a + 1024, kKb);
          if (u < steps_s) {
            _tile_loadd(6, b0, kKb);
            _tile_dpbuud(0, 4, 6);
            _tile_dpbuud(1, 5, 6);
          }
          _tile_loadd(7, b1, kKb);
          _tile_dpbuud(2, 4, 7);
          _tile_dpbuud(3, 5, 7);
        } else if constexpr (shape == Shape::TwoColumns) {
          if (u < steps_s) {
            _tile_loadd(6, b0, kKb);
            _tile_dpbuud(0, 4, 6);
            _tile_loadd(7, b0 + half_rows, kKb);
            _tile_dpbuud(1, 4, 7);
          }
          _tile_loadd(6, b1, kKb);
          _tile_dpbuud(2, 4, 6);
          _tile_loadd(7, b1 + half_rows, kKb);
          _tile_dpbuud(3, 4, 7);
        } else {
          if (u < steps_s) {
            _tile_loadd(6, b0, kKb);
            _tile_dpbuud(0, 4, 6);
          }
          _tile_loadd(7, b1, kKb);
          _tile_dpbuud(2, 4, 7);
        }
      }
      if (s == 0) finish();
      _tile_stored(0, d + s * kDiagStride, 64);
      _tile_stored(2, d + (s + 1) * kDiagStride, 64);
      if (four) {
        _tile_stored(1, d + s * kDiagStride + kRowTileStride, 64);
        _tile_stored(3, d + (s + 1) * kDiagStride + kRowTileStride, 64);
      }
    }
    pending_ = out;
    slot_ ^= 1;
  }

  alignas(64) uint32_t d_[2][8 * kDiagStride];  // two blocks' stored diagonals, in turn
  std::array<OutTile, 2> pending_{};            // where those in d_[slot_ ^ 1] go
  int slot_ = 0;
};

#undef VEIL_PAIR_STEP
#undef VEIL_PAIR_LAST
#undef VEIL_PAIR_STEP_1ROW
#undef VEIL_PAIR_LAST_1ROW
#undef VEIL_PAIR_K_STEP
#undef VEIL_COL2_STEP
#undef VEIL_COL2_LAST
#undef VEIL_COL2_K_STEP

// a_rows: rows of the A and C tiles (0-5). TDPBUUD's time grows with them (on this CPU 5.2 ns
// for 16 rows, 4.0 for 10, 3.3 for 8, in a loop of products on resident tiles), so a product
// with fewer than 16 rows of A runs its tiles that short. B's tiles (6, 7) keep 16 rows of K.
__attribute__((target("amx-tile"))) inline void load_tile_config(int a_rows = 16) {
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) {
    cfg.colsb[t] = 64;
    cfg.rows[t] = static_cast<uint8_t>(t < 6 ? a_rows : 16);
  }
  // GCC 12's ldtilecfg builtin does not tell the optimiser that it reads the 64-byte block, so
  // without this barrier the stores above are eliminated as dead and ldtilecfg faults (#GP).
  asm volatile("" : : "r"(&cfg) : "memory");
  _tile_loadconfig(&cfg);
}

__attribute__((target("amx-tile"))) inline void release_tiles() { _tile_release(); }

}  // namespace veil::mpc::detail
