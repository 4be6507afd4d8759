#include "veil/split/filter_pairing.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "veil/core/error.hpp"

namespace veil::split {
namespace {

// Trained-looking filters: a few shared directions (filters of a layer are correlated), noise,
// and norms that vary from filter to filter.
std::vector<double> realistic_filters(int64_t n, int64_t dim, std::mt19937_64& rng) {
  std::normal_distribution<double> g(0, 1);
  const int64_t rank = 4;
  std::vector<double> basis(rank * dim);
  for (auto& b : basis) b = g(rng);
  std::vector<double> w(n * dim);
  for (int64_t i = 0; i < n; ++i) {
    const double norm = std::exp(0.2 * g(rng));
    double coef[rank];
    for (auto& c : coef) c = g(rng);
    for (int64_t j = 0; j < dim; ++j) {
      double v = 0.8 * g(rng);
      for (int64_t k = 0; k < rank; ++k) v += 0.25 * coef[k] * basis[k * dim + j];
      w[i * dim + j] = norm * v / std::sqrt(static_cast<double>(dim));
    }
  }
  return w;
}

double stddev(const std::vector<double>& v) {
  const double m = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size()));
}

double cosine(const double* a, const double* b, int64_t n) {
  double ab = 0, aa = 0, bb = 0;
  for (int64_t i = 0; i < n; ++i) ab += a[i] * b[i], aa += a[i] * a[i], bb += b[i] * b[i];
  return ab / std::sqrt(aa * bb);
}

// ShadowNet's transform as split.md states it, with its secrets kept for checking.
struct ShadowLayer {
  int64_t n = 0, m = 0, dim = 0;
  std::vector<double> real, outsourced;
  std::vector<int64_t> pi, rho;
  std::vector<double> s;
};

ShadowLayer shadownet_layer(int64_t n, int64_t dim, uint64_t seed) {
  std::mt19937_64 rng(seed);
  ShadowLayer l;
  l.n = n, l.dim = dim, l.m = static_cast<int64_t>(std::ceil(1.2 * static_cast<double>(n)));
  l.real = realistic_filters(n, dim, rng);
  std::normal_distribution<double> fake(0, stddev(l.real));
  std::vector<double> r((l.m - n) * dim);
  for (auto& x : r) x = fake(rng);
  l.pi.resize(l.m);
  std::iota(l.pi.begin(), l.pi.end(), 0);
  std::shuffle(l.pi.begin(), l.pi.end(), rng);
  std::uniform_int_distribution<int64_t> pick(0, l.m - n - 1);
  std::uniform_real_distribution<double> scale(0.5, 2.0);
  l.outsourced.resize(l.m * dim);
  for (int64_t i = 0; i < n; ++i) {
    l.rho.push_back(pick(rng));
    l.s.push_back(scale(rng));
    for (int64_t j = 0; j < dim; ++j)
      l.outsourced[l.pi[i] * dim + j] = (l.real[i * dim + j] - r[l.rho[i] * dim + j]) / l.s[i];
  }
  for (int64_t k = 0; k < l.m - n; ++k)
    for (int64_t j = 0; j < dim; ++j) l.outsourced[l.pi[n + k] * dim + j] = r[k * dim + j];
  return l;
}

TEST(FilterPairing, RecoversPairsScalesAndFiltersOfAShadowNetLayer) {
  for (auto [n, dim] : {std::pair<int64_t, int64_t>{64, 576}, {16, 150}, {120, 400}}) {
    const auto l = shadownet_layer(n, dim, 5 + n);
    const auto p = pair_filters(l.outsourced, l.m, dim, n, 1);
    ASSERT_EQ(static_cast<int64_t>(p.pairs.size()), n);
    EXPECT_TRUE(p.claimed) << "confidence " << p.confidence;
    int64_t right = 0;
    double cos_sum = 0;
    std::vector<double> scale_error;
    const auto est = estimate_filters(l.outsourced, dim, p);
    for (size_t k = 0; k < p.pairs.size(); ++k) {
      const auto it = std::find(l.pi.begin(), l.pi.begin() + n, p.pairs[k].real);
      if (it == l.pi.begin() + n) continue;  // a fake taken for a real one
      const int64_t i = it - l.pi.begin();
      if (p.pairs[k].fake != l.pi[n + l.rho[i]]) continue;
      ++right;
      scale_error.push_back(std::abs(p.pairs[k].scale / l.s[i] - 1));
      cos_sum += cosine(est.data() + k * dim, l.real.data() + i * dim, dim);
    }
    EXPECT_GE(right, static_cast<int64_t>(std::ceil(0.95 * static_cast<double>(n))))
        << n << " filters of " << dim;
    EXPECT_GT(cos_sum / static_cast<double>(std::max<int64_t>(right, 1)), 0.9)
        << n << " filters of " << dim;
    // s_n up to the spread of the real filters' norms around the fakes' (exp(0.2 g) here)
    std::nth_element(scale_error.begin(), scale_error.begin() + scale_error.size() / 2,
                     scale_error.end());
    EXPECT_LT(scale_error[scale_error.size() / 2], 0.2) << n << " filters of " << dim;
  }
}

// The hardened scheme's kind of transform: W' = Q [W; R] with Q a random orthogonal matrix.
TEST(FilterPairing, ClaimsNothingOnADenseMixing) {
  for (auto [n, dim] : {std::pair<int64_t, int64_t>{64, 576}, {16, 150}, {6, 25}}) {
    auto l = shadownet_layer(n, dim, 9 + n);
    std::vector<double> stacked(l.real);
    std::mt19937_64 rng(3);
    std::normal_distribution<double> g(0, stddev(l.real));
    for (int64_t k = 0; k < (l.m - n) * dim; ++k) stacked.push_back(g(rng));
    // Q by Gram-Schmidt on a Gaussian matrix
    std::normal_distribution<double> unit(0, 1);
    std::vector<double> q(l.m * l.m);
    for (auto& x : q) x = unit(rng);
    for (int64_t i = 0; i < l.m; ++i) {
      for (int64_t k = 0; k < i; ++k) {
        double d = 0;
        for (int64_t j = 0; j < l.m; ++j) d += q[i * l.m + j] * q[k * l.m + j];
        for (int64_t j = 0; j < l.m; ++j) q[i * l.m + j] -= d * q[k * l.m + j];
      }
      double s = 0;
      for (int64_t j = 0; j < l.m; ++j) s += q[i * l.m + j] * q[i * l.m + j];
      for (int64_t j = 0; j < l.m; ++j) q[i * l.m + j] /= std::sqrt(s);
    }
    std::vector<double> mixed(l.m * dim, 0);
    for (int64_t i = 0; i < l.m; ++i)
      for (int64_t k = 0; k < l.m; ++k)
        for (int64_t j = 0; j < dim; ++j)
          mixed[i * dim + j] += q[i * l.m + k] * stacked[k * dim + j];
    const auto p = pair_filters(mixed, l.m, dim, n, 3);
    EXPECT_FALSE(p.claimed) << n << " filters of " << dim << ": confidence " << p.confidence;
    EXPECT_LT(p.confidence, kPairingThreshold);
  }
}

TEST(FilterPairing, RefusesBadCounts) {
  const std::vector<double> rows(12, 1.0);
  EXPECT_THROW(pair_filters(rows, 4, 3, 4, 1), InvalidArgument);
  EXPECT_THROW(pair_filters(rows, 4, 3, 0, 1), InvalidArgument);
  EXPECT_THROW(pair_filters(rows, 5, 3, 2, 1), InvalidArgument);
}

}  // namespace
}  // namespace veil::split
