#include "veil/split/activation_pairing.hpp"

#include <gtest/gtest.h>

#include <random>

#include "veil/core/error.hpp"

namespace veil::split {
namespace {

// 12 outsourced channels of a layer with 4 weights per filter (fewer than the slots, so the full
// regression is not unique); the next layer sees relu(1.7 Y'_5 + Y'_9 + 0.3) plus a fixed mask
// per element.
TEST(ActivationPairing, FindsThePairAndScaleBehindAReluChannel) {
  const int64_t slots = 12, dim = 4, elements = 30, images = 60;
  std::mt19937_64 rng(4);
  std::normal_distribution<double> g(0, 1);
  std::vector<double> w(slots * dim), mask(elements);
  for (auto& v : w) v = g(rng);
  for (auto& v : mask) v = 5 * g(rng);
  std::vector<double> outputs, target;
  std::vector<int64_t> element;
  for (int64_t i = 0; i < images; ++i)
    for (int64_t e = 0; e < elements; ++e) {
      double x[dim];
      for (auto& v : x) v = g(rng);
      for (int64_t m = 0; m < slots; ++m) {
        double y = 0;
        for (int64_t j = 0; j < dim; ++j) y += w[m * dim + j] * x[j];
        outputs.push_back(y);
      }
      const double pre =
          1.7 * outputs[outputs.size() - slots + 5] + outputs[outputs.size() - slots + 9] + 0.3;
      target.push_back(std::max(pre, 0.0) + mask[e]);
      element.push_back(e);
    }
  const auto src = explain_channel(outputs, target, element, slots, elements);
  EXPECT_EQ(src.real, 5);
  EXPECT_EQ(src.fake, 9);
  EXPECT_NEAR(src.scale, 1.7, 1e-6);
  EXPECT_GT(src.fit, 0.999999);
}

TEST(ActivationPairing, RefusesMismatchedSizes) {
  EXPECT_THROW(explain_channel({1, 2, 3}, {1}, {0}, 2, 1), InvalidArgument);
  EXPECT_THROW(explain_channel({1, 2}, {1}, {3}, 2, 1), InvalidArgument);
}

}  // namespace
}  // namespace veil::split
