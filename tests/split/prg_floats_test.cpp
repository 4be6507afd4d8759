// The floats the schemes draw their secrets from: right ranges, right moments, real
// permutations, and a stream fixed by the seed.
#include "veil/split/prg_floats.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <vector>

namespace veil::split {
namespace {

AesCtrPrg seeded(uint8_t k) {
  Seed s{};
  s[0] = k;
  return AesCtrPrg(s);
}

TEST(PrgFloats, UniformAndGaussianHaveTheirMoments) {
  AesCtrPrg prg = seeded(1);
  const int n = 200000;
  double su = 0, sg = 0, sg2 = 0, lo = 1, hi = 0;
  int beyond3 = 0;
  for (int i = 0; i < n; ++i) {
    const double u = prg_unit(prg), g = prg_gaussian(prg);
    su += u, sg += g, sg2 += g * g;
    lo = std::min(lo, u), hi = std::max(hi, u);
    beyond3 += std::fabs(g) > 3;
  }
  EXPECT_GE(lo, 0.0);
  EXPECT_LT(hi, 1.0);
  EXPECT_NEAR(su / n, 0.5, 0.005);
  EXPECT_NEAR(sg / n, 0.0, 0.01);
  EXPECT_NEAR(sg2 / n, 1.0, 0.015);
  // P(|g| > 3) = 0.0027 for a normal: the tails are there, and not too heavy.
  EXPECT_NEAR(static_cast<double>(beyond3) / n, 0.0027, 0.0006);
  for (int i = 0; i < 1000; ++i) {
    const double v = prg_uniform(prg, -2.0, 3.0);
    EXPECT_GE(v, -2.0);
    EXPECT_LT(v, 3.0);
  }
}

TEST(PrgFloats, GaussianTensorsTakeMeanAndStd) {
  AesCtrPrg prg = seeded(2);
  const Tensor t = prg_gaussian_tensor(prg, {100, 100}, 3.0, 0.5);
  double s = 0, s2 = 0;
  for (float v : t.floats()) s += v, s2 += v * v;
  const double mean = s / t.numel();
  EXPECT_NEAR(mean, 3.0, 0.02);
  EXPECT_NEAR(std::sqrt(s2 / t.numel() - mean * mean), 0.5, 0.01);
}

TEST(PrgFloats, PermutationsAreUniformAndSignsBalanced) {
  AesCtrPrg prg = seeded(3);
  // Each of the 6 permutations of 3 elements about 1/6 of the time.
  std::map<std::vector<int64_t>, int> seen;
  for (int i = 0; i < 6000; ++i) ++seen[prg_permutation(prg, 3)];
  EXPECT_EQ(seen.size(), 6u);
  for (const auto& [p, count] : seen) EXPECT_NEAR(count, 1000, 150);
  std::vector<int64_t> big = prg_permutation(prg, 1000);
  std::sort(big.begin(), big.end());
  for (int64_t i = 0; i < 1000; ++i) EXPECT_EQ(big[i], i);
  int plus = 0;
  for (int i = 0; i < 10000; ++i) plus += prg_sign(prg) > 0;
  EXPECT_NEAR(plus, 5000, 300);
}

TEST(PrgFloats, TheStreamIsFixedByTheSeed) {
  AesCtrPrg a = seeded(4), b = seeded(4), c = seeded(5);
  const double x = prg_gaussian(a);
  EXPECT_EQ(x, prg_gaussian(b));
  EXPECT_NE(x, prg_gaussian(c));
}

}  // namespace
}  // namespace veil::split
