#include "veil/mpc/kernels/ring_kernels.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <initializer_list>

#include "mpc/test_util.hpp"
#include "veil/core/cpu.hpp"
#include "veil/core/error.hpp"

namespace veil::mpc {
namespace {

using testing::TestRng;

std::vector<uint64_t> naive_gemm(int64_t m, int64_t n, int64_t k, const std::vector<uint64_t>& a,
                                 const std::vector<uint64_t>& b) {
  std::vector<uint64_t> c(static_cast<size_t>(m * n), 0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      uint64_t s = 0;
      for (int64_t p = 0; p < k; ++p) s += a[i * k + p] * b[p * n + j];
      c[i * n + j] = s;
    }
  return c;
}

std::vector<uint64_t> naive_conv(const Conv2dGeometry& g, const std::vector<uint64_t>& x,
                                 const std::vector<uint64_t>& w) {
  const int64_t oh = g.out_h(), ow = g.out_w(), cg = g.in_channels / g.groups,
                ocg = g.out_channels / g.groups;
  std::vector<uint64_t> y(static_cast<size_t>(g.output_numel()), 0);
  for (int64_t n = 0; n < g.batch; ++n)
    for (int64_t oc = 0; oc < g.out_channels; ++oc)
      for (int64_t oy = 0; oy < oh; ++oy)
        for (int64_t ox = 0; ox < ow; ++ox) {
          uint64_t s = 0;
          int64_t grp = oc / ocg;
          for (int64_t ci = 0; ci < cg; ++ci)
            for (int64_t ky = 0; ky < g.kernel_h; ++ky)
              for (int64_t kx = 0; kx < g.kernel_w; ++kx) {
                int64_t iy = oy * g.stride_h - g.pad_top + ky * g.dilation_h;
                int64_t ix = ox * g.stride_w - g.pad_left + kx * g.dilation_w;
                if (iy < 0 || iy >= g.in_h || ix < 0 || ix >= g.in_w) continue;
                int64_t c = grp * cg + ci;
                s += x[((n * g.in_channels + c) * g.in_h + iy) * g.in_w + ix] *
                     w[((oc * cg + ci) * g.kernel_h + ky) * g.kernel_w + kx];
              }
          y[((n * g.out_channels + oc) * oh + oy) * ow + ox] = s;
        }
  return y;
}

// conv2d_u64 (or conv2d_u64_with `kernel`) on random operands equals naive_conv for every
// geometry, with each thread count (the output starts non-zero: it must be written, not added
// to).
void expect_convs_match_naive(TestRng& rng, const std::vector<Conv2dGeometry>& geoms,
                              std::initializer_list<int> thread_counts,
                              RingGemmKernel kernel = RingGemmKernel::Auto) {
  for (const auto& geo : geoms) {
    auto x = rng.u64s(geo.input_numel()), w = rng.u64s(geo.weight_numel());
    const auto want = naive_conv(geo, x, w);
    for (int threads : thread_counts) {
      std::vector<uint64_t> y(geo.output_numel(), 7);
      if (kernel == RingGemmKernel::Auto)
        conv2d_u64(geo, x.data(), w.data(), y.data(), threads);
      else
        conv2d_u64_with(kernel, geo, x.data(), w.data(), y.data(), threads);
      ASSERT_EQ(y, want) << ring_gemm_kernel_name(kernel) << " " << geo.in_channels << " -> "
                         << geo.out_channels << ", " << geo.in_h << " x " << geo.in_w << ", k "
                         << geo.kernel_h << ", groups " << geo.groups << ", threads " << threads;
    }
  }
}

TEST(RingGemm, MatchesNaiveOnOddShapes) {
  TestRng rng;
  const int64_t shapes[][3] = {{1, 1, 1},    {3, 5, 7},    {8, 8, 8},     {17, 9, 300},
                               {130, 70, 5}, {9, 600, 33}, {64, 513, 257}};
  for (auto& s : shapes) {
    int64_t m = s[0], n = s[1], k = s[2];
    auto a = rng.u64s(m * k), b = rng.u64s(k * n);
    auto want = naive_gemm(m, n, k, a, b);
    for (int threads : {1, 2}) {
      std::vector<uint64_t> c(m * n, 7);
      gemm_u64(m, n, k, a.data(), k, b.data(), n, c.data(), n, false, threads);
      ASSERT_EQ(c, want) << m << "x" << n << "x" << k << " threads " << threads;
    }
    // Accumulate mode adds to C.
    std::vector<uint64_t> c(m * n, 5);
    gemm_u64(m, n, k, a.data(), k, b.data(), n, c.data(), n, true);
    for (size_t i = 0; i < c.size(); ++i) ASSERT_EQ(c[i], want[i] + 5);
  }
  EXPECT_NE(std::string(gemm_u64_kernel_name()), "");
  // AMX only from 9 rows and columns and K = 64: a batch-1 product stays on the vector units.
  EXPECT_NE(std::string(gemm_u64_kernel_name(1, 120, 400)), "amx-int8");
}

// Every kernel this machine has, on shapes that cross its blocking: AMX pads to 32 x 32 x 64 and
// combines passes over K (one 64-byte step each for at most 16 rows, up to 2048 otherwise); extreme
// values (all ones, 2^63) exercise every byte plane.
TEST(RingGemm, EveryKernelMatchesNaive) {
  TestRng rng;
  // From the seventh: at most 16 rows of A (the AMX kernel's 16-row blocks over two column
  // halves), K below one tile step, K not a multiple of 4, ResNet-20's and LeNet-5's shapes;
  // then at most 8 rows (the vector kernel's unpacked path) and K = 0.
  const int64_t shapes[][3] = {{16, 16, 64},   {33, 47, 130}, {64, 256, 576}, {20, 40, 2100},
                               {48, 17, 4200}, {100, 300, 9}, {16, 784, 144}, {10, 120, 400},
                               {13, 50, 4100}, {16, 33, 66},  {9, 45, 3},     {32, 196, 288},
                               {1, 120, 400},  {7, 33, 65},   {8, 100, 17},   {2, 5, 0}};
  for (RingGemmKernel kernel : {RingGemmKernel::Portable, RingGemmKernel::Avx2,
                                RingGemmKernel::Avx512, RingGemmKernel::Amx}) {
    if (!ring_gemm_kernel_available(kernel)) {
      std::printf("kernel %s not available here\n", ring_gemm_kernel_name(kernel));
      continue;
    }
    for (auto& s : shapes) {
      const int64_t m = s[0], n = s[1], k = s[2];
      for (int fill = 0; fill < 3; ++fill) {
        auto a = rng.u64s(m * k), b = rng.u64s(k * n);
        if (fill == 1) std::fill(a.begin(), a.end(), ~uint64_t{0});
        if (fill == 1) std::fill(b.begin(), b.end(), ~uint64_t{0});
        if (fill == 2) std::fill(b.begin(), b.end(), uint64_t{1} << 63);
        auto want = naive_gemm(m, n, k, a, b);
        std::vector<uint64_t> c(m * n, 3);
        gemm_u64_with(kernel, m, n, k, a.data(), k, b.data(), n, c.data(), n, false, 2);
        ASSERT_EQ(c, want) << ring_gemm_kernel_name(kernel) << " " << m << "x" << n << "x" << k
                           << " fill " << fill;
        gemm_u64_with(kernel, m, n, k, a.data(), k, b.data(), n, c.data(), n, true);
        for (size_t i = 0; i < c.size(); ++i) ASSERT_EQ(c[i], want[i] * 2);
      }
    }
  }
}

constexpr RingGemmKernel kKernels[] = {RingGemmKernel::Portable, RingGemmKernel::Avx2,
                                       RingGemmKernel::Avx512, RingGemmKernel::Amx};

// Every kernel the CPU has on every small shape around the vector widths (4 and 8 lanes), the
// AVX2 row groups (4 rows) and column blocks (16 columns for one row, 8 for two), and the packed
// tile (8 x 8), with leading dimensions wider than the matrices (C's gaps must stay untouched):
// random operands, then the extremes 2^64 - 1 (every cross term carries) and 2^32 - 1 / 2^32
// (only high or only low halves), accumulate or not, one and two threads.
TEST(RingGemm, EveryKernelMatchesNaiveOnSmallShapes) {
  TestRng rng;
  const int64_t ms[] = {0, 1, 2, 3, 4, 5, 7, 8, 9, 12, 17, 33};
  const int64_t ns[] = {0, 1, 3, 4, 5, 8, 9, 13, 16, 17, 33};
  const int64_t ks[] = {0, 1, 7, 9, 33};
  const uint64_t extremes[][2] = {{~uint64_t{0}, ~uint64_t{0}},
                                  {0xffffffffu, uint64_t{1} << 32},
                                  {uint64_t{1} << 32, ~uint64_t{0}}};
  for (RingGemmKernel kernel : kKernels) {
    if (!ring_gemm_kernel_available(kernel)) continue;
    for (int64_t m : ms)
      for (int64_t n : ns)
        for (int64_t k : ks) {
          const int fill = static_cast<int>((m + n + k) % 4);  // 0 random, else an extreme
          auto a = rng.u64s(m * k), b = rng.u64s(k * n);
          if (fill > 0) {
            std::fill(a.begin(), a.end(), extremes[fill - 1][0]);
            std::fill(b.begin(), b.end(), extremes[fill - 1][1]);
          }
          const auto want = naive_gemm(m, n, k, a, b);
          // Operands copied into wider rows: lda = k + 3, ldb = n + 5, ldc = n + 2.
          const int64_t lda = k + 3, ldb = n + 5, ldc = n + 2;
          std::vector<uint64_t> aw(m * lda, 11), bw(k * ldb, 13);
          // data() + offset, not &v[i]: with k or n = 0 the vectors are empty.
          for (int64_t i = 0; i < m; ++i) std::copy_n(a.data() + i * k, k, aw.data() + i * lda);
          for (int64_t p = 0; p < k; ++p) std::copy_n(b.data() + p * n, n, bw.data() + p * ldb);
          for (bool accumulate : {false, true})
            for (int threads : {1, 2}) {
              std::vector<uint64_t> c(m * ldc);
              for (auto& x : c) x = rng.u64();
              const auto before = c;
              gemm_u64_with(kernel, m, n, k, aw.data(), lda, bw.data(), ldb, c.data(), ldc,
                            accumulate, threads);
              for (int64_t i = 0; i < m; ++i)
                for (int64_t j = 0; j < ldc; ++j) {
                  const uint64_t expect = j >= n       ? before[i * ldc + j]
                                          : accumulate ? before[i * ldc + j] + want[i * n + j]
                                                       : want[i * n + j];
                  ASSERT_EQ(c[i * ldc + j], expect)
                      << ring_gemm_kernel_name(kernel) << " " << m << "x" << n << "x" << k
                      << " fill " << fill << " accumulate " << accumulate << " threads " << threads
                      << " at " << i << "," << j;
                }
            }
        }
  }
}

// The automatic choice stays within the kernel path: portable on the scalar path, AVX2 (where
// the CPU has it) on the avx2 path, never AMX or AVX-512 below the avx512 path.
TEST(RingGemm, AutomaticChoiceStaysWithinTheKernelPath) {
  const KernelPath saved = kernel_path();
  for (KernelPath path : {KernelPath::Scalar, KernelPath::Avx2, KernelPath::Avx512}) {
    if (path > detected_kernel_path()) continue;
    set_kernel_path(path);
    for (const auto& shape : {std::array<int64_t, 3>{1, 120, 400}, {64, 120, 400}}) {
      const std::string name = gemm_u64_kernel_name(shape[0], shape[1], shape[2]);
      if (path == KernelPath::Scalar) {
        EXPECT_EQ(name, "portable");
      } else if (path == KernelPath::Avx2) {
        EXPECT_EQ(name, "avx2");
      } else {
        EXPECT_NE(name, "avx2");
      }
    }
  }
  set_kernel_path(saved);
}

TEST(RingGemm, RejectsBadDimensions) {
  uint64_t a = 0;
  EXPECT_THROW(gemm_u64(-1, 1, 1, &a, 1, &a, 1, &a, 1), InvalidArgument);
  EXPECT_THROW(gemm_u64(1, 2, 1, &a, 1, &a, 1, &a, 1), InvalidArgument);
}

TEST(RingConv, MatchesNaiveLoops) {
  TestRng rng;
  std::vector<Conv2dGeometry> geoms;
  Conv2dGeometry g;
  g.batch = 2, g.in_channels = 3, g.in_h = 9, g.in_w = 7, g.out_channels = 4, g.kernel_h = 3,
  g.kernel_w = 3, g.pad_top = g.pad_left = g.pad_bottom = g.pad_right = 1;
  geoms.push_back(g);
  Conv2dGeometry s2 = g;
  s2.stride_h = s2.stride_w = 2;
  s2.pad_bottom = 0;
  geoms.push_back(s2);
  Conv2dGeometry grp = g;
  grp.in_channels = 6, grp.out_channels = 4, grp.groups = 2, grp.dilation_h = 2;
  geoms.push_back(grp);
  Conv2dGeometry dw = g;
  dw.in_channels = dw.out_channels = dw.groups = 5;
  geoms.push_back(dw);
  Conv2dGeometry pw = g;
  pw.kernel_h = pw.kernel_w = 1, pw.pad_top = pw.pad_left = pw.pad_bottom = pw.pad_right = 0;
  geoms.push_back(pw);
  Conv2dGeometry rect = g;
  rect.kernel_h = 1, rect.kernel_w = 5, rect.stride_w = 3, rect.pad_left = 2, rect.pad_top = 0,
  rect.pad_bottom = 0;
  geoms.push_back(rect);
  // Dilated taps that land wholly in the padding for some output columns, both strides.
  for (int64_t stride : {1, 2}) {
    Conv2dGeometry wide = g;
    wide.in_w = 5, wide.dilation_h = wide.dilation_w = 3, wide.stride_w = stride;
    wide.pad_left = 4, wide.pad_right = 3, wide.pad_top = 3, wide.pad_bottom = 4;
    geoms.push_back(wide);
  }
  // LeNet-5's two 5 x 5 layers.
  Conv2dGeometry lenet1;
  lenet1.in_h = lenet1.in_w = 28, lenet1.out_channels = 6, lenet1.kernel_h = lenet1.kernel_w = 5;
  lenet1.pad_top = lenet1.pad_left = lenet1.pad_bottom = lenet1.pad_right = 2;
  geoms.push_back(lenet1);
  Conv2dGeometry lenet2 = lenet1;
  lenet2.in_channels = 6, lenet2.in_h = lenet2.in_w = 14, lenet2.out_channels = 16;
  lenet2.pad_top = lenet2.pad_left = lenet2.pad_bottom = lenet2.pad_right = 0;
  geoms.push_back(lenet2);
  expect_convs_match_naive(rng, geoms, {1});
  // Each kernel's im2col + GEMM (AMX's own convolution where it applies), two threads too.
  for (RingGemmKernel kernel : kKernels)
    if (ring_gemm_kernel_available(kernel)) expect_convs_match_naive(rng, geoms, {1, 2}, kernel);
}

// Shapes the AMX paths take (more than 8 output channels per group and 8 output pixels, K of at
// least 64). The packed path, which packs B from byte planes of the input: stride 1 with output
// rows shorter than a 16-pixel block (several runs per block), stride 2 (permutes), stride 3
// (gathers), channels not a multiple of 4, asymmetric padding with dilation, groups, 1 x 1, K over
// one 2048-byte pass, a batch.
TEST(RingConv, BytePlanePathMatchesNaiveLoops) {
  TestRng rng;
  std::vector<Conv2dGeometry> geoms;
  Conv2dGeometry g;
  g.in_channels = g.out_channels = 16, g.in_h = g.in_w = 28, g.kernel_h = g.kernel_w = 3;
  g.pad_top = g.pad_left = g.pad_bottom = g.pad_right = 1;
  geoms.push_back(g);
  Conv2dGeometry small = g;
  small.in_channels = 20, small.out_channels = 24, small.in_h = small.in_w = 7, small.batch = 2;
  geoms.push_back(small);
  Conv2dGeometry s2 = g;
  s2.out_channels = 32, s2.in_h = 15, s2.in_w = 13, s2.stride_h = s2.stride_w = 2;
  geoms.push_back(s2);
  // Blocks of 16 output pixels over one or two output rows, at stride 1 and 2 (the packer's
  // hoisted loops): ResNet-20's 16 -> 32 stride-2 layer (14-pixel rows), and rows of exactly
  // 16 pixels at both strides.
  Conv2dGeometry s2_rows = g;
  s2_rows.out_channels = 32, s2_rows.stride_h = s2_rows.stride_w = 2;
  geoms.push_back(s2_rows);
  Conv2dGeometry s2_one = g;
  s2_one.in_h = 9, s2_one.in_w = 32, s2_one.stride_w = 2;
  geoms.push_back(s2_one);
  Conv2dGeometry s1_one = g;
  s1_one.in_channels = 20, s1_one.in_h = 5, s1_one.in_w = 16;
  geoms.push_back(s1_one);
  // 3-pixel rows: six runs per 16 pixels, at both strides.
  for (int64_t stride : {1, 2}) {
    Conv2dGeometry narrow = g;
    narrow.in_h = 12, narrow.in_w = stride == 1 ? 3 : 5, narrow.stride_w = stride;
    geoms.push_back(narrow);
  }
  Conv2dGeometry s3 = g;
  s3.in_h = s3.in_w = 20, s3.stride_w = 3;
  geoms.push_back(s3);
  Conv2dGeometry odd = g;
  odd.in_channels = 6, odd.out_channels = 12, odd.in_h = 9, odd.in_w = 11, odd.dilation_h = 2;
  odd.pad_top = 2, odd.pad_left = 1, odd.pad_bottom = 0, odd.pad_right = 3, odd.stride_h = 2;
  geoms.push_back(odd);
  Conv2dGeometry grp = g;
  grp.in_channels = 16, grp.out_channels = 24, grp.groups = 2, grp.in_h = grp.in_w = 10;
  geoms.push_back(grp);
  Conv2dGeometry pw = g;
  pw.in_channels = 64, pw.kernel_h = pw.kernel_w = 1, pw.in_h = pw.in_w = 6;
  pw.pad_top = pw.pad_left = pw.pad_bottom = pw.pad_right = 0;
  geoms.push_back(pw);
  Conv2dGeometry deep = g;
  deep.in_channels = 240, deep.out_channels = 9, deep.in_h = deep.in_w = 4;
  geoms.push_back(deep);
  // The direct path (channels in sets of 16, output rows of 24 pixels or more): output
  // channels not a multiple of 16, asymmetric padding, dilated and strided rows, a batch;
  // stride 2 along the rows; a 5 x 5 kernel (two K steps per kernel row); groups; 64 channels.
  Conv2dGeometry d1 = g;
  d1.in_channels = 32, d1.out_channels = 40, d1.in_h = 30, d1.in_w = 26, d1.batch = 2;
  d1.pad_top = 1, d1.pad_left = 2, d1.pad_bottom = 0, d1.pad_right = 1;
  d1.stride_h = 2, d1.dilation_h = 2;
  geoms.push_back(d1);
  Conv2dGeometry d2 = g;
  d2.in_h = 20, d2.in_w = 50, d2.stride_w = 2;
  geoms.push_back(d2);
  Conv2dGeometry d3 = g;
  d3.kernel_h = d3.kernel_w = 5, d3.pad_top = d3.pad_left = d3.pad_bottom = d3.pad_right = 2;
  d3.in_h = 12;
  geoms.push_back(d3);
  Conv2dGeometry d4 = g;
  d4.in_channels = 32, d4.out_channels = 24, d4.groups = 2, d4.in_h = 9;
  geoms.push_back(d4);
  Conv2dGeometry d5 = g;
  d5.in_channels = 64, d5.in_h = 8;
  geoms.push_back(d5);
  expect_convs_match_naive(rng, geoms, {1, 2});
}

// The byte-plane buffers are kept per thread and zero their padding only when the layout
// changes. Layouts that differ only in how the padding splits between bottom and right must
// still count as different, even with the same padded area (11 x 12 against 12 x 11 pixels on
// the packed path): the first one's pixels would otherwise be left where the second one's
// padding is. Both paths, each pair in turn on one thread.
TEST(RingConv, PaddingOfTheLastLayoutIsNotReused) {
  TestRng rng;
  std::vector<Conv2dGeometry> geoms;
  Conv2dGeometry packed;
  packed.in_channels = 16, packed.out_channels = 16, packed.in_h = packed.in_w = 9;
  packed.kernel_h = packed.kernel_w = 3, packed.pad_top = packed.pad_left = 1;
  packed.pad_bottom = 1, packed.pad_right = 2;
  Conv2dGeometry direct = packed;
  direct.in_w = 30, direct.in_h = 6;
  for (const Conv2dGeometry& first : {packed, direct}) {
    Conv2dGeometry second = first;
    std::swap(second.pad_bottom, second.pad_right);
    geoms.push_back(first);
    geoms.push_back(second);
  }
  expect_convs_match_naive(rng, geoms, {1});
}

TEST(RingConv, RejectsInconsistentGeometry) {
  Conv2dGeometry g;
  g.in_channels = 3, g.groups = 2;
  EXPECT_THROW(g.validate(), InvalidArgument);
  Conv2dGeometry big;
  big.kernel_h = 5;
  EXPECT_THROW(big.validate(), InvalidArgument);
}

}  // namespace
}  // namespace veil::mpc
