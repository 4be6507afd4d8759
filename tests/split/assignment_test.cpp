#include "veil/split/assignment.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>

#include "veil/core/error.hpp"

namespace veil::split {
namespace {

double total(const std::vector<double>& score, int64_t cols, const std::vector<int64_t>& col) {
  double s = 0;
  for (size_t r = 0; r < col.size(); ++r) s += score[r * cols + col[r]];
  return s;
}

// Every injective row -> column map, by permuting the columns and taking the first `rows`.
double brute_force_best(const std::vector<double>& score, int64_t rows, int64_t cols) {
  std::vector<int64_t> perm(cols);
  std::iota(perm.begin(), perm.end(), 0);
  double best = -1e300;
  do {
    best =
        std::max(best, total(score, cols, std::vector<int64_t>(perm.begin(), perm.begin() + rows)));
  } while (std::next_permutation(perm.begin(), perm.end()));
  return best;
}

TEST(Assignment, MatchesBruteForceOnSmallRandomMatrices) {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> u(-1, 1);
  std::uniform_int_distribution<int> small(-3, 3);  // ties
  for (int trial = 0; trial < 60; ++trial) {
    const int64_t cols = 1 + trial % 6, rows = 1 + (trial / 6) % cols;
    std::vector<double> score(rows * cols);
    for (auto& s : score) s = trial % 2 ? u(rng) : small(rng);
    const auto col = max_score_assignment(score, rows, cols);
    ASSERT_EQ(static_cast<int64_t>(col.size()), rows);
    std::vector<int64_t> sorted(col);
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(std::adjacent_find(sorted.begin(), sorted.end()), sorted.end()) << "trial " << trial;
    for (int64_t c : col) EXPECT_TRUE(c >= 0 && c < cols);
    EXPECT_NEAR(total(score, cols, col), brute_force_best(score, rows, cols), 1e-9)
        << "trial " << trial;
  }
}

TEST(Assignment, RecoversAPlantedPermutation) {
  const int64_t n = 40;
  std::vector<int64_t> perm(n);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), std::mt19937_64(3));
  std::vector<double> score(n * n, 0.1);
  for (int64_t r = 0; r < n; ++r) score[r * n + perm[r]] = 1;
  EXPECT_EQ(max_score_assignment(score, n, n), perm);
}

TEST(Assignment, RefusesBadShapesAndNonFiniteScores) {
  EXPECT_THROW(max_score_assignment({1, 2}, 2, 1), InvalidArgument);
  EXPECT_THROW(max_score_assignment({1, 2, 3}, 2, 2), InvalidArgument);
  EXPECT_THROW(max_score_assignment({1, std::nan("")}, 1, 2), InvalidArgument);
  EXPECT_TRUE(max_score_assignment({}, 0, 3).empty());
}

}  // namespace
}  // namespace veil::split
