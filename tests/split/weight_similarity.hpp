// Weights shaped like trained ones, and the filter cosines the pairing attacks look at.
#pragma once

#include <cmath>
#include <random>

#include "test_layers.hpp"

namespace veil::split::testing_weights {

// Trained conv filters are not independent noise: they share a few patterns (edges, blobs) in
// different proportions. 32 filters of 16 x 3 x 3, each a random mix of 8 shared patterns plus
// individual noise of a third of its energy.
inline LinearLayer trained_like_conv(std::mt19937& rng) {
  LinearLayer layer = testing::conv_layer(1, 32, 16, 6, 3, 1, 1, 1, rng);
  const int64_t terms = 16 * 9, patterns = 8;
  const Tensor basis = testing::random_tensor({patterns, terms}, rng);
  std::normal_distribution<float> g(0.0f, 1.0f);
  for (int64_t n = 0; n < 32; ++n) {
    std::vector<float> mix(patterns);
    for (float& a : mix) a = g(rng);
    for (int64_t t = 0; t < terms; ++t) {
      float v = 0.7f * g(rng) * std::sqrt(static_cast<float>(patterns));
      for (int64_t b = 0; b < patterns; ++b) v += mix[b] * basis.data()[b * terms + t];
      layer.weight.data()[n * terms + t] = 0.05f * v;
    }
  }
  return layer;
}

inline double filter_cosine(const Tensor& w, int64_t a, int64_t b) {
  const int64_t terms = w.numel() / w.shape()[0];
  double ab = 0, aa = 0, bb = 0;
  for (int64_t t = 0; t < terms; ++t) {
    const double x = w.data()[a * terms + t], y = w.data()[b * terms + t];
    ab += x * y, aa += x * x, bb += y * y;
  }
  return ab / std::sqrt(aa * bb);
}

// The largest |cosine| between filter a and any other filter of w, and which one it is.
inline std::pair<double, int64_t> best_partner(const Tensor& w, int64_t a) {
  std::pair<double, int64_t> best{-1, -1};
  for (int64_t b = 0; b < w.shape()[0]; ++b)
    if (b != a) best = std::max(best, {std::fabs(filter_cosine(w, a, b)), b});
  return best;
}

}  // namespace veil::split::testing_weights
