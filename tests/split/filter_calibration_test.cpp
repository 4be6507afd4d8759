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
  const auto c = calibrate_residual_filter(a, b, skip, next, element, elements);
  EXPECT_NEAR(c.scale, s, 1e-9);
  EXPECT_NEAR(c.bias, bias, 1e-9);
  EXPECT_NEAR(c.fit, 1, 1e-9);
  EXPECT_THROW(calibrate_residual_filter(a, b, skip, {1.0}, element, elements), InvalidArgument);
}

}  // namespace
}  // namespace veil::split
