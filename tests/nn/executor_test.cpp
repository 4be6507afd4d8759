// Executor behaviour beyond single ops: hooks, weight-change propagation into cached kernels,
// buffer reuse across calls and batch sizes, graph outputs that are also intermediates.
#include <gtest/gtest.h>

#include "graph_builder.hpp"
#include "veil/nn/reference.hpp"

namespace veil::nn {
namespace {

using testing::all_close;
using testing::GraphBuilder;
using testing::random_tensor;
namespace ref = reference;
using Ints = std::vector<int64_t>;

// conv(3x3, pad 1) -> bn -> relu -> maxpool -> flatten -> gemm
model::Model small_cnn(std::mt19937& rng) {
  GraphBuilder g;
  g.input("x", {-1, 2, 6, 6}).init("w", random_tensor({4, 2, 3, 3}, rng));
  g.init("b", random_tensor({4}, rng)).init("s", random_tensor({4}, rng, 0.5f, 1.5f));
  g.init("t", random_tensor({4}, rng)).init("mu", random_tensor({4}, rng, -0.2f, 0.2f));
  g.init("var", random_tensor({4}, rng, 0.5f, 1.5f));
  g.init("fw", random_tensor({5, 36}, rng)).init("fb", random_tensor({5}, rng));
  g.node("Conv", {"x", "w", "b"}, {"c"}, {{"pads", Ints{1, 1, 1, 1}}});
  g.node("BatchNormalization", {"c", "s", "t", "mu", "var"}, {"n"});
  g.node("Relu", {"n"}, {"r"});
  g.node("MaxPool", {"r"}, {"p"}, {{"kernel_shape", Ints{2, 2}}, {"strides", Ints{2, 2}}});
  g.node("Flatten", {"p"}, {"f"});
  g.node("Gemm", {"f", "fw", "fb"}, {"y"}, {{"transB", int64_t{1}}});
  g.output("y");
  return g.build();
}

Tensor small_cnn_reference(const model::Model& m, const Tensor& x) {
  const auto& in = m.graph.initializers;
  Tensor c = ref::conv2d(x, in.at("w"), &in.at("b"), {{}, {1, 1, 1, 1}, {}, 1});
  Tensor n = ref::batch_norm_inference(c, in.at("s"), in.at("t"), in.at("mu"), in.at("var"), 1e-5f);
  Tensor p = ref::max_pool2d(ref::relu(n), {{2, 2}, {2, 2}, {}, {}, false, false});
  return ref::gemm(ref::flatten(p, 1), in.at("fw"), &in.at("fb"), 1.0f, 1.0f, false, true);
}

TEST(Executor, EndToEndAcrossBatchSizesAndRepeatedCalls) {
  std::mt19937 rng(41);
  auto m = small_cnn(rng);
  for (bool fuse : {true, false}) {
    ExecutorOptions o;
    o.fuse = fuse;
    o.threads = fuse ? 2 : 0;
    Executor ex(m, o);
    for (int64_t n : {3, 1, 3, 8, 1}) {
      Tensor x = random_tensor({n, 2, 6, 6}, rng);
      EXPECT_TRUE(all_close(ex.forward({x})[0], small_cnn_reference(m, x), 1e-4, 1e-4))
          << "batch " << n << " fuse " << fuse;
    }
  }
}

TEST(Executor, ResidualInferenceInOneDnnLayouts) {
  // conv -> relu -> conv -> (+ skip) -> relu -> maxpool -> GAP with 6 channels: the values
  // between the convolutions stay in oneDNN's blocked (padded) layouts.
  std::mt19937 rng(47);
  GraphBuilder g;
  g.input("x", {-1, 3, 8, 8}).init("w0", random_tensor({6, 3, 3, 3}, rng));
  g.init("w1", random_tensor({6, 6, 3, 3}, rng)).init("b1", random_tensor({6}, rng));
  g.init("w2", random_tensor({6, 6, 3, 3}, rng));
  const std::map<std::string, model::Attribute> pad1{{"pads", Ints{1, 1, 1, 1}}};
  g.node("Conv", {"x", "w0"}, {"c0"}, pad1).node("Relu", {"c0"}, {"r0"});
  g.node("Conv", {"r0", "w1", "b1"}, {"c1"}, pad1).node("Relu", {"c1"}, {"r1"});
  g.node("Conv", {"r1", "w2"}, {"c2"}, pad1).node("Add", {"c2", "r0"}, {"s"});
  g.node("Relu", {"s"}, {"r2"});
  g.node("MaxPool", {"r2"}, {"p"}, {{"kernel_shape", Ints{2, 2}}, {"strides", Ints{2, 2}}});
  g.node("GlobalAveragePool", {"p"}, {"y"}).output("y");
  auto m = g.build();
  const auto& in = m.graph.initializers;
  auto reference = [&](const Tensor& x) {
    const ref::ConvParams p{{}, {1, 1, 1, 1}, {}, 1};
    Tensor r0 = ref::relu(ref::conv2d(x, in.at("w0"), nullptr, p));
    Tensor r1 = ref::relu(ref::conv2d(r0, in.at("w1"), &in.at("b1"), p));
    Tensor s = ref::binary(ref::BinaryOp::Add, ref::conv2d(r1, in.at("w2"), nullptr, p), r0);
    return ref::global_avg_pool(ref::max_pool2d(ref::relu(s), {{2, 2}, {2, 2}, {}, {}}));
  };
  for (bool fuse : {true, false}) {
    ExecutorOptions o;
    o.fuse = fuse;
    Executor ex(m, o);
    for (int64_t n : {2, 1, 2}) {
      Tensor x = random_tensor({n, 3, 8, 8}, rng);
      EXPECT_TRUE(all_close(ex.forward({x})[0], reference(x), 1e-4, 1e-4)) << fuse;
    }
  }
}

TEST(Executor, ParameterChangedRefreshesCachedWeights) {
  std::mt19937 rng(42);
  auto m = small_cnn(rng);
  Executor ex(m);
  Tensor x = random_tensor({2, 2, 6, 6}, rng);
  ex.forward({x});
  // Change a conv weight and a BN statistic (both folded into the fused conv).
  m.graph.initializers.at("w").floats()[0] += 1.0f;
  m.graph.initializers.at("var").floats()[1] *= 2.0f;
  ex.parameter_changed("w");
  ex.parameter_changed("var");
  EXPECT_TRUE(all_close(ex.forward({x})[0], small_cnn_reference(m, x), 1e-4, 1e-4));
  for (auto& v : m.graph.initializers.at("fw").floats()) v = -v;
  for (auto& v : m.graph.initializers.at("w").floats()) v *= 0.5f;
  ex.parameters_changed();
  EXPECT_TRUE(all_close(ex.forward({x})[0], small_cnn_reference(m, x), 1e-4, 1e-4));
  EXPECT_THROW(ex.parameter_changed("no_such_tensor"), InvalidArgument);
}

TEST(Executor, HooksRunInOrderAroundEveryNode) {
  std::mt19937 rng(43);
  auto m = small_cnn(rng);
  Tensor x = random_tensor({2, 2, 6, 6}, rng);
  for (bool fuse : {false, true}) {
    ExecutorOptions o;
    o.fuse = fuse;
    Executor ex(m, o);
    std::vector<std::string> log;
    ex.set_hooks({[&](const model::Node& n) { log.push_back("before " + n.name); },
                  [&](const model::Node& n) { log.push_back("after " + n.name); }});
    ex.forward({x});
    std::vector<std::string> expected;
    if (!fuse) {
      for (const auto& n : m.graph.nodes) {
        expected.push_back("before " + n.name);
        expected.push_back("after " + n.name);
      }
    } else {
      // The fused Conv+BN+Relu step brackets its three nodes together.
      const auto& nd = m.graph.nodes;
      expected = {"before " + nd[0].name, "before " + nd[1].name, "before " + nd[2].name,
                  "after " + nd[0].name,  "after " + nd[1].name,  "after " + nd[2].name};
      for (size_t i = 3; i < nd.size(); ++i) {
        expected.push_back("before " + nd[i].name);
        expected.push_back("after " + nd[i].name);
      }
    }
    EXPECT_EQ(log, expected) << "fuse " << fuse;
  }
}

TEST(Executor, WeightDecryptedInBeforeHookIsUsedByThatNode) {
  // Mimics the model-locking runtime: weights are garbage except while their node runs.
  std::mt19937 rng(44);
  auto m = small_cnn(rng);
  const auto real = m.graph.initializers;
  Tensor x = random_tensor({2, 2, 6, 6}, rng);
  const Tensor expected = small_cnn_reference(m, x);
  for (bool fuse : {true, false}) {
    for (const char* name : {"w", "fw"})
      for (auto& v : m.graph.initializers.at(name).floats()) v = 1e3f;
    ExecutorOptions o;
    o.fuse = fuse;
    Executor ex(m, o);
    auto weight_of = [&](const model::Node& n) -> std::string {
      if (n.op_type == "Conv") return "w";
      if (n.op_type == "Gemm") return "fw";
      return "";
    };
    ex.set_hooks({[&](const model::Node& n) {
                    const std::string w = weight_of(n);
                    if (w.empty()) return;
                    m.graph.initializers.at(w) = real.at(w);
                    ex.parameter_changed(w);
                  },
                  [&](const model::Node& n) {
                    const std::string w = weight_of(n);
                    if (w.empty()) return;
                    for (auto& v : m.graph.initializers.at(w).floats()) v = 1e3f;
                    ex.parameter_changed(w);
                  }});
    for (int rep = 0; rep < 3; ++rep)
      EXPECT_TRUE(all_close(ex.forward({x})[0], expected, 1e-4, 1e-4)) << "fuse " << fuse;
    // Training forward + backward also see the decrypted weights.
    ex.forward({x}, Mode::Training);
    ex.backward({Tensor::from_floats({2, 5}, std::vector<float>(10, 1.0f))});
    for (const auto& [name, g] : ex.param_grads())
      for (float v : g.floats()) EXPECT_LT(std::fabs(v), 1e3f) << name;
    m.graph.initializers = real;
  }
}

TEST(Executor, OutputsThatAreAlsoIntermediates) {
  std::mt19937 rng(45);
  GraphBuilder g;
  g.input("x", {2, 3}).init("one", Tensor::scalar(1.0f));
  g.node("Relu", {"x"}, {"r"}).node("Add", {"r", "one"}, {"s"}).node("Relu", {"s"}, {"t"});
  g.output("r").output("t").output("r");
  auto m = g.build();
  Executor ex(m);
  for (int rep = 0; rep < 2; ++rep) {
    Tensor x = random_tensor({2, 3}, rng);
    auto out = ex.forward({x});
    ASSERT_EQ(out.size(), 3u);
    const Tensor r = ref::relu(x);
    EXPECT_TRUE(all_close(out[0], r));
    EXPECT_TRUE(all_close(out[2], r));
    EXPECT_TRUE(
        all_close(out[1], ref::relu(ref::binary(ref::BinaryOp::Add, r, Tensor::scalar(1)))));
  }
}

TEST(Executor, InputGradientsOfSmallCnn) {
  std::mt19937 rng(46);
  auto m = small_cnn(rng);
  ExecutorOptions o;
  o.input_gradients = true;
  Executor ex(m, o);
  Tensor x = random_tensor({2, 2, 6, 6}, rng);
  ex.forward({x}, Mode::Training);
  ex.backward({random_tensor({2, 5}, rng)});
  ASSERT_EQ(ex.input_grads().size(), 1u);
  EXPECT_EQ(ex.input_grads()[0].shape(), x.shape());
  EXPECT_EQ(ex.param_grads().size(), 6u);  // w b s t fw fb; never mu/var
}

}  // namespace
}  // namespace veil::nn
