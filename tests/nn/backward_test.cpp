// Every differentiable op's backward against central finite differences, for inputs, weights
// and biases.
#include <gtest/gtest.h>

#include "graph_builder.hpp"

namespace veil::nn {
namespace {

using testing::away_from_zero;
using testing::check_gradients;
using testing::distinct_values;
using testing::GradCheck;
using testing::GraphBuilder;
using testing::random_tensor;
using Ints = std::vector<int64_t>;

TEST(ConvBackward, VariousGeometries) {
  struct Case {
    Shape x;
    int64_t m, k, group;
    Ints strides, pads, dilations;
    bool bias;
  };
  const std::vector<Case> cases = {{{2, 2, 5, 5}, 3, 3, 1, {}, {1, 1, 1, 1}, {}, true},
                                   {{1, 4, 6, 5}, 4, 3, 2, {2, 1}, {0, 1, 1, 0}, {}, false},
                                   {{2, 3, 5, 5}, 3, 2, 3, {1, 1}, {1, 1, 0, 0}, {2, 2}, true}};
  std::mt19937 rng(21);
  for (const auto& c : cases) {
    GraphBuilder g;
    g.input("x", c.x).init("w", random_tensor({c.m, c.x[1] / c.group, c.k, c.k}, rng));
    std::vector<std::string> ins{"x", "w"};
    if (c.bias) {
      g.init("b", random_tensor({c.m}, rng));
      ins.push_back("b");
    }
    std::map<std::string, model::Attribute> attrs{{"group", c.group}};
    if (!c.strides.empty()) attrs["strides"] = c.strides;
    if (!c.pads.empty()) attrs["pads"] = c.pads;
    if (!c.dilations.empty()) attrs["dilations"] = c.dilations;
    g.node("Conv", ins, {"y"}, attrs).output("y");
    auto m = g.build();
    SCOPED_TRACE(shape_to_string(c.x));
    check_gradients(m, {random_tensor(c.x, rng)}, GradCheck{});
  }
}

TEST(GemmBackward, TransposesAlphaBetaBroadcastC) {
  std::mt19937 rng(22);
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb) {
      const int64_t M = 3, K = 4, N = 2;
      GraphBuilder g;
      g.input("a", ta ? Shape{K, M} : Shape{M, K});
      g.init("b", random_tensor(tb ? Shape{N, K} : Shape{K, N}, rng));
      g.init("c", random_tensor(ta ? Shape{N} : Shape{M, 1}, rng));
      g.node("Gemm", {"a", "b", "c"}, {"y"},
             {{"alpha", 0.5f}, {"beta", 2.0f}, {"transA", int64_t{ta}}, {"transB", int64_t{tb}}});
      g.output("y");
      auto m = g.build();
      SCOPED_TRACE("transA=" + std::to_string(ta) + " transB=" + std::to_string(tb));
      check_gradients(m, {random_tensor(ta ? Shape{K, M} : Shape{M, K}, rng)}, GradCheck{});
    }
}

TEST(MatMulBackward, BroadcastBatches) {
  std::mt19937 rng(23);
  for (const auto& [sa, sb] : std::vector<std::pair<Shape, Shape>>{
           {{2, 3, 4}, {4, 2}}, {{2, 1, 2, 3}, {3, 3, 2}}, {{4}, {2, 4, 3}}}) {
    GraphBuilder g;
    g.input("a", sa).init("b", random_tensor(sb, rng)).node("MatMul", {"a", "b"}, {"y"});
    g.output("y");
    auto m = g.build();
    SCOPED_TRACE(shape_to_string(sa) + " x " + shape_to_string(sb));
    check_gradients(m, {random_tensor(sa, rng)}, GradCheck{});
  }
}

TEST(PoolBackward, MaxAverageGlobal) {
  std::mt19937 rng(24);
  struct Case {
    std::string op;
    std::map<std::string, model::Attribute> attrs;
  };
  const std::vector<Case> cases = {
      {"MaxPool", {{"kernel_shape", Ints{2, 2}}, {"strides", Ints{2, 2}}}},
      {"MaxPool",
       {{"kernel_shape", Ints{3, 3}},
        {"strides", Ints{2, 2}},
        {"pads", Ints{1, 1, 1, 1}},
        {"ceil_mode", int64_t{1}}}},
      {"AveragePool",
       {{"kernel_shape", Ints{3, 3}}, {"strides", Ints{2, 2}}, {"pads", Ints{1, 1, 1, 1}}}},
      {"AveragePool",
       {{"kernel_shape", Ints{3, 3}},
        {"strides", Ints{2, 2}},
        {"pads", Ints{0, 0, 0, 0}},
        {"count_include_pad", int64_t{1}},
        {"ceil_mode", int64_t{1}}}},
      {"GlobalAveragePool", {}},
      {"GlobalMaxPool", {}}};
  for (const auto& c : cases) {
    GraphBuilder g;
    g.input("x", {2, 2, 6, 6}).node(c.op, {"x"}, {"y"}, c.attrs).output("y");
    auto m = g.build();
    SCOPED_TRACE(c.op);
    check_gradients(m, {distinct_values({2, 2, 6, 6}, rng)}, GradCheck{});
  }
}

TEST(BatchNormBackward, BatchStatistics) {
  std::mt19937 rng(25);
  GraphBuilder g;
  g.input("x", {3, 2, 3, 3}).init("s", random_tensor({2}, rng, 0.5f, 1.5f));
  g.init("b", random_tensor({2}, rng)).init("mu", Tensor({2}));
  g.init("var", Tensor::from_floats({2}, {1.0f, 1.0f}));
  g.node("BatchNormalization", {"x", "s", "b", "mu", "var"}, {"y"}).output("y");
  auto m = g.build();
  GradCheck c;
  c.eps = 5e-3f;
  check_gradients(m, {random_tensor({3, 2, 3, 3}, rng)}, c);
}

TEST(BatchNormBackward, FrozenStatisticsAffine) {
  std::mt19937 rng(31);
  GraphBuilder g;
  g.input("x", {2, 3, 2, 2}).init("s", random_tensor({3}, rng, 0.5f, 1.5f));
  g.init("b", random_tensor({3}, rng)).init("mu", random_tensor({3}, rng));
  g.init("var", random_tensor({3}, rng, 0.5f, 1.5f));
  g.node("BatchNormalization", {"x", "s", "b", "mu", "var"}, {"y"}).output("y");
  auto m = g.build();
  const Tensor mu = m.graph.initializers.at("mu"), var = m.graph.initializers.at("var");
  // Frozen: training-mode forwards use and keep the running statistics.
  ExecutorOptions o;
  o.frozen_batch_norm = true;
  o.input_gradients = true;
  Executor ex(m, o);
  Tensor x = random_tensor({2, 3, 2, 2}, rng);
  const Tensor y_inference = ex.forward({x})[0];
  Tensor y = ex.forward({x}, Mode::Training)[0];
  EXPECT_TRUE(testing::all_close(y, y_inference));
  EXPECT_EQ(m.graph.initializers.at("mu"), mu);
  EXPECT_EQ(m.graph.initializers.at("var"), var);
  Tensor gy = random_tensor(y.shape(), rng);
  ex.backward({gy});
  // Finite differences on the input and the affine parameters, with the frozen executor.
  auto loss = [&](const Tensor& xin) {
    Tensor out = ex.forward({xin}, Mode::Training)[0];
    double l = 0;
    for (int64_t i = 0; i < out.numel(); ++i) l += double(out.floats()[i]) * gy.floats()[i];
    return l;
  };
  const float eps = 1e-2f;
  for (int64_t i = 0; i < x.numel(); ++i) {
    Tensor xp = x, xm = x;
    xp.floats()[i] += eps;
    xm.floats()[i] -= eps;
    EXPECT_NEAR(ex.input_grads()[0].floats()[i], (loss(xp) - loss(xm)) / (2 * eps), 2e-3);
  }
  for (const char* name : {"s", "b"}) {
    const Tensor grad = ex.param_grads().at(name);
    for (int64_t i = 0; i < 3; ++i) {
      float& v = m.graph.initializers.at(name).floats()[i];
      const float saved = v;
      v = saved + eps;
      const double lp = loss(x);
      v = saved - eps;
      const double lm = loss(x);
      v = saved;
      EXPECT_NEAR(grad.floats()[i], (lp - lm) / (2 * eps), 2e-3) << name;
    }
  }
}

TEST(EltwiseBackward, Activations) {
  std::mt19937 rng(26);
  const Shape s{2, 3, 4};
  struct Case {
    std::string op;
    std::map<std::string, model::Attribute> attrs;
  };
  for (const auto& c : std::vector<Case>{{"Relu", {}},
                                         {"LeakyRelu", {{"alpha", 0.3f}}},
                                         {"Sigmoid", {}},
                                         {"Tanh", {}},
                                         {"Clip", {}}}) {
    GraphBuilder g;
    g.input("x", s);
    std::vector<std::string> ins{"x"};
    if (c.op == "Clip") {
      // Bounds at +-0.55: the inputs are drawn from |x| in [0.1, 1], so stay clear of them
      // by resampling elements close to the bounds.
      g.init("lo", Tensor::scalar(-0.55f)).init("hi", Tensor::scalar(0.55f));
      ins = {"x", "lo", "hi"};
    }
    g.node(c.op, ins, {"y"}, c.attrs).output("y");
    auto m = g.build();
    Tensor x = away_from_zero(s, rng);
    for (auto& v : x.floats())
      if (std::fabs(std::fabs(v) - 0.55f) < 0.05f) v *= 0.8f;
    SCOPED_TRACE(c.op);
    check_gradients(m, {x}, GradCheck{});
  }
}

TEST(BinaryBackward, BroadcastReduction) {
  std::mt19937 rng(27);
  for (const std::string op : {"Add", "Sub", "Mul", "Div"})
    for (const auto& [sa, sb] : std::vector<std::pair<Shape, Shape>>{
             {{2, 3}, {2, 3}}, {{2, 3, 2}, {3, 1}}, {{1, 3}, {2, 1}}, {{2, 2}, {}}}) {
      GraphBuilder g;
      g.input("a", sa).input("b", sb).node(op, {"a", "b"}, {"y"}).output("y");
      auto m = g.build();
      Tensor b = random_tensor(sb, rng, 0.5f, 1.5f);
      SCOPED_TRACE(op + " " + shape_to_string(sa) + " " + shape_to_string(sb));
      check_gradients(m, {random_tensor(sa, rng), b}, GradCheck{});
    }
}

// PRelu: the slope per channel ([C, 1, 1], as PyTorch exports nn.PReLU(C)), scalar, or per
// element; gradients for the input and the slope (inputs kept away from the kink at 0).
TEST(PReluBackward, InputAndSlopeBroadcast) {
  std::mt19937 rng(31);
  const Shape s{2, 3, 2, 2};
  for (const Shape& ss : std::vector<Shape>{{3, 1, 1}, {1}, {}, {2, 2}, {2, 3, 2, 2}}) {
    GraphBuilder g;
    g.input("x", s).input("slope", ss).node("PRelu", {"x", "slope"}, {"y"}).output("y");
    auto m = g.build();
    SCOPED_TRACE(shape_to_string(ss));
    check_gradients(m, {away_from_zero(s, rng), random_tensor(ss, rng, -0.5f, 1.5f)}, GradCheck{});
  }
}

TEST(TensorOpsBackward, ViewsConcatPadSoftmaxGather) {
  std::mt19937 rng(28);
  const Shape s{2, 3, 4};
  auto check = [&](GraphBuilder g, std::vector<Tensor> inputs) {
    auto m = g.build();
    check_gradients(m, std::move(inputs), GradCheck{});
  };
  {
    GraphBuilder g;
    g.input("x", s).node("Flatten", {"x"}, {"f"}).node("Identity", {"f"}, {"i"});
    g.node("Dropout", {"i"}, {"d"}).init("shape", Tensor::from_int64({2}, {4, -1}));
    g.node("Reshape", {"d", "shape"}, {"y"}).output("y");
    SCOPED_TRACE("views");
    check(g, {random_tensor(s, rng)});
  }
  {
    GraphBuilder g;
    g.input("a", s)
        .input("b", {2, 1, 4})
        .node("Concat", {"a", "b", "a"}, {"y"}, {{"axis", int64_t{1}}});
    g.output("y");
    SCOPED_TRACE("concat");
    check(g, {random_tensor(s, rng), random_tensor({2, 1, 4}, rng)});
  }
  for (const std::string mode : {"constant", "reflect", "edge"}) {
    GraphBuilder g;
    g.input("x", s).init("p", Tensor::from_int64({6}, {0, 1, 2, 1, 2, -1}));
    g.node("Pad", {"x", "p"}, {"y"}, {{"mode", mode}}).output("y");
    SCOPED_TRACE("pad " + mode);
    check(g, {random_tensor(s, rng)});
  }
  for (int64_t opset : {11, 13}) {
    GraphBuilder g(opset);
    g.input("x", s).node("Softmax", {"x"}, {"y"}, {{"axis", int64_t{1}}}).output("y");
    SCOPED_TRACE("softmax opset " + std::to_string(opset));
    check(g, {random_tensor(s, rng, -2.0f, 2.0f)});
  }
  {
    GraphBuilder g;
    g.input("x", s).init("i", Tensor::from_int64({3}, {2, 0, 2}));
    g.node("Gather", {"x", "i"}, {"y"}, {{"axis", int64_t{1}}}).output("y");
    SCOPED_TRACE("gather");
    check(g, {random_tensor(s, rng)});
  }
}

TEST(ResidualBackward, ConvBnReluSkipEndToEnd) {
  // x -> conv1 -> bn1 -> relu -> conv2 -> bn2 -> (+ x) -> relu -> GAP -> flatten -> gemm
  std::mt19937 rng(29);
  const int64_t c = 3;
  GraphBuilder g;
  g.input("x", {2, c, 4, 4});
  for (const std::string i : {"1", "2"}) {
    g.init("w" + i, random_tensor({c, c, 3, 3}, rng, -0.5f, 0.5f));
    g.init("s" + i, random_tensor({c}, rng, 0.5f, 1.5f)).init("b" + i, random_tensor({c}, rng));
    g.init("m" + i, Tensor({c})).init("v" + i, Tensor::from_floats({c}, {1, 1, 1}));
  }
  g.init("fw", random_tensor({4, c}, rng)).init("fb", random_tensor({4}, rng));
  const std::map<std::string, model::Attribute> pad1{{"pads", Ints{1, 1, 1, 1}}};
  g.node("Conv", {"x", "w1"}, {"c1"}, pad1);
  g.node("BatchNormalization", {"c1", "s1", "b1", "m1", "v1"}, {"n1"});
  g.node("Relu", {"n1"}, {"r1"});
  g.node("Conv", {"r1", "w2"}, {"c2"}, pad1);
  g.node("BatchNormalization", {"c2", "s2", "b2", "m2", "v2"}, {"n2"});
  g.node("Add", {"n2", "x"}, {"sum"});
  g.node("Relu", {"sum"}, {"r2"});
  g.node("GlobalAveragePool", {"r2"}, {"p"});
  g.node("Flatten", {"p"}, {"f"});
  g.node("Gemm", {"f", "fw", "fb"}, {"y"}, {{"transB", int64_t{1}}});
  g.output("y");
  auto m = g.build();
  {
    Executor ex(m);
    std::vector<std::string> expected = {"w1", "s1", "b1", "w2", "s2", "b2", "fw", "fb"};
    EXPECT_EQ(ex.trainable(), expected);
  }
  GradCheck gc;
  gc.eps = 1e-3f;
  gc.rel = 2e-2;
  gc.abs = 2e-3;
  check_gradients(m, {random_tensor({2, c, 4, 4}, rng)}, gc);
}

TEST(Backward, GradientsAccumulateOverConsumersAndRestrictToTrainable) {
  // y = x*w + w (w read twice) ; only w is trainable; dL/dw = sum(g*(x+1)).
  std::mt19937 rng(30);
  Tensor x = random_tensor({3}, rng), w = random_tensor({3}, rng);
  GraphBuilder g;
  g.input("x", {3}).init("w", w).init("unused", Tensor({3}));
  g.node("Mul", {"x", "w"}, {"t"}).node("Add", {"t", "w"}, {"y"}).output("y");
  auto m = g.build();
  ExecutorOptions opts;
  opts.trainable = {"w"};
  Executor ex(m, opts);
  ex.forward({x}, Mode::Training);
  Tensor gy = random_tensor({3}, rng);
  ex.backward({gy});
  ASSERT_EQ(ex.param_grads().size(), 1u);
  const Tensor& gw = ex.param_grads().at("w");
  for (int i = 0; i < 3; ++i)
    EXPECT_NEAR(gw.floats()[i], gy.floats()[i] * (x.floats()[i] + 1.0f), 1e-6);
  EXPECT_TRUE(ex.input_grads().empty());
  // Calling backward again overwrites (does not accumulate across calls).
  ex.backward({gy});
  EXPECT_NEAR(ex.param_grads().at("w").floats()[0], gy.floats()[0] * (x.floats()[0] + 1.0f), 1e-6);
  opts.trainable = {"nope"};
  EXPECT_THROW(Executor(m, opts), InvalidArgument);
}

}  // namespace
}  // namespace veil::nn
