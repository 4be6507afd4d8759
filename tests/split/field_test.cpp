#include "veil/split/field.hpp"

#include <gtest/gtest.h>

#include <random>

#include "linear_reference.hpp"
#include "veil/core/error.hpp"

namespace veil::split {
namespace {

using testing::conv_layer;
using testing::dense_layer;
using i128 = __int128;
constexpr int64_t kHalf = static_cast<int64_t>(kFieldPrime / 2);  // (P-1)/2

uint64_t mod_p(i128 v) {
  i128 r = v % static_cast<i128>(kFieldPrime);
  return static_cast<uint64_t>(r < 0 ? r + kFieldPrime : r);
}

// The naive reference: exact integer sums of centred values, reduced mod P at the end.
FieldTensor naive(const LinearLayer& l, const FieldTensor& w, const FieldTensor& x) {
  const std::vector<i128> sums = testing::naive_linear<i128>(
      l, x.shape[0], w.shape[0], [&](int64_t i) { return static_cast<i128>(centred(w.values[i])); },
      [&](int64_t i) { return static_cast<i128>(centred(x.values[i])); });
  FieldTensor y;
  for (i128 v : sums) y.values.push_back(mod_p(v));
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
    const LinearLayer l = conv_layer(k.c, k.h, k.w, k.m, k.kh, k.kw, k.p);
    const FieldTensor w = random_weight({k.m, k.c, k.kh, k.kw}, rng);
    const FieldTensor x = random_field({2, k.c, k.h, k.w}, rng);
    const FieldTensor y = apply_linear_field(l, w, x);
    const FieldTensor ref = naive(l, w, x);
    EXPECT_EQ(y.shape, (Shape{2, k.m, l.output_shape[1], l.output_shape[2]}));
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
  const LinearLayer l = conv_layer(8, 5, 5, 2, 3, 3, {{1, 1}, {1, 1, 1, 1}, {1, 1}, 1});
  FieldTensor w = filled({2, 8, 3, 3}, kFieldMaxWeight);
  for (int64_t i = 72; i < 144; ++i) w.values[i] = to_field(-kFieldMaxWeight);
  const FieldTensor x = filled({1, 8, 5, 5}, -kHalf);
  EXPECT_EQ(apply_linear_field(l, w, x).values, naive(l, w, x).values);
}

TEST(Field, WideWeightsMatchNaive) {
  std::mt19937_64 rng(4);
  const LinearLayer l = conv_layer(3, 6, 7, 3, 3, 3, {{2, 1}, {1, 1, 0, 1}, {1, 1}, 1});
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
  LinearLayer c = conv_layer(1, 4, 4, 1, 3, 3);
  c.output_shape = {1, 3, 3};
  EXPECT_THROW(apply_linear_field(c, filled({1, 1, 3, 3}, 1), filled({1, 1, 4, 4}, 1)),
               InvalidArgument);
}

}  // namespace
}  // namespace veil::split
