// Small hand-built models and naive references shared by the lock tests.
#pragma once

#include <openssl/sha.h>

#include <array>
#include <random>
#include <string>
#include <vector>

#include "veil/core/tensor.hpp"
#include "veil/data/dataset.hpp"
#include "veil/model/graph.hpp"

namespace veil::lock::testing {

inline Tensor random_tensor(Shape shape, std::mt19937& rng, float scale = 0.5f) {
  std::normal_distribution<float> d(0.f, scale);
  Tensor t(std::move(shape));
  for (float& v : t.floats()) v = d(rng);
  return t;
}

// x[N, in] -> Gemm(W1 [hidden, in], transB) -> Relu -> Gemm(W2 [out, hidden], transB) -> logits.
inline model::Model make_mlp(int64_t in, int64_t hidden, int64_t out, uint32_t seed) {
  std::mt19937 rng(seed);
  model::Model m;
  auto& g = m.graph;
  g.name = "mlp";
  g.inputs.push_back({"x", DType::Float32, {-1, in}});
  g.outputs.push_back({"logits", DType::Float32, {-1, out}});
  g.initializers["W1"] = random_tensor({hidden, in}, rng);
  g.initializers["b1"] = random_tensor({hidden}, rng, 0.1f);
  g.initializers["W2"] = random_tensor({out, hidden}, rng);
  g.initializers["b2"] = random_tensor({out}, rng, 0.1f);
  g.nodes.push_back({"fc1", "Gemm", {"x", "W1", "b1"}, {"h"}, {{"transB", int64_t{1}}}});
  g.nodes.push_back({"relu", "Relu", {"h"}, {"a"}, {}});
  g.nodes.push_back({"fc2", "Gemm", {"a", "W2", "b2"}, {"logits"}, {{"transB", int64_t{1}}}});
  g.value_info["h"] = {"h", DType::Float32, {-1, hidden}};
  g.value_info["a"] = {"a", DType::Float32, {-1, hidden}};
  return m;
}

// N examples of `features` values in [0, 1) shaped [N, 1, 1, features] with labels in [0, classes).
inline data::Dataset make_dataset(int64_t n, int64_t features, int64_t classes, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(0.f, 1.f);
  data::Dataset d;
  d.name = "synthetic";
  d.num_classes = classes;
  d.images = Tensor({n, 1, 1, features});
  for (float& v : d.images.floats()) v = u(rng);
  for (int64_t i = 0; i < n; ++i) d.labels.push_back(static_cast<int32_t>(rng() % classes));
  return d;
}

// SHA-256 of every initializer's bytes, by name: an independent check of bit-exactness.
inline std::vector<std::pair<std::string, std::array<uint8_t, 32>>> hash_tensors(
    const model::Graph& g) {
  std::vector<std::pair<std::string, std::array<uint8_t, 32>>> out;
  for (const auto& [name, t] : g.initializers) {
    std::array<uint8_t, 32> h{};
    auto f = t.floats();
    SHA256(reinterpret_cast<const unsigned char*>(f.data()), f.size_bytes(), h.data());
    out.emplace_back(name, h);
  }
  return out;
}

}  // namespace veil::lock::testing
