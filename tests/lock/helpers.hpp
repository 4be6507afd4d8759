// Small hand-built models and naive references shared by the lock tests.
#pragma once

#include <openssl/sha.h>

#include <array>
#include <random>
#include <string>
#include <vector>

#include "veil/core/tensor.hpp"
#include "veil/data/dataset.hpp"
#include "veil/lock/attack.hpp"
#include "veil/lock/key.hpp"
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

// A locked copy of `m` (encrypt_model checks both fingerprints).
inline model::Model locked_copy(const model::Model& m, const LockKey& key) {
  model::Model locked = m;
  encrypt_model(locked, key);
  return locked;
}

// Locks a copy of `m` and unlocks it again: true when every initializer has its original bytes
// (checked by hash_tensors, independently of the key's fingerprints).
inline bool restores_bit_exactly(const model::Model& m, const LockKey& key) {
  model::Model copy = locked_copy(m, key);
  decrypt_model(copy, key);
  return hash_tensors(copy.graph) == hash_tensors(m.graph);
}

// The outlier attack resetting the top `suspects` of every layer of `locked` in place, scored
// against `key`.
inline OutlierAttackResult outlier_attack_on(model::Model& locked, const LockKey& key,
                                             int64_t suspects) {
  OutlierAttackOptions o;
  o.suspects_per_layer = suspects;
  return outlier_attack(locked.graph, o, &key);
}

}  // namespace veil::lock::testing
