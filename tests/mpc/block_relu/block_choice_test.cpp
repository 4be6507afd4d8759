#include "veil/mpc/block_relu/block_choice.hpp"

#include <gtest/gtest.h>

#include <limits>

#include "veil/core/error.hpp"
#include "veil/mpc/block_relu/synthetic_table.hpp"

namespace veil::mpc {
namespace {

// Two layers: a 4x4 map with sizes {1,1} (16 blocks), {2,2} (4), {4,4} (1), identity (0), and
// a 2x2 map with {1,1} (4) and {2,2} (1). Distortions are multiples of 1/4 (exact sums).
DistortionTable small_table() {
  DistortionTable t;
  t.layers.push_back({"a",
                      2,
                      4,
                      4,
                      {{1, 1}, {2, 2}, {4, 4}, {0, 0}},
                      {0, 1, 2, 8, /*channel 1*/ 0, 0.25, 3, 4},
                      true});
  t.layers.push_back({"b", 1, 2, 2, {{1, 1}, {2, 2}}, {0, 0.5}, true});
  return t;
}

// Every assignment of the small table, for the optimum at a budget.
double brute_force(const DistortionTable& t, int64_t budget) {
  double best = std::numeric_limits<double>::infinity();
  for (int a0 = 0; a0 < 4; ++a0)
    for (int a1 = 0; a1 < 4; ++a1)
      for (int b0 = 0; b0 < 2; ++b0) {
        const auto& la = t.layers[0];
        const auto& lb = t.layers[1];
        const int64_t cost = model::block_count(la.sizes[a0], 4, 4) +
                             model::block_count(la.sizes[a1], 4, 4) +
                             model::block_count(lb.sizes[b0], 2, 2);
        const double d = la.distortion[a0] + la.distortion[4 + a1] + lb.distortion[b0];
        if (cost <= budget && d < best) best = d;
      }
  return best;
}

TEST(BlockChoice, Budget) {
  const auto t = small_table();
  EXPECT_EQ(t.relu_count(), 2 * 16 + 4);
  EXPECT_EQ(drelu_budget(t, 1.0), 36);
  EXPECT_EQ(drelu_budget(t, 0.5), 18);
  EXPECT_EQ(drelu_budget(t, 0.3), 10);  // floor(10.8)
  EXPECT_EQ(drelu_budget(t, 0.0), 0);
  EXPECT_THROW(drelu_budget(t, 1.5), InvalidArgument);
  EXPECT_THROW(drelu_budget(t, -0.1), InvalidArgument);
  EXPECT_THROW(drelu_budget(t, std::numeric_limits<double>::quiet_NaN()), InvalidArgument);
}

TEST(BlockChoice, KnapsackIsOptimalAtEveryBudget) {
  const auto t = small_table();
  for (int64_t budget = 1; budget <= 36; ++budget) {
    const auto c = choose_block_sizes(t, budget);
    EXPECT_EQ(c.budget, budget);
    EXPECT_LE(c.cost, budget);
    EXPECT_EQ(c.distortion, brute_force(t, budget)) << budget;
    ASSERT_EQ(c.spec.layers.size(), 2u);
    EXPECT_EQ(c.spec.layers.at("a").size(), 2u);
    EXPECT_EQ(c.spec.layers.at("b").size(), 1u);
  }
  // Budget 1: layer b's only cheap size costs 1, so layer a's channels both go identity.
  const auto c = choose_block_sizes(t, 1);
  EXPECT_EQ(c.spec.layers.at("a"), (std::vector<model::BlockSize>{{0, 0}, {0, 0}}));
  EXPECT_EQ(c.spec.layers.at("b"), (std::vector<model::BlockSize>{{2, 2}}));
  EXPECT_EQ(c.distortion, 12.5);
  // Budget 0: b has no zero-cost size.
  EXPECT_THROW(choose_block_sizes(t, 0), InvalidArgument);
}

TEST(BlockChoice, UniformPicksTheBestSizeThatFits) {
  const auto t = small_table();
  // {1,1}: cost 36, distortion 0. {2,2}: 4 + 4 + 1 = 9, 1 + 0.25 + 0.5. {4,4} (b clamps to
  // {2,2}): 1 + 1 + 1 = 3, 2 + 3 + 0.5.
  auto c = choose_uniform_block_size(t, 36);
  EXPECT_EQ(c.cost, 36);
  EXPECT_EQ(c.distortion, 0);
  c = choose_uniform_block_size(t, 35);
  EXPECT_EQ(c.cost, 9);
  EXPECT_EQ(c.distortion, 1.75);
  EXPECT_EQ(c.spec.layers.at("b"), (std::vector<model::BlockSize>{{2, 2}}));
  c = choose_uniform_block_size(t, 8);
  EXPECT_EQ(c.cost, 3);
  EXPECT_EQ(c.distortion, 5.5);
  EXPECT_EQ(c.spec.layers.at("a"), (std::vector<model::BlockSize>{{4, 4}, {4, 4}}));
  EXPECT_EQ(c.spec.layers.at("b"), (std::vector<model::BlockSize>{{2, 2}}));
  EXPECT_THROW(choose_uniform_block_size(t, 2), InvalidArgument);  // identity is no candidate
  // The knapsack never does worse than the uniform choice at the same budget.
  for (int64_t budget : {3, 8, 9, 20, 36})
    EXPECT_LE(choose_block_sizes(t, budget).distortion,
              choose_uniform_block_size(t, budget).distortion);
}

TEST(BlockChoice, SyntheticResNet50HasThePapersShape) {
  const auto t = synthetic_resnet50_table(22720, 1);
  EXPECT_EQ(t.layers.size(), 49u);
  int64_t channels = 0;
  for (const auto& l : t.layers) {
    channels += l.channels;
    EXPECT_EQ(l.sizes.front(), (model::BlockSize{1, 1}));
    EXPECT_EQ(l.sizes.back(), (model::BlockSize{0, 0}));
    EXPECT_GE(l.sizes.size(), 10u);
  }
  EXPECT_EQ(channels, 22720);
  EXPECT_EQ(t.relu_count(), 9608704);
  const auto small = synthetic_resnet50_table(500, 3);
  EXPECT_EQ(small.layers.size(), 49u);
  EXPECT_EQ(synthetic_resnet50_table(500, 3).layers[5].distortion, small.layers[5].distortion);
  const auto c = choose_block_sizes(small, drelu_budget(small, 0.06));
  EXPECT_LE(c.cost, drelu_budget(small, 0.06));
  EXPECT_LE(c.distortion, choose_uniform_block_size(small, drelu_budget(small, 0.06)).distortion);
  EXPECT_THROW(synthetic_resnet50_table(10, 1), InvalidArgument);
  EXPECT_THROW(synthetic_resnet50_table((int64_t{1} << 20) + 1, 1), InvalidArgument);
}

}  // namespace
}  // namespace veil::mpc
