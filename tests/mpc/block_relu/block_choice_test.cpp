#include "veil/mpc/block_relu/block_choice.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
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

// Every uniform h x w of the small table by hand (b clamps to its 2x2 map): cost = 2 * a's blocks
// on 4x4 + b's on 2x2.
TEST(BlockChoice, UniformSpendsTheMostDReLUsOneSizeAllows) {
  const auto t = small_table();
  // {1,1}: 36, distortion 0 (measured).
  auto c = choose_uniform_block_size(t, 36);
  EXPECT_EQ(c.cost, 36);
  EXPECT_EQ(c.distortion, 0);
  // Below 36 the most is 18: 1x2 and 2x1 (8 + 8 + 2; 1x3 would too, but strips are no
  // candidates). Neither was measured: the smaller h, 1x2, distortion unknown.
  c = choose_uniform_block_size(t, 35);
  EXPECT_EQ(c.cost, 18);
  EXPECT_TRUE(std::isnan(c.distortion));
  EXPECT_EQ(c.spec.layers.at("a"), (std::vector<model::BlockSize>{{1, 2}, {1, 2}}));
  // 9: 2x2 (measured: 1 + 0.25 + 0.5) beats the unmeasured 2x3, 3x2 and 3x3 of the same cost.
  c = choose_uniform_block_size(t, 9);
  EXPECT_EQ(c.cost, 9);
  EXPECT_EQ(c.distortion, 1.75);
  EXPECT_EQ(c.spec.layers.at("b"), (std::vector<model::BlockSize>{{2, 2}}));
  // 8: 3x4 and 4x3 spend 2 + 2 + 1 = 5, more than the measured 4x4's 3; 3x4 has the smaller h.
  c = choose_uniform_block_size(t, 8);
  EXPECT_EQ(c.cost, 5);
  EXPECT_EQ(c.spec.layers.at("a"), (std::vector<model::BlockSize>{{3, 4}, {3, 4}}));
  EXPECT_EQ(c.spec.layers.at("b"), (std::vector<model::BlockSize>{{2, 2}}));
  // 3: only the whole maps fit (4x4 on a, 2x2 on b), measured: 2 + 3 + 0.5.
  c = choose_uniform_block_size(t, 3);
  EXPECT_EQ(c.cost, 3);
  EXPECT_EQ(c.distortion, 5.5);
  EXPECT_THROW(choose_uniform_block_size(t, 2), InvalidArgument);  // identity is no candidate
  // Against a brute force over every near-square h x w: none spends more within the budget.
  for (int64_t budget = 3; budget <= 36; ++budget) {
    int64_t most = 0;
    for (int64_t h = 1; h <= 4; ++h)
      for (int64_t w = 1; w <= 4; ++w) {
        if (std::abs(h - w) > 1) continue;
        const int64_t cost =
            2 * model::block_count({h, w}, 4, 4) +
            model::block_count({std::min<int64_t>(h, 2), std::min<int64_t>(w, 2)}, 2, 2);
        if (cost <= budget) most = std::max(most, cost);
      }
    EXPECT_EQ(choose_uniform_block_size(t, budget).cost, most) << budget;
  }
  // Where the uniform size was measured, the knapsack never does worse at the same budget.
  for (int64_t budget : {3, 9, 36})
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
  const auto u = choose_uniform_block_size(small, drelu_budget(small, 0.06));
  EXPECT_LE(u.cost, drelu_budget(small, 0.06));
  if (!std::isnan(u.distortion)) EXPECT_LE(c.distortion, u.distortion);
  EXPECT_THROW(synthetic_resnet50_table(10, 1), InvalidArgument);
  EXPECT_THROW(synthetic_resnet50_table((int64_t{1} << 20) + 1, 1), InvalidArgument);
}

}  // namespace
}  // namespace veil::mpc
