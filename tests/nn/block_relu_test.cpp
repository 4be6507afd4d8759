// The float engine's BlockRelu: forward and backward against the naive reference (partial edge
// tiles, identity channels, tiles larger than the map), {1, 1} equal to Relu bit for bit, NaN in
// a tile giving NaN for the whole tile, and the gradient of a Conv -> BlockRelu training step
// against one computed by hand.
#include "veil/nn/block_relu.hpp"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

#include "graph_builder.hpp"
#include "veil/model/block_relu_node.hpp"
#include "veil/model/shape_inference.hpp"
#include "veil/model/zoo.hpp"
#include "veil/nn/reference.hpp"

namespace veil::nn {
namespace {

using model::BlockSize;
using testing::GraphBuilder;
using testing::random_tensor;
using Blocks = std::vector<BlockSize>;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

model::Model block_model(const Shape& x, const Blocks& blocks) {
  GraphBuilder g;
  g.input("x", x).output("y");
  model::Model m = g.build();
  m.graph.nodes.push_back(model::make_block_relu_node("br", "x", "y", blocks));
  return m;
}

bool bit_equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() &&
         std::memcmp(a.data(), b.data(), sizeof(float) * static_cast<size_t>(a.numel())) == 0;
}

const Blocks kMixed = {{1, 1}, {2, 2}, {0, 0}, {3, 2}, {2, 5}, {9, 9}};  // 5x7 maps

TEST(BlockRelu, ForwardMatchesTheReference) {
  std::mt19937 rng(41);
  const Shape s{3, 6, 5, 7};
  model::Model m = block_model(s, kMixed);
  for (int trial = 0; trial < 4; ++trial) {
    const Tensor x = random_tensor(s, rng);
    const Tensor expected = reference::block_relu(x, kMixed);
    for (Mode mode : {Mode::Inference, Mode::Training})
      EXPECT_TRUE(bit_equal(testing::run1(m, {x}, mode), expected)) << trial;
  }
}

// The public one-plane function (what `veil relu distortion` measures with) is the op's rule.
TEST(BlockRelu, OnePlaneMatchesTheReferenceInAndOutOfPlace) {
  std::mt19937 rng(43);
  const Shape s{1, 1, 5, 7};
  for (const BlockSize b : kMixed) {
    const Tensor x = random_tensor(s, rng);
    const Tensor expected = reference::block_relu(x, {b});
    Tensor y(s);
    block_relu_plane(x.data(), y.data(), 5, 7, b);
    EXPECT_TRUE(bit_equal(y, expected)) << b.h << "x" << b.w;
    Tensor z = Tensor::from_floats(s, {x.floats().begin(), x.floats().end()});
    block_relu_plane(z.data(), z.data(), 5, 7, b);
    EXPECT_TRUE(bit_equal(z, expected)) << b.h << "x" << b.w;
  }
}

TEST(BlockRelu, ReferenceOnAHandComputedMap) {
  // One 3x3 map, 2x2 blocks: tiles {0,1,3,4} (sum -1), {2,5} (sum 5), {6,7} (sum 0), {8} (-2).
  const Tensor x = Tensor::from_floats({1, 1, 3, 3}, {1, -1, 2, -4, 3, 3, 4, -4, -2});
  const Tensor y = reference::block_relu(x, {{2, 2}});
  EXPECT_EQ(y.to_floats(), (std::vector<float>{0, 0, 2, 0, 0, 3, 4, -4, 0}));
  model::Model m = block_model(x.shape(), {{2, 2}});
  EXPECT_TRUE(bit_equal(testing::run1(m, {x}), y));
}

TEST(BlockRelu, OneByOneEverywhereIsRelu) {
  std::mt19937 rng(42);
  const Shape s{2, 4, 6, 5};
  Tensor x = random_tensor(s, rng);
  x.floats()[0] = 0.0f;
  x.floats()[1] = -0.0f;
  x.floats()[2] = kNaN;
  x.floats()[3] = -kInf;
  x.floats()[4] = kInf;
  model::Model br = block_model(s, Blocks(4, {1, 1}));
  GraphBuilder g;
  g.input("x", s).node("Relu", {"x"}, {"y"}).output("y");
  model::Model relu = g.build();
  const Tensor a = testing::run1(br, {x}), b = testing::run1(relu, {x});
  EXPECT_TRUE(bit_equal(a, b));
  EXPECT_TRUE(bit_equal(a, reference::relu(x)));
  EXPECT_TRUE(std::signbit(a.floats()[1]));  // relu(-0.0) = -0.0 as in PyTorch
}

TEST(BlockRelu, NanInATileMakesTheWholeTileNan) {
  // 4x4 map, 2x2 blocks. Tile (0,0) holds a NaN; tile (0,1) holds +inf and -inf (NaN sum);
  // tile (1,0) holds +inf alone (passes); tile (1,1) is finite and negative.
  // rows: [NaN 1 | 1 1] [-5 2 | inf -inf] [inf 1 | -1 -1] [1 2 | -1 -1]
  const std::vector<float> v = {kNaN, 1, 1, 1, -5, 2, kInf, -kInf, kInf, 1, -1, -1, 1, 2, -1, -1};
  const Tensor x = Tensor::from_floats({1, 1, 4, 4}, v);
  model::Model m = block_model(x.shape(), {{2, 2}});
  for (const Tensor& y : {testing::run1(m, {x}), reference::block_relu(x, {{2, 2}})}) {
    const auto f = y.to_floats();
    for (int i : {0, 1, 4, 5}) EXPECT_TRUE(std::isnan(f[i])) << i;  // NaN, not 0 or x
    for (int i : {2, 3, 6, 7}) EXPECT_TRUE(std::isnan(f[i])) << i;  // inf + -inf
    EXPECT_EQ(f[8], kInf);
    EXPECT_EQ(f[9], 1.0f);
    EXPECT_EQ(f[12], 1.0f);
    EXPECT_EQ(f[13], 2.0f);
    for (int i : {10, 11, 14, 15}) EXPECT_EQ(f[i], 0.0f) << i;
  }
}

TEST(BlockRelu, BackwardMatchesTheReference) {
  std::mt19937 rng(43);
  const Shape s{2, 6, 5, 7};
  model::Model m = block_model(s, kMixed);
  ExecutorOptions opts;
  opts.input_gradients = true;
  Executor ex(m, opts);
  const Tensor x = random_tensor(s, rng), gy = random_tensor(s, rng);
  ex.forward({x}, Mode::Training);
  ex.backward({gy});
  EXPECT_TRUE(bit_equal(ex.input_grads().at(0), reference::block_relu_backward(x, gy, kMixed)));
}

TEST(BlockRelu, FiniteDifferencesAwayFromTheTileSigns) {
  // Every tile's sum is far from zero (all elements of a tile share a sign), so the mask stays
  // put under the finite-difference step and the gradient is that of y = mask * x.
  std::mt19937 rng(44);
  const Shape s{1, 3, 4, 5};
  const Blocks blocks = {{2, 2}, {1, 3}, {0, 0}};
  Tensor x(s);
  std::bernoulli_distribution sign(0.5);
  std::uniform_real_distribution<float> mag(0.2f, 1.0f);
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t h = 0; h < 4; ++h)
      for (int64_t w = 0; w < 5; ++w) {
        const BlockSize b = blocks[static_cast<size_t>(c)];
        const bool neg = b.identity() ? sign(rng) : ((h / b.h + w / b.w) % 2 == 1);
        x.floats()[(c * 4 + h) * 5 + w] = neg ? -mag(rng) : mag(rng);
      }
  model::Model m = block_model(s, blocks);
  testing::check_gradients(m, {x}, testing::GradCheck{});
}

TEST(BlockRelu, TrainingStepGradientOfAConvBelowIt) {
  // x -> Conv(W, B; 3x3, pad 1) -> BlockRelu -> y. The executor's dW and dB against a direct
  // computation: dZ = mask(z) * dy from the reference, then the convolution's sums by hand.
  std::mt19937 rng(45);
  const int64_t n = 2, ci = 2, co = 3, hh = 5, ww = 6;
  const Blocks blocks = {{2, 3}, {1, 1}, {0, 0}};
  const Tensor x = random_tensor({n, ci, hh, ww}, rng);
  GraphBuilder g;
  g.input("x", {n, ci, hh, ww})
      .init("W", random_tensor({co, ci, 3, 3}, rng))
      .init("B", random_tensor({co}, rng, -0.2f, 0.2f))
      .node("Conv", {"x", "W", "B"}, {"z"},
            {{"pads", std::vector<int64_t>{1, 1, 1, 1}},
             {"kernel_shape", std::vector<int64_t>{3, 3}}})
      .output("y");
  model::Model m = g.build();
  m.graph.nodes.push_back(model::make_block_relu_node("br", "z", "y", blocks));
  Executor ex(m);
  ex.forward({x}, Mode::Training);
  const Tensor gy = random_tensor({n, co, hh, ww}, rng);
  ex.backward({gy});

  reference::ConvParams cp;
  cp.pads = {1, 1, 1, 1};
  const Tensor& w = m.graph.initializers.at("W");
  const Tensor& b = m.graph.initializers.at("B");
  const Tensor z = reference::conv2d(x, w, &b, cp);
  const Tensor dz = reference::block_relu_backward(z, gy, blocks);
  std::vector<double> dw(static_cast<size_t>(w.numel()), 0.0), db(co, 0.0);
  auto X = [&](int64_t a, int64_t c, int64_t h, int64_t v) -> double {
    if (h < 0 || h >= hh || v < 0 || v >= ww) return 0.0;
    return x.floats()[((a * ci + c) * hh + h) * ww + v];
  };
  for (int64_t a = 0; a < n; ++a)
    for (int64_t o = 0; o < co; ++o)
      for (int64_t h = 0; h < hh; ++h)
        for (int64_t v = 0; v < ww; ++v) {
          const double d = dz.floats()[((a * co + o) * hh + h) * ww + v];
          db[o] += d;
          for (int64_t c = 0; c < ci; ++c)
            for (int64_t i = 0; i < 3; ++i)
              for (int64_t j = 0; j < 3; ++j)
                dw[((o * ci + c) * 3 + i) * 3 + j] += d * X(a, c, h + i - 1, v + j - 1);
        }
  const Tensor& gw = ex.param_grads().at("W");
  const Tensor& gb = ex.param_grads().at("B");
  for (size_t i = 0; i < dw.size(); ++i) EXPECT_NEAR(gw.floats()[i], dw[i], 1e-4) << "W" << i;
  for (int64_t o = 0; o < co; ++o) EXPECT_NEAR(gb.floats()[o], db[o], 1e-4) << "B" << o;
  // The identity channel passes the whole gradient; the masked channels only some of it.
  double passed = 0;
  for (int64_t a = 0; a < n; ++a)
    for (int64_t i = 0; i < hh * ww; ++i) passed += gy.floats()[(a * co + 2) * hh * ww + i];
  EXPECT_NEAR(gb.floats()[2], passed, 1e-4);
}

// In a network whose convolutions the executor fuses with BN (inference) and may hold in
// oneDNN's blocked layouts, BlockRelu {1, 1} in place of every 4-D Relu changes nothing.
TEST(BlockRelu, OneByOneInResnet20MatchesItsRelus) {
  std::mt19937 rng(47);
  model::Model relu = model::build_arch("resnet20", {1, 16, 16, 10, 3});
  // Non-trivial BN statistics, so that the folded convolutions differ from the raw ones.
  for (auto& [name, t] : relu.graph.initializers)
    if (name.ends_with(".mean") || name.ends_with(".bias"))
      for (float& v : t.floats()) v = std::uniform_real_distribution<float>(-0.2f, 0.2f)(rng);
  model::infer_shapes(relu);
  model::Model blocky = relu;
  int replaced = 0;
  for (auto& n : blocky.graph.nodes) {
    if (n.op_type != "Relu") continue;
    const int64_t c = blocky.graph.value_info.at(n.outputs[0]).shape.at(1);
    n = model::make_block_relu_node(n.name, n.inputs[0], n.outputs[0],
                                    Blocks(static_cast<size_t>(c), {1, 1}));
    ++replaced;
  }
  EXPECT_EQ(replaced, 19);
  const Tensor x = random_tensor({2, 1, 16, 16}, rng);
  for (Mode mode : {Mode::Inference, Mode::Training}) {
    model::Model a = relu, b = blocky;
    EXPECT_TRUE(testing::all_close(testing::run1(b, {x}, mode), testing::run1(a, {x}, mode)));
  }
}

TEST(BlockRelu, ChannelCountMismatchAtRunTimeIsRefused) {
  GraphBuilder g;
  g.input("x", {1, -1, 4, 4}).output("y");
  model::Model m = g.build();
  m.graph.nodes.push_back(model::make_block_relu_node("br", "x", "y", Blocks(2, {2, 2})));
  Executor ex(m);
  std::mt19937 rng(46);
  EXPECT_NO_THROW(ex.forward({random_tensor({1, 2, 4, 4}, rng)}));
  EXPECT_THROW(ex.forward({random_tensor({1, 3, 4, 4}, rng)}), MalformedInput);
}

}  // namespace
}  // namespace veil::nn
