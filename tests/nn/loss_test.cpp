#include "veil/nn/loss.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

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

// Knowledge distillation straight from its definition, in double:
// (1 - a) CE + a T^2 sum_j pt_j log(pt_j / ps_j), pt = softmax(t / T), ps = softmax(s / T).
double naive_distillation(const Tensor& s, const Tensor& t, const std::vector<int32_t>& y, double a,
                          double temp) {
  const int64_t n = s.dim(0), c = s.dim(1);
  double kl = 0;
  for (int64_t i = 0; i < n; ++i) {
    double zs = 0, zt = 0;
    for (int64_t j = 0; j < c; ++j) {
      zs += std::exp(s.data()[i * c + j] / temp);
      zt += std::exp(t.data()[i * c + j] / temp);
    }
    for (int64_t j = 0; j < c; ++j) {
      const double ps = std::exp(s.data()[i * c + j] / temp) / zs;
      const double pt = std::exp(t.data()[i * c + j] / temp) / zt;
      kl += pt * std::log(pt / ps);
    }
  }
  return (1 - a) * naive_loss(s, y) + a * temp * temp * kl / n;
}

TEST(Distillation, MatchesDefinitionAndFiniteDifferences) {
  std::mt19937 rng(5);
  std::normal_distribution<float> d(0, 2);
  Tensor s({3, 6}), t({3, 6});
  for (float& v : s.floats()) v = d(rng);
  for (float& v : t.floats()) v = d(rng);
  const std::vector<int32_t> y{5, 0, 3};
  for (double temp : {1.0, 4.0}) {
    const double a = 0.7;
    auto r = distillation_loss(s, t, y, a, temp);
    EXPECT_NEAR(r.loss, naive_distillation(s, t, y, a, temp), 1e-6) << temp;
    EXPECT_EQ(r.correct, softmax_cross_entropy(s, y, false).correct);
    for (int64_t k = 0; k < s.numel(); ++k) {
      Tensor p = s, m = s;
      const float eps = 1e-2f;
      p.data()[k] += eps;
      m.data()[k] -= eps;
      const double fd =
          (naive_distillation(p, t, y, a, temp) - naive_distillation(m, t, y, a, temp)) / (2 * eps);
      EXPECT_NEAR(r.grad.data()[k], fd, 1e-4) << temp << " " << k;
    }
  }
}

TEST(Distillation, EndpointsAreCrossEntropyAndTeacherMatching) {
  auto s = Tensor::from_floats({2, 3}, {1, -2, 0.5f, 3, 0, -1});
  auto t = Tensor::from_floats({2, 3}, {-1, 2, 0, 0, 4, 1});
  const std::vector<int32_t> y{0, 2};
  // alpha = 0: the labels alone, bit for bit.
  const auto ce = softmax_cross_entropy(s, y);
  const auto a0 = distillation_loss(s, t, y, 0, 4);
  EXPECT_DOUBLE_EQ(a0.loss, ce.loss);
  EXPECT_TRUE(a0.grad == ce.grad);
  // alpha = 1 and a student that already equals its teacher: nothing left to learn.
  const auto same = distillation_loss(t, t, y, 1, 4);
  EXPECT_NEAR(same.loss, 0, 1e-12);
  for (float g : same.grad.floats()) EXPECT_NEAR(g, 0, 1e-7);
  // Logits thousands apart: no log of an underflowed probability.
  auto far = Tensor::from_floats({1, 3}, {5000, -5000, 0});
  auto r = distillation_loss(far, Tensor::from_floats({1, 3}, {-5000, 5000, 0}),
                             std::vector<int32_t>{0}, 0.5, 1);
  EXPECT_TRUE(std::isfinite(r.loss));
  for (float g : r.grad.floats()) EXPECT_TRUE(std::isfinite(g));
}

TEST(Distillation, RejectsBadArguments) {
  Tensor s({2, 3});
  const std::vector<int32_t> y{0, 1};
  EXPECT_THROW(distillation_loss(s, Tensor({2, 4}), y, 0.5, 4), InvalidArgument);
  EXPECT_THROW(distillation_loss(s, Tensor({2, 3}), y, 1.5, 4), InvalidArgument);
  EXPECT_THROW(distillation_loss(s, Tensor({2, 3}), y, std::nan(""), 4), InvalidArgument);
  EXPECT_THROW(distillation_loss(s, Tensor({2, 3}), y, 0.5, 0), InvalidArgument);
  auto bad = Tensor::from_floats({2, 3}, {0, 0, 0, 0, std::nanf(""), 0});
  EXPECT_THROW(distillation_loss(s, bad, y, 0.5, 4), Error);
}

// Attention transfer straight from its definition, in double: per image the map
// Q_p = sum_c a_cp^2 / C scaled to unit norm, then beta / 2 * mean over images and positions of
// the squared difference.
double naive_attention(const Tensor& s, const Tensor& t, double beta) {
  const int64_t n = s.dim(0), c = s.dim(1), hw = s.dim(2) * s.dim(3);
  auto unit_map = [&](const Tensor& x, int64_t i) {
    std::vector<double> q(static_cast<size_t>(hw), 0.0);
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t p = 0; p < hw; ++p) {
        const double v = x.data()[(i * c + ch) * hw + p];
        q[static_cast<size_t>(p)] += v * v / c;
      }
    double norm = 0;
    for (double v : q) norm += v * v;
    for (double& v : q) v /= std::sqrt(norm);
    return q;
  };
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    const auto qs = unit_map(s, i), qt = unit_map(t, i);
    for (size_t p = 0; p < qs.size(); ++p) sum += (qs[p] - qt[p]) * (qs[p] - qt[p]);
  }
  return beta / 2 * sum / static_cast<double>(n * hw);
}

TEST(AttentionTransfer, MatchesDefinitionAndFiniteDifferences) {
  std::mt19937 rng(11);
  std::normal_distribution<float> d(0, 1);
  Tensor s({2, 3, 2, 3}), t({2, 3, 2, 3});
  for (float& v : s.floats()) v = d(rng);
  for (float& v : t.floats()) v = d(rng);
  const double beta = 1000;
  const auto r = attention_transfer_loss(s, t, beta);
  EXPECT_NEAR(r.loss, naive_attention(s, t, beta), 1e-9 * beta);
  EXPECT_GT(r.loss, 0);
  EXPECT_EQ(r.correct, 0);
  for (int64_t k = 0; k < s.numel(); ++k) {
    Tensor p = s, m = s;
    const float eps = 1e-3f;
    p.data()[k] += eps;
    m.data()[k] -= eps;
    const double fd = (naive_attention(p, t, beta) - naive_attention(m, t, beta)) / (2 * eps);
    EXPECT_NEAR(r.grad.data()[k], fd, 1e-3 * std::max(1.0, std::abs(fd))) << k;
  }
}

TEST(AttentionTransfer, SeesWhereNotHowMuch) {
  std::mt19937 rng(3);
  std::normal_distribution<float> d(0, 1);
  Tensor t({2, 4, 3, 3});
  for (float& v : t.floats()) v = d(rng);
  // A student whose features are the teacher's times 3 (per image) has the same maps: nothing
  // to learn, and no gradient.
  Tensor s = t;
  for (float& v : s.floats()) v *= 3;
  const auto same = attention_transfer_loss(s, t, 1000);
  EXPECT_NEAR(same.loss, 0, 1e-9);
  for (float g : same.grad.floats()) EXPECT_NEAR(g, 0, 1e-6);
  // All-zero student features (a dead stage) stay finite.
  const auto dead = attention_transfer_loss(Tensor({2, 4, 3, 3}), t, 1000);
  EXPECT_TRUE(std::isfinite(dead.loss));
  EXPECT_GT(dead.loss, 0);
  for (float g : dead.grad.floats()) EXPECT_EQ(g, 0);
  // beta = 0 turns it off.
  Tensor other({2, 4, 3, 3});
  for (float& v : other.floats()) v = d(rng);
  EXPECT_EQ(attention_transfer_loss(other, t, 0).loss, 0);
}

TEST(AttentionTransfer, RejectsBadArguments) {
  Tensor s({2, 3, 2, 2});
  EXPECT_THROW(attention_transfer_loss(s, Tensor({2, 3, 2, 3}), 1), InvalidArgument);
  EXPECT_THROW(attention_transfer_loss(Tensor({2, 3}), Tensor({2, 3}), 1), InvalidArgument);
  EXPECT_THROW(attention_transfer_loss(s, Tensor({2, 3, 2, 2}), -1), InvalidArgument);
  EXPECT_THROW(attention_transfer_loss(s, Tensor({2, 3, 2, 2}), std::nan("")), InvalidArgument);
  Tensor bad({2, 3, 2, 2});
  bad.data()[5] = std::nanf("");
  EXPECT_THROW(attention_transfer_loss(s, bad, 1), Error);
}

}  // namespace
}  // namespace veil::nn
