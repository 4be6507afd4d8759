// Non-finite values propagate as PyTorch propagates them: relu(NaN) = NaN, a max-pool window
// holding a NaN anywhere gives NaN, clip / leaky_relu / softmax keep NaN, and a Conv with a
// fused Relu does not turn a NaN pre-activation into 0. Each case runs through the oneDNN
// paths (plain and blocked layouts, fused and unfused) and the reference kernels.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "graph_builder.hpp"
#include "veil/nn/reference.hpp"

namespace veil::nn {
namespace {

using testing::GraphBuilder;
using testing::random_tensor;
namespace ref = reference;
using Ints = std::vector<int64_t>;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

// NaN exactly where `expected` has NaN, equal infinities, close finite values.
::testing::AssertionResult same_with_nan(const Tensor& got, const Tensor& expected,
                                         double tol = 1e-4) {
  if (got.shape() != expected.shape())
    return ::testing::AssertionFailure() << "shape " << shape_to_string(got.shape()) << " vs "
                                         << shape_to_string(expected.shape());
  const auto g = got.floats(), e = expected.floats();
  int64_t nans = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    if (std::isnan(e[i])) ++nans;
    const bool ok = std::isnan(e[i])   ? std::isnan(g[i])
                    : std::isinf(e[i]) ? g[i] == e[i]
                                       : std::abs(g[i] - e[i]) <= tol * (1 + std::abs(e[i]));
    if (!ok) return ::testing::AssertionFailure() << "at " << i << ": " << g[i] << " vs " << e[i];
  }
  if (nans == 0) return ::testing::AssertionFailure() << "the expected tensor holds no NaN";
  return ::testing::AssertionSuccess();
}

TEST(NanPropagation, ReferenceKernelsFollowPyTorch) {
  const Tensor x = Tensor::from_floats({1, 1, 2, 2}, {1.0f, kNaN, -2.0f, 3.0f});
  const Tensor r = ref::relu(x);
  EXPECT_EQ(r.floats()[0], 1.0f);
  EXPECT_TRUE(std::isnan(r.floats()[1]));
  EXPECT_EQ(r.floats()[2], 0.0f);
  EXPECT_TRUE(std::isnan(ref::leaky_relu(x, 0.1f).floats()[1]));
  EXPECT_TRUE(std::isnan(ref::clip(x, 0.0f, 2.0f).floats()[1]));
  // The NaN is the second element of the only 2x2 window.
  const Tensor p = ref::max_pool2d(x, {{2, 2}, {2, 2}, {}, {}, false, false});
  ASSERT_EQ(p.numel(), 1);
  EXPECT_TRUE(std::isnan(p.floats()[0]));
}

// Elementwise activations on a plain input: NaN stays NaN, +-inf map as in PyTorch.
TEST(NanPropagation, Activations) {
  const Tensor x = Tensor::from_floats({2, 4}, {-1.0f, kNaN, 2.0f, kInf, -kInf, 0.5f, kNaN, -3.0f});
  struct Case {
    std::string op;
    std::map<std::string, model::Attribute> attrs;
    Tensor expected;
  };
  std::vector<Case> cases = {{"Relu", {}, ref::relu(x)},
                             {"LeakyRelu", {{"alpha", 0.2f}}, ref::leaky_relu(x, 0.2f)},
                             {"Sigmoid", {}, ref::sigmoid(x)},
                             {"Tanh", {}, ref::tanh(x)},
                             {"Softmax", {{"axis", int64_t{1}}}, ref::softmax(x, 1)}};
  for (auto& c : cases) {
    GraphBuilder g;
    g.input("x", x.shape()).output("y").node(c.op, {"x"}, {"y"}, c.attrs);
    auto m = g.build();
    EXPECT_TRUE(same_with_nan(testing::run1(m, {x}), c.expected)) << c.op;
  }
  // torch.relu: NaN -> NaN, -inf -> 0, inf -> inf.
  const Tensor r = ref::relu(x);
  EXPECT_TRUE(std::isnan(r.floats()[1]) && std::isnan(r.floats()[6]));
  EXPECT_EQ(r.floats()[3], kInf);
  EXPECT_EQ(r.floats()[4], 0.0f);
  GraphBuilder g;
  g.input("x", x.shape()).init("lo", Tensor::scalar(0.0f)).init("hi", Tensor::scalar(1.0f));
  g.output("y").node("Clip", {"x", "lo", "hi"}, {"y"});
  auto m = g.build();
  EXPECT_TRUE(same_with_nan(testing::run1(m, {x}), ref::clip(x, 0.0f, 1.0f)));
}

// A NaN that is not the first element of its window (the old kernels kept the first max).
Tensor nan_late_in_windows(const Shape& shape, std::mt19937& rng) {
  Tensor x = random_tensor(shape, rng);
  auto v = x.floats();
  for (size_t i = 5; i < v.size(); i += 37) v[i] = kNaN;
  return x;
}

TEST(NanPropagation, MaxPoolPlainAndGlobal) {
  std::mt19937 rng(1);
  const Tensor x = nan_late_in_windows({2, 3, 8, 8}, rng);
  {
    GraphBuilder g;
    g.input("x", x.shape()).output("y");
    g.node("MaxPool", {"x"}, {"y"}, {{"kernel_shape", Ints{2, 2}}, {"strides", Ints{2, 2}}});
    auto m = g.build();
    EXPECT_TRUE(same_with_nan(testing::run1(m, {x}),
                              ref::max_pool2d(x, {{2, 2}, {2, 2}, {}, {}, false, false})));
  }
  {
    GraphBuilder g;
    g.input("x", x.shape()).output("y").node("GlobalMaxPool", {"x"}, {"y"});
    auto m = g.build();
    const Tensor y = testing::run1(m, {x});
    ASSERT_EQ(y.numel(), 6);
    // 64 values per channel, a NaN every 37 from index 5: channels 0, 1, 2, 4, 5 hold one
    // (channel 3 spans [192, 256), which 190 and 227 straddle: 227 is in it).
    for (int64_t c = 0; c < 6; ++c) {
      bool has_nan = false;
      for (int64_t i = 0; i < 64; ++i) has_nan = has_nan || std::isnan(x.floats()[c * 64 + i]);
      EXPECT_EQ(std::isnan(y.floats()[c]), has_nan) << c;
    }
  }
}

// Conv -> (BatchNormalization) -> Relu -> MaxPool: fused and unfused inference, so that the
// Relu and the MaxPool also run on oneDNN's blocked layouts, and the fused Relu post-op sees a
// NaN pre-activation.
TEST(NanPropagation, ConvReluMaxPoolFusedAndUnfused) {
  std::mt19937 rng(2);
  Tensor x = random_tensor({2, 8, 10, 10}, rng);
  x.floats()[3 * 10 + 7] = kNaN;        // image 0, channel 0
  x.floats()[800 + 5 * 10 + 2] = kInf;  // image 1, channel 0
  const Tensor w = random_tensor({16, 8, 3, 3}, rng);
  const Tensor b = random_tensor({16}, rng);
  for (bool bn : {false, true}) {
    GraphBuilder g;
    g.input("x", x.shape()).init("w", w).init("b", b).output("y");
    g.node("Conv", {"x", "w", "b"}, {"c"}, {{"pads", Ints{1, 1, 1, 1}}});
    Tensor pre = ref::conv2d(x, w, &b, {{}, {1, 1, 1, 1}, {}, 1});
    if (bn) {
      const Tensor s = random_tensor({16}, rng, 0.5f, 1.5f), t = random_tensor({16}, rng);
      const Tensor mu = random_tensor({16}, rng), var = random_tensor({16}, rng, 0.5f, 2.0f);
      g.init("s", s).init("t", t).init("mu", mu).init("var", var);
      g.node("BatchNormalization", {"c", "s", "t", "mu", "var"}, {"bn"});
      pre = ref::batch_norm_inference(pre, s, t, mu, var, 1e-5f);
    }
    g.node("Relu", {bn ? "bn" : "c"}, {"r"});
    g.node("MaxPool", {"r"}, {"y"}, {{"kernel_shape", Ints{2, 2}}, {"strides", Ints{2, 2}}});
    auto m = g.build();
    const Tensor expected = ref::max_pool2d(ref::relu(pre), {{2, 2}, {2, 2}, {}, {}, false, false});
    for (bool fuse : {true, false}) {
      ExecutorOptions opts;
      opts.fuse = fuse;
      EXPECT_TRUE(same_with_nan(testing::run1(m, {x}, Mode::Inference, opts), expected))
          << "bn " << bn << " fuse " << fuse;
    }
  }
}

// The fused Conv's NaN path on other primitive shapes: grouped, depthwise, strided 1-D.
TEST(NanPropagation, FusedConvReluGroupedAndOneDimensional) {
  std::mt19937 rng(4);
  for (int64_t group : {int64_t{2}, int64_t{8}}) {
    Tensor x = random_tensor({2, 8, 7, 7}, rng);
    x.floats()[100] = kNaN;
    const Tensor w = random_tensor({8, 8 / group, 3, 3}, rng);
    GraphBuilder g;
    g.input("x", x.shape()).init("w", w).output("y");
    g.node("Conv", {"x", "w"}, {"c"}, {{"group", group}, {"pads", Ints{1, 1, 1, 1}}});
    g.node("Relu", {"c"}, {"y"});
    auto m = g.build();
    const Tensor expected = ref::relu(ref::conv2d(x, w, nullptr, {{}, {1, 1, 1, 1}, {}, group}));
    EXPECT_TRUE(same_with_nan(testing::run1(m, {x}), expected)) << group;
  }
  Tensor x = random_tensor({2, 3, 11}, rng);
  x.floats()[40] = kNaN;
  const Tensor w = random_tensor({4, 3, 3}, rng);
  GraphBuilder g;
  g.input("x", x.shape()).init("w", w).output("y");
  g.node("Conv", {"x", "w"}, {"c"}, {{"strides", Ints{2}}}).node("Relu", {"c"}, {"y"});
  auto m = g.build();
  const Tensor expected = ref::relu(ref::conv2d(x.reshaped({2, 3, 1, 11}), w.reshaped({4, 3, 1, 3}),
                                                nullptr, {{1, 2}, {}, {}, 1}));
  EXPECT_TRUE(same_with_nan(testing::run1(m, {x}), expected.reshaped({2, 4, expected.dim(3)})));
}

// NaN and inf arising mid-network (0/0 and x/0 after bounded Conv/Relu/MaxPool layers, whose
// bound lets later kernels skip their scan) still reach the output as in PyTorch.
TEST(NanPropagation, NonFiniteArisingAfterBoundedLayers) {
  std::mt19937 rng(5);
  const Tensor x = random_tensor({2, 4, 8, 8}, rng);
  const Tensor w1 = random_tensor({8, 4, 3, 3}, rng), w2 = random_tensor({8, 8, 3, 3}, rng);
  GraphBuilder g;
  g.input("x", x.shape()).init("w1", w1).init("w2", w2).output("y");
  g.node("Conv", {"x", "w1"}, {"c1"}, {{"pads", Ints{1, 1, 1, 1}}}).node("Relu", {"c1"}, {"r1"});
  g.node("MaxPool", {"r1"}, {"p1"}, {{"kernel_shape", Ints{2, 2}}, {"strides", Ints{2, 2}}});
  g.node("Sub", {"p1", "p1"}, {"z"}).node("Div", {"p1", "z"}, {"d"});  // inf, or NaN where 0
  g.node("Conv", {"d", "w2"}, {"c2"}, {{"pads", Ints{1, 1, 1, 1}}}).node("Relu", {"c2"}, {"r2"});
  g.node("MaxPool", {"r2"}, {"y"}, {{"kernel_shape", Ints{2, 2}}, {"strides", Ints{2, 2}}});
  auto m = g.build();
  const ref::PoolParams pool{{2, 2}, {2, 2}, {}, {}, false, false};
  const Tensor p1 =
      ref::max_pool2d(ref::relu(ref::conv2d(x, w1, nullptr, {{}, {1, 1, 1, 1}})), pool);
  const Tensor d = ref::binary(ref::BinaryOp::Div, p1, ref::binary(ref::BinaryOp::Sub, p1, p1));
  const Tensor expected =
      ref::max_pool2d(ref::relu(ref::conv2d(d, w2, nullptr, {{}, {1, 1, 1, 1}})), pool);
  for (bool fuse : {true, false}) {
    ExecutorOptions opts;
    opts.fuse = fuse;
    EXPECT_TRUE(same_with_nan(testing::run1(m, {x}, Mode::Inference, opts), expected)) << fuse;
  }
}

// A BatchNormalization whose variance is below -epsilon folds into NaN weights: PyTorch's
// eval-mode batch norm gives NaN there, and so must the fused kernel.
TEST(NanPropagation, FusedConvWithNegativeVarianceIsNaN) {
  std::mt19937 rng(3);
  const Tensor x = random_tensor({1, 2, 5, 5}, rng);
  const Tensor w = random_tensor({3, 2, 3, 3}, rng);
  const Tensor s = Tensor::from_floats({3}, {1, 1, 1}), t = Tensor::from_floats({3}, {0, 0, 0});
  const Tensor mu = Tensor::from_floats({3}, {0, 0, 0});
  const Tensor var = Tensor::from_floats({3}, {1.0f, -4.0f, 1.0f});
  GraphBuilder g;
  g.input("x", x.shape()).init("w", w).init("s", s).init("t", t).init("mu", mu).init("var", var);
  g.output("y").node("Conv", {"x", "w"}, {"c"});
  g.node("BatchNormalization", {"c", "s", "t", "mu", "var"}, {"bn"}).node("Relu", {"bn"}, {"y"});
  auto m = g.build();
  const Tensor expected =
      ref::relu(ref::batch_norm_inference(ref::conv2d(x, w, nullptr, {}), s, t, mu, var, 1e-5f));
  EXPECT_TRUE(same_with_nan(testing::run1(m, {x}), expected));
}

}  // namespace
}  // namespace veil::nn
