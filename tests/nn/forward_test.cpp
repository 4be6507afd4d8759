// Every op's executor forward against the naive reference kernels, over random shapes and
// attribute combinations, in both inference and training mode.
#include <gtest/gtest.h>

#include "graph_builder.hpp"
#include "veil/core/error.hpp"
#include "veil/nn/reference.hpp"

namespace veil::nn {
namespace {

using testing::all_close;
using testing::GraphBuilder;
using testing::random_tensor;
namespace ref = reference;

using Ints = std::vector<int64_t>;

struct ConvCase {
  Shape x;
  int64_t m, kh, kw;
  Ints strides, pads, dilations;
  int64_t group;
  bool bias;
  std::string auto_pad = "NOTSET";
};

// Explicit pads equivalent to auto_pad, from the ONNX formula.
Ints same_pads(const std::string& mode, const Shape& x, Ints k, Ints s, Ints d) {
  Ints b(2), e(2);
  for (size_t i = 0; i < 2; ++i) {
    if (mode == "VALID") continue;
    const int64_t in = x[2 + i], out = (in + s[i] - 1) / s[i];
    const int64_t total = std::max<int64_t>(0, (out - 1) * s[i] + (k[i] - 1) * d[i] + 1 - in);
    b[i] = mode == "SAME_UPPER" ? total / 2 : (total + 1) / 2;
    e[i] = total - b[i];
  }
  return {b[0], b[1], e[0], e[1]};
}

class ConvForward : public ::testing::TestWithParam<ConvCase> {};

TEST_P(ConvForward, MatchesReference) {
  const ConvCase& c = GetParam();
  std::mt19937 rng(1);
  const int64_t cin = c.x[1];
  Tensor x = random_tensor(c.x, rng);
  Tensor w = random_tensor({c.m, cin / c.group, c.kh, c.kw}, rng);
  Tensor b = random_tensor({c.m}, rng);
  std::map<std::string, model::Attribute> attrs{{"group", c.group}};
  if (!c.strides.empty()) attrs["strides"] = c.strides;
  if (!c.dilations.empty()) attrs["dilations"] = c.dilations;
  if (c.auto_pad != "NOTSET")
    attrs["auto_pad"] = c.auto_pad;
  else if (!c.pads.empty())
    attrs["pads"] = c.pads;
  attrs["kernel_shape"] = Ints{c.kh, c.kw};
  GraphBuilder g;
  g.input("x", {-1, c.x[1], c.x[2], c.x[3]}).init("w", w).output("y");
  std::vector<std::string> ins{"x", "w"};
  if (c.bias) {
    g.init("b", b);
    ins.push_back("b");
  }
  g.node("Conv", ins, {"y"}, attrs);
  auto m = g.build();
  ref::ConvParams p;
  p.strides = c.strides;
  p.dilations = c.dilations;
  p.group = c.group;
  p.pads = c.auto_pad != "NOTSET" ? same_pads(c.auto_pad, c.x, {c.kh, c.kw},
                                              c.strides.empty() ? Ints{1, 1} : c.strides,
                                              c.dilations.empty() ? Ints{1, 1} : c.dilations)
                                  : c.pads;
  const Tensor expected = ref::conv2d(x, w, c.bias ? &b : nullptr, p);
  Executor ex(m);
  EXPECT_TRUE(all_close(ex.forward({x})[0], expected, 1e-5, 1e-5));
  // Second call reuses the cached primitive; a different batch size builds another.
  EXPECT_TRUE(all_close(ex.forward({x})[0], expected, 1e-5, 1e-5));
  Tensor x1 = random_tensor({1, c.x[1], c.x[2], c.x[3]}, rng);
  EXPECT_TRUE(all_close(ex.forward({x1})[0], ref::conv2d(x1, w, c.bias ? &b : nullptr, p)));
  EXPECT_TRUE(all_close(ex.forward({x}, Mode::Training)[0], expected, 1e-5, 1e-5));
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, ConvForward,
    ::testing::Values(ConvCase{{2, 3, 8, 8}, 4, 3, 3, {}, {}, {}, 1, true},
                      ConvCase{{2, 3, 9, 7}, 5, 3, 2, {2, 1}, {1, 0, 2, 1}, {}, 1, false},
                      ConvCase{{1, 4, 10, 10}, 6, 3, 3, {1, 1}, {2, 2, 2, 2}, {2, 2}, 2, true},
                      ConvCase{
                          {3, 8, 6, 6}, 8, 3, 3, {1, 1}, {1, 1, 1, 1}, {}, 8, true},  // depthwise
                      ConvCase{{2, 8, 7, 7}, 16, 3, 3, {2, 2}, {1, 1, 1, 1}, {}, 8, false},
                      ConvCase{{2, 16, 5, 5}, 32, 1, 1, {}, {}, {}, 1, true},
                      ConvCase{{2, 3, 9, 9}, 4, 3, 3, {2, 2}, {}, {}, 1, true, "SAME_UPPER"},
                      ConvCase{{2, 3, 8, 9}, 4, 4, 2, {3, 2}, {}, {}, 1, true, "SAME_LOWER"},
                      ConvCase{{2, 3, 8, 8}, 4, 3, 3, {2, 2}, {}, {1, 2}, 1, false, "VALID"},
                      ConvCase{{4, 1, 28, 28}, 6, 5, 5, {}, {2, 2, 2, 2}, {}, 1, true}));

TEST(ConvForward, OneDimensional) {
  std::mt19937 rng(2);
  Tensor x = random_tensor({2, 3, 11}, rng);
  Tensor w = random_tensor({4, 3, 3}, rng);
  Tensor b = random_tensor({4}, rng);
  GraphBuilder g;
  g.input("x", {2, 3, 11}).init("w", w).init("b", b).output("y");
  g.node("Conv", {"x", "w", "b"}, {"y"},
         {{"strides", Ints{2}}, {"pads", Ints{1, 2}}, {"dilations", Ints{2}}});
  auto m = g.build();
  ref::ConvParams p{{1, 2}, {0, 1, 0, 2}, {1, 2}, 1};
  Tensor expected = ref::conv2d(x.reshaped({2, 3, 1, 11}), w.reshaped({4, 3, 1, 3}), &b, p);
  Tensor y = testing::run1(m, {x});
  EXPECT_TRUE(all_close(y, expected.reshaped({2, 4, expected.dim(3)})));
}

TEST(ConvForward, FusedBatchNormReluMatchesUnfused) {
  std::mt19937 rng(3);
  Tensor x = random_tensor({2, 3, 6, 6}, rng);
  Tensor w = random_tensor({4, 3, 3, 3}, rng);
  Tensor b = random_tensor({4}, rng);
  Tensor scale = random_tensor({4}, rng, 0.5f, 1.5f), shift = random_tensor({4}, rng);
  Tensor mean = random_tensor({4}, rng), var = random_tensor({4}, rng, 0.5f, 2.0f);
  for (bool with_relu : {false, true}) {
    GraphBuilder g;
    g.input("x", {2, 3, 6, 6}).init("w", w).init("b", b).init("s", scale).init("t", shift);
    g.init("mu", mean).init("var", var).output("y");
    g.node("Conv", {"x", "w", "b"}, {"c"}, {{"pads", Ints{1, 1, 1, 1}}});
    g.node("BatchNormalization", {"c", "s", "t", "mu", "var"}, {with_relu ? "bn" : "y"},
           {{"epsilon", 1e-3f}});
    if (with_relu) g.node("Relu", {"bn"}, {"y"});
    auto m = g.build();
    Tensor expected = ref::batch_norm_inference(ref::conv2d(x, w, &b, {{}, {1, 1, 1, 1}, {}, 1}),
                                                scale, shift, mean, var, 1e-3f);
    if (with_relu) expected = ref::relu(expected);
    ExecutorOptions fused, plain;
    plain.fuse = false;
    EXPECT_TRUE(all_close(testing::run1(m, {x}, Mode::Inference, fused), expected, 1e-4, 1e-5));
    EXPECT_TRUE(all_close(testing::run1(m, {x}, Mode::Inference, plain), expected, 1e-4, 1e-5));
  }
}

struct PoolCase {
  std::string op;
  Shape x;
  Ints kernel, strides, pads, dilations;
  bool ceil = false;
  bool include_pad = false;
  std::string auto_pad = "NOTSET";
};

class PoolForward : public ::testing::TestWithParam<PoolCase> {};

TEST_P(PoolForward, MatchesReference) {
  const PoolCase& c = GetParam();
  std::mt19937 rng(4);
  Tensor x = random_tensor(c.x, rng);
  std::map<std::string, model::Attribute> attrs{{"kernel_shape", c.kernel},
                                                {"ceil_mode", int64_t{c.ceil}}};
  if (!c.strides.empty()) attrs["strides"] = c.strides;
  if (!c.dilations.empty()) attrs["dilations"] = c.dilations;
  if (c.auto_pad != "NOTSET")
    attrs["auto_pad"] = c.auto_pad;
  else if (!c.pads.empty())
    attrs["pads"] = c.pads;
  if (c.op == "AveragePool") attrs["count_include_pad"] = int64_t{c.include_pad};
  GraphBuilder g;
  g.input("x", c.x).output("y").node(c.op, {"x"}, {"y"}, attrs);
  auto m = g.build();
  ref::PoolParams p;
  p.kernel = c.kernel;
  p.strides = c.strides;
  p.dilations = c.dilations;
  p.ceil_mode = c.ceil;
  p.count_include_pad = c.include_pad;
  p.pads = c.auto_pad != "NOTSET"
               ? same_pads(c.auto_pad, c.x, c.kernel, c.strides.empty() ? Ints{1, 1} : c.strides,
                           c.dilations.empty() ? Ints{1, 1} : c.dilations)
               : c.pads;
  const Tensor expected = c.op == "MaxPool" ? ref::max_pool2d(x, p) : ref::avg_pool2d(x, p);
  EXPECT_TRUE(all_close(testing::run1(m, {x}), expected));
  EXPECT_TRUE(all_close(testing::run1(m, {x}, Mode::Training), expected));
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, PoolForward,
    ::testing::Values(
        PoolCase{"MaxPool", {2, 3, 8, 8}, {2, 2}, {2, 2}, {}, {}},
        PoolCase{"MaxPool", {2, 3, 7, 9}, {3, 3}, {2, 2}, {1, 1, 1, 1}, {}},
        PoolCase{"MaxPool", {1, 2, 9, 9}, {3, 2}, {2, 2}, {0, 0, 1, 0}, {}, true},
        PoolCase{"MaxPool", {1, 2, 10, 10}, {3, 3}, {1, 2}, {1, 1, 1, 1}, {2, 2}},
        PoolCase{"MaxPool", {2, 2, 7, 7}, {3, 3}, {2, 2}, {}, {}, false, false, "SAME_UPPER"},
        PoolCase{"AveragePool", {2, 3, 8, 8}, {2, 2}, {2, 2}, {}, {}},
        PoolCase{"AveragePool", {2, 3, 7, 7}, {3, 3}, {2, 2}, {1, 1, 1, 1}, {}},
        PoolCase{"AveragePool", {2, 3, 7, 7}, {3, 3}, {2, 2}, {1, 1, 1, 1}, {}, false, true},
        PoolCase{"AveragePool", {1, 2, 8, 8}, {3, 3}, {2, 2}, {0, 0, 0, 0}, {}, true, false},
        PoolCase{"AveragePool", {1, 2, 8, 8}, {3, 3}, {2, 2}, {0, 0, 0, 0}, {}, true, true},
        PoolCase{"AveragePool", {1, 2, 8, 9}, {3, 3}, {2, 2}, {1, 1, 1, 0}, {}, true, true},
        PoolCase{"AveragePool", {2, 2, 7, 6}, {2, 3}, {2, 2}, {}, {}, false, false, "SAME_LOWER"}));

TEST(PoolForward, GlobalAverageAndIndicesUnsupported) {
  std::mt19937 rng(5);
  Tensor x = random_tensor({2, 3, 5, 4}, rng);
  GraphBuilder g;
  g.input("x", x.shape()).output("y").node("GlobalAveragePool", {"x"}, {"y"});
  auto m = g.build();
  EXPECT_TRUE(all_close(testing::run1(m, {x}), ref::global_avg_pool(x)));
  GraphBuilder h;
  h.input("x", x.shape())
      .output("y")
      .node("MaxPool", {"x"}, {"y", "idx"}, {{"kernel_shape", Ints{2, 2}}});
  auto m2 = h.build();
  EXPECT_THROW(Executor{m2}, Unsupported);
}

TEST(GemmForward, AttributesAndBroadcastC) {
  std::mt19937 rng(6);
  const int64_t M = 5, K = 7, N = 4;
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb)
      for (const Shape& cs : {Shape{N}, Shape{1, N}, Shape{M, 1}, Shape{M, N}, Shape{}, Shape{0}}) {
        Tensor a = random_tensor(ta ? Shape{K, M} : Shape{M, K}, rng);
        Tensor b = random_tensor(tb ? Shape{N, K} : Shape{K, N}, rng);
        const bool has_c = cs != Shape{0};
        Tensor c = has_c ? random_tensor(cs, rng) : Tensor();
        GraphBuilder g;
        g.input("a", a.shape()).init("b", b).output("y");
        std::vector<std::string> ins{"a", "b"};
        if (has_c) {
          g.init("c", c);
          ins.push_back("c");
        }
        g.node("Gemm", ins, {"y"},
               {{"alpha", 0.7f}, {"beta", 1.3f}, {"transA", int64_t{ta}}, {"transB", int64_t{tb}}});
        auto m = g.build();
        Tensor expected = ref::gemm(a, b, has_c ? &c : nullptr, 0.7f, 1.3f, ta, tb);
        EXPECT_TRUE(all_close(testing::run1(m, {a}), expected))
            << "transA=" << ta << " transB=" << tb << " C=" << shape_to_string(cs);
      }
}

TEST(MatMulForward, BatchedBroadcasting) {
  std::mt19937 rng(7);
  const std::vector<std::pair<Shape, Shape>> cases = {
      {{3, 4}, {4, 5}}, {{2, 3, 4}, {4, 5}}, {{2, 3, 4}, {2, 4, 5}}, {{2, 1, 3, 4}, {5, 4, 2}},
      {{4}, {4, 3}},    {{2, 3, 4}, {4}},    {{3, 4}, {2, 4, 5}},    {{1, 3, 4}, {3, 4, 2}}};
  for (const auto& [sa, sb] : cases) {
    Tensor a = random_tensor(sa, rng), b = random_tensor(sb, rng);
    GraphBuilder g;
    g.input("a", sa).input("b", sb).output("y").node("MatMul", {"a", "b"}, {"y"});
    auto m = g.build();
    EXPECT_TRUE(all_close(testing::run1(m, {a, b}), ref::matmul(a, b)))
        << shape_to_string(sa) << " x " << shape_to_string(sb);
  }
}

TEST(BinaryForward, Broadcasting) {
  std::mt19937 rng(8);
  const std::vector<std::pair<Shape, Shape>> cases = {
      {{2, 3, 4}, {2, 3, 4}},       {{2, 3, 4}, {4}}, {{2, 3, 4}, {3, 1}}, {{2, 1, 4}, {1, 3, 1}},
      {{2, 3, 4, 5}, {1, 3, 1, 1}}, {{}, {2, 3}},     {{5}, {}},           {{3, 1}, {1, 4}}};
  const std::vector<std::pair<std::string, ref::BinaryOp>> ops = {{"Add", ref::BinaryOp::Add},
                                                                  {"Sub", ref::BinaryOp::Sub},
                                                                  {"Mul", ref::BinaryOp::Mul},
                                                                  {"Div", ref::BinaryOp::Div}};
  for (const auto& [sa, sb] : cases)
    for (const auto& [name, op] : ops) {
      Tensor a = random_tensor(sa, rng), b = random_tensor(sb, rng, 0.5f, 2.0f);
      GraphBuilder g;
      g.input("a", sa).input("b", sb).output("y").node(name, {"a", "b"}, {"y"});
      auto m = g.build();
      EXPECT_TRUE(all_close(testing::run1(m, {a, b}), ref::binary(op, a, b)))
          << name << " " << shape_to_string(sa) << " " << shape_to_string(sb);
    }
}

// PRelu's slope broadcasts to the input (unidirectionally): per channel, scalar, trailing.
TEST(PReluForward, SlopeBroadcastsToTheInput) {
  std::mt19937 rng(10);
  const Shape s{2, 3, 4, 5};
  for (const Shape& ss : std::vector<Shape>{{3, 1, 1}, {1}, {}, {5}, {4, 5}, {1, 3, 1, 1}}) {
    Tensor x = random_tensor(s, rng), slope = random_tensor(ss, rng, -0.5f, 1.5f);
    GraphBuilder g;
    g.input("x", s).init("slope", slope).output("y").node("PRelu", {"x", "slope"}, {"y"});
    auto m = g.build();
    const Tensor y = testing::run1(m, {x});
    EXPECT_TRUE(all_close(y, ref::binary(ref::BinaryOp::PRelu, x, slope))) << shape_to_string(ss);
    // Independently: x where x >= 0; below, the slope of the element's channel (per-channel).
    if (ss == Shape{3, 1, 1})
      for (int64_t i = 0; i < x.numel(); ++i) {
        const float v = x.floats()[i], a = slope.floats()[(i / 20) % 3];
        EXPECT_FLOAT_EQ(y.floats()[i], v >= 0 ? v : a * v) << i;
      }
  }
  // A slope that does not broadcast to the input (only to a larger shape) is refused.
  GraphBuilder g;
  g.input("x", {2, 3}).init("slope", random_tensor({4, 1, 1}, rng)).output("y");
  g.node("PRelu", {"x", "slope"}, {"y"});
  EXPECT_THROW(
      {
        auto m = g.build();
        testing::run1(m, {random_tensor({2, 3}, rng)});
      },
      Error);
}

TEST(BinaryForward, InPlaceReuseKeepsSharedValuesIntact) {
  // t = x + 1 is read by two Adds; the first must not overwrite it in place.
  std::mt19937 rng(9);
  Tensor x = random_tensor({2, 3}, rng);
  GraphBuilder g;
  g.input("x", {2, 3}).init("one", Tensor::from_floats({1}, {1.0f})).output("y");
  g.node("Add", {"x", "one"}, {"t"}).node("Add", {"t", "one"}, {"u"});
  g.node("Add", {"t", "u"}, {"y"});
  auto m = g.build();
  Tensor t = ref::binary(ref::BinaryOp::Add, x, Tensor::from_floats({1}, {1.0f}));
  Tensor u = ref::binary(ref::BinaryOp::Add, t, Tensor::from_floats({1}, {1.0f}));
  EXPECT_TRUE(all_close(testing::run1(m, {x}), ref::binary(ref::BinaryOp::Add, t, u)));
}

TEST(EltwiseForward, Activations) {
  std::mt19937 rng(10);
  Tensor x = random_tensor({3, 4, 5}, rng, -3.0f, 3.0f);
  struct Case {
    std::string op;
    std::map<std::string, model::Attribute> attrs;
    Tensor expected;
  };
  std::vector<Case> cases = {{"Relu", {}, ref::relu(x)},
                             {"LeakyRelu", {{"alpha", 0.2f}}, ref::leaky_relu(x, 0.2f)},
                             {"LeakyRelu", {}, ref::leaky_relu(x, 0.01f)},
                             {"Sigmoid", {}, ref::sigmoid(x)},
                             {"Tanh", {}, ref::tanh(x)}};
  for (auto& c : cases) {
    GraphBuilder g;
    g.input("x", x.shape()).output("y").node(c.op, {"x"}, {"y"}, c.attrs);
    auto m = g.build();
    EXPECT_TRUE(all_close(testing::run1(m, {x}), c.expected, 1e-5, 1e-6)) << c.op;
  }
  // Clip: bounds as inputs (opset >= 11), one omitted, or as attributes (opset 6).
  {
    GraphBuilder g;
    g.input("x", x.shape()).init("lo", Tensor::scalar(-0.5f)).init("hi", Tensor::scalar(1.5f));
    g.output("y").node("Clip", {"x", "lo", "hi"}, {"y"});
    auto m = g.build();
    EXPECT_TRUE(all_close(testing::run1(m, {x}), ref::clip(x, -0.5f, 1.5f)));
  }
  {
    GraphBuilder g;
    g.input("x", x.shape()).init("hi", Tensor::scalar(0.25f));
    g.output("y").node("Clip", {"x", "", "hi"}, {"y"});
    auto m = g.build();
    EXPECT_TRUE(all_close(testing::run1(m, {x}), ref::clip(x, -INFINITY, 0.25f)));
  }
  {
    GraphBuilder g(6);
    g.input("x", x.shape()).output("y");
    g.node("Clip", {"x"}, {"y"}, {{"min", 0.0f}, {"max", 6.0f}});
    auto m = g.build();
    EXPECT_TRUE(all_close(testing::run1(m, {x}), ref::clip(x, 0.0f, 6.0f)));
  }
}

TEST(BatchNormForward, InferenceAndTraining) {
  std::mt19937 rng(11);
  Tensor x = random_tensor({4, 3, 5, 5}, rng);
  Tensor s = random_tensor({3}, rng, 0.5f, 1.5f), b = random_tensor({3}, rng);
  Tensor mu = random_tensor({3}, rng), var = random_tensor({3}, rng, 0.5f, 2.0f);
  GraphBuilder g;
  g.input("x", x.shape()).init("s", s).init("b", b).init("mu", mu).init("var", var).output("y");
  g.node("BatchNormalization", {"x", "s", "b", "mu", "var"}, {"y"},
         {{"epsilon", 1e-4f}, {"momentum", 0.8f}});
  auto m = g.build();
  Executor ex(m);
  EXPECT_TRUE(all_close(ex.forward({x})[0], ref::batch_norm_inference(x, s, b, mu, var, 1e-4f),
                        1e-5, 1e-5));
  const auto batch = ref::batch_norm_training(x, s, b, 1e-4f);
  EXPECT_TRUE(all_close(ex.forward({x}, Mode::Training)[0], batch.y, 1e-4, 1e-5));
  // Running statistics: momentum * running + (1 - momentum) * batch, variance unbiased.
  const double count = 4 * 5 * 5;
  for (int c = 0; c < 3; ++c) {
    EXPECT_NEAR(m.graph.initializers.at("mu").floats()[c],
                0.8 * mu.floats()[c] + 0.2 * batch.mean.floats()[c], 1e-5);
    EXPECT_NEAR(m.graph.initializers.at("var").floats()[c],
                0.8 * var.floats()[c] + 0.2 * batch.var.floats()[c] * count / (count - 1), 1e-5);
  }
  // Inference after training sees the updated statistics.
  EXPECT_TRUE(all_close(ex.forward({x})[0],
                        ref::batch_norm_inference(x, s, b, m.graph.initializers.at("mu"),
                                                  m.graph.initializers.at("var"), 1e-4f),
                        1e-5, 1e-5));
}

TEST(SoftmaxForward, AxisSemanticsPerOpset) {
  std::mt19937 rng(12);
  Tensor x = random_tensor({2, 3, 4}, rng, -3.0f, 3.0f);
  for (int64_t axis : {-1, 0, 1, 2}) {
    GraphBuilder g(13);
    g.input("x", x.shape()).output("y").node("Softmax", {"x"}, {"y"}, {{"axis", axis}});
    auto m = g.build();
    EXPECT_TRUE(all_close(testing::run1(m, {x}), ref::softmax(x, axis), 1e-5, 1e-6)) << axis;
    GraphBuilder h(11);
    h.input("x", x.shape()).output("y").node("Softmax", {"x"}, {"y"}, {{"axis", axis}});
    auto m11 = h.build();
    EXPECT_TRUE(all_close(testing::run1(m11, {x}), ref::softmax_2d(x, axis), 1e-5, 1e-6)) << axis;
  }
  GraphBuilder g(11);
  g.input("x", x.shape()).output("y").node("Softmax", {"x"}, {"y"});
  auto m = g.build();
  EXPECT_TRUE(all_close(testing::run1(m, {x}), ref::softmax_2d(x, 1), 1e-5, 1e-6));
}

TEST(TensorOpsForward, FlattenReshapeConcatGather) {
  std::mt19937 rng(13);
  Tensor x = random_tensor({2, 3, 4}, rng);
  {
    GraphBuilder g;
    g.input("x", x.shape()).output("y").node("Flatten", {"x"}, {"y"}, {{"axis", int64_t{2}}});
    auto m = g.build();
    EXPECT_TRUE(all_close(testing::run1(m, {x}), ref::flatten(x, 2)));
  }
  for (const auto& [target, expected] : std::vector<std::pair<Ints, Shape>>{
           {{0, -1}, {2, 12}}, {{-1, 4}, {6, 4}}, {{4, 0, 2}, {4, 3, 2}}, {{24}, {24}}}) {
    GraphBuilder g;
    g.input("x", x.shape()).init("s", Tensor::from_int64({(int64_t)target.size()}, target));
    g.output("y").node("Reshape", {"x", "s"}, {"y"});
    auto m = g.build();
    EXPECT_TRUE(all_close(testing::run1(m, {x}), x.reshaped(expected)));
  }
  {
    // allowzero=1 keeps a literal 0 (only valid for an empty tensor).
    Tensor e(Shape{0, 3});
    GraphBuilder g;
    g.input("x", {0, 3}).init("s", Tensor::from_int64({2}, {3, 0})).output("y");
    g.node("Reshape", {"x", "s"}, {"y"}, {{"allowzero", int64_t{1}}});
    auto m = g.build();
    EXPECT_EQ(testing::run1(m, {e}).shape(), (Shape{3, 0}));
  }
  {
    Tensor a = random_tensor({2, 1, 4}, rng), b = random_tensor({2, 3, 4}, rng);
    GraphBuilder g;
    g.input("a", a.shape()).input("b", b.shape()).output("y");
    g.node("Concat", {"a", "b", "a"}, {"y"}, {{"axis", int64_t{-2}}});
    auto m = g.build();
    EXPECT_TRUE(all_close(testing::run1(m, {a, b}), ref::concat({a, b, a}, 1)));
  }
  {
    Tensor idx = Tensor::from_int64({2, 2}, {0, -1, 2, 1});
    for (int64_t axis : {0, 1, 2}) {
      if (axis == 0) idx = Tensor::from_int64({2, 2}, {0, -1, 1, 1});
      GraphBuilder g;
      g.input("x", x.shape()).init("i", idx).output("y");
      g.node("Gather", {"x", "i"}, {"y"}, {{"axis", axis}});
      auto m = g.build();
      EXPECT_TRUE(all_close(testing::run1(m, {x}), ref::gather(x, idx, axis))) << axis;
    }
  }
}

TEST(TensorOpsForward, SqueezeUnsqueezeIdentityDropout) {
  std::mt19937 rng(14);
  Tensor x = random_tensor({2, 1, 3, 1}, rng);
  auto run = [&](int64_t opset, const std::string& op, std::vector<std::string> ins,
                 std::map<std::string, model::Attribute> attrs, std::optional<Tensor> axes) {
    GraphBuilder g(opset);
    g.input("x", x.shape()).output("y");
    if (axes) g.init("axes", *axes);
    g.node(op, ins, {"y"}, attrs);
    auto m = g.build();
    return testing::run1(m, {x});
  };
  EXPECT_EQ(run(13, "Squeeze", {"x"}, {}, {}).shape(), (Shape{2, 3}));
  EXPECT_EQ(run(13, "Squeeze", {"x", "axes"}, {}, Tensor::from_int64({1}, {-1})).shape(),
            (Shape{2, 1, 3}));
  EXPECT_EQ(run(11, "Squeeze", {"x"}, {{"axes", Ints{1}}}, {}).shape(), (Shape{2, 3, 1}));
  EXPECT_EQ(run(13, "Unsqueeze", {"x", "axes"}, {}, Tensor::from_int64({2}, {0, -1})).shape(),
            (Shape{1, 2, 1, 3, 1, 1}));
  EXPECT_EQ(run(11, "Unsqueeze", {"x"}, {{"axes", Ints{2}}}, {}).shape(), (Shape{2, 1, 1, 3, 1}));
  EXPECT_TRUE(all_close(run(13, "Identity", {"x"}, {}, {}), x));
  EXPECT_TRUE(all_close(run(13, "Dropout", {"x"}, {{"ratio", 0.5f}}, {}), x));
  EXPECT_THROW(run(13, "Squeeze", {"x", "axes"}, {}, Tensor::from_int64({1}, {0})), Error);
}

TEST(TensorOpsForward, PadModes) {
  std::mt19937 rng(15);
  Tensor x = random_tensor({2, 3, 4}, rng);
  const Ints pads{0, 1, 2, 1, 2, 1};
  for (const auto& [mode, rm] :
       std::vector<std::pair<std::string, ref::PadMode>>{{"constant", ref::PadMode::Constant},
                                                         {"reflect", ref::PadMode::Reflect},
                                                         {"edge", ref::PadMode::Edge}}) {
    GraphBuilder g;
    g.input("x", x.shape()).init("p", Tensor::from_int64({6}, pads));
    g.init("v", Tensor::scalar(0.5f)).output("y");
    g.node("Pad", {"x", "p", "v"}, {"y"}, {{"mode", mode}});
    auto m = g.build();
    EXPECT_TRUE(all_close(testing::run1(m, {x}), ref::pad(x, pads, rm, 0.5f))) << mode;
  }
  // opset 2 style: pads and value as attributes; negative pads crop.
  GraphBuilder g(10);
  const Ints crop{0, -1, 1, 0, 1, -2};
  g.input("x", x.shape()).output("y");
  g.node("Pad", {"x"}, {"y"}, {{"pads", crop}, {"value", 2.0f}});
  auto m = g.build();
  EXPECT_TRUE(all_close(testing::run1(m, {x}), ref::pad(x, crop, ref::PadMode::Constant, 2.0f)));
}

TEST(TensorOpsForward, ShapeSubgraphDrivesReshape) {
  // The PyTorch export of x.view(x.size(0), -1): Shape -> Gather -> Unsqueeze -> Concat ->
  // Reshape, with a Cast and a ConstantOfShape thrown in; the batch may change between calls.
  std::mt19937 rng(16);
  GraphBuilder g(13);
  g.input("x", {-1, 2, 3, 4}).output("y").output("z");
  g.init("zero", Tensor::from_int64({}, {0})).init("axes0", Tensor::from_int64({1}, {0}));
  g.init("minus1", Tensor::from_int64({1}, {-1}));
  g.node("Shape", {"x"}, {"s"});
  g.node("Gather", {"s", "zero"}, {"n"}, {{"axis", int64_t{0}}});
  g.node("Unsqueeze", {"n", "axes0"}, {"n1"});
  g.node("Concat", {"n1", "minus1"}, {"shape"}, {{"axis", int64_t{0}}});
  g.node("Reshape", {"x", "shape"}, {"y"});
  g.node("Cast", {"n1"}, {"nf"}, {{"to", int64_t{1}}});
  g.node("ConstantOfShape", {"n1"}, {"ones"},
         {{"value", model::Attribute{Tensor::from_floats({1}, {1.0f})}}});
  g.node("Mul", {"ones", "nf"}, {"z"});
  auto m = g.build();
  Executor ex(m);
  for (int64_t n : {3, 1, 5}) {
    Tensor x = random_tensor({n, 2, 3, 4}, rng);
    auto out = ex.forward({x});
    EXPECT_TRUE(all_close(out[0], x.reshaped({n, 24})));
    EXPECT_TRUE(all_close(out[1], Tensor::from_floats({n}, std::vector<float>(n, float(n)))));
  }
}

// The message of the Unsupported an executor for a one-node graph throws when it is built.
std::string refusal(const std::string& op, std::map<std::string, model::Attribute> attrs = {}) {
  GraphBuilder g;
  g.input("x", {1, 4}).output("y").node(op, {"x"}, {"y"}, std::move(attrs));
  auto m = g.build();
  try {
    Executor ex(m);
  } catch (const Unsupported& e) {
    return e.what();
  }
  return "accepted";
}

TEST(ExecutorErrors, UnknownOpAndBadInputs) {
  EXPECT_EQ(refusal("FancyOp"), "node 'FancyOp_0' (FancyOp): operator is not supported by veil");
  // An op veil imports but the float engine lacks is refused when the executor is built, naming
  // the op and the node.
  EXPECT_EQ(refusal("ReduceMean", {{"axes", Ints{1}}}),
            "node 'ReduceMean_0' (ReduceMean): not supported by the float engine");
  EXPECT_EQ(refusal("Relu"), "accepted");
  GraphBuilder h;
  h.input("x", {-1, 4}).output("y").node("Relu", {"x"}, {"y"});
  auto m2 = h.build();
  Executor ex(m2);
  EXPECT_THROW(ex.forward({Tensor({2, 5})}), InvalidArgument);
  EXPECT_THROW(ex.forward({}), InvalidArgument);
  EXPECT_THROW(ex.backward({Tensor({2, 4})}), InvalidArgument);  // no training forward
  GraphBuilder k;
  k.input("x", {1, 3, 4, 4}).init("w", Tensor({2, 2, 3, 3})).output("y");
  k.node("Conv", {"x", "w"}, {"y"});
  auto m3 = k.build();
  Executor ex3(m3);
  EXPECT_THROW(ex3.forward({Tensor({1, 3, 4, 4})}), MalformedInput);
}

}  // namespace
}  // namespace veil::nn
