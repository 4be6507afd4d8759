#include "veil/lock/key.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <set>

#include "helpers.hpp"
#include "veil/core/error.hpp"
#include "veil/lock/keygen.hpp"

namespace veil::lock {
namespace {

// A model with many random weights of widely varying magnitude (where (w + e) - e is rarely w).
model::Model many_weights(uint32_t seed) {
  std::mt19937 rng(seed);
  model::Model m;
  auto& g = m.graph;
  g.inputs.push_back({"x", DType::Float32, {-1, 3, 8, 8}});
  g.outputs.push_back({"y", DType::Float32, {-1, 10}});
  g.initializers["conv.w"] = testing::random_tensor({16, 3, 3, 3}, rng, 0.05f);
  g.initializers["conv.b"] = testing::random_tensor({16}, rng, 0.05f);
  g.initializers["fc.w"] = testing::random_tensor({10, 1024}, rng, 0.02f);
  g.initializers["fc.b"] = testing::random_tensor({10}, rng, 0.05f);
  std::uniform_real_distribution<float> e(-30.f, 3.f);
  for (float& v : g.initializers["fc.w"].floats()) v = std::copysign(std::exp2(e(rng)), v);
  g.initializers["fc.w"].floats()[5] = std::numeric_limits<float>::denorm_min();
  g.initializers["fc.w"].floats()[6] = -0.0f;
  g.nodes.push_back({"conv", "Conv", {"x", "conv.w", "conv.b"}, {"c"}, {}});
  g.nodes.push_back({"flat", "Flatten", {"c"}, {"f"}, {}});
  g.nodes.push_back({"fc", "Gemm", {"f", "fc.w", "fc.b"}, {"y"}, {{"transB", int64_t{1}}}});
  return m;
}

// A reference-style key: every `stride`-th weight of each weight tensor gets +-intensity.
LockKey dense_key(const model::Model& m, float intensity, int64_t stride) {
  LockKey k;
  k.params.intensity = intensity;
  for (const auto& ref : model::weight_tensors(m.graph)) {
    const auto w = m.graph.initializers.at(ref.tensor).floats();
    LayerKey l{ref.tensor, ref.node, w.size(), {}};
    for (uint64_t i = 0; i < w.size(); i += static_cast<uint64_t>(stride)) {
      int8_t s = (i / stride) % 2 ? 1 : -1;
      float locked = w[i] + intensity * s;
      l.entries.push_back({i, std::bit_cast<uint32_t>(w[i]), std::bit_cast<uint32_t>(locked), s});
    }
    k.layers.push_back(l);
  }
  bind_fingerprints(k, m.graph);
  return k;
}

TEST(Key, RestorationIsBitExactWhereSubtractionIsNot) {
  auto m = many_weights(11);
  const auto original = testing::hash_tensors(m.graph);
  LockKey key = dense_key(m, 0.2f, 3);
  ASSERT_GT(key.total_entries(), 1000);
  model::Model locked = testing::locked_copy(m, key);
  EXPECT_NE(testing::hash_tensors(locked.graph), original);
  EXPECT_EQ(fingerprint(locked.graph), key.locked_fingerprint);
  // The reference's restoration, (w + e) - e in fp32, loses most of these weights...
  int64_t inexact = 0;
  for (const auto& l : key.layers) {
    auto w = locked.graph.initializers.at(l.tensor).floats();
    for (const auto& e : l.entries) {
      float back = w[e.index] - key.params.intensity * e.sign;
      inexact += std::bit_cast<uint32_t>(back) != e.original_bits;
    }
  }
  EXPECT_GT(inexact, key.total_entries() / 2);
  // ...ours restores every tensor bit-for-bit.
  decrypt_model(locked, key);
  EXPECT_EQ(testing::hash_tensors(locked.graph), original);
  EXPECT_EQ(fingerprint(locked.graph), key.plain_fingerprint);
}

TEST(Key, FingerprintCoversNamesShapesAndBits) {
  auto m = many_weights(12);
  Fingerprint f = fingerprint(m.graph);
  model::Model a = m;
  a.graph.initializers.at("conv.b").floats()[0] =
      std::nextafter(a.graph.initializers.at("conv.b").floats()[0], 1.f);
  EXPECT_NE(fingerprint(a.graph), f);
  model::Model b = m;
  b.graph.initializers.at("conv.b").reshape({4, 4});
  EXPECT_NE(fingerprint(b.graph), f);
  model::Model c = m;
  c.graph.initializers["conv.b2"] = c.graph.initializers.at("conv.b");
  c.graph.initializers.erase("conv.b");
  EXPECT_NE(fingerprint(c.graph), f);
  model::Model d = m;
  d.graph.initializers.at("fc.w").floats()[6] = 0.0f;  // -0.0 -> +0.0
  EXPECT_NE(fingerprint(d.graph), f);
  EXPECT_EQ(fingerprint(many_weights(12).graph), f);
}

TEST(Key, CheckKeyFitsRejectsBadKeys) {
  auto m = many_weights(13);
  LockKey k = dense_key(m, 0.1f, 50);
  EXPECT_NO_THROW(check_key_fits(m.graph, k));
  LockKey bad = k;
  bad.layers[0].entries.push_back(bad.layers[0].entries[0]);
  EXPECT_THROW(check_key_fits(m.graph, bad), InvalidArgument);
  bad = k;
  bad.layers[0].entries[0].index = bad.layers[0].numel;
  EXPECT_THROW(check_key_fits(m.graph, bad), InvalidArgument);
  bad = k;
  bad.layers[0].tensor = "nope";
  EXPECT_THROW(check_key_fits(m.graph, bad), InvalidArgument);
  bad = k;
  bad.layers[1].numel += 1;
  EXPECT_THROW(check_key_fits(m.graph, bad), InvalidArgument);
}

TEST(Key, PrefixKeepsTheFirstEntriesOfEachLayer) {
  auto m = many_weights(14);
  LockKey k = dense_key(m, 0.1f, 7);
  LockKey p = k.prefix(5);
  ASSERT_EQ(p.layers.size(), k.layers.size());
  for (size_t i = 0; i < p.layers.size(); ++i) {
    ASSERT_EQ(p.layers[i].entries.size(), 5u);
    for (size_t j = 0; j < 5; ++j)
      EXPECT_EQ(p.layers[i].entries[j].index, k.layers[i].entries[j].index);
  }
  EXPECT_TRUE(k.prefix(0).layers.empty());
  EXPECT_EQ(k.prefix(1 << 20).total_entries(), k.total_entries());
}

TEST(Key, LockTensorVerifiesState) {
  auto m = many_weights(15);
  LockKey k = dense_key(m, 0.2f, 100);
  Tensor t = m.graph.initializers.at(k.layers[0].tensor);
  EXPECT_THROW(unlock_tensor(t, k.layers[0], true), IntegrityError);  // it is not locked yet
  Tensor before = t;
  lock_tensor(t, k.layers[0], true);
  EXPECT_FALSE(t == before);
  EXPECT_THROW(lock_tensor(t, k.layers[0], true), IntegrityError);  // already locked
  unlock_tensor(t, k.layers[0], true);
  EXPECT_TRUE(t == before);
}

// ---- position selection ----

std::vector<uint64_t> naive_top_k(const std::vector<float>& g, int64_t k,
                                  const std::vector<bool>& excluded) {
  std::vector<uint64_t> idx;
  for (uint64_t i = 0; i < g.size(); ++i)
    if (g[i] != 0 && !excluded[i]) idx.push_back(i);
  std::stable_sort(idx.begin(), idx.end(),
                   [&](uint64_t a, uint64_t b) { return std::fabs(g[a]) > std::fabs(g[b]); });
  idx.resize(std::min<size_t>(idx.size(), static_cast<size_t>(std::max<int64_t>(k, 0))));
  return idx;
}

TEST(Selection, TopKMatchesNaiveSortWithTiesZerosAndExclusions) {
  std::mt19937 rng(21);
  for (int trial = 0; trial < 50; ++trial) {
    size_t n = 1 + rng() % 3000;
    std::vector<float> g(n);
    // Few distinct magnitudes and signs: many ties, some zeros.
    for (auto& v : g) v = static_cast<float>(static_cast<int>(rng() % 9) - 4) * 0.25f;
    std::vector<bool> ex(n, false);
    for (size_t i = 0; i < n; ++i) ex[i] = rng() % 7 == 0;
    int64_t k = static_cast<int64_t>(rng() % 40);
    EXPECT_EQ(top_k_abs(g, k, &ex), naive_top_k(g, k, ex)) << "trial " << trial;
    std::vector<bool> none(n, false);
    EXPECT_EQ(top_k_abs(g, k), naive_top_k(g, k, none));
  }
  EXPECT_TRUE(top_k_abs(std::vector<float>{0.f, 0.f}, 2).empty());
}

TEST(Selection, LayerBudgetFollowsTheReference) {
  EXPECT_EQ(layer_budget(999, 20, 0.001), 0);  // numel * 0.001 < 1: layer skipped
  EXPECT_EQ(layer_budget(1000, 20, 0.001), 1);
  EXPECT_EQ(layer_budget(18432, 20, 0.001), 18);
  EXPECT_EQ(layer_budget(401408, 20, 0.001), 20);
  EXPECT_EQ(layer_budget(100, 20, 1.0), 20);
  EXPECT_EQ(layer_budget(100, 0, 1.0), 0);
}

TEST(Selection, OutOfRangeOptionsAreInvalidArgument) {
  KeygenOptions o;
  EXPECT_NO_THROW(validate_options(o));
  auto bad = [&](auto mutate) {
    KeygenOptions x;
    mutate(x);
    EXPECT_THROW(validate_options(x), InvalidArgument);
  };
  bad([](KeygenOptions& x) { x.num = -1; });
  bad([](KeygenOptions& x) { x.intensity = 0; });
  bad([](KeygenOptions& x) { x.intensity = -0.1f; });
  bad([](KeygenOptions& x) { x.intensity = std::numeric_limits<float>::infinity(); });
  bad([](KeygenOptions& x) { x.intensity = std::numeric_limits<float>::quiet_NaN(); });
  bad([](KeygenOptions& x) { x.max_percent = 0; });
  bad([](KeygenOptions& x) { x.max_percent = 1.5; });
  bad([](KeygenOptions& x) { x.max_percent = -0.1; });
  bad([](KeygenOptions& x) { x.samples = 0; });
  KeygenOptions edge;
  edge.max_percent = 1;
  edge.num = 0;
  EXPECT_NO_THROW(validate_options(edge));
  EXPECT_THROW(parse_lock_mode("fast"), InvalidArgument);
}

}  // namespace
}  // namespace veil::lock
