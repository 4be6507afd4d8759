// ShadowNet's transform: the outsourced weight has the structure of Sun et al. (S&P 2023),
// checked by undoing it with the secrets, and its masks are fixed per layer.
#include "veil/split/shadownet.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>

#include "test_layers.hpp"
#include "veil/split/fake_filters.hpp"

namespace veil::split {
namespace {

using testing::conv_layer;
using testing::random_input;

TEST(ShadowNet, EachRealSlotIsItsFilterMinusAFakeOverAScale) {
  std::mt19937 rng(1);
  for (const LinearLayer& layer : testing::conv_and_dense(rng)) {
    SchemeOptions options;
    auto scheme = make_shadownet(layer, options);
    const Tensor w = std::get<Tensor>(scheme->outsource().weight);
    const ShadowNetSecrets& s = shadownet_secrets(*scheme);
    const int64_t n = layer.out_channels(), m = w.shape()[0], terms = w.numel() / m;
    ASSERT_EQ(m, slot_count(n, 1.2));
    // pi is a permutation, rho picks fakes, the scales lie in [1, 2].
    EXPECT_EQ(std::set<int64_t>(s.slot.begin(), s.slot.end()).size(), static_cast<size_t>(m));
    for (int64_t i = 0; i < n; ++i) {
      EXPECT_GE(s.partner[i], 0);
      EXPECT_LT(s.partner[i], m - n);
      EXPECT_GE(s.scale[i], 1.0f);
      EXPECT_LE(s.scale[i], 2.0f);
      const float* real = w.data() + s.slot[i] * terms;
      const float* fake = w.data() + s.slot[n + s.partner[i]] * terms;
      for (int64_t t = 0; t < terms; ++t)
        EXPECT_NEAR(s.scale[i] * real[t] + fake[t], layer.weight.data()[i * terms + t], 1e-5f);
    }
    // The slots are shuffled: not all real filters stay in the first N.
    EXPECT_FALSE(std::is_sorted(s.slot.begin(), s.slot.end()));
  }
}

TEST(ShadowNet, TheFirstLayerIsUnmaskedAndLaterLayersReuseOneMask) {
  std::mt19937 rng(2);
  const LinearLayer first = conv_layer(0, 4, 2, 5, 3, 1, 1, 1, rng);
  const LinearLayer later = conv_layer(1, 4, 2, 5, 3, 1, 1, 1, rng);
  auto a = make_shadownet(first, SchemeOptions{});
  auto b = make_shadownet(later, SchemeOptions{});
  a->outsource();
  b->outsource();
  const Tensor x = random_input(later, 2, rng);
  EXPECT_EQ(std::get<Tensor>(a->encode(x)[0]), x);
  const Tensor once = std::get<Tensor>(b->encode(x)[0]);
  const Tensor twice = std::get<Tensor>(b->encode(x)[0]);
  EXPECT_FALSE(once == x);
  EXPECT_EQ(once, twice);
  // The same mask on every image of the batch.
  const Tensor& mask = shadownet_secrets(*b).mask;
  for (int64_t i = 0; i < once.numel(); ++i)
    EXPECT_NEAR(once.data()[i] - x.data()[i], mask.data()[i % mask.numel()], 1e-6f);
}

TEST(ShadowNet, TrustedBytesCountTheSecretsTheMaskAndTheCheck) {
  std::mt19937 rng(4);
  const LinearLayer layer = conv_layer(1, 5, 2, 6, 3, 1, 1, 1, rng);  // M = 6, T = 18
  auto plain = make_shadownet(layer, SchemeOptions{});
  plain->outsource();
  // pi (6), rho (5) as int64, s (5) as float, the mask (2 x 6 x 6) and its product (5 x 6 x 6).
  EXPECT_EQ(plain->trusted_bytes(), 8 * (6 + 5) + 4 * (5 + 72 + 180));
  SchemeOptions verify;
  verify.verify = true;
  auto checked = make_shadownet(layer, verify);
  checked->outsource();
  // W' (6 x 18), two sign vectors (2 x 6), their filters (2 x 18) and sum |W'| (18).
  EXPECT_EQ(checked->trusted_bytes() - plain->trusted_bytes(), 4u * (108 + 12 + 36 + 18));
}

}  // namespace
}  // namespace veil::split
