#include "veil/nn/loss.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "veil/core/error.hpp"

namespace veil::nn {
namespace {

// Direct definition: -log(softmax(x)_y), averaged, in double.
double naive_loss(const Tensor& logits, const std::vector<int32_t>& y) {
  int64_t n = logits.dim(0), c = logits.dim(1);
  double total = 0;
  for (int64_t i = 0; i < n; ++i) {
    double z = 0;
    for (int64_t j = 0; j < c; ++j) z += std::exp(static_cast<double>(logits.data()[i * c + j]));
    total += -std::log(std::exp(static_cast<double>(logits.data()[i * c + y[i]])) / z);
  }
  return total / n;
}

TEST(Loss, MatchesDefinitionAndFiniteDifferences) {
  std::mt19937 rng(3);
  std::normal_distribution<float> d(0, 2);
  Tensor x({4, 5});
  for (float& v : x.floats()) v = d(rng);
  std::vector<int32_t> y{0, 4, 2, 2};
  auto r = softmax_cross_entropy(x, y);
  EXPECT_NEAR(r.loss, naive_loss(x, y), 1e-6);
  for (int64_t k = 0; k < x.numel(); ++k) {
    Tensor p = x, m = x;
    const float eps = 1e-2f;
    p.data()[k] += eps;
    m.data()[k] -= eps;
    double fd = (naive_loss(p, y) - naive_loss(m, y)) / (2 * eps);
    EXPECT_NEAR(r.grad.data()[k], fd, 1e-4) << k;
  }
}

TEST(Loss, StableForHugeLogitsAndCountsHits) {
  auto x = Tensor::from_floats({2, 3}, {1000, 0, -1000, 0, 500, 0});
  std::vector<int32_t> y{0, 2};
  auto r = softmax_cross_entropy(x, y);
  EXPECT_TRUE(std::isfinite(r.loss));
  EXPECT_NEAR(r.loss, 250.0, 1e-3);  // row 0 contributes 0, row 1 contributes 500
  EXPECT_EQ(r.correct, 1);
}

// Rows holding NaN or inf are never a hit, whichever label they carry.
TEST(Loss, NonFiniteRowsAreNotHits) {
  const float nan = std::nanf("");
  Tensor logits = Tensor::from_floats({3, 3}, {5, nan, 1, 2, INFINITY, 1, 9, 1, 0});
  const std::vector<int32_t> y{0, 1, 0};
  EXPECT_EQ(softmax_cross_entropy(logits, y, false).correct, 1);  // only the finite last row
}

TEST(Loss, RejectsBadLabelsAndShapes) {
  Tensor x({2, 3});
  std::vector<int32_t> bad{0, 3};
  EXPECT_THROW(softmax_cross_entropy(x, bad), InvalidArgument);
  std::vector<int32_t> short_labels{0};
  EXPECT_THROW(softmax_cross_entropy(x, short_labels), InvalidArgument);
  EXPECT_THROW(softmax_cross_entropy(Tensor({6}), bad), InvalidArgument);
}

}  // namespace
}  // namespace veil::nn
