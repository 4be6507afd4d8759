// Tests that run the float engine: gradients, key generation, runtime encryption scheduling.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <numeric>
#include <random>
#include <set>

#include "helpers.hpp"
#include "veil/core/error.hpp"
#include "veil/lock/attack.hpp"
#include "veil/lock/evaluate.hpp"
#include "veil/lock/gradient_model.hpp"
#include "veil/lock/keygen.hpp"
#include "veil/lock/scheduler.hpp"
#include "veil/nn/executor.hpp"
#include "veil/nn/loss.hpp"
#include "veil/nn/trainer.hpp"

namespace veil::lock {
namespace {

// Naive summed cross-entropy gradient of the Gemm -> Relu -> Gemm model, in double. With
// target >= 0: the gradient of the summed log-probability of that class (collapse objective).
std::map<std::string, std::vector<double>> naive_grads(const model::Model& m,
                                                       const data::Dataset& d,
                                                       int32_t target = -1) {
  const auto& W1 = m.graph.initializers.at("W1");
  const auto& b1 = m.graph.initializers.at("b1").floats();
  const auto& W2 = m.graph.initializers.at("W2");
  const auto& b2 = m.graph.initializers.at("b2").floats();
  const int64_t H = W1.dim(0), F = W1.dim(1), C = W2.dim(0);
  std::map<std::string, std::vector<double>> g;
  g["W1"].assign(H * F, 0);
  g["W2"].assign(C * H, 0);
  auto x_all = d.images.floats();
  for (int64_t n = 0; n < d.size(); ++n) {
    const float* x = x_all.data() + n * F;
    std::vector<double> pre(H), a(H), z(C), p(C);
    for (int64_t h = 0; h < H; ++h) {
      double s = b1[h];
      for (int64_t f = 0; f < F; ++f) s += double(W1.floats()[h * F + f]) * x[f];
      pre[h] = s;
      a[h] = s > 0 ? s : 0;
    }
    double mx = -1e300;
    for (int64_t c = 0; c < C; ++c) {
      double s = b2[c];
      for (int64_t h = 0; h < H; ++h) s += double(W2.floats()[c * H + h]) * a[h];
      z[c] = s;
      mx = std::max(mx, s);
    }
    double sum = 0;
    for (int64_t c = 0; c < C; ++c) sum += std::exp(z[c] - mx);
    const int32_t label = target >= 0 ? target : d.labels[n];
    const double sgn = target >= 0 ? -1 : 1;  // d(log p_t) = -d(CE towards t)
    for (int64_t c = 0; c < C; ++c) p[c] = sgn * (std::exp(z[c] - mx) / sum - (c == label ? 1 : 0));
    std::vector<double> da(H, 0);
    for (int64_t c = 0; c < C; ++c)
      for (int64_t h = 0; h < H; ++h) {
        g["W2"][c * H + h] += p[c] * a[h];
        da[h] += p[c] * W2.floats()[c * H + h];
      }
    for (int64_t h = 0; h < H; ++h) {
      if (pre[h] <= 0) continue;
      for (int64_t f = 0; f < F; ++f) g["W1"][h * F + f] += da[h] * x[f];
    }
  }
  return g;
}

TEST(Gradients, SummedGradientsMatchNaiveBackprop) {
  auto m = testing::make_mlp(12, 16, 5, 31);
  auto d = testing::make_dataset(37, 12, 5, 32);
  auto got = summed_gradients(m, d, {"W1", "W2"}, 10);  // batches of 10, 10, 10, 7
  auto want = naive_grads(m, d);
  for (const auto& t : {"W1", "W2"}) {
    ASSERT_EQ(got[t].size(), want[t].size());
    double scale = 0;
    for (double v : want[t]) scale = std::max(scale, std::fabs(v));
    for (size_t i = 0; i < want[t].size(); ++i)
      EXPECT_NEAR(got[t][i], want[t][i], 1e-4 * scale + 1e-5) << t << "[" << i << "]";
  }
}

TEST(Gradients, GradientModelMatchesInferenceWithBatchNormAndDropout) {
  // x -> Gemm -> BatchNormalization (running stats) -> Relu -> Dropout -> Gemm
  auto m = testing::make_mlp(8, 6, 4, 33);
  auto& g = m.graph;
  std::mt19937 rng(34);
  g.initializers["bn.s"] = testing::random_tensor({6}, rng);
  g.initializers["bn.b"] = testing::random_tensor({6}, rng);
  g.initializers["bn.m"] = testing::random_tensor({6}, rng);
  Tensor var = testing::random_tensor({6}, rng);
  for (float& v : var.floats()) v = v * v + 0.1f;
  g.initializers["bn.v"] = var;
  g.nodes = {
      {"fc1", "Gemm", {"x", "W1", "b1"}, {"h"}, {{"transB", int64_t{1}}}},
      {"bn", "BatchNormalization", {"h", "bn.s", "bn.b", "bn.m", "bn.v"}, {"hn"}, {}},
      {"relu", "Relu", {"hn"}, {"a"}, {}},
      {"drop", "Dropout", {"a"}, {"ad"}, {{"ratio", 0.5f}}},
      {"fc2", "Gemm", {"ad", "W2", "b2"}, {"logits"}, {{"transB", int64_t{1}}}},
  };
  g.value_info["hn"] = {"hn", DType::Float32, {-1, 6}};
  g.value_info["ad"] = {"ad", DType::Float32, {-1, 6}};
  auto d = testing::make_dataset(9, 8, 4, 35);
  Tensor x = prepare_input(m, d.batch(0, 9));
  nn::Executor ref(m);
  Tensor want = ref.forward({x}, nn::Mode::Inference)[0];
  model::Model gm = gradient_model(m);
  for (const auto& n : gm.graph.nodes) {
    EXPECT_NE(n.op_type, "BatchNormalization");
    EXPECT_NE(n.op_type, "Dropout");
  }
  nn::Executor ex(gm);
  Tensor got = ex.forward({x}, nn::Mode::Training)[0];
  ASSERT_EQ(got.shape(), want.shape());
  for (int64_t i = 0; i < got.numel(); ++i)
    EXPECT_NEAR(got.floats()[i], want.floats()[i], 1e-4f * (1 + std::fabs(want.floats()[i])));
}

std::vector<uint64_t> naive_top(const std::vector<double>& g, int64_t k) {
  std::vector<uint64_t> idx(g.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(),
                   [&](uint64_t a, uint64_t b) { return std::fabs(g[a]) > std::fabs(g[b]); });
  idx.resize(static_cast<size_t>(k));
  return idx;
}

// Reference options with the per-layer budget min(floor(numel * max_percent), num).
KeygenOptions budget(int64_t num, double max_percent) {
  KeygenOptions o;
  o.num = num;
  o.max_percent = max_percent;
  return o;
}

TEST(Keygen, SfgePicksTheLargestGradientsWithTheirSigns) {
  auto m = testing::make_mlp(40, 30, 5, 41);  // W1: 1200 weights, W2: 150
  auto d = testing::make_dataset(50, 40, 5, 42);
  KeygenOptions o = budget(6, 0.004);  // W1: floor(4.8) = 4, W2: floor(0.6) = 0 -> skipped
  o.intensity = 0.1f;
  LockKey key = generate_key(m, d, o);
  ASSERT_EQ(key.layers.size(), 1u);
  EXPECT_EQ(key.layers[0].tensor, "W1");
  ASSERT_EQ(key.layers[0].entries.size(), 4u);
  auto g = naive_grads(m, d)["W1"];
  auto want = naive_top(g, 4);
  const auto w = m.graph.initializers.at("W1").floats();
  for (size_t i = 0; i < 4; ++i) {
    const auto& e = key.layers[0].entries[i];
    EXPECT_EQ(e.index, want[i]);
    int8_t s = g[e.index] > 0 ? 1 : -1;
    EXPECT_EQ(e.sign, s);
    EXPECT_EQ(e.original_bits, std::bit_cast<uint32_t>(w[e.index]));
    EXPECT_EQ(e.locked_bits, std::bit_cast<uint32_t>(w[e.index] + 0.1f * s));
  }
  // Locking raises the loss on the sample set.
  model::Model locked = testing::locked_copy(m, key);
  auto loss = [&](model::Model& mm) {
    nn::Executor ex(mm);
    Tensor logits = ex.forward({prepare_input(mm, d.batch(0, d.size()))})[0];
    return nn::softmax_cross_entropy(logits, d.labels, false).loss;
  };
  EXPECT_GT(loss(locked), loss(m));
}

TEST(Keygen, IncrementalPicksDistinctPositionsAndStartsLikeSfge) {
  auto m = testing::make_mlp(40, 30, 5, 43);
  auto d = testing::make_dataset(40, 40, 5, 44);
  KeygenOptions o = budget(8, 0.05);  // W1: 8 rounds, W2 (150): floor(7.5) = 7 rounds
  o.incremental = true;
  int64_t rounds = 0;
  o.on_round = [&](int64_t, int64_t) { ++rounds; };
  LockKey inc = generate_key(m, d, o);
  EXPECT_EQ(rounds, 8);
  ASSERT_EQ(inc.layers.size(), 2u);
  for (const auto& l : inc.layers) {
    std::set<uint64_t> seen;
    for (const auto& e : l.entries) EXPECT_TRUE(seen.insert(e.index).second) << l.tensor;
    EXPECT_EQ(l.entries.size(), l.tensor == "W1" ? 8u : 7u);
  }
  // Round 1 sees the plaintext weights: the same pick as SFGE's first position.
  o.incremental = false;
  o.on_round = nullptr;
  LockKey plain = generate_key(m, d, o);
  for (size_t i = 0; i < 2; ++i)
    EXPECT_EQ(inc.layers[i].entries[0].index, plain.layers[i].entries[0].index);
  // The key restores the model exactly.
  EXPECT_TRUE(testing::restores_bit_exactly(m, inc));
}

TEST(Keygen, StealthyValuesStayInsideTheLayerDistribution) {
  auto m = testing::make_mlp(60, 40, 5, 45);
  auto d = testing::make_dataset(40, 60, 5, 46);
  KeygenOptions o = budget(20, 0.05);
  o.mode = LockMode::Stealthy;
  o.seed = Seed{};
  LockKey key = generate_key(m, d, o);
  ASSERT_FALSE(key.layers.empty());
  for (const auto& l : key.layers) {
    auto w = m.graph.initializers.at(l.tensor).floats();
    std::vector<float> sorted(w.begin(), w.end());
    std::sort(sorted.begin(), sorted.end());
    float lo = sorted.front(), hi = sorted.back();
    auto rows = m.graph.initializers.at(l.tensor).dim(0);
    std::map<uint64_t, int> per_row;
    for (const auto& e : l.entries) {
      float v = std::bit_cast<float>(e.locked_bits);
      EXPECT_GE(v, lo);
      EXPECT_LE(v, hi);
      // Moved in the direction of its gradient sign.
      float orig = std::bit_cast<float>(e.original_bits);
      EXPECT_GT((v - orig) * e.sign, 0.f);
      ++per_row[e.index / (w.size() / rows)];
    }
    int64_t cap = (static_cast<int64_t>(l.entries.size()) + rows - 1) / rows;
    for (auto [row, n] : per_row) EXPECT_LE(n, std::max<int64_t>(cap, 1));
  }
  // The outlier attack scores like chance on it: none of its top suspects are key positions
  // more often than their share would allow (tiny model: just check it is not near-perfect).
  model::Model locked = testing::locked_copy(m, key);
  auto r = testing::outlier_attack_on(locked, key, 5);
  EXPECT_LT(r.precision, 0.5);
}

// Naive softmax probabilities of the MLP, per example.
std::vector<std::vector<double>> naive_probs(const model::Model& m, const data::Dataset& d) {
  const auto& W1 = m.graph.initializers.at("W1");
  const auto& b1 = m.graph.initializers.at("b1").floats();
  const auto& W2 = m.graph.initializers.at("W2");
  const auto& b2 = m.graph.initializers.at("b2").floats();
  const int64_t H = W1.dim(0), F = W1.dim(1), C = W2.dim(0);
  std::vector<std::vector<double>> out;
  for (int64_t n = 0; n < d.size(); ++n) {
    const float* x = d.images.floats().data() + n * F;
    std::vector<double> a(H), z(C);
    for (int64_t h = 0; h < H; ++h) {
      double s = b1[h];
      for (int64_t f = 0; f < F; ++f) s += double(W1.floats()[h * F + f]) * x[f];
      a[h] = std::max(s, 0.0);
    }
    double mx = -1e300, sum = 0;
    for (int64_t c = 0; c < C; ++c) {
      double s = b2[c];
      for (int64_t h = 0; h < H; ++h) s += double(W2.floats()[c * H + h]) * a[h];
      z[c] = s;
      mx = std::max(mx, s);
    }
    for (double& v : z) sum += (v = std::exp(v - mx));
    for (double& v : z) v /= sum;
    out.push_back(z);
  }
  return out;
}

TEST(Gradients, CollapseGradientsMatchNaiveBackprop) {
  auto m = testing::make_mlp(12, 16, 5, 51);
  auto d = testing::make_dataset(23, 12, 5, 52);
  for (int32_t t : {0, 3}) {
    auto got = summed_gradients(m, d, {"W1", "W2"}, 10, t);
    auto want = naive_grads(m, d, t);
    for (const auto& name : {"W1", "W2"}) {
      ASSERT_EQ(got[name].size(), want[name].size());
      double scale = 0;
      for (double v : want[name]) scale = std::max(scale, std::fabs(v));
      ASSERT_GT(scale, 0);
      for (size_t i = 0; i < want[name].size(); ++i)
        EXPECT_NEAR(got[name][i], want[name][i], 1e-4 * scale + 1e-5) << name << "[" << i << "]";
    }
  }
}

TEST(Keygen, CollapseTargetIsTheClassWithTheMostProbabilityMass) {
  for (uint32_t seed : {61u, 62u, 63u}) {
    auto m = testing::make_mlp(10, 12, 6, seed);
    auto d = testing::make_dataset(31, 10, 6, seed + 100);
    std::vector<double> mass(6, 0);
    for (const auto& p : naive_probs(m, d))
      for (size_t c = 0; c < p.size(); ++c) mass[c] += p[c];
    auto want = std::max_element(mass.begin(), mass.end()) - mass.begin();
    EXPECT_EQ(collapse_target(m, d, 7), want) << seed;
  }
}

TEST(Keygen, RelativeIntensityStepsByTheLayerMaxAbs) {
  auto m = testing::make_mlp(40, 30, 5, 47);
  auto d = testing::make_dataset(30, 40, 5, 48);
  KeygenOptions o = budget(5, 0.05);
  o.intensity = 0.7f;
  o.intensity_mode = IntensityMode::Relative;
  LockKey key = generate_key(m, d, o);
  ASSERT_EQ(key.layers.size(), 2u);
  EXPECT_EQ(key.params.intensity_mode, IntensityMode::Relative);
  auto g = naive_grads(m, d);
  for (const auto& l : key.layers) {
    auto w = m.graph.initializers.at(l.tensor).floats();
    float mx = 0;
    for (float v : w) mx = std::max(mx, std::fabs(v));
    EXPECT_EQ(layer_scale(w), mx);
    const float step = 0.7f * mx;
    auto want = naive_top(g[l.tensor], 5);
    ASSERT_EQ(l.entries.size(), 5u);
    for (size_t i = 0; i < 5; ++i) {
      const auto& e = l.entries[i];
      EXPECT_EQ(e.index, want[i]);
      EXPECT_EQ(e.locked_bits, std::bit_cast<uint32_t>(w[e.index] + step * e.sign));
    }
  }
}

TEST(Keygen, CollapseKeyFollowsTheTargetGradientAndRaisesItsProbability) {
  auto m = testing::make_mlp(40, 30, 5, 49);
  auto d = testing::make_dataset(40, 40, 5, 50);
  KeygenOptions o = budget(6, 0.05);
  o.intensity = 0.5f;
  o.objective = Objective::Collapse;
  o.target_class = 4;
  LockKey key = generate_key(m, d, o);
  EXPECT_EQ(key.params.target_class, 4);
  EXPECT_EQ(key.params.objective, Objective::Collapse);
  auto g = naive_grads(m, d, 4);
  ASSERT_EQ(key.layers.size(), 2u);
  for (const auto& l : key.layers) {
    auto want = naive_top(g[l.tensor], 6);
    ASSERT_EQ(l.entries.size(), 6u);
    for (size_t i = 0; i < 6; ++i) {
      EXPECT_EQ(l.entries[i].index, want[i]);
      EXPECT_EQ(l.entries[i].sign, g[l.tensor][want[i]] > 0 ? 1 : -1);
    }
  }
  auto mass = [&](const model::Model& mm) {
    double s = 0;
    for (const auto& p : naive_probs(mm, d)) s += std::log(p[4]);
    return s;
  };
  model::Model locked = testing::locked_copy(m, key);
  EXPECT_GT(mass(locked), mass(m));
  // Automatic target: the naive choice, recorded in the key.
  o.target_class = -1;
  EXPECT_EQ(generate_key(m, d, o).params.target_class, collapse_target(m, d));
  // A target outside the dataset's classes is refused.
  o.target_class = 5;
  EXPECT_THROW(generate_key(m, d, o), InvalidArgument);
}

TEST(Keygen, PerRoundBatchesIncrementalPicks) {
  auto m = testing::make_mlp(40, 30, 5, 53);
  auto d = testing::make_dataset(30, 40, 5, 54);
  KeygenOptions o = budget(7, 0.05);  // W1: 7, W2: 7
  o.incremental = true;
  o.per_round = 3;
  int64_t rounds = 0;
  o.on_round = [&](int64_t, int64_t total) {
    ++rounds;
    EXPECT_EQ(total, 3);
  };
  LockKey inc = generate_key(m, d, o);
  EXPECT_EQ(rounds, 3);  // 3 + 3 + 1
  EXPECT_EQ(inc.params.per_round, 3);
  KeygenOptions plain_o = o;
  plain_o.incremental = false;
  plain_o.on_round = nullptr;
  LockKey plain = generate_key(m, d, plain_o);
  ASSERT_EQ(inc.layers.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    const auto& l = inc.layers[i];
    ASSERT_EQ(l.entries.size(), 7u);
    std::set<uint64_t> seen;
    for (const auto& e : l.entries) EXPECT_TRUE(seen.insert(e.index).second);
    // Round 1 sees the plaintext weights: its 3 picks are SFGE's first 3.
    for (size_t j = 0; j < 3; ++j) EXPECT_EQ(l.entries[j].index, plain.layers[i].entries[j].index);
  }
  // per_round >= num: one round on the plaintext gradient, i.e. exactly SFGE.
  o.per_round = 7;
  o.on_round = nullptr;
  LockKey one = generate_key(m, d, o);
  for (size_t i = 0; i < 2; ++i)
    for (size_t j = 0; j < 7; ++j) {
      EXPECT_EQ(one.layers[i].entries[j].index, plain.layers[i].entries[j].index);
      EXPECT_EQ(one.layers[i].entries[j].locked_bits, plain.layers[i].entries[j].locked_bits);
    }
  EXPECT_TRUE(testing::restores_bit_exactly(m, inc));
}

TEST(Keygen, StealthyCollapseStaysInsideTheLayerDistribution) {
  auto m = testing::make_mlp(60, 40, 5, 55);
  auto d = testing::make_dataset(40, 60, 5, 56);
  KeygenOptions o;
  apply_preset(o, "stealthy");
  o.num = 12;
  o.max_percent = 0.05;
  o.seed = Seed{};
  LockKey key = generate_key(m, d, o);
  EXPECT_EQ(key.params.mode, LockMode::Stealthy);
  ASSERT_FALSE(key.layers.empty());
  for (const auto& l : key.layers) {
    auto w = m.graph.initializers.at(l.tensor).floats();
    auto [lo, hi] = std::minmax_element(w.begin(), w.end());
    for (const auto& e : l.entries) {
      float v = std::bit_cast<float>(e.locked_bits);
      EXPECT_GE(v, *lo);
      EXPECT_LE(v, *hi);
    }
  }
}

TEST(Keygen, UnlockedLayersNameTheLayersTheKeyLeavesAlone) {
  auto m = testing::make_mlp(40, 30, 5, 57);  // W1: 1200 weights, W2: 150
  auto d = testing::make_dataset(30, 40, 5, 58);
  KeygenOptions o = budget(6, 0.004);  // W1: floor(4.8) = 4, W2: floor(0.6) = 0
  LockKey key = generate_key(m, d, o);
  auto u = unlocked_layers(m.graph, key);
  ASSERT_EQ(u.size(), 1u);
  EXPECT_EQ(u[0].tensor, "W2");
  EXPECT_EQ(u[0].node, "fc2");
  EXPECT_EQ(u[0].numel, 150);
  EXPECT_EQ(u[0].budget, 0);
  // With W2 = 0 no gradient reaches W1: it has a budget but no position is chosen.
  for (float& v : m.graph.initializers.at("W2").floats()) v = 0;
  o.max_percent = 0.05;  // W1: 6, W2: 6
  key = generate_key(m, d, o);
  u = unlocked_layers(m.graph, key);
  ASSERT_EQ(u.size(), 1u);
  EXPECT_EQ(u[0].tensor, "W1");
  EXPECT_EQ(u[0].budget, 6);
  // A key that touches every layer leaves none.
  o.max_percent = 0.05;
  auto m2 = testing::make_mlp(40, 30, 5, 57);
  EXPECT_TRUE(unlocked_layers(m2.graph, generate_key(m2, d, o)).empty());
}

TEST(Keygen, PresetsAndNewOptionValidation) {
  KeygenOptions o;
  apply_preset(o, "reference");
  KeygenOptions def;
  EXPECT_EQ(o.num, def.num);
  EXPECT_EQ(o.incremental, def.incremental);
  EXPECT_EQ(o.objective, def.objective);
  apply_preset(o, "strong");
  EXPECT_TRUE(o.incremental);
  EXPECT_EQ(o.mode, LockMode::Sfge);
  EXPECT_EQ(o.objective, Objective::Collapse);
  EXPECT_EQ(o.target_class, -1);
  EXPECT_EQ(o.intensity_mode, IntensityMode::Relative);
  EXPECT_EQ(o.intensity, 1.0f);
  EXPECT_EQ(o.num, 30);
  EXPECT_EQ(o.max_percent, 0.2);
  EXPECT_EQ(o.per_round, 3);
  EXPECT_NO_THROW(validate_options(o));
  EXPECT_THROW(apply_preset(o, "fast"), InvalidArgument);
  // The CLI's default is the stealthy preset: strong's options in stealthy mode.
  KeygenOptions dflt;
  apply_preset(dflt, kDefaultPreset);
  EXPECT_EQ(dflt.mode, LockMode::Stealthy);
  EXPECT_TRUE(dflt.incremental);
  EXPECT_EQ(dflt.objective, Objective::Collapse);
  EXPECT_EQ(dflt.num, o.num);
  EXPECT_EQ(dflt.max_percent, o.max_percent);
  EXPECT_EQ(dflt.per_round, o.per_round);
  o.per_round = 0;
  EXPECT_THROW(validate_options(o), InvalidArgument);
  o.per_round = 1;
  o.target_class = -2;
  EXPECT_THROW(validate_options(o), InvalidArgument);
  EXPECT_EQ(parse_objective("collapse"), Objective::Collapse);
  EXPECT_EQ(parse_intensity_mode("relative"), IntensityMode::Relative);
  EXPECT_THROW(parse_objective("targeted"), InvalidArgument);
  EXPECT_THROW(parse_intensity_mode("scaled"), InvalidArgument);
}

TEST(Evaluate, CountHitsMatchesNaiveRankingAndNaNRowsMiss) {
  std::mt19937 rng(71);
  std::uniform_int_distribution<int> small(-3, 3);  // many ties
  const int64_t n = 200, c = 7;
  Tensor logits({n, c});
  std::vector<int32_t> labels(n);
  for (float& v : logits.floats()) v = static_cast<float>(small(rng));
  for (auto& y : labels) y = static_cast<int32_t>(rng() % c);
  for (int64_t i = 0; i < n; i += 9)  // some rows diverged
    logits.floats()[i * c + (i / 9) % c] = std::nanf("");
  int64_t want1 = 0, want5 = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float* row = logits.floats().data() + i * c;
    if (std::any_of(row, row + c, [](float z) { return std::isnan(z); })) continue;
    // Stable sort of class indices by decreasing logit; hit if the label is among the first k.
    std::vector<int64_t> order(c);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int64_t a, int64_t b) { return row[a] > row[b]; });
    auto pos = std::find(order.begin(), order.end(), labels[i]) - order.begin();
    want1 += pos == 0;
    want5 += pos < 5;
  }
  int64_t top1 = 0, top5 = 0;
  nn::count_hits(logits, labels, top1, top5);
  EXPECT_EQ(top1, want1);
  EXPECT_EQ(top5, want5);
  EXPECT_LT(want1, n);
}

TEST(Res, OutputsEqualUnlockedAndWeightsEndReEncrypted) {
  auto m = testing::make_mlp(20, 24, 6, 51);
  auto d = testing::make_dataset(16, 20, 6, 52);
  KeygenOptions o = budget(5, 0.05);
  o.intensity = 0.3f;
  LockKey key = generate_key(m, d, o);
  ASSERT_EQ(key.layers.size(), 2u);
  model::Model locked = testing::locked_copy(m, key);
  const auto locked_hash = testing::hash_tensors(locked.graph);

  nn::Executor plain_exec(m);
  nn::Executor res_exec(locked);
  RuntimeScheduler sched(locked, key);
  int64_t max_open = 0;
  sched.attach(res_exec);
  for (int64_t b = 0; b < d.size(); b += 4) {
    Tensor x = prepare_input(m, d.batch(b, 4));
    auto want = plain_exec.forward({x});
    auto got = res_exec.forward({x});
    ASSERT_EQ(want.size(), got.size());
    for (size_t i = 0; i < want.size(); ++i) {
      ASSERT_EQ(want[i].shape(), got[i].shape());
      for (int64_t j = 0; j < want[i].numel(); ++j)
        EXPECT_EQ(std::bit_cast<uint32_t>(want[i].floats()[j]),
                  std::bit_cast<uint32_t>(got[i].floats()[j]));
    }
    EXPECT_EQ(sched.plaintext_layers(), 0);
    EXPECT_EQ(testing::hash_tensors(locked.graph), locked_hash);
    max_open = std::max(max_open, sched.stats().max_plaintext_layers);
  }
  EXPECT_EQ(max_open, 1);
  EXPECT_EQ(sched.stats().weight_writes, 4 * sched.writes_per_inference());
  EXPECT_EQ(sched.writes_per_inference(), 2 * key.total_entries());
  // The locked model alone computes something else.
  nn::Executor bare(locked);
  Tensor x = prepare_input(m, d.batch(0, 4));
  EXPECT_FALSE(bare.forward({x})[0] == plain_exec.forward({x})[0]);
  // A scheduler refuses a model the key is not bound to.
  EXPECT_THROW(RuntimeScheduler(m, key), IntegrityError);
}

}  // namespace
}  // namespace veil::lock
