// Private to src/mpc: the Intel AMX path of gemm_u64 and conv2d_u64 (ring_gemm_amx.cpp,
// ring_conv_amx.cpp), and the packed B layout both of them write.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace veil::mpc::detail {

// True when the CPU has AMX-TILE + AMX-INT8 + AVX-512 VBMI and the kernel granted this process
// the AMX tile state (arch_prctl ARCH_REQ_XCOMP_PERM, Linux >= 5.16). Checked once.
bool amx_ring_gemm_usable();

inline constexpr int64_t kAmxPanel = 32;  // rows of A, columns of B per packed panel: 2 tiles
inline constexpr int64_t kAmxStep = 64;   // bytes of K per tile step: one row of an A tile

// How a pass of kc over K is laid out. Each byte plane gets `full` whole 64-byte steps of K
// (a tile's width); the rest, `tail` bytes (rounded up to 4, a VNNI row), would waste most of a
// step in every one of the 36 plane products if each plane were padded to a whole step (K = 144
// would pad to 192, a third more TDPBUUD). Instead the tails of the eight planes are laid end to
// end, A's in plane order and B's in reverse, so that D_s's tail, sum_(i+j=s) A_i B_j, is one
// window of (s+1) tail bytes: A's first (s+1) tails against B's last (s+1). That is
// ceil((s+1) tail / 64) tile steps per diagonal (12 instead of 36 over all diagonals for
// K = 144). The window's last step reaches past B's end into 16 zero rows.
struct PassShape {
  explicit PassShape(int64_t kc)
      : full(kc / kAmxStep),
        tail((kc % kAmxStep + 3) / 4 * 4),
        tail_steps((tail + 7) / 8),
        tail_rows(tail > 0 ? 2 * tail + 16 : 0) {}

  int64_t full;        // whole 64-byte steps of K per plane
  int64_t tail;        // bytes of K past them, a multiple of 4 (0 to 64)
  int64_t tail_steps;  // 64-byte steps of A's concatenated tails: 8 tails
  int64_t tail_rows;   // VNNI rows of B's concatenated tails per 16 columns, zero rows included

  // Bytes of one byte plane's whole steps in a packed 32-row (32-column) panel.
  int64_t plane() const { return full * kAmxPanel * kAmxStep; }
  // Packed B's planes are one 64-byte line further apart than their size. Without the skew,
  // for K = 128-191 (plane() = 4 KiB) the eight stores of a packed row all land in the same L1
  // set and 4 KiB apart from the B rows being read, and the kernel's tile loads of different
  // planes contend for the same sets. Packing B alone (ad-hoc loop, 784 x 144 and 120 x 400):
  // 21.7 -> 18.2-19.1 us and 8.3-8.9 -> 6.8-7.0 us.
  int64_t b_plane() const { return plane() + kAmxStep; }
  int64_t a_panel() const { return 8 * plane() + tail_steps * kAmxPanel * kAmxStep; }
  int64_t b_panel() const { return 8 * b_plane() + 2 * tail_rows * kAmxStep; }
  // Tile steps of D_s's tail window.
  int64_t steps(int s) const { return ((s + 1) * tail + kAmxStep - 1) / kAmxStep; }
};

// Packed B, per 32-column panel (ps.b_panel() bytes each): for each byte plane the VNNI layout
// TDPBUUD reads, a row holding k = 4q..4q+3 of 16 columns as [column][k % 4], the columns in
// the order 0, 8, 1, 9, ..., 7, 15 (vnni_rows_4x16 produces that order, and the kernel's
// combine undoes it for free). The whole steps are stored tile by tile, [plane][step][half of
// the panel][16 rows of 64 B], the planes b_plane() bytes apart; then per half the tails of
// planes 7..0, end to end, and 16 zero rows. b_row tells where row q of the 16 columns at n0 (a
// multiple of 16, relative to the first panel) goes: plane j's 64 bytes at dst + j * plane_stride.
struct BRow {
  uint8_t* dst;
  int64_t plane_stride;
};
inline BRow b_row(uint8_t* out, const PassShape& ps, int64_t q, int64_t n0) {
  uint8_t* panel = out + (n0 / kAmxPanel) * ps.b_panel();
  const int64_t half = (n0 % kAmxPanel) / 16, q_main = ps.full * kAmxStep / 4;
  if (q < q_main)
    return {panel + (q / 16) * 2 * 1024 + half * 1024 + (q % 16) * kAmxStep, ps.b_plane()};
  const int64_t tail_q = ps.tail / 4;
  return {panel + 8 * ps.b_plane() + half * ps.tail_rows * kAmxStep +
              (7 * tail_q + q - q_main) * kAmxStep,
          -tail_q * kAmxStep};
}

// Zeroes the 16 rows after the tails of the first nc columns' halves.
inline void zero_b_tail_ends(uint8_t* out, const PassShape& ps, int64_t nc) {
  if (ps.tail == 0) return;
  for (int64_t n0 = 0; n0 < nc; n0 += 16)
    std::memset(out + (n0 / kAmxPanel) * ps.b_panel() + 8 * ps.b_plane() +
                    ((n0 % kAmxPanel) / 16) * ps.tail_rows * kAmxStep + 2 * ps.tail * kAmxStep,
                0, 16 * kAmxStep);
}

// in[t][h] = columns 8h..8h+7 of row t of a 4 x 16 block of uint64 at p (rows `stride`
// apart); rows at or past `rows` and columns at or past `cols` read as zero, without being
// touched (masked loads).
__attribute__((target("avx512f"))) inline void load_4x16(const uint64_t* p, int64_t stride,
                                                         int64_t rows, int64_t cols,
                                                         __m512i (&in)[4][2]) {
  for (int t = 0; t < 4; ++t)
    for (int h = 0; h < 2; ++h) {
      const int64_t valid = t < rows ? std::clamp<int64_t>(cols - 8 * h, 0, 8) : 0;
      in[t][h] = _mm512_maskz_loadu_epi64(static_cast<__mmask8>((1u << valid) - 1),
                                          p + t * stride + 8 * h);
    }
}

// vnni_rows_4x16 leaves the 16 columns of a row in the order 0, 8, 1, 9, ..., 7, 15; as 32-bit
// words, this permutation (vpermd indices) puts them back in column order.
alignas(64) inline constexpr int32_t kVnniToColumnOrder[16] = {0, 2, 4, 6, 8, 10, 12, 14,
                                                               1, 3, 5, 7, 9, 11, 13, 15};

// A 4 (k) x 16 (n) block of uint64, in[t][h] = row t's columns 8h..8h+7, -> per byte plane j
// one 64-byte VNNI row, out[j]. Read as bit fields, the block's 512 bytes are indexed by the
// register (k1 k0 h) and the byte within it (n2 n1 of the 128-bit lane, then n0 and the plane
// bits p2 p1 p0), and the rows want the plane in the register and (n, k1 k0) in the byte. Four
// stages each trade one register bit for one byte bit (Hacker's Delight 7-3, on bytes):
//   1. a masked shift swap of bytes within qwords, p0 <-> k0 (shifts and vpternlog, which run
//      beside the shuffles on port 0);
//   2-4. unpacks of words (n0 out, k1 in), dwords (p2 out, h in) and qwords (p1 out, n0 in),
//      single-uop in-lane shuffles.
// No stage crosses a 128-bit lane, so n2 n1 stay where they are and the byte index ends as
// (n2 n1 n0 h k1 k0): row column 2 (n % 8) + h holds column n. The vpermb and lane-shuffle
// network this replaced took 40 shuffle-port uops per block, this one 24 and 16 others.
// (All-ones masked forms: GCC 12 warns, -Wmaybe-uninitialized, about the unmasked forms'
// undefined pass-through operand.)
__attribute__((target("avx512f,avx512bw"))) inline void vnni_rows_4x16(const __m512i (&in)[4][2],
                                                                       __m512i (&out)[8]) {
  const __m512i even_bytes = _mm512_set1_epi16(0x00ff);
  constexpr __mmask32 kAll32 = ~__mmask32{0};
  constexpr __mmask16 kAll16 = 0xffff;
  constexpr __mmask8 kAll8 = 0xff;
  // 1. y[p0][k1][h]: bytes with plane bit p0 of rows 2 k1 (low byte) and 2 k1 + 1 (high).
  //    vpternlog 0xe4 = (C & A) | (~C & B) with C = even_bytes.
  __m512i y[2][2][2];
  for (int k1 = 0; k1 < 2; ++k1)
    for (int h = 0; h < 2; ++h) {
      const __m512i lo = in[2 * k1][h], hi = in[2 * k1 + 1][h];
      y[0][k1][h] =
          _mm512_ternarylogic_epi64(lo, _mm512_maskz_slli_epi16(kAll32, hi, 8), even_bytes, 0xe4);
      y[1][k1][h] =
          _mm512_ternarylogic_epi64(_mm512_maskz_srli_epi16(kAll32, lo, 8), hi, even_bytes, 0xe4);
    }
  // 2. z[p0][n0][h]: words of rows k1 = 0, 1 interleaved; n0 leaves for lo / hi.
  __m512i z[2][2][2];
  for (int p0 = 0; p0 < 2; ++p0)
    for (int h = 0; h < 2; ++h) {
      z[p0][0][h] = _mm512_maskz_unpacklo_epi16(kAll32, y[p0][0][h], y[p0][1][h]);
      z[p0][1][h] = _mm512_maskz_unpackhi_epi16(kAll32, y[p0][0][h], y[p0][1][h]);
    }
  // 3. w[p0][n0][p2]: dwords of the halves h = 0, 1 interleaved; p2 leaves.
  __m512i w[2][2][2];
  for (int p0 = 0; p0 < 2; ++p0)
    for (int n = 0; n < 2; ++n) {
      w[p0][n][0] = _mm512_maskz_unpacklo_epi32(kAll16, z[p0][n][0], z[p0][n][1]);
      w[p0][n][1] = _mm512_maskz_unpackhi_epi32(kAll16, z[p0][n][0], z[p0][n][1]);
    }
  // 4. plane p2 p1 p0: qwords of n0 = 0, 1 interleaved; p1 leaves.
  for (int p0 = 0; p0 < 2; ++p0)
    for (int p2 = 0; p2 < 2; ++p2) {
      out[4 * p2 + p0] = _mm512_maskz_unpacklo_epi64(kAll8, w[p0][0][p2], w[p0][1][p2]);
      out[4 * p2 + 2 + p0] = _mm512_maskz_unpackhi_epi64(kAll8, w[p0][0][p2], w[p0][1][p2]);
    }
}

// In place: r[q] (qword j) -> r[j] (qword q), an 8 x 8 transpose of uint64 in three rounds of
// two-source shuffles (pairs of qwords, then 128-bit lanes twice).
__attribute__((target("avx512f"))) inline void transpose_8x8_u64(__m512i (&r)[8]) {
  __m512i u[8];
  for (int i = 0; i < 8; i += 2) {
    u[i] = _mm512_maskz_unpacklo_epi64(0xff, r[i], r[i + 1]);
    u[i + 1] = _mm512_maskz_unpackhi_epi64(0xff, r[i], r[i + 1]);
  }
  // 0x88 picks 128-bit lanes 0 and 2 of each source, 0xdd lanes 1 and 3.
  for (int i = 0; i < 8; i += 4)
    for (int o = 0; o < 2; ++o) {
      r[i + o] = _mm512_maskz_shuffle_i64x2(0xff, u[i + o], u[i + 2 + o], 0x88);
      r[i + 2 + o] = _mm512_maskz_shuffle_i64x2(0xff, u[i + o], u[i + 2 + o], 0xdd);
    }
  for (int o = 0; o < 4; ++o) {
    u[o] = _mm512_maskz_shuffle_i64x2(0xff, r[o], r[4 + o], 0x88);
    u[4 + o] = _mm512_maskz_shuffle_i64x2(0xff, r[o], r[4 + o], 0xdd);
  }
  for (int q = 0; q < 8; ++q) r[q] = u[q];
}

// Packed A, per 32-row panel (ps.a_panel() bytes each): [plane][step][row][64 B] for the whole
// steps, then the tails, [step][row][64 B], each row holding the tails of planes 0..7 end to
// end. pack_a_row writes row r (counted from the first panel's first row) from its kc elements.
void pack_a_row(const uint64_t* row, int64_t kc, const PassShape& ps, uint8_t* out, int64_t r);

// Writes packed A panels: rows [i0, i0 + mc), K [pc, pc + kc) of a product's A operand into
// `out` (row i0 first), with pack_a_row. Rows past mc only reach output rows never stored.
class APanelSource {
 public:
  virtual ~APanelSource() = default;
  virtual void pack(int64_t i0, int64_t mc, int64_t pc, int64_t kc, const PassShape& ps,
                    uint8_t* out) const = 0;
};

// Writes packed B panels: columns [jc, jc + nc) of rows [pc, pc + kc) of a product's B operand
// into `out` as b_row lays them out, zeroing rows past kc and columns past nc in every 16-column
// block it writes, and the tail ends (zero_b_tail_ends).
class BPanelSource {
 public:
  virtual ~BPanelSource() = default;
  virtual void pack(int64_t pc, int64_t kc, int64_t jc, int64_t nc, const PassShape& ps,
                    uint8_t* out) const = 0;
};

// C[:, j_begin:j_end] (+)= A * B[:, j_begin:j_end] over Z_2^64 with the AMX int8 engine. Only
// call when amx_ring_gemm_usable().
void gemm_u64_amx_columns(int64_t m, int64_t j_begin, int64_t j_end, int64_t k, const uint64_t* a,
                          int64_t lda, const uint64_t* b, int64_t ldb, uint64_t* c, int64_t ldc,
                          bool accumulate);
// Packs B[0:kc, 0:nc] (row-major, leading dimension ldb) into panels, as a BPanelSource does.
void pack_b_matrix(const uint64_t* b, int64_t ldb, int64_t kc, int64_t nc, const PassShape& ps,
                   uint8_t* out);
// The same with A and B from packers, K cut into passes of at most max_pass (<= 0: the longest
// the exactness bound allows, 2048), at whole 64-byte steps with K's tail in the last one.
void gemm_u64_amx_packed(int64_t m, int64_t j_begin, int64_t j_end, int64_t k,
                         const APanelSource& a, const BPanelSource& b, uint64_t* c, int64_t ldc,
                         bool accumulate, int64_t max_pass = 0);

}  // namespace veil::mpc::detail
