// The hardened scheme: the outsourced weight is a dense mix Q [W; R] (undone by the kept rows of
// Q^-1), no outsourced filter pairs up with another the way ShadowNet's do, and every query gets
// a fresh mask, the first layer's too.
#include "veil/split/hardened.hpp"

#include <gtest/gtest.h>

#include <random>

#include "test_layers.hpp"
#include "veil/split/fake_filters.hpp"
#include "veil/split/shadownet.hpp"
#include "weight_similarity.hpp"

namespace veil::split {
namespace {

using testing::conv_layer;
using testing::dense_layer;
using testing::random_input;

TEST(Hardened, TheKeptRowsOfTheInverseMixRecoverTheRealFilters) {
  std::mt19937 rng(1);
  for (const LinearLayer& layer : testing::conv_and_dense(rng)) {
    auto scheme = make_hardened(layer, SchemeOptions{});
    const Tensor w = std::get<Tensor>(scheme->outsource().weight);
    const HardenedState s = hardened_state(*scheme);
    const int64_t n = layer.out_channels(), m = w.shape()[0], terms = w.numel() / m;
    ASSERT_EQ(m, slot_count(n, 1.2));
    ASSERT_EQ(s.slots, m);
    ASSERT_EQ(s.unmix.size(), static_cast<size_t>(n * m));
    for (int64_t i = 0; i < n; ++i) {
      int64_t nonzero = 0;
      for (int64_t c = 0; c < m; ++c) nonzero += std::fabs(s.unmix[i * m + c]) > 1e-3f;
      // Dense: every slot contributes to every real filter (a random entry may come out small).
      EXPECT_GE(nonzero, m - 2);
      for (int64_t t = 0; t < terms; ++t) {
        double v = 0;
        for (int64_t c = 0; c < m; ++c) v += s.unmix[i * m + c] * w.data()[c * terms + t];
        EXPECT_NEAR(v, layer.weight.data()[i * terms + t], 1e-4);
      }
    }
  }
}

// The relative residual of the best fit of `target` by a W'_a + b W'_b over all pairs (a, b):
// the pairwise search that undoes ShadowNet without any pretrained model.
double best_pair_residual(const Tensor& w, const float* target) {
  const int64_t m = w.shape()[0], terms = w.numel() / m;
  double tt = 0;
  for (int64_t t = 0; t < terms; ++t) tt += target[t] * target[t];
  double best = 1;
  for (int64_t a = 0; a < m; ++a)
    for (int64_t b = a + 1; b < m; ++b) {
      const float* x = w.data() + a * terms;
      const float* y = w.data() + b * terms;
      double xx = 0, yy = 0, xy = 0, xt = 0, yt = 0;
      for (int64_t t = 0; t < terms; ++t)
        xx += x[t] * x[t], yy += y[t] * y[t], xy += x[t] * y[t], xt += x[t] * target[t],
            yt += y[t] * target[t];
      const double det = xx * yy - xy * xy;
      if (det <= 1e-12 * xx * yy) continue;
      const double alpha = (xt * yy - yt * xy) / det, beta = (yt * xx - xt * xy) / det;
      const double fit = alpha * xt + beta * yt;  // |projection|^2
      best = std::min(best, std::sqrt(std::max(0.0, tt - fit) / tt));
    }
  return best;
}

// Measured over 200 draws of the secrets: hardened's worst |cosine| 0.76, its best pair residual
// 0.44 at least (0.73 median); ShadowNet's real slots have cosine -0.45 or below with their fake
// and its pairs rebuild every filter to float precision. The
// cosines depend on the weights' effective rank (no invertible mix changes W's row space): with
// 6 patterns and 8 % noise the worst |cosine| reached 0.93, the pair residual stayed >= 0.28.
TEST(Hardened, NoOutsourcedFilterPairsUpLikeShadowNets) {
  std::mt19937 rng(2);
  const LinearLayer layer = testing_weights::trained_like_conv(rng);
  const int64_t n = layer.out_channels(), terms = layer.weight.numel() / n;

  auto shadow = make_shadownet(layer, SchemeOptions{});
  const Tensor ws = std::get<Tensor>(shadow->outsource().weight);
  auto hard = make_hardened(layer, SchemeOptions{});
  const Tensor wh = std::get<Tensor>(hard->outsource().weight);

  // Cosines: ShadowNet's real slots anti-correlate with their fakes; hardened's filters have no
  // partner that close.
  const ShadowNetSecrets& s = shadownet_secrets(*shadow);
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_LT(testing_weights::filter_cosine(ws, s.slot[i], s.slot[n + s.partner[i]]), -0.35);
  }
  double worst = 0;
  for (int64_t a = 0; a < wh.shape()[0]; ++a)
    worst = std::max(worst, testing_weights::best_partner(wh, a).first);
  EXPECT_LT(worst, 0.9);

  // Pairs: every real filter is a combination of two ShadowNet filters, of no two hardened ones.
  for (int64_t i = 0; i < n; ++i) {
    const float* target = layer.weight.data() + i * terms;
    EXPECT_LT(best_pair_residual(ws, target), 2e-3) << i;  // float32 rounding
    EXPECT_GT(best_pair_residual(wh, target), 0.3) << i;
  }
}

TEST(Hardened, EveryQueryGetsAFreshMaskIncludingTheFirstLayer) {
  std::mt19937 rng(3);
  for (const LinearLayer& layer :
       {conv_layer(0, 4, 2, 5, 3, 1, 1, 1, rng), dense_layer(1, 3, 6, rng)}) {
    auto scheme = make_hardened(layer, SchemeOptions{});
    const OutsourcedLayer o = scheme->outsource();
    const Tensor x = random_input(layer, 2, rng);
    const Tensor once = std::get<Tensor>(scheme->encode(x)[0]);
    const Tensor twice = std::get<Tensor>(scheme->encode(x)[0]);
    EXPECT_FALSE(once == x);
    EXPECT_FALSE(once == twice);
    // Every image of a batch gets its own mask.
    const int64_t per = once.numel() / 2;
    bool same = true;
    for (int64_t i = 0; i < per; ++i)
      same = same && once.data()[i] - x.data()[i] == once.data()[per + i] - x.data()[per + i];
    EXPECT_FALSE(same);
  }
}

TEST(Hardened, PrecomputedMasksAreUsedOnceThenDrawnOnlineAndCounted) {
  std::mt19937 rng(4);
  const LinearLayer layer = conv_layer(1, 4, 2, 5, 3, 1, 1, 1, rng);
  auto scheme = make_hardened(layer, SchemeOptions{});
  const OutsourcedLayer o = scheme->outsource();
  const Tensor& w = std::get<Tensor>(o.weight);
  const size_t bare = scheme->trusted_bytes();
  scheme->precompute(2, 3);
  const size_t pooled = scheme->trusted_bytes();
  // Three masks of 2 images: inputs (2 x 5 x 5) and products (4 x 5 x 5) per image.
  EXPECT_EQ(pooled - bare, sizeof(float) * 3 * 2 * (2 * 25 + 4 * 25));
  EXPECT_EQ(hardened_state(*scheme).pooled, 3);
  for (int q = 0; q < 5; ++q) {
    const int64_t batch = q == 1 ? 1 : 2;  // a batch of another size draws online
    const Tensor x = random_input(layer, batch, rng);
    std::vector<Payload> sent = scheme->encode(x);
    const Tensor y = scheme->decode(
        {apply_linear(with_out_channels(layer, w.shape()[0]), w, std::get<Tensor>(sent[0]))});
    EXPECT_LE(testing::max_abs_diff(y, testing::reference_output(layer, x)), 1e-4f);
  }
  const HardenedState s = hardened_state(*scheme);
  EXPECT_EQ(s.pooled, 0);
  EXPECT_EQ(s.drawn_online, 2);  // the odd batch, and the fifth query
  EXPECT_EQ(scheme->trusted_bytes(), bare);
}

}  // namespace
}  // namespace veil::split
