// A learnable toy dataset for trainer tests.
#pragma once

#include <random>

#include "veil/data/dataset.hpp"

namespace veil::nn::testing {

// Two Gaussian blobs per class on an 8x8 "image": learnable by any of the architectures.
inline data::Dataset blobs(int64_t n, int64_t classes, uint64_t seed) {
  data::Dataset d;
  d.name = "blobs";
  d.num_classes = classes;
  d.images = Tensor({n, 1, 8, 8});
  std::mt19937 rng(static_cast<unsigned>(seed));
  std::normal_distribution<float> noise(0, 0.15f);
  for (int64_t i = 0; i < n; ++i) {
    int32_t y = static_cast<int32_t>(i % classes);
    d.labels.push_back(y);
    float* img = d.images.data() + i * 64;
    for (int k = 0; k < 64; ++k) img[k] = 0.2f + noise(rng);
    // Each class lights up its own 2x2 patch.
    int r = static_cast<int>(2 * (y / 4)), c = static_cast<int>(2 * (y % 4));
    for (int dy = 0; dy < 2; ++dy)
      for (int dx = 0; dx < 2; ++dx) img[(r + dy) * 8 + c + dx] += 1.0f;
  }
  return d;
}

}  // namespace veil::nn::testing
