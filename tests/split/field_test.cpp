#include "veil/split/field.hpp"

#include <gtest/gtest.h>

#include <random>

#include "veil/core/error.hpp"

namespace veil::split {
namespace {

using i128 = __int128;
constexpr int64_t kHalf = static_cast<int64_t>(kFieldPrime / 2);  // (P-1)/2

uint64_t mod_p(i128 v) {
  i128 r = v % static_cast<i128>(kFieldPrime);
  return static_cast<uint64_t>(r < 0 ? r + kFieldPrime : r);
}

LinearLayer conv_layer(int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw,
                       nn::reference::ConvParams p) {
  LinearLayer l;
  l.name = "conv";
  l.kind = LinearKind::Conv;
  l.conv = std::move(p);
  l.input_shape = {c, h, w};
  auto s = [&](size_t i, int64_t d) { return l.conv.strides.empty() ? d : l.conv.strides[i]; };
  auto d = [&](size_t i) { return l.conv.dilations.empty() ? 1 : l.conv.dilations[i]; };
  auto pad = [&](size_t i) { return l.conv.pads.empty() ? 0 : l.conv.pads[i]; };
  const int64_t oh = (h + pad(0) + pad(2) - d(0) * (kh - 1) - 1) / s(0, 1) + 1;
  const int64_t ow = (w + pad(1) + pad(3) - d(1) * (kw - 1) - 1) / s(1, 1) + 1;
  l.output_shape = {0, oh, ow};  // channel count comes from the weight
  return l;
}

LinearLayer dense_layer(int64_t c, int64_t m) {
  LinearLayer l;
  l.name = "dense";
  l.kind = LinearKind::Dense;
  l.input_shape = {c};
  l.output_shape = {m};
  return l;
}

// The naive reference: exact integer sums of centred values, reduced mod P at the end.
FieldTensor naive(const LinearLayer& l, const FieldTensor& w, const FieldTensor& x) {
  FieldTensor y;
  const int64_t b = x.shape[0], m = w.shape[0], c = x.shape[1];
  if (l.kind == LinearKind::Dense) {
    y.shape = {b, m};
    for (int64_t i = 0; i < b; ++i)
      for (int64_t o = 0; o < m; ++o) {
        i128 acc = 0;
        for (int64_t k = 0; k < c; ++k)
          acc += static_cast<i128>(centred(x.values[i * c + k])) * centred(w.values[o * c + k]);
        y.values.push_back(mod_p(acc));
      }
    return y;
  }
  const auto& p = l.conv;
  const int64_t h = x.shape[2], wd = x.shape[3], kh = w.shape[2], kw = w.shape[3];
  const int64_t oh = l.output_shape[1], ow = l.output_shape[2];
  auto get = [](const std::vector<int64_t>& v, size_t i, int64_t d) {
    return v.empty() ? d : v[i];
  };
  y.shape = {b, m, oh, ow};
  for (int64_t i = 0; i < b; ++i)
    for (int64_t o = 0; o < m; ++o)
      for (int64_t oy = 0; oy < oh; ++oy)
        for (int64_t ox = 0; ox < ow; ++ox) {
          i128 acc = 0;
          for (int64_t ci = 0; ci < c; ++ci)
            for (int64_t ky = 0; ky < kh; ++ky)
              for (int64_t kx = 0; kx < kw; ++kx) {
                const int64_t iy =
                    oy * get(p.strides, 0, 1) - get(p.pads, 0, 0) + ky * get(p.dilations, 0, 1);
                const int64_t ix =
                    ox * get(p.strides, 1, 1) - get(p.pads, 1, 0) + kx * get(p.dilations, 1, 1);
                if (iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;
                acc += static_cast<i128>(centred(x.values[((i * c + ci) * h + iy) * wd + ix])) *
                       centred(w.values[((o * c + ci) * kh + ky) * kw + kx]);
              }
          y.values.push_back(mod_p(acc));
        }
  return y;
}

FieldTensor random_field(Shape shape, std::mt19937_64& rng) {
  FieldTensor t;
  t.shape = std::move(shape);
  std::uniform_int_distribution<uint64_t> d(0, kFieldPrime - 1);
  t.values.resize(static_cast<size_t>(shape_numel(t.shape)));
  for (auto& v : t.values) v = d(rng);
  return t;
}

FieldTensor random_weight(Shape shape, std::mt19937_64& rng, int64_t bound = kFieldMaxWeight) {
  FieldTensor t;
  t.shape = std::move(shape);
  std::uniform_int_distribution<int64_t> d(-bound, bound);
  t.values.resize(static_cast<size_t>(shape_numel(t.shape)));
  for (auto& v : t.values) v = to_field(d(rng));
  return t;
}

FieldTensor filled(Shape shape, int64_t value) {
  FieldTensor t;
  t.shape = std::move(shape);
  t.values.assign(static_cast<size_t>(shape_numel(t.shape)), to_field(value));
  return t;
}

TEST(Field, ScalarArithmeticMatchesWideReference) {
  std::mt19937_64 rng(1);
  std::uniform_int_distribution<uint64_t> d(0, kFieldPrime - 1);
  for (int i = 0; i < 10000; ++i) {
    const uint64_t a = d(rng), b = d(rng);
    EXPECT_EQ(field_mul(a, b), mod_p(static_cast<i128>(a) * b));
    EXPECT_EQ(field_add(a, b), (a + b) % kFieldPrime);
    EXPECT_EQ(field_sub(a, b), mod_p(static_cast<i128>(a) - b));
    EXPECT_EQ(field_reduce(~uint64_t{0} - a), mod_p(static_cast<i128>(~uint64_t{0} - a)));
    if (a != 0) {
      EXPECT_EQ(field_mul(a, field_inv(a)), 1u);
    }
  }
  EXPECT_EQ(field_mul(kFieldPrime - 1, kFieldPrime - 1), 1u);  // (-1)^2
  EXPECT_EQ(centred(kFieldPrime / 2), kHalf);
  EXPECT_EQ(centred(kFieldPrime / 2 + 1), -kHalf);
  EXPECT_THROW(field_inv(0), InvalidArgument);
}

TEST(Field, ConvMatchesNaiveOverStridesPadsDilations) {
  std::mt19937_64 rng(2);
  struct Case {
    int64_t c, h, w, m, kh, kw;
    nn::reference::ConvParams p;
  };
  const std::vector<Case> cases = {
      {3, 7, 6, 4, 3, 3, {}},
      {2, 9, 8, 3, 3, 2, {{2, 1}, {1, 0, 2, 1}, {1, 1}, 1}},
      {4, 8, 9, 2, 2, 3, {{1, 2}, {0, 2, 1, 0}, {2, 2}, 1}},
      {5, 5, 5, 6, 1, 1, {}},
      {1, 6, 6, 2, 5, 5, {{3, 3}, {2, 2, 2, 2}, {1, 1}, 1}},
  };
  for (const Case& k : cases) {
    LinearLayer l = conv_layer(k.c, k.h, k.w, k.kh, k.kw, k.p);
    l.output_shape[0] = k.m;
    const FieldTensor w = random_weight({k.m, k.c, k.kh, k.kw}, rng);
    const FieldTensor x = random_field({2, k.c, k.h, k.w}, rng);
    const FieldTensor y = apply_linear_field(l, w, x);
    const FieldTensor ref = naive(l, w, x);
    EXPECT_EQ(y.shape, ref.shape);
    EXPECT_EQ(y.values, ref.values);
  }
}

TEST(Field, DenseMatchesNaiveIncludingExtremes) {
  std::mt19937_64 rng(3);
  const LinearLayer l = dense_layer(37, 5);
  const FieldTensor w = random_weight({5, 37}, rng);
  const FieldTensor x = random_field({3, 37}, rng);
  EXPECT_EQ(apply_linear_field(l, w, x).values, naive(l, w, x).values);

  // The largest sum the bounds allow: 2^17 terms of (P-1)/2 x 2^15, both signs.
  const int64_t k = kFieldMaxTerms;
  const LinearLayer big = dense_layer(k, 2);
  FieldTensor wb = filled({2, k}, kFieldMaxWeight);
  for (int64_t i = k; i < 2 * k; ++i) wb.values[i] = to_field(-kFieldMaxWeight);
  for (int64_t sign : {1, -1}) {
    const FieldTensor xb = filled({1, k}, sign * kHalf);
    const FieldTensor y = apply_linear_field(big, wb, xb);
    const i128 sum = static_cast<i128>(k) * kHalf * kFieldMaxWeight * sign;
    EXPECT_EQ(y.values[0], mod_p(sum));
    EXPECT_EQ(y.values[1], mod_p(-sum));
    EXPECT_EQ(y.values, naive(big, wb, xb).values);
  }
}

TEST(Field, ConvExtremeValuesAreExact) {
  LinearLayer l = conv_layer(8, 5, 5, 3, 3, {{1, 1}, {1, 1, 1, 1}, {1, 1}, 1});
  l.output_shape[0] = 2;
  FieldTensor w = filled({2, 8, 3, 3}, kFieldMaxWeight);
  for (int64_t i = 72; i < 144; ++i) w.values[i] = to_field(-kFieldMaxWeight);
  const FieldTensor x = filled({1, 8, 5, 5}, -kHalf);
  EXPECT_EQ(apply_linear_field(l, w, x).values, naive(l, w, x).values);
}

TEST(Field, WideWeightsMatchNaive) {
  std::mt19937_64 rng(4);
  LinearLayer l = conv_layer(3, 6, 7, 3, 3, {{2, 1}, {1, 1, 0, 1}, {1, 1}, 1});
  l.output_shape[0] = 3;
  const FieldTensor w = random_field({3, 3, 3, 3}, rng);
  const FieldTensor x = random_field({2, 3, 6, 7}, rng);
  EXPECT_EQ(apply_linear_field_wide(l, w, x).values, naive(l, w, x).values);
  const LinearLayer d = dense_layer(11, 4);
  FieldTensor wd = random_field({4, 11}, rng);
  wd.values[0] = kFieldPrime / 2;  // the extremes of the centred range
  wd.values[1] = kFieldPrime / 2 + 1;
  const FieldTensor xd = random_field({3, 11}, rng);
  EXPECT_EQ(apply_linear_field_wide(d, wd, xd).values, naive(d, wd, xd).values);
  EXPECT_THROW(apply_linear_field(d, wd, xd), InvalidArgument);  // too wide for the plain kernel
}

TEST(Field, OutOfBoundOperandsAreRefused) {
  std::mt19937_64 rng(5);
  const LinearLayer l = dense_layer(4, 2);
  FieldTensor w = random_weight({2, 4}, rng);
  FieldTensor x = random_field({1, 4}, rng);
  EXPECT_NO_THROW(apply_linear_field(l, w, x));
  FieldTensor bad = w;
  bad.values[3] = to_field(kFieldMaxWeight + 1);
  EXPECT_THROW(apply_linear_field(l, bad, x), InvalidArgument);
  bad.values[3] = to_field(-kFieldMaxWeight - 1);
  EXPECT_THROW(apply_linear_field(l, bad, x), InvalidArgument);
  bad.values[3] = kFieldPrime;
  EXPECT_THROW(apply_linear_field(l, bad, x), InvalidArgument);
  FieldTensor badx = x;
  badx.values[0] = kFieldPrime;
  EXPECT_THROW(apply_linear_field(l, w, badx), InvalidArgument);
  EXPECT_THROW(apply_linear_field_wide(l, w, badx), InvalidArgument);
  badx.shape = {1, 5};
  badx.values.resize(5, 0);
  EXPECT_THROW(apply_linear_field(l, w, badx), InvalidArgument);
  FieldTensor short_x = x;
  short_x.values.pop_back();
  EXPECT_THROW(apply_linear_field(l, w, short_x), InvalidArgument);
  // More terms per output than the int64 bound covers.
  const LinearLayer huge = dense_layer(kFieldMaxTerms + 1, 1);
  EXPECT_THROW(apply_linear_field(huge, filled({1, kFieldMaxTerms + 1}, 1),
                                  filled({1, kFieldMaxTerms + 1}, 1)),
               InvalidArgument);
  // A conv whose declared output does not match its geometry.
  LinearLayer c = conv_layer(1, 4, 4, 3, 3, {});
  c.output_shape = {1, 3, 3};
  EXPECT_THROW(apply_linear_field(c, filled({1, 1, 3, 3}, 1), filled({1, 1, 4, 4}, 1)),
               InvalidArgument);
}

}  // namespace
}  // namespace veil::split
