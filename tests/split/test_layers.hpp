// Small linear layers with random weights for the split tests.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "veil/split/linear_layer.hpp"

namespace veil::split::testing {

inline Tensor random_tensor(Shape shape, std::mt19937& rng, float std = 1.0f) {
  Tensor t(std::move(shape));
  std::normal_distribution<float> dist(0.0f, std);
  for (float& v : t.floats()) v = dist(rng);
  return t;
}

// A conv layer [m, c, k, k] on [c, h, h] inputs, weights N(0, 1/(c k k)) as He-style inits give.
inline LinearLayer conv_layer(size_t index, int64_t m, int64_t c, int64_t h, int64_t k,
                              int64_t stride, int64_t pad, int64_t dilation, std::mt19937& rng,
                              bool bias = true) {
  LinearLayer l;
  l.index = index;
  l.name = "conv" + std::to_string(index);
  l.kind = LinearKind::Conv;
  l.weight = random_tensor({m, c, k, k}, rng, 1.0f / std::sqrt(static_cast<float>(c * k * k)));
  if (bias) l.bias = random_tensor({m}, rng, 0.1f);
  l.conv.strides = {stride, stride};
  l.conv.pads = {pad, pad, pad, pad};
  l.conv.dilations = {dilation, dilation};
  const int64_t o = (h + 2 * pad - dilation * (k - 1) - 1) / stride + 1;
  l.input_shape = {c, h, h};
  l.output_shape = {m, o, o};
  return l;
}

inline LinearLayer dense_layer(size_t index, int64_t m, int64_t c, std::mt19937& rng,
                               bool bias = true) {
  LinearLayer l;
  l.index = index;
  l.name = "dense" + std::to_string(index);
  l.kind = LinearKind::Dense;
  l.weight = random_tensor({m, c}, rng, 1.0f / std::sqrt(static_cast<float>(c)));
  if (bias) l.bias = random_tensor({m}, rng, 0.1f);
  l.input_shape = {c};
  l.output_shape = {m};
  return l;
}

// A first conv layer and a later dense one, for the tests of a transform's structure.
inline std::vector<LinearLayer> conv_and_dense(std::mt19937& rng) {
  return {conv_layer(0, 10, 3, 6, 3, 1, 1, 1, rng), dense_layer(2, 12, 7, rng)};
}

// A batch for `layer`: post-ReLU-like activations (non-negative) scaled by `scale`.
inline Tensor random_input(const LinearLayer& layer, int64_t batch, std::mt19937& rng,
                           float scale = 1.0f) {
  Shape s = layer.input_shape;
  s.insert(s.begin(), batch);
  Tensor x = random_tensor(s, rng, scale);
  if (layer.index > 0)
    for (float& v : x.floats()) v = std::max(v, 0.0f);
  return x;
}

// y = x (*) W + b, the ground truth.
inline Tensor reference_output(const LinearLayer& layer, const Tensor& x) {
  Tensor y = apply_linear(layer, layer.weight, x);
  if (!layer.bias.empty()) {
    const int64_t b = y.shape()[0], m = y.shape()[1], inner = y.numel() / (b * m);
    for (int64_t i = 0; i < b; ++i)
      for (int64_t c = 0; c < m; ++c)
        for (int64_t j = 0; j < inner; ++j)
          y.data()[(i * m + c) * inner + j] += layer.bias.data()[c];
  }
  return y;
}

inline float max_abs(const Tensor& t) {
  float m = 0;
  for (float v : t.floats()) m = std::max(m, std::fabs(v));
  return m;
}

inline float max_abs_diff(const Tensor& a, const Tensor& b) {
  float m = 0;
  for (int64_t i = 0; i < a.numel(); ++i) m = std::max(m, std::fabs(a.data()[i] - b.data()[i]));
  return m;
}

}  // namespace veil::split::testing
