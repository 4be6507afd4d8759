#include "veil/mpc/kernels/ring_kernels.hpp"

#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "ring_conv_amx.hpp"
#include "ring_gemm_amx.hpp"
#include "ring_gemm_avx2.hpp"
#include "veil/core/aligned.hpp"
#include "veil/core/cpu.hpp"
#include "veil/core/error.hpp"

namespace veil::mpc {
namespace {

// Goto/BLIS-style blocking (Goto & van de Geijn, "Anatomy of high-performance matrix
// multiplication", TOMS 2008): an MR x NR register tile, a KC x NR panel of B in L1, an MC x KC
// block of A in L2.
constexpr int64_t kMr = detail::kRingMr, kNr = detail::kRingNr;
constexpr int64_t kKc = 256, kMc = 128, kNc = 512;

// Packs A[ic:ic+mc, pc:pc+kc] into row panels of kMr rows, k-major within a panel, zero-padded.
void pack_a(const uint64_t* a, int64_t lda, int64_t mc, int64_t kc, uint64_t* out) {
  for (int64_t i0 = 0; i0 < mc; i0 += kMr) {
    int64_t mr = std::min(kMr, mc - i0);
    for (int64_t p = 0; p < kc; ++p) {
      for (int64_t i = 0; i < mr; ++i) out[p * kMr + i] = a[(i0 + i) * lda + p];
      for (int64_t i = mr; i < kMr; ++i) out[p * kMr + i] = 0;
    }
    out += kc * kMr;
  }
}

// Packs B[pc:pc+kc, jc:jc+nc] into column panels of kNr columns, zero-padded. When `split`,
// each step's kNr values are followed by the same with their 32-bit halves swapped (the AVX2
// micro-kernel's layout).
template <bool kSplit>
void pack_b(const uint64_t* b, int64_t ldb, int64_t kc, int64_t nc, uint64_t* out) {
  constexpr int64_t stride = kSplit ? 2 * kNr : kNr;
  for (int64_t j0 = 0; j0 < nc; j0 += kNr) {
    int64_t nr = std::min(kNr, nc - j0);
    for (int64_t p = 0; p < kc; ++p) {
      const uint64_t* row = b + p * ldb + j0;
      uint64_t* o = out + p * stride;
      if (nr == kNr) {
        std::memcpy(o, row, kNr * sizeof(uint64_t));
      } else {
        for (int64_t j = 0; j < nr; ++j) o[j] = row[j];
        for (int64_t j = nr; j < kNr; ++j) o[j] = 0;
      }
      if (kSplit)
        for (int64_t j = 0; j < kNr; ++j) o[kNr + j] = o[j] << 32 | o[j] >> 32;
    }
    out += kc * stride;
  }
}

using MicroKernel = void (*)(int64_t kc, int64_t mr, const uint64_t* ap, const uint64_t* bp,
                             uint64_t* tile);

// tile[kMr][kNr] = sum_p ap[p][i] * bp[p][j]
void micro_portable(int64_t kc, int64_t /*mr*/, const uint64_t* ap, const uint64_t* bp,
                    uint64_t* tile) {
  uint64_t acc[kMr][kNr] = {};
  for (int64_t p = 0; p < kc; ++p) {
    const uint64_t* av = ap + p * kMr;
    const uint64_t* bv = bp + p * kNr;
    for (int64_t i = 0; i < kMr; ++i)
      for (int64_t j = 0; j < kNr; ++j) acc[i][j] += av[i] * bv[j];
  }
  std::memcpy(tile, acc, sizeof(acc));
}

__attribute__((target("avx512f,avx512dq"))) void micro_avx512(int64_t kc, int64_t /*mr*/,
                                                              const uint64_t* ap,
                                                              const uint64_t* bp, uint64_t* tile) {
  __m512i c0 = _mm512_setzero_si512(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0,
          c7 = c0;
  for (int64_t p = 0; p < kc; ++p) {
    __m512i b = _mm512_loadu_si512(bp + p * kNr);
    const uint64_t* av = ap + p * kMr;
    // A macro, not a lambda: lambdas do not inherit the target attribute.
#define VEIL_STEP(c, i) \
  c = _mm512_add_epi64(c, _mm512_mullo_epi64(_mm512_set1_epi64(static_cast<long long>(av[i])), b))
    VEIL_STEP(c0, 0);
    VEIL_STEP(c1, 1);
    VEIL_STEP(c2, 2);
    VEIL_STEP(c3, 3);
    VEIL_STEP(c4, 4);
    VEIL_STEP(c5, 5);
    VEIL_STEP(c6, 6);
    VEIL_STEP(c7, 7);
#undef VEIL_STEP
  }
  _mm512_storeu_si512(tile + 0 * kNr, c0);
  _mm512_storeu_si512(tile + 1 * kNr, c1);
  _mm512_storeu_si512(tile + 2 * kNr, c2);
  _mm512_storeu_si512(tile + 3 * kNr, c3);
  _mm512_storeu_si512(tile + 4 * kNr, c4);
  _mm512_storeu_si512(tile + 5 * kNr, c5);
  _mm512_storeu_si512(tile + 6 * kNr, c6);
  _mm512_storeu_si512(tile + 7 * kNr, c7);
}

// C[0:M, j_begin:j_end] (+)= A * B for M <= kMr rows, straight from A and B: each row of B is
// loaded once per 16 columns and multiplied by the M broadcast elements of A's column, into
// 2M accumulators. The packed 8 x 8 kernel would pad a batch-1 product to 8 rows (8x the
// vpmullq) and copy B first: LeNet-5's 1 x 120 x 400 took 45 us that way against oneDNN's 3.
template <int M>
__attribute__((target("avx512f,avx512dq"))) void gemm_rows_avx512(int64_t j_begin, int64_t j_end,
                                                                  int64_t k, const uint64_t* a,
                                                                  int64_t lda, const uint64_t* b,
                                                                  int64_t ldb, uint64_t* c,
                                                                  int64_t ldc, bool accumulate) {
  for (int64_t j = j_begin; j < j_end; j += 16) {
    const int64_t w = std::min<int64_t>(16, j_end - j);
    const __mmask8 lo = static_cast<__mmask8>((1u << std::min<int64_t>(w, 8)) - 1);
    const __mmask8 hi = static_cast<__mmask8>((1u << std::max<int64_t>(w - 8, 0)) - 1);
    __m512i acc[M][2];
    for (int i = 0; i < M; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_si512();
    for (int64_t p = 0; p < k; ++p) {
      const uint64_t* row = b + p * ldb + j;
      const __m512i b0 = _mm512_maskz_loadu_epi64(lo, row);
      const __m512i b1 = _mm512_maskz_loadu_epi64(hi, row + 8);
      for (int i = 0; i < M; ++i) {
        const __m512i x = _mm512_set1_epi64(static_cast<long long>(a[i * lda + p]));
        acc[i][0] = _mm512_add_epi64(acc[i][0], _mm512_mullo_epi64(x, b0));
        acc[i][1] = _mm512_add_epi64(acc[i][1], _mm512_mullo_epi64(x, b1));
      }
    }
    for (int i = 0; i < M; ++i) {
      uint64_t* out = c + i * ldc + j;
      if (accumulate) {
        acc[i][0] = _mm512_add_epi64(acc[i][0], _mm512_maskz_loadu_epi64(lo, out));
        acc[i][1] = _mm512_add_epi64(acc[i][1], _mm512_maskz_loadu_epi64(hi, out + 8));
      }
      _mm512_mask_storeu_epi64(out, lo, acc[i][0]);
      _mm512_mask_storeu_epi64(out + 8, hi, acc[i][1]);
    }
  }
}

using RowsKernel = void (*)(int64_t, int64_t, int64_t, const uint64_t*, int64_t, const uint64_t*,
                            int64_t, uint64_t*, int64_t, bool);
constexpr RowsKernel kRowsKernels[kMr] = {
    gemm_rows_avx512<1>, gemm_rows_avx512<2>, gemm_rows_avx512<3>, gemm_rows_avx512<4>,
    gemm_rows_avx512<5>, gemm_rows_avx512<6>, gemm_rows_avx512<7>, gemm_rows_avx512<8>};

bool avx512_usable() { return cpu_features().avx512f && cpu_features().avx512dq; }

// Which kernel runs a slab. AMX pays once both M and N exceed the vector kernel's 8 x 8 register
// tile, even though its 16-row tiles then carry padding (measured on LeNet-5's fully connected
// shapes, docs/RESULTS.md; with M = 8 the vector kernel was faster); smaller products stay on
// the vector units.
RingGemmKernel resolve(RingGemmKernel want, int64_t m, int64_t n, int64_t k) {
  if (want != RingGemmKernel::Auto) return want;
  // AMX and AVX-512 only within the kernel path the user allows (--kernels, VEIL_KERNELS).
  const bool wide = kernel_path_allows(KernelPath::Avx512);
  if (wide && ring_gemm_kernel_available(RingGemmKernel::Amx) && m > 8 && n > 8 && k >= 64)
    return RingGemmKernel::Amx;
  if (wide && ring_gemm_kernel_available(RingGemmKernel::Avx512)) return RingGemmKernel::Avx512;
  if (kernel_path_allows(KernelPath::Avx2) && ring_gemm_kernel_available(RingGemmKernel::Avx2))
    return RingGemmKernel::Avx2;
  return RingGemmKernel::Portable;
}

// C[:, j_begin:j_end] (+)= A * B[:, j_begin:j_end]
void gemm_columns(RingGemmKernel which, int64_t m, int64_t j_begin, int64_t j_end, int64_t k,
                  const uint64_t* a, int64_t lda, const uint64_t* b, int64_t ldb, uint64_t* c,
                  int64_t ldc, bool accumulate) {
  if (which == RingGemmKernel::Amx) {
    detail::gemm_u64_amx_columns(m, j_begin, j_end, k, a, lda, b, ldb, c, ldc, accumulate);
    return;
  }
  if (which == RingGemmKernel::Avx512 && m <= kMr) {
    if (m > 0) kRowsKernels[m - 1](j_begin, j_end, k, a, lda, b, ldb, c, ldc, accumulate);
    return;
  }
  if (which == RingGemmKernel::Avx2 && m <= kMr) {
    detail::gemm_rows_avx2(m, j_begin, j_end, k, a, lda, b, ldb, c, ldc, accumulate);
    return;
  }
  const bool split = which == RingGemmKernel::Avx2;
  const MicroKernel mk = which == RingGemmKernel::Avx512 ? micro_avx512
                         : split                         ? detail::micro_avx2
                                                         : micro_portable;
  if (!accumulate)
    for (int64_t i = 0; i < m; ++i) std::fill(c + i * ldc + j_begin, c + i * ldc + j_end, 0);
  if (k == 0) return;
  // Per-thread packing buffers kept between calls, as in the AMX kernel: a party runs thousands
  // of GEMMs, and 1.25 MiB allocated and zero-filled per call showed up on small products (the
  // packers write every element, padding included). Aligned so the micro-kernel's 64-byte loads
  // of packed panels never straddle cache lines.
  thread_local AlignedVector<uint64_t> bpack(
      static_cast<size_t>(2 * kKc * ((kNc + kNr - 1) / kNr * kNr)));
  const int64_t bstride = split ? 2 * kNr : kNr;  // per step of a packed B panel
  thread_local AlignedVector<uint64_t> apack(
      static_cast<size_t>(kKc * ((kMc + kMr - 1) / kMr * kMr)));
  alignas(64) uint64_t tile[kMr * kNr];
  for (int64_t jc = j_begin; jc < j_end; jc += kNc) {
    int64_t nc = std::min(kNc, j_end - jc);
    for (int64_t pc = 0; pc < k; pc += kKc) {
      int64_t kc = std::min(kKc, k - pc);
      if (split)
        pack_b<true>(b + pc * ldb + jc, ldb, kc, nc, bpack.data());
      else
        pack_b<false>(b + pc * ldb + jc, ldb, kc, nc, bpack.data());
      for (int64_t ic = 0; ic < m; ic += kMc) {
        int64_t mc = std::min(kMc, m - ic);
        pack_a(a + ic * lda + pc, lda, mc, kc, apack.data());
        for (int64_t jr = 0; jr < nc; jr += kNr) {
          int64_t nr = std::min(kNr, nc - jr);
          const uint64_t* bp = bpack.data() + (jr / kNr) * kc * bstride;
          for (int64_t ir = 0; ir < mc; ir += kMr) {
            int64_t mr = std::min(kMr, mc - ir);
            mk(kc, mr, apack.data() + (ir / kMr) * kc * kMr, bp, tile);
            uint64_t* cbase = c + (ic + ir) * ldc + jc + jr;
            for (int64_t i = 0; i < mr; ++i)
              for (int64_t j = 0; j < nr; ++j) cbase[i * ldc + j] += tile[i * kNr + j];
          }
        }
      }
    }
  }
}

}  // namespace

bool ring_gemm_kernel_available(RingGemmKernel kernel) {
  switch (kernel) {
    case RingGemmKernel::Auto:
    case RingGemmKernel::Portable:
      return true;
    case RingGemmKernel::Avx2:  // compiled for avx2,fma,bmi2: the compiler may use all three
      return cpu_features().avx2 && cpu_features().fma && cpu_features().bmi2;
    case RingGemmKernel::Avx512:
      return avx512_usable();
    case RingGemmKernel::Amx:
      return detail::amx_ring_gemm_usable();
  }
  return false;
}

const char* ring_gemm_kernel_name(RingGemmKernel kernel) {
  // Indexed by RingGemmKernel: Auto, Portable, Avx2, Avx512, Amx.
  constexpr std::array<const char*, 5> kNames = {"auto", "portable", "avx2", "avx512dq",
                                                 "amx-int8"};
  const auto i = static_cast<size_t>(kernel);
  return i < kNames.size() ? kNames[i] : "?";
}

const char* gemm_u64_kernel_name() { return gemm_u64_kernel_name(1 << 10, 1 << 10, 1 << 10); }

const char* gemm_u64_kernel_name(int64_t m, int64_t n, int64_t k) {
  return ring_gemm_kernel_name(resolve(RingGemmKernel::Auto, m, n, k));
}

void gemm_u64(int64_t m, int64_t n, int64_t k, const uint64_t* a, int64_t lda, const uint64_t* b,
              int64_t ldb, uint64_t* c, int64_t ldc, bool accumulate, int threads) {
  gemm_u64_with(RingGemmKernel::Auto, m, n, k, a, lda, b, ldb, c, ldc, accumulate, threads);
}

void gemm_u64_with(RingGemmKernel kernel, int64_t m, int64_t n, int64_t k, const uint64_t* a,
                   int64_t lda, const uint64_t* b, int64_t ldb, uint64_t* c, int64_t ldc,
                   bool accumulate, int threads) {
  if (m < 0 || n < 0 || k < 0 || lda < k || ldb < n || ldc < n)
    throw InvalidArgument("gemm_u64: bad dimensions");
  if (!ring_gemm_kernel_available(kernel))
    throw InvalidArgument(std::string("gemm_u64: kernel ") + ring_gemm_kernel_name(kernel) +
                          " is not available on this machine");
  if (m == 0 || n == 0) return;
  const RingGemmKernel which = resolve(kernel, m, n, k);
  int t = std::max(1, std::min<int>(threads, static_cast<int>((n + kNr - 1) / kNr)));
  if (t == 1) {
    gemm_columns(which, m, 0, n, k, a, lda, b, ldb, c, ldc, accumulate);
    return;
  }
  // Column slabs (multiples of kNr) per thread: no shared writes.
  int64_t per = (n + t - 1) / t;
  per = (per + kNr - 1) / kNr * kNr;
  std::vector<std::thread> pool;
  for (int64_t j = per; j < n; j += per)
    pool.emplace_back(gemm_columns, which, m, j, std::min(n, j + per), k, a, lda, b, ldb, c, ldc,
                      accumulate);
  gemm_columns(which, m, 0, std::min(n, per), k, a, lda, b, ldb, c, ldc, accumulate);
  for (auto& th : pool) th.join();
}

int64_t Conv2dGeometry::out_h() const {
  return (in_h + pad_top + pad_bottom - dilation_h * (kernel_h - 1) - 1) / stride_h + 1;
}
int64_t Conv2dGeometry::out_w() const {
  return (in_w + pad_left + pad_right - dilation_w * (kernel_w - 1) - 1) / stride_w + 1;
}

void Conv2dGeometry::validate() const {
  auto pos = [](int64_t v) { return v >= 1 && v <= (int64_t{1} << 24); };
  if (!pos(batch) || !pos(in_channels) || !pos(in_h) || !pos(in_w) || !pos(out_channels) ||
      !pos(kernel_h) || !pos(kernel_w) || !pos(stride_h) || !pos(stride_w) || !pos(dilation_h) ||
      !pos(dilation_w) || !pos(groups))
    throw InvalidArgument("conv2d: dimensions must be positive");
  if (pad_top < 0 || pad_left < 0 || pad_bottom < 0 || pad_right < 0 || pad_top >= 1 << 20 ||
      pad_left >= 1 << 20 || pad_bottom >= 1 << 20 || pad_right >= 1 << 20)
    throw InvalidArgument("conv2d: bad padding");
  if (in_channels % groups != 0 || out_channels % groups != 0)
    throw InvalidArgument("conv2d: channels not divisible by groups");
  if (in_h + pad_top + pad_bottom < dilation_h * (kernel_h - 1) + 1 ||
      in_w + pad_left + pad_right < dilation_w * (kernel_w - 1) + 1)
    throw InvalidArgument("conv2d: kernel larger than the padded input");
}

void conv2d_u64(const Conv2dGeometry& g, const uint64_t* x, const uint64_t* w, uint64_t* y,
                int threads) {
  conv2d_u64_with(RingGemmKernel::Auto, g, x, w, y, threads);
}

void conv2d_u64_with(RingGemmKernel kernel, const Conv2dGeometry& g, const uint64_t* x,
                     const uint64_t* w, uint64_t* y, int threads) {
  g.validate();
  if (!ring_gemm_kernel_available(kernel))
    throw InvalidArgument(std::string("conv2d_u64: kernel ") + ring_gemm_kernel_name(kernel) +
                          " is not available on this machine");
  const bool amx_allowed =
      kernel == RingGemmKernel::Amx ||
      (kernel == RingGemmKernel::Auto && kernel_path_allows(KernelPath::Avx512));
  if (amx_allowed && detail::conv2d_u64_amx_suits(g)) {
    detail::conv2d_u64_amx(g, x, w, y, threads);
    return;
  }
  const int64_t oh = g.out_h(), ow = g.out_w(), p = oh * ow;
  const int64_t cg = g.in_channels / g.groups, ocg = g.out_channels / g.groups;
  const int64_t kdim = cg * g.kernel_h * g.kernel_w;
  const bool pointwise = g.kernel_h == 1 && g.kernel_w == 1 && g.stride_h == 1 && g.stride_w == 1 &&
                         g.pad_top == 0 && g.pad_left == 0 && g.pad_bottom == 0 && g.pad_right == 0;
  std::vector<uint64_t> col(pointwise ? 0 : static_cast<size_t>(kdim * p));
  for (int64_t n = 0; n < g.batch; ++n) {
    for (int64_t grp = 0; grp < g.groups; ++grp) {
      const uint64_t* xin = x + (n * g.in_channels + grp * cg) * g.in_h * g.in_w;
      const uint64_t* bmat = xin;
      if (!pointwise) {
        for (int64_t c = 0; c < cg; ++c)
          for (int64_t kh = 0; kh < g.kernel_h; ++kh)
            for (int64_t kw = 0; kw < g.kernel_w; ++kw) {
              uint64_t* row = col.data() + ((c * g.kernel_h + kh) * g.kernel_w + kw) * p;
              // Output columns [ox0, ox1) read inside the row (ix = ox * stride + x0); the
              // rest is padding. With stride 1 the inside is one contiguous copy.
              const int64_t x0 = kw * g.dilation_w - g.pad_left;
              const int64_t ox0 = std::min(ow, x0 >= 0 ? 0 : (-x0 + g.stride_w - 1) / g.stride_w);
              const int64_t ox1 = std::max(
                  ox0,
                  std::min(ow, g.in_w - x0 <= 0 ? 0 : (g.in_w - x0 + g.stride_w - 1) / g.stride_w));
              for (int64_t oy = 0; oy < oh; ++oy) {
                int64_t iy = oy * g.stride_h - g.pad_top + kh * g.dilation_h;
                uint64_t* out = row + oy * ow;
                if (iy < 0 || iy >= g.in_h) {
                  std::fill(out, out + ow, 0);
                  continue;
                }
                const uint64_t* in = xin + (c * g.in_h + iy) * g.in_w;
                std::fill(out, out + ox0, 0);
                if (g.stride_w == 1)
                  std::copy(in + ox0 + x0, in + ox1 + x0, out + ox0);
                else
                  for (int64_t ox = ox0; ox < ox1; ++ox) out[ox] = in[ox * g.stride_w + x0];
                std::fill(out + ox1, out + ow, 0);
              }
            }
        bmat = col.data();
      }
      const uint64_t* wg = w + grp * ocg * kdim;
      uint64_t* yout = y + (n * g.out_channels + grp * ocg) * p;
      gemm_u64_with(kernel, ocg, p, kdim, wg, kdim, bmat, p, yout, p, false, threads);
    }
  }
}

}  // namespace veil::mpc
