#include "veil/split/filter_calibration.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "veil/core/error.hpp"

namespace veil::split {
namespace {

// next = maxpool2(relu(s a + b + bias)): the scale from a guess 30 % off, and the bias.
TEST(FilterCalibration, RecoversScaleAndBiasThroughReluAndMaxPooling) {
  const int64_t images = 80, cells = 9, per_cell = 4;
  std::mt19937_64 rng(2);
  std::normal_distribution<double> g(0, 1);
  const double s = 1.3, bias = 0.2;
  std::vector<double> a, b, next;
  for (int64_t i = 0; i < images * cells; ++i) {
    double m = -1e300;
    for (int64_t p = 0; p < per_cell; ++p) {
      a.push_back(g(rng)), b.push_back(g(rng));
      m = std::max(m, s * a.back() + b.back());
    }
    next.push_back(std::max(m + bias, 0.0));
  }
  const auto c = calibrate_filter(a, b, next, images, cells, per_cell, 1.0);
  EXPECT_NEAR(c.scale, s, 0.04);  // the grid's step is 2.5 %
  EXPECT_NEAR(c.bias, bias, 0.1);
  EXPECT_GT(c.fit, 0.99);
}

// next = relu(s a + b + bias + skip) + a constant per element (a mask the attacker estimated
// wrongly): exact scale, bias from the median.
TEST(FilterCalibration, RecoversAResidualFilterDespitePerElementOffsets) {
  const int64_t images = 100, elements = 20;
  std::mt19937_64 rng(3);
  std::normal_distribution<double> g(0, 1);
  const double s = 0.7, bias = -0.4;
  std::vector<double> offset(elements, 0);
  for (int64_t e = 0; e < 3; ++e) offset[e] = 2 * g(rng);  // a few elements misestimated
  std::vector<double> a, b, skip, next;
  std::vector<int64_t> element;
  for (int64_t i = 0; i < images; ++i)
    for (int64_t e = 0; e < elements; ++e) {
      a.push_back(g(rng)), b.push_back(g(rng)), skip.push_back(std::abs(g(rng)));
      next.push_back(std::max(s * a.back() + b.back() + bias + skip.back(), 0.0) + offset[e]);
      element.push_back(e);
    }
  std::vector<double> rest(b);
  for (size_t i = 0; i < rest.size(); ++i) rest[i] += skip[i];
  const auto c = calibrate_summed_filters({a}, rest, next, element, elements);
  ASSERT_EQ(c.scales.size(), 1u);
  EXPECT_NEAR(c.scales[0], s, 1e-9);
  EXPECT_NEAR(c.bias, bias, 1e-9);
  EXPECT_NEAR(c.fit, 1, 1e-9);
  EXPECT_THROW(calibrate_summed_filters({a}, rest, {1.0}, element, elements), InvalidArgument);
}

// The end of a network: next = mean over 16 positions of relu(s a + rest + bias) + a mask.
TEST(FilterCalibration, RecoversAFilterBehindAveragePooling) {
  const int64_t samples = 150, per_cell = 16;
  std::mt19937_64 rng(6);
  std::normal_distribution<double> g(0, 1);
  const double s = 0.8, bias = -0.3;
  std::vector<double> a, rest, next;
  for (int64_t i = 0; i < samples; ++i) {
    double m = 0;
    for (int64_t p = 0; p < per_cell; ++p) {
      a.push_back(g(rng)), rest.push_back(0.5 * g(rng) + 0.2);
      m += std::max(s * a.back() + rest.back() + bias, 0.0) / per_cell;
    }
    next.push_back(m + 4.0);
  }
  const auto c = calibrate_mean_pooled_filter(a, rest, next, samples, per_cell, 1.2);
  EXPECT_NEAR(c.scale, s, 0.02);
  EXPECT_NEAR(c.bias, bias, 0.05);
  EXPECT_GT(c.fit, 0.99);
}

// A block whose shortcut is a projection: next = relu(s1 a1 + s2 a2 + rest + bias).
TEST(FilterCalibration, SeparatesTwoSummedFilters) {
  const int64_t images = 80, elements = 10;
  std::mt19937_64 rng(5);
  std::normal_distribution<double> g(0, 1);
  std::vector<double> a1, a2, rest, next;
  std::vector<int64_t> element;
  for (int64_t i = 0; i < images; ++i)
    for (int64_t e = 0; e < elements; ++e) {
      a1.push_back(g(rng)), a2.push_back(g(rng)), rest.push_back(g(rng));
      next.push_back(std::max(1.5 * a1.back() + 0.6 * a2.back() + rest.back() + 0.1, 0.0));
      element.push_back(e);
    }
  const auto c = calibrate_summed_filters({a1, a2}, rest, next, element, elements);
  ASSERT_EQ(c.scales.size(), 2u);
  EXPECT_NEAR(c.scales[0], 1.5, 1e-9);
  EXPECT_NEAR(c.scales[1], 0.6, 1e-9);
  EXPECT_NEAR(c.bias, 0.1, 1e-9);
}

}  // namespace
}  // namespace veil::split
