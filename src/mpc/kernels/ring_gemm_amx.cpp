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

#include "amx_tile_kernel.hpp"
#include "veil/core/aligned.hpp"
#include "veil/core/cpu.hpp"

namespace veil::mpc::detail {
namespace {

constexpr int64_t kKc = 2048;  // K per pass at most (see the exactness note above)
// K per pass of the matrix GEMM at most: shorter passes keep a 64-row A block and a B panel
// nearer the core (at K = 208, 106 KiB and 53 KiB) at the cost of draining the accumulators once
// per pass. Measured against single passes, six runs interleaved (`mpc_bench
// --benchmark_filter=RingGemm/`, medians): 64x1024x576 1.00 ms against 1.19, 128x256x1152 0.90
// against 1.01, 256x64x2304 1.02 against 1.24, 10x120x400 27.5 us against 29.5; 32x196x288 63
// us against 61. Cutting the passes at whole 64-byte steps, K's tail in the last pass only (see
// gemm_u64_amx_packed), then took 10x120x400 from 29.5 to 26.8 us and 512x49x4608 from 4.71 to
// 4.29 ms (five runs interleaved). The convolution keeps passes of up to kKc: it reorders its
// weights once per pass, and its K = 288 and 576 layers took 5-10 % longer with 208.
constexpr int64_t kGemmPass = 208;
// With at most 16 rows of A (one row of tiles: a small batch, a 16-channel layer) each packed B
// panel feeds a single block, whose four sweeps over it (one per diagonal pair) then run from
// L1 only if the panel is short: passes of one 64-byte step (a 32-column panel of 16-20 KiB)
// measured faster, paired against the float GEMM (`mpc_bench --benchmark_filter=Paired`, three
// runs, ring / float): 16 x 784 x 144 3.46 -> 3.25x, 10 x 120 x 400 3.53 -> 3.37x. With 32 or
// 64 rows they were slower (32 x 196 x 288 2.8 -> 3.15x): the drains of twice the
// accumulators outweigh it.
constexpr int64_t kShortPass = kKb;
constexpr int64_t kMc = 64;   // rows of A per packed block: 8 planes x 64 x 2048 B = 1 MiB (L2)
constexpr int64_t kNc = 256;  // columns of B per packed block
static_assert(8 * kKc * 255 * 255 < (int64_t{1} << 32), "D_s must not wrap in uint32");

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

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

// Byte i of src[e] -> dst[i * plane_stride + (e / 64) * seg_stride + e % 64], for e < len (a
// multiple of 64: pack_a_row handles the tail): the eight byte planes of a row, cut into the
// 64-byte segments that are the rows of A tiles. `dst` must be 64-byte aligned.
__attribute__((target("avx512f,avx512bw,avx512vbmi"))) void split_bytes(const uint64_t* src,
                                                                        int64_t len, uint8_t* dst,
                                                                        int64_t plane_stride,
                                                                        int64_t seg_stride) {
  const __m512i idx = _mm512_load_si512(kByteTranspose.data());
  // 64 elements -> 8 planes of 64 bytes. After the per-register byte transpose,
  // register q holds plane p of elements 8q..8q+7 in qword p, so an 8 x 8 qword transpose
  // (unpack, then two rounds of 128-bit lane shuffles) gathers each plane into one register.
  // Compared with 8-byte scalar stores this keeps A packing off the profile of tall GEMMs.
  for (int64_t e = 0; e < len; e += 64) {
    __m512i x[8];
    for (int q = 0; q < 8; ++q)
      x[q] = _mm512_maskz_permutexvar_epi8(~__mmask64{0}, idx, _mm512_loadu_si512(src + e + 8 * q));
    transpose_8x8_u64(x);  // x[p]: plane p of all 64 elements
    uint8_t* at = dst + (e / 64) * seg_stride;
    for (int p = 0; p < 8; ++p) _mm512_store_si512(at + p * plane_stride, x[p]);
  }
}

}  // namespace

// Layout of a packed 32-row panel of A: [plane][kb][row][64 B] for the whole steps, so that
// each A tile (16 rows of 64 B of K) is 1 KiB of contiguous memory: tile loads then stream
// instead of striding, which measured faster on Sapphire Rapids (`build/bench/mpc_bench
// --benchmark_filter=RingGemm`). Then the tails (PassShape): [step][row][64 B], row r holding
// the tails of planes 0..7 end to end.
//
// Rows past mc are not written: they only reach output rows that are never stored. Bytes past
// K in the tails need not be zero either: B is zero there.
__attribute__((target("avx512f,avx512bw,avx512vbmi"))) void pack_a_row(const uint64_t* row,
                                                                       int64_t kc,
                                                                       const PassShape& ps,
                                                                       uint8_t* out, int64_t r) {
  const int64_t main = ps.full * kKb;
  uint8_t* panel = out + (r / kPanel) * ps.a_panel();
  split_bytes(row, main, panel + (r % kPanel) * kKb, ps.plane(), kPanel * kKb);
  if (ps.tail == 0) return;
  // The row's last kc - main (< 64) elements -> planes[i][e]: eight at a time (the masked
  // load zeroes past K), a byte transpose each, as in split_bytes.
  alignas(64) uint8_t planes[8][kKb];
  const __m512i order = _mm512_load_si512(kByteTranspose.data());
  for (int64_t e = 0; e < kc - main; e += 8) {
    const __mmask8 valid = static_cast<__mmask8>((1u << std::min<int64_t>(8, kc - main - e)) - 1);
    alignas(64) uint64_t split[8];
    _mm512_store_si512(
        split, _mm512_maskz_permutexvar_epi8(~__mmask64{0}, order,
                                             _mm512_maskz_loadu_epi64(valid, row + main + e)));
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

namespace {

// A given as a row-major matrix.
class MatrixRows final : public APanelSource {
 public:
  MatrixRows(const uint64_t* a, int64_t lda) : a_(a), lda_(lda) {}
  void pack(int64_t i0, int64_t mc, int64_t pc, int64_t kc, const PassShape& ps,
            uint8_t* out) const override {
    for (int64_t r = 0; r < mc; ++r) pack_a_row(a_ + (i0 + r) * lda_ + pc, kc, ps, out, r);
  }

 private:
  const uint64_t* a_;
  int64_t lda_;
};

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
        load_4x16(bq + n0, ldb, rows, nc - n0, in);
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

}  // namespace

bool amx_ring_gemm_usable() {
  static const bool usable = detect();
  return usable;
}

void pack_b_matrix(const uint64_t* b, int64_t ldb, int64_t kc, int64_t nc, const PassShape& ps,
                   uint8_t* out) {
  pack_b(b, ldb, kc, nc, ps, out);
}

void gemm_u64_amx_columns(int64_t m, int64_t j_begin, int64_t j_end, int64_t k, const uint64_t* a,
                          int64_t lda, const uint64_t* b, int64_t ldb, uint64_t* c, int64_t ldc,
                          bool accumulate) {
  gemm_u64_amx_packed(m, j_begin, j_end, k, MatrixRows(a, lda), MatrixPanels(b, ldb), c, ldc,
                      accumulate, m <= 16 ? kShortPass : kGemmPass);
}

void gemm_u64_amx_packed(int64_t m, int64_t j_begin, int64_t j_end, int64_t k,
                         const APanelSource& a, const BPanelSource& b, uint64_t* c, int64_t ldc,
                         bool accumulate, int64_t max_pass) {
  if (m == 0 || j_end <= j_begin) return;
  if (max_pass <= 0 || max_pass > kKc) max_pass = kKc;
  if (k == 0) {
    if (!accumulate)
      for (int64_t i = 0; i < m; ++i) std::fill(c + i * ldc + j_begin, c + i * ldc + j_end, 0);
    return;
  }
  // Per-thread packing buffers, kept between calls: a party runs thousands of GEMMs and fresh
  // multi-megabyte buffers would cost page faults each time. Cache-line aligned, because every
  // tile row is 64 bytes and a misaligned one is a split load (aligned.hpp).
  thread_local AlignedVector<uint8_t> apack, bpack;
  // Passes of equal whole 64-byte steps, K's tail (k % 64) in the last one: every pass with a
  // tail spends products on its tail windows (PassShape), and a short last pass would drain the
  // accumulators for little work. The last pass is the widest (PassShape's panels grow with kc).
  const int64_t full = k / kKb, tail = k % kKb;
  int64_t pass_k = k;
  if (full > 0) {
    const int64_t cap_steps = std::max<int64_t>(1, (max_pass - tail) / kKb);
    const int64_t passes = (full + cap_steps - 1) / cap_steps;
    pass_k = (full + passes - 1) / passes * kKb;
  }
  const PassShape widest(std::min(pass_k + tail, k));
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
  for (int64_t pc = 0, kc = 0; pc < k; pc += kc) {
    kc = k - pc - pass_k < kKb ? k - pc : pass_k;  // the tail joins the last pass
    const PassShape ps(kc);
    // The first pass over K writes C (no zero fill beforehand), later ones add.
    const bool add = accumulate || pc > 0;
    if (small_m) a.pack(0, m, pc, kc, ps, apack.data());
    for (int64_t jc = j_begin; jc < j_end; jc += nc_block) {
      const int64_t nc = std::min(nc_block, j_end - jc);
      b.pack(pc, kc, jc, nc, ps, bpack.data());
      for (int64_t ic = 0; ic < m; ic += kMc) {
        const int64_t mc = std::min(kMc, m - ic);
        if (!small_m) a.pack(ic, mc, pc, kc, ps, apack.data());
        for (int64_t n0 = 0; n0 < nc; n0 += kPanel) {
          const uint8_t* bp = bpack.data() + (n0 / kPanel) * ps.b_panel();
          const int nr = static_cast<int>(std::min(kPanel, nc - n0));
          for (int64_t r0 = 0; r0 < mc; r0 += kPanel) {
            const int mr = static_cast<int>(std::min(kPanel, mc - r0));
            uint64_t* cb = c + (ic + r0) * ldc + jc + n0;
            const OutTile left{cb, ldc, mr, std::min(nr, 16), add};
            const OutTile right{cb + 16, ldc, mr, std::max(nr - 16, 0), add};
            const uint8_t* ap = apack.data() + (r0 / kPanel) * ps.a_panel();
            ATiles tiles;
            tiles.base = ap, tiles.plane = ps.plane(), tiles.steps = ps.full;
            tiles.tails = ap + 8 * ps.plane();
            kernel.block(tiles, bp, ps, mr > 16, left, right);
          }
        }
      }
    }
  }
  kernel.finish();
  release_tiles();
}

}  // namespace veil::mpc::detail
