#include "veil/split/channel_matching.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>

#include "veil/core/error.hpp"

namespace veil::split {
namespace {

// Next-layer channel c = mean(relu(pre-activation of filter perm^-1(c))) + a fixed mask, as
// ShadowNet's next payload; the attacker sees the pre-activations up to a positive scale.
TEST(ChannelMatching, RecoversAKnownPermutationThroughReluScaleAndMask) {
  const int64_t n = 24, images = 300, spatial = 16;
  std::mt19937_64 rng(11);
  std::normal_distribution<double> g(0, 1);
  std::uniform_real_distribution<double> u(0.3, 3);
  std::vector<int64_t> perm(n);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rng);
  std::vector<double> scale(n), mask(n), bias(n);
  for (int64_t i = 0; i < n; ++i) scale[i] = u(rng), mask[i] = 10 * g(rng), bias[i] = 0.3 * g(rng);
  std::vector<double> x(images * n), y(images * n);
  for (int64_t i = 0; i < images; ++i) {
    const double shared = g(rng);  // image brightness: every channel moves with it a little
    for (int64_t f = 0; f < n; ++f) {
      double mean_pre = 0, mean_relu = 0;
      const double level = 0.5 * shared + g(rng);
      for (int64_t s = 0; s < spatial; ++s) {
        const double pre = level + 0.7 * g(rng) + bias[f];
        mean_pre += pre / scale[f];
        mean_relu += std::max(pre, 0.0);
      }
      x[i * n + f] = mean_pre / spatial;
      y[i * n + perm[f]] = mean_relu / spatial + mask[perm[f]];
    }
  }
  EXPECT_EQ(match_channels(x, y, images, n), perm);
}

// A residual block's end: channel c of the next input is relu(pre of filter perm^-1(c) + skip_c),
// the skip (the block's input, in the view) larger than the filter's own contribution and
// correlated with other filters: without the skip, the matching goes wrong.
TEST(ChannelMatching, RecoversAPermutationBehindAResidualAdd) {
  const int64_t n = 16, samples = 400;
  std::mt19937_64 rng(12);
  std::normal_distribution<double> g(0, 1);
  std::vector<int64_t> perm(n);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rng);
  std::vector<double> x(samples * n), skip(samples * n), y(samples * n);
  for (int64_t i = 0; i < samples; ++i) {
    for (int64_t c = 0; c < n; ++c) skip[i * n + c] = 3 * g(rng) + 2;
    for (int64_t f = 0; f < n; ++f) {
      // Filters follow the features the block's input carries, on other channels too.
      x[i * n + f] = g(rng) + 0.5 * skip[i * n + perm[(f + 1) % n]];
      const int64_t c = perm[f];
      y[i * n + c] = std::max(x[i * n + f] + skip[i * n + c], 0.0) + 7.0 * c;  // + a mask
    }
  }
  EXPECT_EQ(match_channels_with_residual(x, skip, y, samples, n), perm);
  EXPECT_THROW(match_channels_with_residual(x, skip, {1.0}, samples, n), InvalidArgument);
}

TEST(ChannelMatching, PearsonOfKnownColumns) {
  // columns: x0 = i, x1 = constant; y0 = -2 i + 5, y1 = i^2 (i = 0..3)
  const std::vector<double> x{0, 1, 1, 1, 2, 1, 3, 1};
  const std::vector<double> y{5, 0, 3, 1, 1, 4, -1, 9};
  const auto r = pearson_matrix(x, y, 4, 2, 2);
  EXPECT_NEAR(r[0], -1, 1e-12);
  EXPECT_NEAR(r[1], 0.9583148, 1e-6);
  EXPECT_EQ(r[2], 0);
  EXPECT_EQ(r[3], 0);
}

}  // namespace
}  // namespace veil::split
