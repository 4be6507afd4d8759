#include "veil/lock/attack.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <random>

#include "helpers.hpp"
#include "veil/core/error.hpp"
#include "veil/lock/sweep.hpp"

namespace veil::lock {
namespace {

TEST(Attack, RobustZScoresMatchNaive) {
  std::mt19937 rng(61);
  std::normal_distribution<float> d(0.f, 0.05f);
  for (size_t n : {1u, 2u, 7u, 100u, 1001u}) {
    std::vector<float> w(n);
    for (auto& v : w) v = d(rng);
    std::vector<double> s(w.begin(), w.end());
    std::sort(s.begin(), s.end());
    double med = n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
    std::vector<double> dev;
    for (float v : w) dev.push_back(std::fabs(v - med));
    std::vector<double> ds = dev;
    std::sort(ds.begin(), ds.end());
    double mad = n % 2 ? ds[n / 2] : 0.5 * (ds[n / 2 - 1] + ds[n / 2]);
    auto z = robust_z_scores(w);
    for (size_t i = 0; i < n; ++i)
      if (mad > 0) {
        EXPECT_NEAR(z[i], dev[i] / (1.4826 * mad), 1e-9) << n << " " << i;
      }
  }
}

TEST(Attack, OutlierAttackFindsAbsoluteStepsOfTheReference) {
  // Weights ~ N(0, 0.02) with 0.2 steps added at 10 positions: the reference's key is visible.
  auto m = testing::make_mlp(100, 50, 10, 62);
  std::mt19937 rng(63);
  for (auto* name : {"W1", "W2"})
    for (float& v : m.graph.initializers.at(name).floats())
      v = std::normal_distribution<float>(0.f, 0.02f)(rng);
  LockKey key;
  for (auto* name : {"W1", "W2"}) {
    auto w = m.graph.initializers.at(name).floats();
    LayerKey l{name, "", w.size(), {}};
    for (uint64_t i = 3; l.entries.size() < 10; i += 37) {
      int8_t s = (i & 1) ? 1 : -1;
      l.entries.push_back(
          {i, std::bit_cast<uint32_t>(w[i]), std::bit_cast<uint32_t>(w[i] + 0.2f * s), s});
    }
    key.layers.push_back(l);
  }
  bind_fingerprints(key, m.graph);
  model::Model locked = testing::locked_copy(m, key);
  auto r = testing::outlier_attack_on(locked, key, 10);
  EXPECT_EQ(r.encrypted, 20);
  EXPECT_EQ(r.suspects, 20);
  EXPECT_EQ(r.hits, 20);
  EXPECT_DOUBLE_EQ(r.precision, 1.0);
  EXPECT_DOUBLE_EQ(r.recall, 1.0);
  EXPECT_NEAR(r.chance_precision, (10.0 * 10 / 5000 + 10.0 * 10 / 500) / 20, 1e-12);
  // The suspects were reset to the median, which is close to, but not, the original value.
  for (const auto& l : key.layers) {
    auto w = locked.graph.initializers.at(l.tensor).floats();
    for (const auto& e : l.entries) EXPECT_LT(std::fabs(w[e.index]), 0.1f);
  }
  // Threshold mode: z > 6 catches the planted steps and (almost) nothing else.
  model::Model again = testing::locked_copy(m, key);
  OutlierAttackOptions o;
  o.z_threshold = 6;  // takes precedence over suspects_per_layer
  auto t = outlier_attack(again.graph, o, &key);
  EXPECT_EQ(t.hits, 20);
  EXPECT_LE(t.suspects, 22);
}

TEST(Sweep, CsvAndSvgAreWellFormed) {
  std::vector<SweepPoint> pts{{"SFGE", 0.1f, 0, 0, 0.9, 0.99},
                              {"SFGE", 0.1f, 5, 10, 0.5, 0.8},
                              {"i-SFGE", 0.2f, 0, 0, 0.9, 0.99},
                              {"i-SFGE", 0.2f, 5, 10, 0.1, 0.4}};
  std::string csv = sweep_csv(pts);
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 5);
  EXPECT_NE(csv.find("i-SFGE,0.2,5,10,10.0000,40.0000"), std::string::npos);
  std::string svg = sweep_svg(pts, "a <title> & more");
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  EXPECT_EQ(std::count(svg.begin(), svg.end(), '<'), std::count(svg.begin(), svg.end(), '>'));
  EXPECT_NE(svg.find("&lt;title&gt; &amp; more"), std::string::npos);
  size_t polylines = 0;
  for (size_t p = svg.find("<polyline"); p != std::string::npos; p = svg.find("<polyline", p + 1))
    ++polylines;
  EXPECT_EQ(polylines, 2u);
}

}  // namespace
}  // namespace veil::lock
