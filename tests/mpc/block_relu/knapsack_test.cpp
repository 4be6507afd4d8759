#include "veil/mpc/block_relu/knapsack.hpp"

#include <gtest/gtest.h>

#include <limits>
#include <random>

#include "mpc/block_relu/min_plus.hpp"
#include "veil/core/error.hpp"

namespace veil::mpc {
namespace {

// Values are multiples of 1/8 below 2^10: every sum below is exact, so "the optimum" is one
// number whatever order a solver adds in.
KnapsackInstance random_instance(std::mt19937_64& rng, int items, int max_options, int max_cost,
                                 bool zero_cost) {
  KnapsackInstance in;
  for (int i = 0; i < items; ++i) {
    std::vector<KnapsackOption> opts(1 + rng() % max_options);
    for (auto& o : opts) {
      o.cost = static_cast<int64_t>(rng() % (max_cost + 1));
      o.value = static_cast<double>(rng() % 160) / 8;
    }
    if (zero_cost && rng() % 2) opts[rng() % opts.size()].cost = 0;
    in.add_item(opts);
  }
  return in;
}

struct Best {
  bool feasible = false;
  double value = std::numeric_limits<double>::infinity();
};

Best brute_force(const KnapsackInstance& in, int64_t budget) {
  Best best;
  std::vector<size_t> idx(in.items(), 0);
  for (;;) {
    int64_t cost = 0;
    double value = 0;
    for (int64_t i = 0; i < in.items(); ++i) {
      cost += in.item(i)[idx[i]].cost;
      value += in.item(i)[idx[i]].value;
    }
    if (cost <= budget && value < best.value) best = {true, value};
    int64_t i = 0;
    while (i < in.items() && ++idx[i] == in.item(i).size()) idx[i++] = 0;
    if (i == in.items()) return best;
  }
}

void expect_consistent(const KnapsackInstance& in, const KnapsackResult& r, int64_t budget) {
  ASSERT_EQ(static_cast<int64_t>(r.choice.size()), in.items());
  int64_t cost = 0;
  double value = 0;
  for (int64_t i = 0; i < in.items(); ++i) {
    ASSERT_GE(r.choice[i], 0);
    ASSERT_LT(r.choice[i], static_cast<int32_t>(in.item(i).size()));
    cost += in.item(i)[r.choice[i]].cost;
    value += in.item(i)[r.choice[i]].value;
  }
  EXPECT_EQ(r.cost, cost);
  EXPECT_EQ(r.value, value);
  EXPECT_LE(r.cost, budget);
}

TEST(Knapsack, MatchesBruteForceOnSmallInstances) {
  std::mt19937_64 rng(2304);
  int feasible = 0, infeasible = 0;
  for (int trial = 0; trial < 600; ++trial) {
    const auto in = random_instance(rng, 1 + trial % 7, 1 + trial % 5, 1 + trial % 13, trial % 3);
    int64_t max_total = 0;
    for (int64_t i = 0; i < in.items(); ++i) {
      int64_t m = 0;
      for (auto o : in.item(i)) m = std::max(m, o.cost);
      max_total += m;
    }
    const int64_t budget = static_cast<int64_t>(rng() % (max_total + 2));
    const Best want = brute_force(in, budget);
    if (!want.feasible) {
      EXPECT_THROW(solve_knapsack(in, budget), InvalidArgument) << trial;
      ++infeasible;
      continue;
    }
    ++feasible;
    for (int threads : {1, 2}) {
      const auto r = solve_knapsack(in, budget, {threads, {}});
      expect_consistent(in, r, budget);
      EXPECT_EQ(r.value, want.value) << "trial " << trial << " threads " << threads;
    }
  }
  EXPECT_GT(feasible, 300);
  EXPECT_GT(infeasible, 10);
}

// With arbitrary doubles the sums round differently along the split than in item order: the
// optimum is then found up to rounding.
TEST(Knapsack, MatchesBruteForceUpToRoundingWithArbitraryValues) {
  std::mt19937_64 rng(77);
  std::uniform_real_distribution<double> u(0, 1);
  for (int trial = 0; trial < 200; ++trial) {
    KnapsackInstance in;
    int64_t max_total = 0;
    for (int i = 0, n = 2 + trial % 6; i < n; ++i) {
      std::vector<KnapsackOption> opts(1 + rng() % 5);
      int64_t m = 0;
      for (auto& o : opts) {
        o.cost = static_cast<int64_t>(rng() % 9);
        o.value = u(rng) * 1e3;
        m = std::max(m, o.cost);
      }
      opts[0].cost = 0;
      in.add_item(opts);
      max_total += m;
    }
    const int64_t budget = static_cast<int64_t>(rng() % (max_total + 1));
    const auto r = solve_knapsack(in, budget);
    expect_consistent(in, r, budget);
    EXPECT_NEAR(r.value, brute_force(in, budget).value, 1e-9) << trial;
  }
}

// A plain DP with the full items x budget argmin table, the reference's method.
double table_dp(const KnapsackInstance& in, int64_t budget) {
  std::vector<double> f(budget + 1, 0.0);
  for (int64_t i = 0; i < in.items(); ++i) {
    std::vector<double> g(budget + 1, std::numeric_limits<double>::infinity());
    for (int64_t b = 0; b <= budget; ++b)
      for (auto o : in.item(i))
        if (o.cost <= b) g[b] = std::min(g[b], f[b - o.cost] + o.value);
    f = g;
  }
  return f[budget];
}

TEST(Knapsack, MatchesTableDpOnLargerInstances) {
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 6; ++trial) {
    const auto in = random_instance(rng, 300 + 50 * trial, 12, 40 + 500 * (trial % 2), true);
    int64_t cheapest = 0;
    for (int64_t i = 0; i < in.items(); ++i) {
      int64_t m = in.item(i)[0].cost;
      for (auto o : in.item(i)) m = std::min(m, o.cost);
      cheapest += m;
    }
    const int64_t budget = cheapest + 300 + 1500 * trial;
    const auto r = solve_knapsack(in, budget, {2, {}});
    expect_consistent(in, r, budget);
    EXPECT_EQ(r.value, table_dp(in, budget)) << trial;
    // Same choice on one thread: the result does not depend on the schedule.
    EXPECT_EQ(solve_knapsack(in, budget, {1, {}}).choice, r.choice);
  }
}

TEST(Knapsack, BudgetZero) {
  KnapsackInstance in;
  in.add_item(std::vector<KnapsackOption>{{4, 0.0}, {0, 2.0}, {1, 1.0}, {0, 1.5}});
  in.add_item(std::vector<KnapsackOption>{{0, 0.5}, {9, 0.0}});
  auto r = solve_knapsack(in, 0);
  EXPECT_EQ(r.choice, (std::vector<int32_t>{3, 0}));
  EXPECT_EQ(r.cost, 0);
  EXPECT_EQ(r.value, 2.0);
  in.add_item(std::vector<KnapsackOption>{{1, 0.0}, {2, 0.0}});  // no zero-cost option
  try {
    solve_knapsack(in, 0);
    ADD_FAILURE() << "accepted";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("below the cheapest assignment (1)"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(solve_knapsack(in, 1).choice, (std::vector<int32_t>{3, 0, 0}));
}

TEST(Knapsack, BudgetAboveEverythingTakesEachItemsBestCheapestOption) {
  KnapsackInstance in;
  in.add_item(std::vector<KnapsackOption>{{4, 0.0}, {0, 2.0}, {1, 0.0}});
  in.add_item(std::vector<KnapsackOption>{{3, 1.0}, {2, 1.0}, {7, 1.0}});
  const auto r = solve_knapsack(in, 1000000);
  EXPECT_EQ(r.choice, (std::vector<int32_t>{2, 1}));
  EXPECT_EQ(r.cost, 3);
  EXPECT_EQ(r.value, 1.0);
}

TEST(Knapsack, RefusesBadInput) {
  KnapsackInstance in;
  in.add_item(std::vector<KnapsackOption>{{1, 0.0}});
  EXPECT_THROW(solve_knapsack(in, -1), InvalidArgument);
  KnapsackInstance empty_item = in;
  empty_item.add_item(std::vector<KnapsackOption>{});
  EXPECT_THROW(solve_knapsack(empty_item, 5), InvalidArgument);
  KnapsackInstance nan = in;
  nan.add_item(std::vector<KnapsackOption>{{1, std::numeric_limits<double>::quiet_NaN()}});
  EXPECT_THROW(solve_knapsack(nan, 5), InvalidArgument);
  KnapsackInstance negative = in;
  negative.add_item(std::vector<KnapsackOption>{{-1, 0.0}});
  EXPECT_THROW(solve_knapsack(negative, 5), InvalidArgument);
  EXPECT_TRUE(solve_knapsack(KnapsackInstance{}, 0).choice.empty());
}

TEST(Knapsack, ReportsProgress) {
  std::mt19937_64 rng(3);
  const auto in = random_instance(rng, 200, 8, 100, true);
  double last = -1;
  int calls = 0;
  solve_knapsack(in, 3000, {2, [&](double f) {
                              EXPECT_GE(f, 0.0);
                              EXPECT_LE(f, 1.0);
                              last = f;
                              ++calls;
                            }});
  EXPECT_GT(calls, 2);
  EXPECT_EQ(last, 1.0);
}

TEST(MinPlus, EveryKernelMatchesScalar) {
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<double> u(0, 100);
  for (size_t n : {0, 1, 7, 8, 9, 15, 16, 17, 31, 100, 1027}) {
    std::vector<double> src(n), cur(n);
    for (size_t i = 0; i < n; ++i) {
      src[i] = i % 5 == 0 ? std::numeric_limits<double>::infinity() : u(rng);
      cur[i] = i % 7 == 0 ? std::numeric_limits<double>::infinity() : u(rng);
    }
    std::vector<double> want = cur;
    for (size_t i = 0; i < n; ++i) want[i] = std::min(cur[i], src[i] + 1.25);
    for (auto k : detail::available_min_plus_kernels()) {
      auto got = cur;
      detail::min_plus_accumulate(k, got.data(), src.data(), n, 1.25);
      EXPECT_EQ(got, want) << "kernel " << static_cast<int>(k) << " n " << n;
    }
  }
}

TEST(MinPlus, AllOptionsAtOnceMatchesOneByOne) {
  std::mt19937_64 rng(12);
  std::uniform_real_distribution<double> u(0, 100);
  const std::vector<int64_t> cost = {0, 3, 4, 17, 40};
  const std::vector<double> value = {9.5, 4.25, 4.0, 1.0, 0.125};
  for (size_t n : {0, 1, 15, 16, 31, 32, 33, 100, 1029}) {
    std::vector<double> src(n + 40), cur(n);
    for (auto& v : src) v = rng() % 9 == 0 ? std::numeric_limits<double>::infinity() : u(rng);
    for (auto& v : cur) v = rng() % 9 == 0 ? std::numeric_limits<double>::infinity() : u(rng);
    std::vector<double> want(n, std::numeric_limits<double>::infinity());
    for (size_t j = 0; j < cost.size(); ++j)
      detail::min_plus_accumulate(detail::MinPlusKernel::Scalar, want.data(),
                                  src.data() + 40 - cost[j], n, value[j]);
    for (auto k : detail::available_min_plus_kernels()) {
      auto got = cur;
      detail::min_plus_options(k, got.data(), src.data() + 40, n, cost.data(), value.data(),
                               cost.size());
      EXPECT_EQ(got, want) << "kernel " << static_cast<int>(k) << " n " << n;
    }
  }
}

}  // namespace
}  // namespace veil::mpc
