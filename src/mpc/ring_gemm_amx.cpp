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

constexpr int64_t kPanel = 32;  // output rows / columns per micro-block (2 x 2 tiles of 16)
constexpr int64_t kKb = 64;     // bytes of K per A-tile row
constexpr int64_t kKc = 2048;   // K per pass (see the exactness note above)
constexpr int64_t kMc = 64;     // rows of A per packed block: 8 planes x 64 x 2048 B = 1 MiB (L2)
constexpr int64_t kNc = 256;    // columns of B per packed block
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

// Layout of a packed 32-row panel of A: [plane][kb][row][64 B], so that each A tile (16 rows of
// 64 B of K) is 1 KiB of contiguous memory: tile loads then stream instead of striding, which
// measured faster on Sapphire Rapids (`build/bench/mpc_bench --benchmark_filter=RingGemm`).
//
// Rows past mc are not written: they only reach output rows that are never stored. Products
// past K vanish if either operand is zero there; zero_k_tail makes it A (bytes kc..kcp of each
// row), otherwise pack_b zeroes B's rows past K. The caller zeroes the smaller of the two.
void pack_a(const uint64_t* a, int64_t lda, int64_t mc, int64_t kc, int64_t kcp, bool zero_k_tail,
            uint8_t* out) {
  for (int64_t r = 0; r < mc; ++r) {
    uint8_t* row = out + (r / kPanel) * 8 * kPanel * kcp + (r % kPanel) * kKb;
    split_bytes(a + r * lda, kc, row, kPanel * kcp, kPanel * kKb);
    if (zero_k_tail && kc != kcp)
      for (int i = 0; i < 8; ++i)
        std::memset(row + i * kPanel * kcp + (kc / kKb) * kPanel * kKb + kc % kKb, 0,
                    static_cast<size_t>(kKb - kc % kKb));
  }
}

// B[pc:pc+kc, jc:jc+nc] -> per 32-column panel, per byte plane, the VNNI layout TDPBUUD reads
// (row q holds k = 4q..4q+3 of 16 columns, interleaved [n][k % 4]), stored tile by tile:
// [plane][kb][half of the panel][16 rows of 64 B].
__attribute__((target("avx512f,avx512bw,avx512vbmi"))) void pack_b(const uint64_t* b, int64_t ldb,
                                                                   int64_t kc, int64_t nc,
                                                                   int64_t kcp, bool zero_k_tail,
                                                                   uint8_t* out) {
  const int64_t ncp = round_up(nc, kPanel);
  const int64_t panel_bytes = 8 * kcp * kPanel;
  const int64_t q0 = (kc + 3) / 4;
  // zero_k_tail: VNNI rows q0..kcp/4 - 1 (all in the last tile of K) are zeroed, for an A whose
  // bytes past K are not (see pack_a). Columns past nc only reach output columns that are never
  // stored; the masked loads below zero them anyway.
  if (zero_k_tail && kc != kcp) {
    const int64_t first = q0 % 16, rows = kcp / 4 - q0, last_kb = kcp / kKb - 1;
    for (int64_t t = 0; t < ncp / kPanel * 8; ++t)  // (panel, plane) pairs, kcp * 32 B each
      for (int half = 0; half < 2; ++half)
        std::memset(out + t * kcp * kPanel + last_kb * 2 * 1024 + half * 1024 + first * kKb, 0,
                    static_cast<size_t>(rows * kKb));
  }
  // A 4 (k) x 16 (n) block of uint64 becomes, per byte plane j, the 64 bytes [n][k % 4]:
  //   x[t][h]: a byte transpose (vpermb) of row t's half h (8 columns), so that qword j holds
  //            plane j of those columns;
  //   unpack bytes then words of rows (0, 1) and (2, 3): 128-bit lane L of pr[h][w] holds plane
  //            2L + w / 2, columns 4 (w % 2) .. 4 (w % 2) + 3 of half h, as [n][t];
  //   two rounds of 128-bit lane shuffles gather plane j's four lanes (both halves, columns 0-7
  //            then 8-15) into one register.
  // Single-uop shuffles throughout: the two-source vpermt2b this replaced costs two.
  const __m512i order = _mm512_load_si512(kByteTranspose.data());
  constexpr __mmask64 kAll = ~__mmask64{0};
  // Column blocks at or past nc are skipped: they only reach output columns that are never
  // stored. Whole 4 x 16 blocks load without masks (the masks' arithmetic cost more than the
  // permutes on small shapes); the edges below K and nc use masked loads that zero the rest.
  for (int64_t q = 0; q < q0; ++q) {
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
      __m512i pr[2][4];
      for (int h = 0; h < 2; ++h) {
        __m512i x[4];
        for (int t = 0; t < 4; ++t) x[t] = _mm512_maskz_permutexvar_epi8(kAll, order, in[t][h]);
        const __m512i lo01 = _mm512_maskz_unpacklo_epi8(kAll, x[0], x[1]);
        const __m512i hi01 = _mm512_maskz_unpackhi_epi8(kAll, x[0], x[1]);
        const __m512i lo23 = _mm512_maskz_unpacklo_epi8(kAll, x[2], x[3]);
        const __m512i hi23 = _mm512_maskz_unpackhi_epi8(kAll, x[2], x[3]);
        pr[h][0] = _mm512_maskz_unpacklo_epi16(~__mmask32{0}, lo01, lo23);
        pr[h][1] = _mm512_maskz_unpackhi_epi16(~__mmask32{0}, lo01, lo23);
        pr[h][2] = _mm512_maskz_unpacklo_epi16(~__mmask32{0}, hi01, hi23);
        pr[h][3] = _mm512_maskz_unpackhi_epi16(~__mmask32{0}, hi01, hi23);
      }
      uint8_t* dst = out + (n0 / kPanel) * panel_bytes + (q / 16) * 2 * 1024 +
                     ((n0 % kPanel) / 16) * 1024 + (q % 16) * kKb;
      for (int o = 0; o < 2; ++o) {  // planes 2L + o
        // 0x88 picks lanes 0 and 2 of each source, 0xdd lanes 1 and 3.
        const __m512i a_lo = _mm512_maskz_shuffle_i64x2(0xff, pr[0][2 * o], pr[0][2 * o + 1], 0x88);
        const __m512i a_hi = _mm512_maskz_shuffle_i64x2(0xff, pr[0][2 * o], pr[0][2 * o + 1], 0xdd);
        const __m512i b_lo = _mm512_maskz_shuffle_i64x2(0xff, pr[1][2 * o], pr[1][2 * o + 1], 0x88);
        const __m512i b_hi = _mm512_maskz_shuffle_i64x2(0xff, pr[1][2 * o], pr[1][2 * o + 1], 0xdd);
        const int64_t plane_stride = kcp * kPanel;
        _mm512_storeu_si512(dst + (0 + o) * plane_stride,
                            _mm512_maskz_shuffle_i64x2(0xff, a_lo, b_lo, 0x88));
        _mm512_storeu_si512(dst + (4 + o) * plane_stride,
                            _mm512_maskz_shuffle_i64x2(0xff, a_lo, b_lo, 0xdd));
        _mm512_storeu_si512(dst + (2 + o) * plane_stride,
                            _mm512_maskz_shuffle_i64x2(0xff, a_hi, b_hi, 0x88));
        _mm512_storeu_si512(dst + (6 + o) * plane_stride,
                            _mm512_maskz_shuffle_i64x2(0xff, a_hi, b_hi, 0xdd));
      }
    }
  }
}

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

// acc[32][32] = sum_s 2^(8s) D_s for one 32 x 32 block over kcp bytes of K. `ap`, `bp`: the
// packed A and B panels (8 planes of 32 x kcp bytes each, tile by tile). Only the first 16 rows
// (columns) are computed unless two_rows (two_halves): edge blocks and 16-channel layers would
// otherwise spend half their products on padding.
//
// The diagonals are taken in pairs (s, s+1) on a 32 x 16 half of the block, so that B_j, which
// D_s and D_(s+1) both need (with A_(s-j) and A_(s+1-j)), is loaded once for two steps: 3 tile
// loads per 4 products instead of the 4 of a 2 x 2 block of one diagonal. On Sapphire Rapids
// the tile loads from L2 limit this kernel more than TDPBUUD does (a loop of products on
// resident tiles runs about twice as fast).
// out[r][c] += 2^(8s) D_s + 2^(8s+8) D_(s+1) for a 16 x 16 tile pair stored in ds, ds1; out
// has row stride kPanel.
__attribute__((target("avx512f"), always_inline)) inline void add_diagonal_pair(const uint32_t* ds,
                                                                                const uint32_t* ds1,
                                                                                int s,
                                                                                uint64_t* out) {
  for (int r = 0; r < 16; ++r)
    for (int c = 0; c < 16; ++c)
      out[r * kPanel + c] +=
          (uint64_t{ds[r * 16 + c]} << (8 * s)) + (uint64_t{ds1[r * 16 + c]} << (8 * s + 8));
}

// A stored diagonal pair not yet added into the block's accumulator.
struct PendingPair {
  int s = -1;
  bool second = false;                    // tiles 1 and 3 hold results too
  uint64_t* out[2] = {nullptr, nullptr};  // where tiles 0/2 and 1/3 go
};

__attribute__((target("avx512f"), always_inline)) inline void flush(
    PendingPair& p, const uint32_t (*buf)[16 * 16]) {
  if (p.s < 0) return;
  add_diagonal_pair(buf[0], buf[2], p.s, p.out[0]);
  if (p.second) add_diagonal_pair(buf[1], buf[3], p.s, p.out[1]);
  p.s = -1;
}

// The diagonal pairs (s, s+1) of a 32 x 32 block, each a K loop between zeroing and storing
// its accumulator tiles: tiles 0 and 2 hold D_s and D_(s+1) of the 16 x 16 output tile of rows
// 0-15, tiles 1 and 3 (with two_rows) of rows 16-31. The two column halves run one after the
// other. (Sharing each pair's K loop between the halves of a 16-row block, which tiles 1 and 3
// would allow, halves the waits for the tiles to drain but doubles the B data a K loop touches,
// and measured slower: the GEMM benchmark's 16 x 784 x 144.)
__attribute__((target("amx-tile,amx-int8,avx512f"))) void micro_block(const uint8_t* ap,
                                                                      const uint8_t* bp,
                                                                      int64_t kcp, uint64_t* acc,
                                                                      bool two_rows,
                                                                      bool two_halves) {
  // Tiles are stored into one of two buffers and added into acc while the next pair's first
  // products run, so the vector work overlaps TDPBUUD instead of waiting for it.
  alignas(64) uint32_t d[2][4][16 * 16];
  PendingPair pending;
  int cur = 0;
  std::fill(acc, acc + kPanel * kPanel, 0);
  const int64_t plane = kPanel * kcp;  // bytes of one byte plane of a packed panel
  for (int half = 0; half < (two_halves ? 2 : 1); ++half) {
    for (int s = 0; s < 8; s += 2) {
      _tile_zero(0);
      _tile_zero(2);
      if (two_rows) {
        _tile_zero(1);
        _tile_zero(3);
      }
      for (int64_t kb = 0; kb < kcp; kb += kKb) {
        const uint8_t* a = ap + kb * kPanel;
        const uint8_t* b = bp + half * 1024 + kb * kPanel;
        if (two_rows)
          VEIL_PAIR_K_STEP(VEIL_PAIR_STEP, VEIL_PAIR_LAST);
        else
          VEIL_PAIR_K_STEP(VEIL_PAIR_STEP_1ROW, VEIL_PAIR_LAST_1ROW);
        if (kb == 0) flush(pending, d[cur ^ 1]);
      }
      _tile_stored(0, d[cur][0], 64);
      _tile_stored(2, d[cur][2], 64);
      if (two_rows) {
        _tile_stored(1, d[cur][1], 64);
        _tile_stored(3, d[cur][3], 64);
      }
      pending.s = s;
      pending.second = two_rows;
      pending.out[0] = acc + half * 16;
      pending.out[1] = acc + 16 * kPanel + half * 16;
      cur ^= 1;
    }
  }
  flush(pending, d[cur ^ 1]);
}

#undef VEIL_PAIR_STEP
#undef VEIL_PAIR_LAST
#undef VEIL_PAIR_STEP_1ROW
#undef VEIL_PAIR_LAST_1ROW
#undef VEIL_PAIR_K_STEP

__attribute__((target("amx-tile"))) void load_tile_config() {
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) {
    cfg.colsb[t] = 64;
    cfg.rows[t] = 16;
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
  const int64_t kmax = round_up(std::min(kKc, k), kKb);
  const size_t a_need = static_cast<size_t>(8 * round_up(std::min(kMc, m), kPanel) * kmax);
  const size_t b_need =
      static_cast<size_t>(8 * kmax * round_up(std::min(kNc, j_end - j_begin), kPanel));
  if (apack.size() < a_need) apack.resize(a_need);
  if (bpack.size() < b_need) bpack.resize(b_need);
  alignas(64) uint64_t acc[kPanel * kPanel];
  load_tile_config();
  for (int64_t jc = j_begin; jc < j_end; jc += kNc) {
    const int64_t nc = std::min(kNc, j_end - jc);
    for (int64_t pc = 0; pc < k; pc += kKc) {
      const int64_t kc = std::min(kKc, k - pc), kcp = round_up(kc, kKb);
      // Zero the K padding of the operand with fewer rows (A) or columns (B) to pack.
      const bool zero_a = m < nc;
      pack_b(b + pc * ldb + jc, ldb, kc, nc, kcp, !zero_a, bpack.data());
      for (int64_t ic = 0; ic < m; ic += kMc) {
        const int64_t mc = std::min(kMc, m - ic);
        pack_a(a + ic * lda + pc, lda, mc, kc, kcp, zero_a, apack.data());
        for (int64_t n0 = 0; n0 < nc; n0 += kPanel) {
          const uint8_t* bp = bpack.data() + (n0 / kPanel) * 8 * kcp * kPanel;
          const int64_t nr = std::min(kPanel, nc - n0);
          for (int64_t r0 = 0; r0 < mc; r0 += kPanel) {
            const int64_t mr = std::min(kPanel, mc - r0);
            micro_block(apack.data() + (r0 / kPanel) * 8 * kPanel * kcp, bp, kcp, acc, mr > 16,
                        nr > 16);
            uint64_t* cb = c + (ic + r0) * ldc + jc + n0;
            // The first pass over K writes C (no zero fill beforehand), later ones add.
            if (!accumulate && pc == 0)
              for (int64_t r = 0; r < mr; ++r) std::copy_n(acc + r * kPanel, nr, cb + r * ldc);
            else
              for (int64_t r = 0; r < mr; ++r)
                for (int64_t col = 0; col < nr; ++col) cb[r * ldc + col] += acc[r * kPanel + col];
          }
        }
      }
    }
  }
  release_tiles();
}

}  // namespace veil::mpc::detail
