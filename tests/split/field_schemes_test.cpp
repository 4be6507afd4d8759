// What Slalom and DarkNight share: decode(encode(x)) through an honest accelerator is exactly the
// quantised layer, within the quantisation bound of the float layer; verification catches every
// corrupted reply and never rejects an honest one.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "linear_reference.hpp"
#include "veil/core/error.hpp"
#include "veil/split/quantize.hpp"
#include "veil/split/scheme.hpp"

namespace veil::split {
namespace {

using testing::conv_layer;
using testing::dense_layer;
using testing::field_replies;

LinearLayer small_conv(std::mt19937_64& rng) {
  LinearLayer l = conv_layer(3, 6, 5, 4, 3, 3, {{2, 1}, {1, 1, 1, 0}, {1, 2}, 1});
  testing::fill_uniform(l.weight, 0.4f, rng);
  l.bias = Tensor({4});
  testing::fill_uniform(l.bias, 1.0f, rng);
  return l;
}

LinearLayer small_dense(std::mt19937_64& rng) {
  LinearLayer l = dense_layer(20, 7);
  testing::fill_uniform(l.weight, 0.2f, rng);
  l.bias = Tensor({7});
  testing::fill_uniform(l.bias, 1.0f, rng);
  return l;
}

Tensor batch_of(const LinearLayer& l, int64_t b, float scale, std::mt19937_64& rng) {
  Shape s{b};
  s.insert(s.end(), l.input_shape.begin(), l.input_shape.end());
  Tensor x(s);
  testing::fill_uniform(x, scale, rng);
  return x;
}

class FieldScheme : public ::testing::TestWithParam<SchemeKind> {};

// Runs one batch and checks it bit for bit against the quantiser alone and, within the bound,
// against the float layer.
void expect_exact_round_trip(LayerScheme& s, const OutsourcedLayer& o, const LinearLayer& l,
                             const Tensor& x) {
  const Tensor y = s.decode(field_replies(o, s.encode(x)));
  const LayerQuantizer q(l, {});
  const QuantizedInput qx = q.quantize(x);
  const Tensor expect = q.dequantize(apply_linear_field(l, q.weight(), qx.x), qx.scale);
  ASSERT_EQ(y.shape(), expect.shape());
  EXPECT_EQ(y, expect);
  const std::vector<double> ref = testing::reference_output(l, x);
  const double bound = q.error_bound(testing::max_abs(x), qx.scale.frac_bits);
  for (size_t i = 0; i < ref.size(); ++i)
    EXPECT_LE(std::abs(y.data()[i] - ref[i]), bound + std::abs(ref[i]) * 1.2e-7) << i;
}

TEST_P(FieldScheme, DecodeOfEncodeIsTheQuantisedLayer) {
  std::mt19937_64 rng(1);
  for (const LinearLayer& l : {small_conv(rng), small_dense(rng)})
    for (int64_t b : {1, 3, 8, 20}) {
      auto s = make_layer_scheme(GetParam(), l, {});
      const OutsourcedLayer o = s->outsource();
      // The weights go out in the clear (quantised): these schemes hide data, not the model.
      EXPECT_EQ(std::get<FieldTensor>(o.weight).values, LayerQuantizer(l, {}).weight().values);
      s->precompute(b, 2);
      for (int query = 0; query < 3; ++query)
        expect_exact_round_trip(*s, o, l, batch_of(l, b, 2.0f, rng));
      EXPECT_EQ(s->false_accept_bound(), 1.0);
    }
}

TEST_P(FieldScheme, HugeInputsGetACoarserScaleAndNaNThrows) {
  std::mt19937_64 rng(2);
  const LinearLayer l = small_conv(rng);
  auto s = make_layer_scheme(GetParam(), l, testing::verified(1));
  const OutsourcedLayer o = s->outsource();
  for (float scale : {1e-20f, 1.0f, 1e20f, 1e30f})
    expect_exact_round_trip(*s, o, l, batch_of(l, 2, scale, rng));
  Tensor x = batch_of(l, 2, 1.0f, rng);
  x.floats()[5] = std::nanf("");
  EXPECT_THROW(s->encode(x), InvalidArgument);
  x.floats()[5] = -INFINITY;
  EXPECT_THROW(s->encode(x), InvalidArgument);
}

TEST_P(FieldScheme, VerificationCatchesEveryCorruptedReply) {
  std::mt19937_64 rng(3);
  for (int rounds : {1, 2}) {
    const LinearLayer l = rounds == 1 ? small_conv(rng) : small_dense(rng);
    auto s = make_layer_scheme(GetParam(), l, testing::verified(rounds));
    const OutsourcedLayer o = s->outsource();
    EXPECT_LT(s->false_accept_bound(), std::pow(0.5, 30 * rounds));
    EXPECT_GT(s->false_accept_bound(), 0.0);
    s->precompute(4, 10);
    for (int trial = 0; trial < 60; ++trial) {
      const Tensor x = batch_of(l, 1 + trial % 4, 1.0f, rng);
      std::vector<Payload> replies = field_replies(o, s->encode(x));
      if (trial % 3 == 0) {  // honest: never rejected
        EXPECT_NO_THROW(s->decode(std::move(replies)));
        continue;
      }
      // One element of one reply changed by a random nonzero amount mod P.
      auto& r = std::get<FieldTensor>(replies[rng() % replies.size()]);
      uint64_t& v = r.values[rng() % r.values.size()];
      v = field_add(v, 1 + rng() % (kFieldPrime - 1));
      EXPECT_THROW(s->decode(std::move(replies)), IntegrityError) << "trial " << trial;
    }
  }
}

TEST_P(FieldScheme, WithoutVerifyACorruptedReplyGoesThrough) {
  // The check is what catches the corruption above, not something else in decode.
  std::mt19937_64 rng(4);
  const LinearLayer l = small_dense(rng);
  auto s = make_layer_scheme(GetParam(), l, {});
  const OutsourcedLayer o = s->outsource();
  const Tensor x = batch_of(l, 2, 1.0f, rng);
  std::vector<Payload> replies = field_replies(o, s->encode(x));
  auto& r = std::get<FieldTensor>(replies[0]);
  r.values[0] = field_add(r.values[0], 12345);
  const Tensor y = s->decode(std::move(replies));
  const Tensor honest = s->decode(field_replies(o, s->encode(x)));
  EXPECT_FALSE(y == honest);
}

TEST_P(FieldScheme, MalformedRepliesAndMisuseAreRefused) {
  std::mt19937_64 rng(5);
  const LinearLayer l = small_dense(rng);
  auto s = make_layer_scheme(GetParam(), l, testing::verified(2));
  const OutsourcedLayer o = s->outsource();
  EXPECT_THROW(s->decode({}), InvalidArgument);  // nothing encoded
  const Tensor x = batch_of(l, 2, 1.0f, rng);

  std::vector<Payload> replies = field_replies(o, s->encode(x));
  std::get<FieldTensor>(replies[0]).values[1] = kFieldPrime;  // not a field element
  EXPECT_THROW(s->decode(replies), IntegrityError);
  EXPECT_THROW(s->decode(replies), InvalidArgument);  // one decode per encode

  replies = field_replies(o, s->encode(x));
  replies.push_back(replies[0]);
  EXPECT_THROW(s->decode(replies), ProtocolError);

  replies = field_replies(o, s->encode(x));
  replies[0] = Tensor({1, 7});
  EXPECT_THROW(s->decode(replies), ProtocolError);

  EXPECT_THROW(s->encode(Tensor({2, 21})), InvalidArgument);
  SchemeOptions bad = testing::verified(0);
  EXPECT_THROW(make_layer_scheme(GetParam(), l, bad), InvalidArgument);
}

INSTANTIATE_TEST_SUITE_P(SlalomAndDarkNight, FieldScheme,
                         ::testing::Values(SchemeKind::Slalom, SchemeKind::DarkNight),
                         [](const auto& info) { return std::string(scheme_name(info.param)); });

}  // namespace
}  // namespace veil::split
