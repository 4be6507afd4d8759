// ShadowNet and the hardened scheme: what both float schemes must do (restore exactly what the
// plain layer computes, verify when asked), checked against the layer computed in the clear.
#include <gtest/gtest.h>

#include <random>

#include "test_layers.hpp"
#include "veil/core/error.hpp"
#include "veil/split/fake_filters.hpp"
#include "veil/split/scheme.hpp"

namespace veil::split {
namespace {

using testing::conv_layer;
using testing::dense_layer;
using testing::max_abs;
using testing::max_abs_diff;
using testing::random_input;
using testing::reference_output;

// An honest accelerator for one outsourced layer (the float engine, as the local one uses).
struct Honest {
  LinearEngine engine;
  Honest(const LinearLayer& layer, const OutsourcedLayer& o)
      : engine(with_out_channels(layer, std::get<Tensor>(o.weight).shape()[0]),
               std::get<Tensor>(o.weight), 1) {}
  Tensor operator()(const Payload& p) { return engine.forward(std::get<Tensor>(p)); }
};

std::vector<LinearLayer> layers(std::mt19937& rng) {
  return {conv_layer(0, 6, 3, 9, 3, 2, 1, 1, rng),         // first layer, stride 2, padding 1
          conv_layer(1, 5, 4, 8, 3, 1, 2, 2, rng),         // later layer, dilation 2, padding 2
          conv_layer(2, 7, 2, 6, 1, 1, 0, 1, rng, false),  // 1x1, no bias
          dense_layer(0, 4, 10, rng), dense_layer(3, 9, 12, rng)};
}

class FloatScheme : public ::testing::TestWithParam<SchemeKind> {};

TEST_P(FloatScheme, DecodeRestoresThePlainLayerForConvAndDenseLayers) {
  std::mt19937 rng(1);
  for (const LinearLayer& layer : layers(rng)) {
    SCOPED_TRACE(layer.name);
    SchemeOptions options;
    auto scheme = make_layer_scheme(GetParam(), layer, options);
    const OutsourcedLayer o = scheme->outsource();
    Honest accelerate(layer, o);
    const Tensor& w = std::get<Tensor>(o.weight);
    const int64_t m = slot_count(layer.out_channels(), options.fake_ratio);
    EXPECT_EQ(w.shape()[0], m);
    EXPECT_EQ(o.output_shape[0], m);
    for (int64_t batch : {1, 3}) {
      const Tensor x = random_input(layer, batch, rng);
      std::vector<Payload> sent = scheme->encode(x);
      ASSERT_EQ(sent.size(), 1u);
      const Tensor y = scheme->decode({accelerate(sent[0])});
      const Tensor want = reference_output(layer, x);
      ASSERT_EQ(y.shape(), want.shape());
      EXPECT_LE(max_abs_diff(y, want), 1e-4f * (1 + max_abs(want)));
    }
  }
}

TEST_P(FloatScheme, HonestRepliesPassVerificationInAThousandTrials) {
  std::mt19937 rng(2);
  SchemeOptions options;
  options.verify = true;
  std::vector<LinearLayer> ls = layers(rng);
  std::vector<std::unique_ptr<LayerScheme>> schemes;
  std::vector<Honest> accelerators;
  for (const LinearLayer& l : ls) {
    schemes.push_back(make_layer_scheme(GetParam(), l, options));
    accelerators.emplace_back(l, schemes.back()->outsource());
  }
  std::uniform_real_distribution<float> log_scale(-3.0f, 4.0f);
  for (int trial = 0; trial < 1000; ++trial) {
    const size_t i = static_cast<size_t>(trial) % ls.size();
    // Activations from 1e-3 to 1e4: the tolerance must scale with them.
    const Tensor x = random_input(ls[i], 1 + trial % 2, rng, std::pow(10.0f, log_scale(rng)));
    std::vector<Payload> sent = schemes[i]->encode(x);
    ASSERT_NO_THROW(schemes[i]->decode({accelerators[i](sent[0])})) << trial;
  }
}

// The local accelerator's fault: one element off by (1 + max |y|) x U(1, 10).
TEST_P(FloatScheme, OneCorruptedElementIsAlwaysCaught) {
  std::mt19937 rng(3);
  SchemeOptions options;
  options.verify = true;
  for (const LinearLayer& layer : layers(rng)) {
    SCOPED_TRACE(layer.name);
    auto scheme = make_layer_scheme(GetParam(), layer, options);
    Honest accelerate(layer, scheme->outsource());
    EXPECT_EQ(scheme->false_accept_bound(), 0.25);
    std::uniform_real_distribution<float> factor(1.0f, 10.0f);
    for (int trial = 0; trial < 100; ++trial) {
      const Tensor x = random_input(layer, 2, rng);
      std::vector<Payload> sent = scheme->encode(x);
      Tensor y = accelerate(sent[0]);
      std::uniform_int_distribution<int64_t> at(0, y.numel() - 1);
      const float sign = trial % 2 == 0 ? 1.0f : -1.0f;
      y.data()[at(rng)] += sign * (1 + max_abs(y)) * factor(rng);
      EXPECT_THROW(scheme->decode({y}), IntegrityError);
    }
    // Still in step after the rejections.
    const Tensor x = random_input(layer, 1, rng);
    std::vector<Payload> sent = scheme->encode(x);
    EXPECT_NO_THROW(scheme->decode({accelerate(sent[0])}));
  }
}

TEST_P(FloatScheme, WithoutVerificationNothingIsClaimed) {
  std::mt19937 rng(4);
  auto scheme = make_layer_scheme(GetParam(), dense_layer(1, 3, 5, rng), SchemeOptions{});
  EXPECT_EQ(scheme->false_accept_bound(), 1.0);
}

TEST_P(FloatScheme, MalformedRepliesAndInputsAreRefused) {
  std::mt19937 rng(5);
  const LinearLayer layer = conv_layer(1, 4, 2, 5, 3, 1, 1, 1, rng);
  auto scheme = make_layer_scheme(GetParam(), layer, SchemeOptions{});
  const OutsourcedLayer o = scheme->outsource();
  EXPECT_THROW(scheme->decode({Tensor({1, 5, 5, 5})}), ProtocolError);  // no encode yet
  EXPECT_THROW(scheme->encode(Tensor({1, 3, 5, 5})), InvalidArgument);
  scheme->encode(random_input(layer, 1, rng));
  EXPECT_THROW(scheme->decode({Tensor({1, 4, 5, 5})}), ProtocolError);  // M channels expected
}

INSTANTIATE_TEST_SUITE_P(Split, FloatScheme,
                         ::testing::Values(SchemeKind::ShadowNet, SchemeKind::Hardened),
                         [](const auto& info) { return std::string(scheme_name(info.param)); });

TEST(SlotCount, RoundsUpAndKeepsOneFake) {
  EXPECT_EQ(slot_count(5, 1.2), 6);
  EXPECT_EQ(slot_count(64, 1.2), 77);
  EXPECT_EQ(slot_count(1, 1.0), 2);
  EXPECT_EQ(slot_count(10, 2.0), 20);
  EXPECT_THROW(slot_count(10, 0.5), InvalidArgument);
  EXPECT_THROW(slot_count(0, 1.2), InvalidArgument);
}

}  // namespace
}  // namespace veil::split
