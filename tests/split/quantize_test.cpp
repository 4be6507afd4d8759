#include "veil/split/quantize.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

#include "linear_reference.hpp"
#include "veil/core/error.hpp"

namespace veil::split {
namespace {

using testing::conv_layer;
using testing::dense_layer;

struct RoundTrip {
  double max_ratio = 0;  // max over outputs of |error| / its bound
  int frac_bits = 0;
};

// Quantise x, apply the quantised weight exactly in Z_P, dequantise; check every output against
// the double-precision float layer within the per-output bound
//   2^-(fx+fw+1) S_m + 2^-(fw+1) sum_window |x|   (+ the final float rounding).
RoundTrip round_trip(const LinearLayer& l, const Tensor& x, const SchemeOptions& opt = {}) {
  const LayerQuantizer q(l, opt);
  const QuantizedInput qx = q.quantize(x);
  const Tensor y = q.dequantize(apply_linear_field(l, q.weight(), qx.x), qx.scale);
  const std::vector<double> ref = testing::reference_output(l, x);
  const int64_t m = l.weight.shape()[0], b = x.shape()[0];
  const int64_t terms = l.weight.numel() / m;
  std::vector<double> row_sum(static_cast<size_t>(m), 0);
  for (int64_t i = 0; i < l.weight.numel(); ++i)
    row_sum[i / terms] += std::abs(static_cast<double>(centred(q.weight().values[i])));
  const std::vector<double> window = testing::naive_linear<double>(
      l, b, m, [](int64_t) { return 1.0; },
      [&](int64_t i) { return std::abs(static_cast<double>(x.data()[i])); });
  const int fw = q.weight_frac_bits(), fx = qx.scale.frac_bits;
  const int64_t inner = static_cast<int64_t>(ref.size()) / (b * m);
  double max_abs_x = 0;
  for (float v : x.floats()) max_abs_x = std::max(max_abs_x, std::abs(static_cast<double>(v)));
  RoundTrip r;
  r.frac_bits = fx;
  EXPECT_EQ(static_cast<int64_t>(ref.size()), y.numel());
  for (size_t i = 0; i < ref.size(); ++i) {
    const double bound =
        std::ldexp(row_sum[(i / inner) % m], -(fx + fw + 1)) + std::ldexp(window[i], -(fw + 1));
    EXPECT_LE(bound, q.error_bound(max_abs_x, fx) * (1 + 1e-12));
    const double err = std::abs(y.data()[i] - ref[i]);
    const double slack = std::abs(ref[i]) * 1.2e-7 + 1e-30;  // float32 rounding of the output
    EXPECT_LE(err, bound + slack) << "output " << i;
    if (bound > 0) r.max_ratio = std::max(r.max_ratio, (err - slack) / bound);
  }
  return r;
}

// The widest output range of a dense layer at input scale f, naively: for each output, the sum
// over inputs k of |w_q[m,k]| (round(hi_k 2^f) - round(lo_k 2^f)), [lo_k, hi_k] the range of input
// k over the batch widened to hold 0.
int64_t widest_range(const LayerQuantizer& q, const Tensor& x, int f) {
  const int64_t b = x.shape()[0], c = x.shape()[1], m = q.weight().shape[0];
  int64_t widest = 0;
  for (int64_t o = 0; o < m; ++o) {
    int64_t width = 0;
    for (int64_t k = 0; k < c; ++k) {
      double lo = 0, hi = 0;
      for (int64_t i = 0; i < b; ++i) {
        lo = std::min(lo, static_cast<double>(x.data()[i * c + k]));
        hi = std::max(hi, static_cast<double>(x.data()[i * c + k]));
      }
      width += std::llabs(centred(q.weight().values[o * c + k])) *
               (std::llround(std::ldexp(hi, f)) - std::llround(std::ldexp(lo, f)));
    }
    widest = std::max(widest, width);
  }
  return widest;
}

// fx is the largest scale at which no output's range is wider than P - 1.
void expect_finest_safe_scale(const LayerQuantizer& q, const Tensor& x, int fx) {
  EXPECT_LE(widest_range(q, x, fx), static_cast<int64_t>(kFieldPrime - 1));
  EXPECT_GT(widest_range(q, x, fx + 1), static_cast<int64_t>(kFieldPrime - 1));
}

TEST(Quantize, LargestFracBitsIsTheLargestThatFits) {
  std::mt19937_64 rng(1);
  std::uniform_real_distribution<double> e(-60, 60);
  std::uniform_int_distribution<int64_t> lim(1, int64_t{1} << 30);
  for (int i = 0; i < 2000; ++i) {
    const double a = std::exp2(e(rng));
    const int64_t limit = lim(rng);
    const int f = largest_frac_bits(a, limit);
    EXPECT_LE(std::llround(std::ldexp(a, f)), limit);
    EXPECT_GT(std::ldexp(a, f + 1), static_cast<double>(limit) + 0.49);
  }
  EXPECT_EQ(largest_frac_bits(1.0, 1), 0);
  EXPECT_EQ(largest_frac_bits(1.5, 1), -1);  // round(1.5) = 2 > 1
  EXPECT_EQ(largest_frac_bits(0.75, 1), 0);  // round(0.75) = 1; round(1.5) = 2
  EXPECT_THROW(largest_frac_bits(0, 1), InvalidArgument);
}

TEST(Quantize, ConvAndDenseStayWithinTheDerivedBound) {
  std::mt19937_64 rng(2);
  LinearLayer c = conv_layer(3, 8, 7, 4, 3, 3, {{2, 1}, {1, 1, 1, 0}, {1, 2}, 1});
  testing::fill_uniform(c.weight, 0.5f, rng);
  c.bias = Tensor({4});
  testing::fill_uniform(c.bias, 1.0f, rng);
  Tensor xc({2, 3, 8, 7});
  testing::fill_uniform(xc, 3.0f, rng);
  round_trip(c, xc);
  LinearLayer d = dense_layer(50, 6);
  testing::fill_uniform(d.weight, 0.1f, rng);
  Tensor xd({4, 50});
  testing::fill_uniform(xd, 100.0f, rng);
  round_trip(d, xd);
}

TEST(Quantize, TheBoundIsNearlyReachedOnSmallLayers) {
  // Few terms per output: rounding errors rarely cancel, so some output comes close to the bound
  // (a loose bound would let a quantisation bug through unnoticed).
  std::mt19937_64 rng(3);
  LinearLayer d = dense_layer(2, 64);
  testing::fill_uniform(d.weight, 1.0f, rng);
  Tensor x({64, 2});
  testing::fill_uniform(x, 1.0f, rng);
  EXPECT_GT(round_trip(d, x).max_ratio, 0.5);
  LinearLayer c = conv_layer(1, 8, 8, 16, 1, 2);
  testing::fill_uniform(c.weight, 1.0f, rng);
  Tensor xc({4, 1, 8, 8});
  testing::fill_uniform(xc, 1.0f, rng);
  EXPECT_GT(round_trip(c, xc).max_ratio, 0.5);
}

TEST(Quantize, AdversarialInputsNeverWrap) {
  std::mt19937_64 rng(4);
  LinearLayer d = dense_layer(64, 3);
  testing::fill_uniform(d.weight, 2.0f, rng);
  const LayerQuantizer q(d, {});
  // Each image aligned with one row's signs: the worst case of that output.
  for (float a : {1.0f, 1e6f, 1e30f, 1e36f}) {  // outputs stay below float max
    Tensor x({3, 64});
    for (int64_t i = 0; i < 3; ++i)
      for (int64_t k = 0; k < 64; ++k)
        x.data()[i * 64 + k] = d.weight.data()[i * 64 + k] < 0 ? -a : a;
    const RoundTrip r = round_trip(d, x);
    expect_finest_safe_scale(q, x, r.frac_bits);
  }
  // Huge inputs get a coarser scale, not a wrong answer.
  Tensor small({1, 64}), huge({1, 64});
  small.floats()[0] = 1.0f;
  huge.floats()[0] = 1e30f;
  EXPECT_LT(q.quantize(huge).scale.frac_bits, q.quantize(small).scale.frac_bits - 90);
  EXPECT_LT(q.quantize(huge).scale.frac_bits, 0);
}

TEST(Quantize, PerChannelRangesGiveFinerScalesAndStillNeverWrap) {
  std::mt19937_64 rng(6);
  LinearLayer d = dense_layer(32, 4);
  testing::fill_uniform(d.weight, 1.0f, rng);
  const LayerQuantizer q(d, {});
  std::uniform_real_distribution<double> e(-10, 10);
  for (int trial = 0; trial < 20; ++trial) {
    // Channel c at +-a_c, signs aligned with row `trial % 4`: that output's worst case.
    Tensor x({1, 32});
    std::vector<double> a(32);
    for (int64_t c = 0; c < 32; ++c) {
      a[c] = std::exp2(e(rng));
      x.data()[c] = static_cast<float>(d.weight.data()[(trial % 4) * 32 + c] < 0 ? -a[c] : a[c]);
      a[c] = std::abs(x.data()[c]);
    }
    const RoundTrip r = round_trip(d, x);
    expect_finest_safe_scale(q, x, r.frac_bits);
    // Never coarser than the scale from the global maximum alone.
    EXPECT_GE(r.frac_bits,
              largest_frac_bits(*std::max_element(a.begin(), a.end()), q.input_limit()));
  }
}

TEST(Quantize, InputsAboveZeroGetOneMoreBitAndBothEndsOfTheWindowDecode) {
  std::mt19937_64 rng(7);
  LinearLayer d = dense_layer(16, 3);
  testing::fill_uniform(d.weight, 0.5f, rng);
  for (int64_t k = 0; k < 16; ++k) d.weight.data()[k] = 1.0f;  // row 0: widest, all positive
  const LayerQuantizer q(d, {});
  // a = floor((P-1) / S_0) at fx = 0 fills row 0's window: its top, S_0 a, is far beyond
  // (P-1)/2, where a centred reading would wrap.
  const float a = static_cast<float>((kFieldPrime - 1) / q.max_row_sum());
  Tensor pos({2, 16}), sym({2, 16});
  for (int64_t k = 0; k < 16; ++k) {
    pos.data()[k] = a;  // row 0 at the top of its window; rows 1 and 2 somewhere inside
    pos.data()[16 + k] = d.weight.data()[16 + k] > 0 ? 0.0f : a;
    sym.data()[k] = a;
    sym.data()[16 + k] = -a;
  }
  const RoundTrip rp = round_trip(d, pos), rs = round_trip(d, sym);
  EXPECT_EQ(rp.frac_bits, 0);
  expect_finest_safe_scale(q, pos, rp.frac_bits);
  expect_finest_safe_scale(q, sym, rs.frac_bits);
  EXPECT_GE(rp.frac_bits, rs.frac_bits + 1);
}

TEST(Quantize, NonFiniteInputsAndBadShapesThrow) {
  LinearLayer d = dense_layer(4, 2);
  d.weight.floats()[0] = 1.0f;
  const LayerQuantizer q(d, {});
  Tensor x({1, 4});
  for (float bad : {std::nanf(""), std::numeric_limits<float>::infinity(),
                    -std::numeric_limits<float>::infinity()}) {
    x.floats()[2] = bad;
    EXPECT_THROW(q.quantize(x), InvalidArgument);
  }
  EXPECT_THROW(q.quantize(Tensor({1, 5})), InvalidArgument);
  Tensor zero({2, 4});
  EXPECT_EQ(q.quantize(zero).x.values, std::vector<uint64_t>(8, 0));
  LinearLayer nan_w = d;
  nan_w.weight.floats()[1] = std::nanf("");
  EXPECT_THROW(LayerQuantizer(nan_w, {}), InvalidArgument);
}

TEST(Quantize, WeightScaleBalancesTheTwoErrorTerms) {
  std::mt19937_64 rng(5);
  LinearLayer c = conv_layer(8, 6, 6, 8, 3, 3);
  testing::fill_uniform(c.weight, 0.3f, rng);
  const double a = 4.0;
  const LayerQuantizer chosen(c, {});
  const int fw = chosen.weight_frac_bits();
  EXPECT_LE(std::llabs(centred(chosen.weight().values[0])), kQuantMaxWeight);
  auto worst = [&](const LayerQuantizer& q) {
    return q.error_bound(a, largest_frac_bits(a, q.input_limit()));
  };
  const double best = worst(chosen);
  for (int other = fw - 3; other <= fw + 3; ++other) {
    SchemeOptions o;
    o.weight_frac_bits = other;
    try {
      EXPECT_LE(best, worst(LayerQuantizer(c, o)) * 1.25) << "fw " << fw << " vs " << other;
    } catch (const InvalidArgument&) {  // beyond 2^15 - 1: not a candidate
    }
  }
  // A forced scale that puts a weight beyond 2^15 - 1 is refused.
  SchemeOptions too_fine;
  too_fine.weight_frac_bits = 30;
  EXPECT_THROW(LayerQuantizer(c, too_fine), InvalidArgument);
  // The input cap is honoured.
  SchemeOptions cap;
  cap.input_frac_bits = 3;
  Tensor x({1, 8, 6, 6});
  x.floats()[0] = 1e-3f;
  EXPECT_EQ(LayerQuantizer(c, cap).quantize(x).scale.frac_bits, 3);
}

}  // namespace
}  // namespace veil::split
