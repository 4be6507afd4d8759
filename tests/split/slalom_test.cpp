#include "veil/split/slalom.hpp"

#include <gtest/gtest.h>

#include <random>
#include <set>

#include "linear_reference.hpp"
#include "veil/core/error.hpp"
#include "veil/split/plain.hpp"
#include "veil/split/quantize.hpp"

namespace veil::split {
namespace {

LinearLayer layer(std::mt19937_64& rng) {
  LinearLayer l = testing::conv_layer(2, 5, 5, 3, 3, 3, {{1, 1}, {1, 1, 1, 1}, {1, 1}, 1});
  testing::fill_uniform(l.weight, 0.5f, rng);
  return l;
}

TEST(Slalom, EachPadIsUsedOnceAndTheShortfallIsCounted) {
  std::mt19937_64 rng(1);
  const LinearLayer l = layer(rng);
  auto s = make_slalom(l, {});
  const OutsourcedLayer o = s->outsource();
  s->precompute(2, 3);
  EXPECT_EQ(slalom_pads(*s).precomputed, 6);
  EXPECT_EQ(slalom_pads(*s).pooled, 6);
  const size_t with_pool = s->trusted_bytes();

  // The same input five times: the payload minus x_q is the pad, and no pad comes back.
  Tensor x({2, 2, 5, 5});
  testing::fill_uniform(x, 1.0f, rng);
  const QuantizedInput q = LayerQuantizer(l, {}).quantize(x);
  std::set<std::vector<uint64_t>> pads;
  for (int i = 0; i < 5; ++i) {
    const std::vector<Payload> sent = s->encode(x);
    const auto& f = std::get<FieldTensor>(sent.at(0));
    ASSERT_EQ(f.values.size(), q.x.values.size());
    const size_t half = f.values.size() / 2;
    for (size_t img = 0; img < 2; ++img) {
      std::vector<uint64_t> pad;
      for (size_t k = img * half; k < (img + 1) * half; ++k)
        pad.push_back(field_sub(f.values[k], q.x.values[k]));
      EXPECT_TRUE(pads.insert(pad).second) << "a pad was reused";
    }
    s->decode(testing::field_replies(o, sent));
  }
  const SlalomPads p = slalom_pads(*s);
  EXPECT_EQ(p.used, 10);
  EXPECT_EQ(p.on_the_fly, 4);  // 6 precomputed, 10 used
  EXPECT_EQ(p.pooled, 0);
  EXPECT_LT(s->trusted_bytes(), with_pool);

  EXPECT_THROW(s->precompute(0, 1), InvalidArgument);
  EXPECT_THROW(s->precompute(1, int64_t{1} << 40), InvalidArgument);
  auto plain = make_plain(l, {});
  EXPECT_THROW(slalom_pads(*plain), InvalidArgument);
}

TEST(Slalom, BlindedPayloadsLookUniformWhateverTheInput) {
  // Mean and spread of x_q + r against those of the uniform distribution on [0, P), for a zero
  // input and a constant one (a pad that leaked the input would shift one of them).
  std::mt19937_64 rng(2);
  const LinearLayer l = layer(rng);
  auto s = make_slalom(l, {});
  for (float v : {0.0f, 3.0f}) {
    Tensor x({40, 2, 5, 5});
    for (float& e : x.floats()) e = v;
    const auto sent = s->encode(x);
    const auto& f = std::get<FieldTensor>(sent[0]);
    double mean = 0;
    int low = 0;
    for (uint64_t e : f.values) {
      mean += static_cast<double>(e) / kFieldPrime;
      low += e < kFieldPrime / 4;
    }
    mean /= static_cast<double>(f.values.size());
    EXPECT_NEAR(mean, 0.5, 0.03);  // 2000 samples: sd 0.0065
    EXPECT_NEAR(static_cast<double>(low) / f.values.size(), 0.25, 0.04);
  }
}

}  // namespace
}  // namespace veil::split
