// Z_2^64 GEMM on the Intel AMX int8 matrix engine (Sapphire Rapids and later).
//
// Why bytes: AVX-512 has no cheap 64x64-bit multiply (vpmullq is 3 uops), so a uint64 GEMM on the
// vector units runs at ~1/7 of the float GEMM. Splitting every operand into its eight bytes,
// a = sum_i a_i 2^(8i), turns the product modulo 2^64 into
//     A*B = sum_{s=0..7} 2^(8s) D_s,   D_s = sum_{i+j=s} A_i * B_j   (mod 2^64),
// i.e. 36 byte-matrix products (the pairs with i+j >= 8 vanish modulo 2^64), which AMX's
// TDPBUUD computes at 1024 u8*u8 MACs per cycle, 30x the float FMA rate. The same idea (limb
// decomposition so that exact ring products run on wide floating-point or integer engines) is
// CrypTen's CUDALongTensor (Knott et al., NeurIPS 2021, Sec. 4).
//
// Exactness: each byte product is < 2^16 and D_s has at most 8 * kKc of them per pass, so with
// kKc = 2048 every D_s is below 2^32 and the uint32 tile accumulators never wrap; passes over K
// are combined in uint64.
#include "ring_gemm_amx.hpp"

#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <vector>

#include "veil/core/aligned.hpp"
#include "veil/core/cpu.hpp"

namespace veil::mpc::detail {
namespace {

constexpr int64_t kPanel = kAmxPanel;  // output rows / columns per micro-block (2 x 2 tiles)
constexpr int64_t kKb = kAmxStep;      // bytes of K per A-tile row
constexpr int64_t kKc = 2048;          // K per pass (see the exactness note above)
constexpr int64_t kMc = 64;   // rows of A per packed block: 8 planes x 64 x 2048 B = 1 MiB (L2)
constexpr int64_t kNc = 256;  // columns of B per packed block
static_assert(8 * kKc * 255 * 255 < (int64_t{1} << 32), "D_s must not wrap in uint32");

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

// The tile configuration (Intel SDM vol. 1, 3.2 "AMX"): palette 1, eight tiles of 16 rows x 64 B.
struct alignas(64) TileConfig {
  uint8_t palette_id = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

bool detect() {
  const CpuFeatures& f = cpu_features();
  if (!f.avx512f || !f.avx512bw || !f.avx512vbmi) return false;
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return false;
  const bool amx_tile = edx & (1u << 24), amx_int8 = edx & (1u << 25);
  if (!amx_tile || !amx_int8) return false;
  // Linux keeps the 8 KiB tile state off until a process asks (ARCH_REQ_XCOMP_PERM = 0x1023 for
  // XFEATURE_XTILEDATA = 18); without the grant the first tile instruction would fault.
  return syscall(SYS_arch_prctl, 0x1023, 18) == 0;
}

// vpermb indices of an 8 x 8 byte transpose: output byte i*8 + e takes input byte e*8 + i, so
// eight uint64 become their eight byte planes (qword i = byte i of each). Both packers use it.
alignas(64) constexpr std::array<uint8_t, 64> kByteTranspose = [] {
  std::array<uint8_t, 64> o{};
  for (int i = 0; i < 8; ++i)
    for (int e = 0; e < 8; ++e) o[i * 8 + e] = static_cast<uint8_t>(e * 8 + i);
  return o;
}();

// Byte i of src[e] -> dst[i * plane_stride + (e / 64) * seg_stride + e % 64], for e < len: the
// eight byte planes of a row, cut into the 64-byte segments that are the rows of A tiles.
// `dst` must be 64-byte aligned (whole segments are written with aligned stores).
__attribute__((target("avx512f,avx512bw,avx512vbmi"))) void split_bytes(const uint64_t* src,
                                                                        int64_t len, uint8_t* dst,
                                                                        int64_t plane_stride,
                                                                        int64_t seg_stride) {
  const __m512i idx = _mm512_load_si512(kByteTranspose.data());
  int64_t e = 0;
  // Whole segments: 64 elements -> 8 planes of 64 bytes. After the per-register byte transpose,
  // register q holds plane p of elements 8q..8q+7 in qword p, so an 8 x 8 qword transpose
  // (unpack, then two rounds of 128-bit lane shuffles) gathers each plane into one register.
  // Compared with 8-byte scalar stores this keeps A packing off the profile of tall GEMMs.
  for (; e + 64 <= len; e += 64) {
    __m512i x[8], t[8], u[8];
    for (int q = 0; q < 8; ++q)
      x[q] = _mm512_maskz_permutexvar_epi8(~__mmask64{0}, idx, _mm512_loadu_si512(src + e + 8 * q));
    for (int q = 0; q < 8; q += 2) {
      t[q] = _mm512_maskz_unpacklo_epi64(0xff, x[q], x[q + 1]);      // planes 0,2,4,6 of q, q+1
      t[q + 1] = _mm512_maskz_unpackhi_epi64(0xff, x[q], x[q + 1]);  // planes 1,3,5,7
    }
    // t[q + o], lane L: plane 2L + o of registers q, q+1. Then u[4h + 2w + o], lanes 0-3: planes
    // 2w + o and 2w + 4 + o of register pair 4h, then of pair 4h + 2 (imm 0x88 picks lanes 0 and
    // 2 of each source, 0xdd lanes 1 and 3).
    for (int h = 0; h < 2; ++h)
      for (int o = 0; o < 2; ++o) {
        u[4 * h + o] = _mm512_maskz_shuffle_i64x2(0xff, t[4 * h + o], t[4 * h + 2 + o], 0x88);
        u[4 * h + 2 + o] = _mm512_maskz_shuffle_i64x2(0xff, t[4 * h + o], t[4 * h + 2 + o], 0xdd);
      }
    uint8_t* at = dst + (e / 64) * seg_stride;
    for (int o = 0; o < 2; ++o)
      for (int w = 0; w < 2; ++w) {
        // Pairs 0, 2 from u[2w + o] and pairs 4, 6 from u[4 + 2w + o]: all 64 elements.
        const __m512i lo = u[2 * w + o], hi = u[4 + 2 * w + o];
        _mm512_store_si512(at + (2 * w + o) * plane_stride,
                           _mm512_maskz_shuffle_i64x2(0xff, lo, hi, 0x88));
        _mm512_store_si512(at + (2 * w + 4 + o) * plane_stride,
                           _mm512_maskz_shuffle_i64x2(0xff, lo, hi, 0xdd));
      }
  }
  for (; e + 8 <= len; e += 8) {
    const __m512i t =
        _mm512_maskz_permutexvar_epi8(~__mmask64{0}, idx, _mm512_loadu_si512(src + e));
    alignas(64) uint64_t planes[8];
    _mm512_store_si512(planes, t);
    uint8_t* at = dst + (e / 64) * seg_stride + e % 64;
    for (int i = 0; i < 8; ++i) std::memcpy(at + i * plane_stride, &planes[i], 8);
  }
  for (; e < len; ++e) {
    uint64_t v = src[e];
    uint8_t* at = dst + (e / 64) * seg_stride + e % 64;
    for (int i = 0; i < 8; ++i, v >>= 8) at[i * plane_stride] = static_cast<uint8_t>(v);
  }
}

// Layout of a packed 32-row panel of A: [plane][kb][row][64 B] for the whole steps, so that
// each A tile (16 rows of 64 B of K) is 1 KiB of contiguous memory: tile loads then stream
// instead of striding, which measured faster on Sapphire Rapids (`build/bench/mpc_bench
// --benchmark_filter=RingGemm`). Then the tails (PassShape): [step][row][64 B], row r holding
// the tails of planes 0..7 end to end.
//
// Rows past mc are not written: they only reach output rows that are never stored. Bytes past
// K in the tails need not be zero either: B is zero there.
__attribute__((target("avx512f,avx512bw,avx512vbmi"))) void pack_a(const uint64_t* a, int64_t lda,
                                                                   int64_t mc, int64_t kc,
                                                                   const PassShape& ps,
                                                                   uint8_t* out) {
  const int64_t main = ps.full * kKb;
  for (int64_t r = 0; r < mc; ++r) {
    uint8_t* panel = out + (r / kPanel) * ps.a_panel();
    split_bytes(a + r * lda, main, panel + (r % kPanel) * kKb, ps.plane(), kPanel * kKb);
    if (ps.tail == 0) continue;
    // The row's last kc - main (< 64) elements -> planes[i][e]: eight at a time (the masked
    // load zeroes past K), a byte transpose each, as in split_bytes.
    alignas(64) uint8_t planes[8][kKb];
    const __m512i order = _mm512_load_si512(kByteTranspose.data());
    for (int64_t e = 0; e < kc - main; e += 8) {
      const __mmask8 valid = static_cast<__mmask8>((1u << std::min<int64_t>(8, kc - main - e)) - 1);
      alignas(64) uint64_t split[8];
      _mm512_store_si512(split, _mm512_maskz_permutexvar_epi8(
                                    ~__mmask64{0}, order,
                                    _mm512_maskz_loadu_epi64(valid, a + r * lda + main + e)));
      for (int i = 0; i < 8; ++i) std::memcpy(planes[i] + e, &split[i], 8);
    }
    // Tail of plane i -> bytes i * tail .. (i + 1) * tail of the row's concatenated tails.
    uint8_t* tails = panel + 8 * ps.plane() + (r % kPanel) * kKb;
    for (int64_t i = 0, at = 0; i < 8; ++i) {
      for (int64_t done = 0; done < ps.tail;) {
        const int64_t n = std::min(ps.tail - done, kKb - at % kKb);
        std::memcpy(tails + (at / kKb) * kPanel * kKb + at % kKb, planes[i] + done,
                    static_cast<size_t>(n));
        done += n;
        at += n;
      }
    }
  }
}

// B[pc:pc+kc, jc:jc+nc] -> packed B panels (see b_row in ring_gemm_amx.hpp). Column blocks at
// or past nc are skipped: they only reach output columns that are never stored. Whole 4 x 16
// blocks load without masks (the masks' arithmetic cost more than the transform on small
// shapes); the edges below K and nc use masked loads that zero the rest.
__attribute__((target("avx512f,avx512bw"))) void pack_b(const uint64_t* b, int64_t ldb, int64_t kc,
                                                        int64_t nc, const PassShape& ps,
                                                        uint8_t* out) {
  zero_b_tail_ends(out, ps, nc);
  for (int64_t q = 0; q < (kc + 3) / 4; ++q) {
    const int64_t rows = std::min<int64_t>(4, kc - q * 4);
    const uint64_t* bq = b + q * 4 * ldb;
    for (int64_t n0 = 0; n0 < nc; n0 += 16) {
      __m512i in[4][2];
      if (rows == 4 && n0 + 16 <= nc) {
        for (int t = 0; t < 4; ++t)
          for (int h = 0; h < 2; ++h) in[t][h] = _mm512_loadu_si512(bq + t * ldb + n0 + 8 * h);
      } else {
        for (int t = 0; t < 4; ++t)
          for (int h = 0; h < 2; ++h) {
            const int64_t col = n0 + 8 * h;
            const int64_t valid = t < rows ? std::clamp<int64_t>(nc - col, 0, 8) : 0;
            const __mmask8 mask = static_cast<__mmask8>((1u << valid) - 1);
            in[t][h] = _mm512_maskz_loadu_epi64(mask, bq + t * ldb + col);
          }
      }
      __m512i planes[8];
      vnni_rows_4x16(in, planes);
      const BRow row = b_row(out, ps, q, n0);
      for (int j = 0; j < 8; ++j) _mm512_storeu_si512(row.dst + j * row.plane_stride, planes[j]);
    }
  }
}

// B given as a row-major matrix.
class MatrixPanels final : public BPanelSource {
 public:
  MatrixPanels(const uint64_t* b, int64_t ldb) : b_(b), ldb_(ldb) {}
  void pack(int64_t pc, int64_t kc, int64_t jc, int64_t nc, const PassShape& ps,
            uint8_t* out) const override {
    pack_b(b_ + pc * ldb_ + jc, ldb_, kc, nc, ps, out);
  }

 private:
  const uint64_t* b_;
  int64_t ldb_;
};

// One step i of a diagonal pair (s, s+1) for a 32 x 16 block: tiles 0/1 accumulate D_s (rows
// 0-15 / 16-31), tiles 2/3 accumulate D_(s+1); tiles 4/5 take A_i (rows 0-15 / 16-31), tile P
// holds B_(s+1-i), loaded by the previous step, and tile Q receives B_(s-i). Each load comes just
// before its first use and lands in a register whose last reader was issued at least one product
// earlier, so the load overlaps the products still running (tile registers are not renamed).
// Macros, not templates: GCC's tile intrinsics paste the register number into the assembly.
#define VEIL_PAIR_STEP(P, Q, a, b_new) \
  do {                                 \
    _tile_loadd(4, (a), kKb);          \
    _tile_dpbuud(2, 4, P);             \
    _tile_loadd(Q, (b_new), kKb);      \
    _tile_dpbuud(0, 4, Q);             \
    _tile_loadd(5, (a) + 1024, kKb);   \
    _tile_dpbuud(3, 5, P);             \
    _tile_dpbuud(1, 5, Q);             \
  } while (0)

// The same for a block of 16 rows (tiles 1, 3 and 5 unused).
#define VEIL_PAIR_STEP_1ROW(P, Q, a, b_new) \
  do {                                      \
    _tile_loadd(4, (a), kKb);               \
    _tile_dpbuud(2, 4, P);                  \
    _tile_loadd(Q, (b_new), kKb);           \
    _tile_dpbuud(0, 4, Q);                  \
  } while (0)

// The last step i = s+1 contributes to D_(s+1) only (B_0 is in tile P).
#define VEIL_PAIR_LAST(P, a)         \
  do {                               \
    _tile_loadd(4, (a), kKb);        \
    _tile_dpbuud(2, 4, P);           \
    _tile_loadd(5, (a) + 1024, kKb); \
    _tile_dpbuud(3, 5, P);           \
  } while (0)
#define VEIL_PAIR_LAST_1ROW(P, a) \
  do {                            \
    _tile_loadd(4, (a), kKb);     \
    _tile_dpbuud(2, 4, P);        \
  } while (0)

// All steps of diagonal pair (s, s+1) at one 64-byte step of K (a, b: the packed panels there)
// with the step macros of a 32- or 16-row block. s is even, so steps alternate P = 6, 7 and
// end on tile 7 holding B_0.
#define VEIL_PAIR_K_STEP(STEP, LAST)                            \
  do {                                                          \
    _tile_loadd(6, b + (s + 1) * plane, kKb);                   \
    for (int i = 0; i < s; i += 2) {                            \
      STEP(6, 7, a + i * plane, b + (s - i) * plane);           \
      STEP(7, 6, a + (i + 1) * plane, b + (s - i - 1) * plane); \
    }                                                           \
    STEP(6, 7, a + s * plane, b);                               \
    LAST(7, a + (s + 1) * plane);                               \
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
    _tile_loadd(Q, (a_new), kKb);        \
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
#define VEIL_COL2_K_STEP()                                                \
  do {                                                                    \
    _tile_loadd(4, a + (s + 1) * plane, kKb);                             \
    for (int j = 0; j < s; j += 2) {                                      \
      VEIL_COL2_STEP(4, 5, a + (s - j) * plane, b + j * plane);           \
      VEIL_COL2_STEP(5, 4, a + (s - j - 1) * plane, b + (j + 1) * plane); \
    }                                                                     \
    VEIL_COL2_STEP(4, 5, a, b + s * plane);                               \
    VEIL_COL2_LAST(5, b + (s + 1) * plane);                               \
  } while (0)

// Where one 16-column output tile of a block goes: up to 32 rows x 16 columns of C.
struct OutTile {
  uint64_t* c = nullptr;  // its top-left element
  int64_t ldc = 0;
  int rows = 0;  // valid rows (<= 32) and columns (<= 16): edge tiles store only these
  int cols = 0;
  bool add = false;  // add into C (accumulate, or a later pass over K) instead of writing it
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
__attribute__((target("avx512f,avx512bw"))) void combine(const uint32_t* d, const OutTile& t,
                                                         int row_begin, int row_end) {
  const auto cols_mask = [&](int from) {
    const int n = std::clamp(t.cols - from, 0, 8);
    return static_cast<__mmask8>((1u << n) - 1);
  };
  const __mmask8 mask_lo = cols_mask(0), mask_hi = cols_mask(8);
  // Masked forms with all-ones masks, as in pack_b, for GCC 12's -Wmaybe-uninitialized.
  const __m512i low32 = _mm512_set1_epi64(0xffffffff), high32 = _mm512_set1_epi64(~0xffffffffull);
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
class TileKernel {
 public:
  // One 32 x 32 block over a pass of K (PassShape). `ap`, `bp`: the packed A and B panels. Only
  // the first 16 rows are computed unless two_rows, and the right half only if right.cols > 0:
  // edge blocks and 16-channel layers would otherwise spend half their products on padding.
  __attribute__((target("amx-tile,amx-int8,avx512f,avx512bw"))) void block(
      const uint8_t* ap, const uint8_t* bp, const PassShape& ps, bool two_rows, const OutTile& left,
      const OutTile& right) {
    if (two_rows) {
      run<Shape::TwoRows>(ap, bp, 0, ps, {left, {}});
      if (right.cols > 0) run<Shape::TwoRows>(ap, bp, 1, ps, {right, {}});
    } else if (right.cols > 0) {
      run<Shape::TwoColumns>(ap, bp, 0, ps, {left, right});
    } else {
      run<Shape::OneTile>(ap, bp, 0, ps, {left, {}});
    }
  }

  // Combines the tiles stored last. Call before C is read.
  __attribute__((target("avx512f,avx512bw"))) void finish() {
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
  __attribute__((target("amx-tile,amx-int8,avx512f,avx512bw"))) void run(
      const uint8_t* ap, const uint8_t* bp, int half, const PassShape& ps,
      const std::array<OutTile, 2>& out) {
    const int64_t plane = ps.plane();               // bytes of one byte plane's whole steps
    constexpr bool four = shape != Shape::OneTile;  // tiles 1 and 3 in use
    // The tails: A's steps, and B's rows of this half (TwoColumns: the right half's follow).
    const uint8_t* at = ap + 8 * plane;
    const uint8_t* bt = bp + 8 * plane + half * ps.tail_rows * kKb;
    const int64_t half_rows = ps.tail_rows * kKb, tail_q = ps.tail / 4;
    uint32_t* d = d_[slot_];
    for (int s = 0; s < 8; s += 2) {
      _tile_zero(0);
      _tile_zero(2);
      if (four) {
        _tile_zero(1);
        _tile_zero(3);
      }
      for (int64_t kb = 0; kb < ps.full * kKb; kb += kKb) {
        const uint8_t* a = ap + kb * kPanel;
        const uint8_t* b = bp + half * 1024 + kb * kPanel;
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
        const uint8_t* a = at + u * kPanel * kKb;
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
__attribute__((target("amx-tile"))) void load_tile_config(int a_rows) {
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

__attribute__((target("amx-tile"))) void release_tiles() { _tile_release(); }

}  // namespace

bool amx_ring_gemm_usable() {
  static const bool usable = detect();
  return usable;
}

void gemm_u64_amx_columns(int64_t m, int64_t j_begin, int64_t j_end, int64_t k, const uint64_t* a,
                          int64_t lda, const uint64_t* b, int64_t ldb, uint64_t* c, int64_t ldc,
                          bool accumulate) {
  gemm_u64_amx_packed(m, j_begin, j_end, k, a, lda, MatrixPanels(b, ldb), c, ldc, accumulate);
}

void gemm_u64_amx_packed(int64_t m, int64_t j_begin, int64_t j_end, int64_t k, const uint64_t* a,
                         int64_t lda, const BPanelSource& b, uint64_t* c, int64_t ldc,
                         bool accumulate) {
  if (m == 0 || j_end <= j_begin) return;
  if (k == 0) {
    if (!accumulate)
      for (int64_t i = 0; i < m; ++i) std::fill(c + i * ldc + j_begin, c + i * ldc + j_end, 0);
    return;
  }
  // Per-thread packing buffers, kept between calls: a party runs thousands of GEMMs and fresh
  // multi-megabyte buffers would cost page faults each time. Cache-line aligned, because every
  // tile row is 64 bytes and a misaligned one is a split load (aligned.hpp).
  thread_local AlignedVector<uint8_t> apack, bpack;
  // The first pass is the longest (PassShape's panels grow with kc).
  const PassShape widest(std::min(kKc, k));
  const size_t a_need =
      static_cast<size_t>(widest.a_panel() * (round_up(std::min(kMc, m), kPanel) / kPanel));
  const size_t b_need = static_cast<size_t>(
      widest.b_panel() * (round_up(std::min(kNc, j_end - j_begin), kPanel) / kPanel));
  if (apack.size() < a_need) apack.resize(a_need);
  if (bpack.size() < b_need) bpack.resize(b_need);
  TileKernel kernel;
  // With at most 16 rows every block has m of them (tiles 1 and 3, if used, hold the right
  // column half).
  load_tile_config(static_cast<int>(std::min<int64_t>(m, 16)));
  // With few rows of A (a 16-channel convolution, a small batch), each packed B element is used
  // by few products, and packing B is bound by L2 traffic: reading B, then fetching and writing
  // back the lines of the packed copy. So A is packed once per pass over K and B one 32-column
  // panel at a time, just before its products, into a buffer small enough to stay in L1. Taller
  // A keeps B packed kNc columns at a time and reuses it across blocks of kMc rows.
  const bool small_m = m <= kMc;
  const int64_t nc_block = small_m ? kPanel : kNc;
  for (int64_t pc = 0; pc < k; pc += kKc) {
    const int64_t kc = std::min(kKc, k - pc);
    const PassShape ps(kc);
    // The first pass over K writes C (no zero fill beforehand), later ones add.
    const bool add = accumulate || pc > 0;
    if (small_m) pack_a(a + pc, lda, m, kc, ps, apack.data());
    for (int64_t jc = j_begin; jc < j_end; jc += nc_block) {
      const int64_t nc = std::min(nc_block, j_end - jc);
      b.pack(pc, kc, jc, nc, ps, bpack.data());
      for (int64_t ic = 0; ic < m; ic += kMc) {
        const int64_t mc = std::min(kMc, m - ic);
        if (!small_m) pack_a(a + ic * lda + pc, lda, mc, kc, ps, apack.data());
        for (int64_t n0 = 0; n0 < nc; n0 += kPanel) {
          const uint8_t* bp = bpack.data() + (n0 / kPanel) * ps.b_panel();
          const int nr = static_cast<int>(std::min(kPanel, nc - n0));
          for (int64_t r0 = 0; r0 < mc; r0 += kPanel) {
            const int mr = static_cast<int>(std::min(kPanel, mc - r0));
            uint64_t* cb = c + (ic + r0) * ldc + jc + n0;
            const OutTile left{cb, ldc, mr, std::min(nr, 16), add};
            const OutTile right{cb + 16, ldc, mr, std::max(nr - 16, 0), add};
            kernel.block(apack.data() + (r0 / kPanel) * ps.a_panel(), bp, ps, mr > 16, left, right);
          }
        }
      }
    }
  }
  kernel.finish();
  release_tiles();
}

}  // namespace veil::mpc::detail
