#include "veil/mpc/block_relu/distortion.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "nn/graph_builder.hpp"
#include "veil/core/error.hpp"
#include "veil/core/memory_budget.hpp"
#include "veil/mpc/block_relu/distortion_file.hpp"
#include "veil/nn/executor.hpp"

namespace veil::mpc {
namespace {

using model::BlockSize;
using nn::testing::GraphBuilder;
using nn::testing::random_tensor;
using Ints = std::vector<int64_t>;

// Block ReLU by its definition, pixel by pixel: the sum of the pixel's tile decides.

TEST(CandidateBlockSizes, SmallSetOnLargeAndSmallMaps) {
  const std::vector<BlockSize> big = {{1, 1}, {1, 2}, {2, 1}, {2, 2},   {2, 3}, {3, 2},
                                      {3, 3}, {4, 4}, {8, 8}, {28, 28}, {0, 0}};
  EXPECT_EQ(candidate_block_sizes(28, 28, CandidateSizes::Small), big);
  // {8, 8} does not fit a 7 x 7 map; the whole map does.
  const std::vector<BlockSize> seven = {{1, 1}, {1, 2}, {2, 1}, {2, 2}, {2, 3},
                                        {3, 2}, {3, 3}, {4, 4}, {7, 7}, {0, 0}};
  EXPECT_EQ(candidate_block_sizes(7, 7, CandidateSizes::Small), seven);
  // On an 8 x 8 map {8, 8} is the whole map: listed once.
  EXPECT_EQ(candidate_block_sizes(8, 8, CandidateSizes::Small).size(), 10u);
  const std::vector<BlockSize> one = {{1, 1}, {0, 0}};
  EXPECT_EQ(candidate_block_sizes(1, 1, CandidateSizes::Small), one);
  EXPECT_EQ(candidate_block_sizes(1, 1, CandidateSizes::Full), one);
}

TEST(CandidateBlockSizes, FullSetHasOneSizePerTiling) {
  const std::vector<BlockSize> three = {{1, 1}, {1, 2}, {1, 3}, {2, 1}, {2, 2},
                                        {2, 3}, {3, 1}, {3, 2}, {3, 3}, {0, 0}};
  EXPECT_EQ(candidate_block_sizes(3, 3, CandidateSizes::Full), three);
  const auto big = candidate_block_sizes(32, 32, CandidateSizes::Full);
  EXPECT_EQ(big.size(), 1u + 63u + 1u + 1u);  // {1,1}, 63 sizes of 1..8 sides, {H,W}, identity
  EXPECT_EQ(big.front(), (BlockSize{1, 1}));
  EXPECT_EQ(big.back(), (BlockSize{0, 0}));
}

// One plane's block ReLU by its definition (the engine's rule: a tile is kept when its sum,
// taken row by row in float, is >= 0).
std::vector<float> naive_block_relu(const std::vector<float>& x, int64_t h, int64_t w,
                                    BlockSize b) {
  std::vector<float> y(x.size());
  for (int64_t i = 0; i < h; ++i)
    for (int64_t j = 0; j < w; ++j) {
      if (b.identity()) {
        y[i * w + j] = x[i * w + j];
        continue;
      }
      const int64_t ti = i / b.h * b.h, tj = j / b.w * b.w;
      float sum = 0;
      for (int64_t a = ti; a < std::min(h, ti + b.h); ++a)
        for (int64_t c = tj; c < std::min(w, tj + b.w); ++c) sum += x[a * w + c];
      y[i * w + j] = sum >= 0 ? x[i * w + j] : 0.0f;
    }
  return y;
}

// conv 1x1 (2 -> 2 channels, weights `diag`, bias `bias`) -> Relu -> Flatten -> Gemm (3 logits).
model::Model tiny_model(std::mt19937& rng, float bias0) {
  GraphBuilder g;
  g.input("x", {-1, 2, 3, 2});
  g.init("cw", Tensor::from_floats({2, 2, 1, 1}, {1, 0, 0, 1}));
  g.init("cb", Tensor::from_floats({2}, {bias0, 0}));
  g.init("fw", random_tensor({3, 12}, rng)).init("fb", random_tensor({3}, rng));
  g.node("Conv", {"x", "cw", "cb"}, {"c"});
  g.node("Relu", {"c"}, {"r"});
  g.node("Flatten", {"r"}, {"f"});
  g.node("Gemm", {"f", "fw", "fb"}, {"y"}, {{"transB", int64_t{1}}});
  g.output("y");
  return g.build();
}

TEST(Distortion, TinyModelMatchesAHandComputedMse) {
  std::mt19937 rng(3);
  auto m = tiny_model(rng, 0.0f);
  const int64_t n = 5;
  const Tensor images = random_tensor({n, 2, 3, 2}, rng);
  auto table = plan_distortion(m, CandidateSizes::Small);
  ASSERT_EQ(table.layers.size(), 1u);
  const auto& layer = table.layers[0];
  EXPECT_EQ(layer.channels, 2);
  EXPECT_EQ(layer.height, 3);
  EXPECT_EQ(layer.width, 2);
  DistortionOptions o;
  o.batch_images = 2 * n;  // two variants per batch, the last one padded
  measure_distortion(m, images, table, o);
  ASSERT_TRUE(table.layers[0].done);

  const auto fw = m.graph.initializers.at("fw").floats();
  const auto x = images.floats();
  auto logits = [&](const std::vector<float>& r) {  // r: [2, 3, 2] of one image
    std::vector<double> y(3);
    for (int k = 0; k < 3; ++k) {
      y[k] = m.graph.initializers.at("fb").floats()[k];
      for (int i = 0; i < 12; ++i) y[k] += double(fw[k * 12 + i]) * r[i];
    }
    return y;
  };
  const auto& sizes = table.layers[0].sizes;
  for (int64_t c = 0; c < 2; ++c)
    for (size_t s = 0; s < sizes.size(); ++s) {
      double sum = 0;
      for (int64_t i = 0; i < n; ++i) {
        std::vector<float> clean(12), changed(12);
        for (int64_t ch = 0; ch < 2; ++ch) {
          const std::vector<float> plane(x.begin() + i * 12 + ch * 6,
                                         x.begin() + i * 12 + ch * 6 + 6);
          const auto relu = naive_block_relu(plane, 3, 2, {1, 1});
          const auto block = ch == c ? naive_block_relu(plane, 3, 2, sizes[s]) : relu;
          std::copy(relu.begin(), relu.end(), clean.begin() + ch * 6);
          std::copy(block.begin(), block.end(), changed.begin() + ch * 6);
        }
        const auto a = logits(clean), b = logits(changed);
        for (int k = 0; k < 3; ++k) sum += (b[k] - a[k]) * (b[k] - a[k]);
      }
      const double expected = sum / (n * 3);
      const double got = table.layers[0].distortion[c * sizes.size() + s];
      EXPECT_NEAR(got, expected, 1e-5 * (1 + expected)) << "channel " << c << " size " << s;
      if (s == 0) {
        EXPECT_EQ(got, 0.0);
      }
    }
  // The identity of a channel with negative pre-activations changes the logits.
  EXPECT_GT(table.layers[0].distortion[sizes.size() - 1], 1e-3);
}

TEST(Distortion, PositiveChannelCostsNothing) {
  std::mt19937 rng(5);
  auto m = tiny_model(rng, 10.0f);  // channel 0 = x + 10 > 0 everywhere
  const Tensor images = random_tensor({4, 2, 3, 2}, rng);
  auto table = plan_distortion(m, CandidateSizes::Full);
  measure_distortion(m, images, table);
  const auto& l = table.layers[0];
  for (size_t s = 0; s < l.sizes.size(); ++s) EXPECT_EQ(l.distortion[s], 0.0) << s;
  for (size_t s = 1; s < l.sizes.size(); ++s) EXPECT_GT(l.distortion[l.sizes.size() + s], 0.0);
}

// Two residual blocks (the second with a shortcut from the first ReLU's output), then global
// average pooling and a linear classifier.
model::Model resnet_like(std::mt19937& rng) {
  GraphBuilder g;
  g.input("x", {-1, 2, 6, 5});
  const std::map<std::string, model::Attribute> pad1{{"pads", Ints{1, 1, 1, 1}}};
  g.init("w0", random_tensor({3, 2, 3, 3}, rng, -0.5f, 0.5f));
  g.init("w1", random_tensor({3, 3, 3, 3}, rng, -0.5f, 0.5f));
  g.init("w2", random_tensor({3, 3, 3, 3}, rng, -0.5f, 0.5f));
  g.init("b0", random_tensor({3}, rng, -0.2f, 0.2f));
  g.init("fw", random_tensor({4, 3}, rng)).init("fb", random_tensor({4}, rng));
  g.node("Conv", {"x", "w0", "b0"}, {"c0"}, pad1);
  g.node("Relu", {"c0"}, {"r0"});
  g.node("Conv", {"r0", "w1"}, {"c1"}, pad1);
  g.node("Relu", {"c1"}, {"r1"});
  g.node("Conv", {"r1", "w2"}, {"c2"}, pad1);
  g.node("Add", {"c2", "r0"}, {"sum"});
  g.node("Relu", {"sum"}, {"r2"});
  g.node("GlobalAveragePool", {"r2"}, {"p"});
  g.node("Flatten", {"p"}, {"f"});
  g.node("Gemm", {"f", "fw", "fb"}, {"y"}, {{"transB", int64_t{1}}});
  g.output("y");
  return g.build();
}

// The whole network rerun with one ReLU rewritten as Mul(x, mask): the mask (a constant for
// these images) is the ReLU's everywhere but in channel `c`, where it is the block's.
double naive_distortion(const model::Model& m, const Tensor& images, const std::string& relu,
                        int64_t c, BlockSize b) {
  model::Model probe = m;
  const model::Node* node = nullptr;
  for (const auto& n : m.graph.nodes)
    if (n.name == relu) node = &n;
  probe.graph.outputs = {{node->inputs[0], DType::Float32, {}}, m.graph.outputs[0]};
  nn::Executor ex(probe);
  const auto clean = ex.forward({images});
  const Tensor& x = clean[0];
  const int64_t n = x.dim(0), ch = x.dim(1), h = x.dim(2), w = x.dim(3);
  std::vector<float> mask(static_cast<size_t>(x.numel()));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < ch; ++k) {
      const int64_t off = (i * ch + k) * h * w;
      const std::vector<float> plane(x.floats().begin() + off, x.floats().begin() + off + h * w);
      // 1 where the (block) ReLU keeps the value; a zero value is 0 either way.
      const auto y = naive_block_relu(plane, h, w, k == c ? b : BlockSize{1, 1});
      for (int64_t p = 0; p < h * w; ++p)
        mask[off + p] = y[p] == plane[p] && plane[p] != 0 ? 1.0f : 0.0f;
    }
  model::Model rewritten = m;
  for (auto& n : rewritten.graph.nodes)
    if (n.name == relu) {
      n.op_type = "Mul";
      n.inputs = {n.inputs[0], "probe.mask"};
    }
  rewritten.graph.initializers["probe.mask"] = Tensor::from_floats(x.shape(), std::move(mask));
  nn::Executor ex2(rewritten);
  const Tensor changed = ex2.forward({images})[0];
  double sum = 0;
  for (int64_t i = 0; i < changed.numel(); ++i) {
    const double d = double(changed.floats()[i]) - clean[1].floats()[i];
    sum += d * d;
  }
  return sum / static_cast<double>(changed.numel());
}

TEST(Distortion, ResidualSuffixMatchesAFullRerun) {
  std::mt19937 rng(11);
  auto m = resnet_like(rng);
  const Tensor images = random_tensor({6, 2, 6, 5}, rng);
  auto table = plan_distortion(m, CandidateSizes::Small);
  ASSERT_EQ(table.layers.size(), 3u);
  DistortionOptions o;
  o.batch_images = 18;  // three variants per batch
  measure_distortion(m, images, table, o);
  double largest = 0;
  for (const auto& l : table.layers)
    for (int64_t c = 0; c < l.channels; ++c)
      for (size_t s = 0; s < l.sizes.size(); ++s) {
        const double got = l.distortion[c * l.sizes.size() + s];
        const double want = naive_distortion(m, images, l.node, c, l.sizes[s]);
        EXPECT_NEAR(got, want, 1e-6 + 1e-4 * want)
            << l.node << " channel " << c << " size " << l.sizes[s].h << "x" << l.sizes[s].w;
        largest = std::max(largest, got);
      }
  EXPECT_GT(largest, 1e-3);  // the check compares something
}

// A batch larger than a layer's variants is cut to them (no batch of padding), and measures the
// same; what the samples and the batch would keep is bounded before it is allocated.
TEST(Distortion, BatchIsCutToTheVariantsAndMemoryIsBoundedFirst) {
  std::mt19937 rng(17);
  auto m = resnet_like(rng);
  const Tensor images = random_tensor({4, 2, 6, 5}, rng);
  auto exact = plan_distortion(m, CandidateSizes::Small);
  DistortionOptions o;
  o.batch_images = 12;
  measure_distortion(m, images, exact, o);
  auto huge = plan_distortion(m, CandidateSizes::Small);
  o.batch_images = int64_t{1} << 40;  // 2^38 variants per batch, were it not cut
  measure_distortion(m, images, huge, o);
  for (size_t i = 0; i < exact.layers.size(); ++i)
    for (size_t k = 0; k < exact.layers[i].distortion.size(); ++k)
      EXPECT_NEAR(huge.layers[i].distortion[k], exact.layers[i].distortion[k],
                  1e-6 + 1e-4 * exact.layers[i].distortion[k]);

  set_memory_budget(4096);  // bytes: less than two samples' clean values of the first layer
  auto refused = plan_distortion(m, CandidateSizes::Small);
  o.batch_images = 4;
  try {
    measure_distortion(m, images, refused, o);
    ADD_FAILURE() << "not refused";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("--samples"), std::string::npos) << e.what();
  }
  set_memory_budget(0);
  EXPECT_FALSE(refused.layers[0].done);
}

TEST(Distortion, ResumedRunIsBitIdentical) {
  std::mt19937 rng(13);
  auto m = resnet_like(rng);
  const Tensor images = random_tensor({4, 2, 6, 5}, rng);
  auto plan = plan_distortion(m, CandidateSizes::Full);
  plan.samples = 4;
  plan.seed = 9;
  auto whole = plan;
  measure_distortion(m, images, whole);

  auto part = plan;
  std::string checkpoint;
  DistortionOptions o;
  o.stop_after_layers = 1;
  o.layer_finished = [&](const DistortionTable& t) { checkpoint = serialize(t); };
  measure_distortion(m, images, part, o);
  auto resumed = parse_distortion_file(checkpoint);
  ASSERT_TRUE(resumed.layers[0].done);
  ASSERT_FALSE(resumed.layers[1].done);
  EXPECT_EQ(pending_variants(whole), 0);
  EXPECT_EQ(pending_variants(resumed),
            pending_variants(plan) -
                plan.layers[0].channels * static_cast<int64_t>(plan.layers[0].sizes.size() - 1));
  require_same_plan(resumed, plan);
  measure_distortion(m, images, resumed);
  EXPECT_EQ(serialize(resumed), serialize(whole));
}

TEST(Distortion, ResumeRefusesAnotherPlan) {
  std::mt19937 rng(17);
  auto m = resnet_like(rng);
  auto plan = plan_distortion(m, CandidateSizes::Small);
  plan.samples = 8;
  auto other = plan;
  other.seed = 1;
  EXPECT_THROW(require_same_plan(other, plan), InvalidArgument);
  other = plan;
  other.model_hash[0] ^= 1;
  EXPECT_THROW(require_same_plan(other, plan), InvalidArgument);
  EXPECT_THROW(require_same_plan(plan_distortion(m, CandidateSizes::Full), plan), InvalidArgument);
  EXPECT_NO_THROW(require_same_plan(plan, plan));
}

}  // namespace
}  // namespace veil::mpc
