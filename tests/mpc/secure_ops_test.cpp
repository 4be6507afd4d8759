// The ops that widen three-party inference toward the float engine (LeakyRelu, Clip,
// AveragePool with padding, Concat): secure output = nn::Executor's on the same model, for
// models as exporters write them (plain ONNX, no veil metadata).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <utility>

#include "test_util.hpp"
#include "veil/core/error.hpp"
#include "veil/model/onnx.hpp"
#include "veil/mpc/party_session.hpp"
#include "veil/mpc/public_model.hpp"
#include "veil/mpc/secure_model.hpp"
#include "veil/nn/executor.hpp"

namespace veil::mpc {
namespace {

using testing::node;
using testing::random_tensor;
using testing::TempDir;
using testing::TestRng;

// The fixed-point tolerance of the other secure = plaintext tests (f = 14).
constexpr double kTolerance = 0.02;

// The model as an exporter's ONNX file (no metadata), read back.
model::Model exported(model::Graph g) {
  model::Model m;
  m.graph = std::move(g);
  m.producer_name = "pytorch";
  TempDir dir;
  model::save_onnx(m, dir / "m.onnx");
  model::Model back = model::load_onnx(dir / "m.onnx");
  EXPECT_TRUE(back.metadata.empty());
  return back;
}

// Runs the model at the three parties (client and helper rebuild it from the public structure,
// as in a session) and returns the client's output next to the float engine's.
struct Outputs {
  Tensor secure, plain;
};
Outputs run_both(model::Model m, const Tensor& x) {
  const model::Model pub = public_model_from_json(public_model_to_json(m));
  SessionParams sp;
  sp.frac_bits = 14;
  sp.model_hash = structure_hash(m.graph);
  EXPECT_EQ(sp.model_hash, structure_hash(pub.graph));
  SecureModel server_model(m.graph), public_model(pub.graph);
  Outputs out;
  run_local_session(sp, [&](Party& p) {
    const SecureModel& sm = p.is(Role::Server) ? server_model : public_model;
    Tensor y = sm.run(p, p.is(Role::Client) ? x : Tensor(x.shape()));
    if (p.is(Role::Client)) out.secure = y;
  });
  nn::Executor exec(m);
  out.plain = exec.forward({x})[0];
  return out;
}

void expect_close(const Outputs& o) {
  ASSERT_EQ(o.secure.shape(), o.plain.shape());
  const std::vector<float> s = o.secure.to_floats(), p = o.plain.to_floats();
  for (size_t i = 0; i < s.size(); ++i) EXPECT_NEAR(s[i], p[i], kTolerance) << i;
}

// Per row of [n, classes] logits: the arg max.
std::vector<int64_t> top1(const Tensor& logits) {
  const std::vector<float> v = logits.to_floats();
  const int64_t n = logits.shape()[0], k = logits.shape()[1];
  std::vector<int64_t> out;
  for (int64_t i = 0; i < n; ++i)
    out.push_back(std::max_element(v.begin() + i * k, v.begin() + (i + 1) * k) -
                  (v.begin() + i * k));
  return out;
}

model::Node with_ints(model::Node n, const char* key, std::vector<int64_t> v) {
  n.attributes[key] = std::move(v);
  return n;
}

// x[3,2,8,8] -> Conv3x3(pad 1)+b -> LeakyRelu(0.2) -> MaxPool2 -> Conv1x1 -> LeakyRelu (default
// alpha) -> GlobalAveragePool -> Flatten -> Gemm(transB)+b -> y[3,5]: the shape of a small
// PyTorch CNN with nn.LeakyReLU.
model::Graph leaky_cnn(TestRng& rng) {
  model::Graph g;
  g.inputs = {{"x", DType::Float32, {3, 2, 8, 8}}};
  g.outputs = {{"y", DType::Float32, {3, 5}}};
  g.initializers["w1"] = random_tensor({4, 2, 3, 3}, rng, -0.6, 0.6);
  g.initializers["b1"] = random_tensor({4}, rng, -0.3, 0.3);
  g.initializers["w2"] = random_tensor({4, 4, 1, 1}, rng, -0.8, 0.8);
  g.initializers["wf"] = random_tensor({5, 4}, rng, -1, 1);
  g.initializers["bf"] = random_tensor({5}, rng, -0.5, 0.5);
  auto leaky = node("act1", "LeakyRelu", {"c1"}, {"a1"});
  leaky.attributes["alpha"] = 0.2f;
  auto fc = node("fc", "Gemm", {"f1", "wf", "bf"}, {"y"});
  fc.attributes["transB"] = int64_t{1};
  g.nodes = {with_ints(node("conv1", "Conv", {"x", "w1", "b1"}, {"c1"}), "pads", {1, 1, 1, 1}),
             leaky,
             with_ints(with_ints(node("pool", "MaxPool", {"a1"}, {"m1"}), "kernel_shape", {2, 2}),
                       "strides", {2, 2}),
             node("conv2", "Conv", {"m1", "w2"}, {"c2"}),
             node("act2", "LeakyRelu", {"c2"}, {"a2"}),
             node("gap", "GlobalAveragePool", {"a2"}, {"g1"}),
             node("flat", "Flatten", {"g1"}, {"f1"}),
             fc};
  return g;
}

TEST(SecureOps, ExportedLeakyReluCnnMatchesTheFloatEngine) {
  TestRng rng;
  const model::Model m = exported(leaky_cnn(rng));
  const Tensor x = random_tensor({3, 2, 8, 8}, rng, -2, 2);
  const Outputs o = run_both(m, x);
  expect_close(o);
  EXPECT_EQ(top1(o.secure), top1(o.plain));
}

// LeakyRelu alone, with values far on both sides and a slope above 1 (allowed by ONNX).
TEST(SecureOps, LeakyReluElementwise) {
  TestRng rng;
  for (float alpha : {0.01f, 0.3f, 1.5f}) {
    model::Graph g;
    g.inputs = {{"x", DType::Float32, {2, 3, 4, 4}}};
    g.outputs = {{"y", DType::Float32, {2, 3, 4, 4}}};
    auto n = node("act", "LeakyRelu", {"x"}, {"y"});
    n.attributes["alpha"] = alpha;
    g.nodes = {n};
    expect_close(run_both(exported(g), random_tensor({2, 3, 4, 4}, rng, -20, 20)));
  }
}

// PRelu as PyTorch exports nn.PReLU(C) (slope [C, 1, 1]) and nn.PReLU() (one slope), also on a
// dense layer's [N, C] output; a slope varying along another axis is refused.
TEST(SecureOps, PReluMatchesTheFloatEngine) {
  TestRng rng;
  for (const Shape& slope : std::vector<Shape>{{3, 1, 1}, {1}, {1, 3, 1, 1}}) {
    model::Graph g;
    g.inputs = {{"x", DType::Float32, {2, 3, 4, 4}}};
    g.outputs = {{"y", DType::Float32, {2, 3, 4, 4}}};
    g.initializers["slope"] = random_tensor(slope, rng, -0.5, 1.5);
    g.nodes = {node("act", "PRelu", {"x", "slope"}, {"y"})};
    SCOPED_TRACE(shape_to_string(slope));
    expect_close(run_both(exported(g), random_tensor({2, 3, 4, 4}, rng, -10, 10)));
  }
  model::Graph dense;
  dense.inputs = {{"x", DType::Float32, {3, 5}}};
  dense.outputs = {{"y", DType::Float32, {3, 5}}};
  dense.initializers["slope"] = random_tensor({5}, rng, 0, 0.5);
  dense.nodes = {node("act", "PRelu", {"x", "slope"}, {"y"})};
  expect_close(run_both(exported(dense), random_tensor({3, 5}, rng, -10, 10)));

  model::Graph per_element = dense;
  per_element.inputs = {{"x", DType::Float32, {3, 2, 5}}};
  per_element.outputs = {{"y", DType::Float32, {3, 2, 5}}};
  // Refused when the model is built (the input's shape is declared), so before any session.
  try {
    SecureModel m(per_element);
    ADD_FAILURE() << "accepted";
  } catch (const Unsupported& e) {
    EXPECT_NE(std::string(e.what()).find("node 'act' (PRelu): PRelu: slope [5] varies along"),
              std::string::npos)
        << e.what();
  }
}

// Clip with bounds as inputs (opset 11+): both bounds, ReLU6 = Clip(0, 6), only a minimum, only
// a maximum (the other input left empty); inputs beyond both bounds.
TEST(SecureOps, ClipMatchesTheFloatEngineBeyondBothBounds) {
  TestRng rng;
  struct Case {
    std::vector<std::string> inputs;
    float lo, hi;
  };
  const Case cases[] = {{{"x", "lo", "hi"}, -0.5f, 0.7f},
                        {{"x", "lo", "hi"}, 0.0f, 6.0f},
                        {{"x", "lo"}, -1.25f, 0},
                        {{"x", "", "hi"}, 0, 2.5f},
                        {{"x"}, 0, 0}};
  for (const Case& c : cases) {
    model::Graph g;
    g.inputs = {{"x", DType::Float32, {2, 3, 5, 5}}};
    g.outputs = {{"y", DType::Float32, {2, 3, 5, 5}}};
    g.initializers["lo"] = Tensor::scalar(c.lo);
    g.initializers["hi"] = Tensor::scalar(c.hi);
    g.nodes = {node("clip", "Clip", c.inputs, {"y"})};
    const Tensor x = random_tensor({2, 3, 5, 5}, rng, -4, 9);
    const Outputs o = run_both(exported(g), x);
    expect_close(o);
    // The input reaches both sides of every bound (so each branch of the protocol is used).
    const std::vector<float> xs = x.to_floats();
    EXPECT_LT(*std::min_element(xs.begin(), xs.end()), -1.25f);
    EXPECT_GT(*std::max_element(xs.begin(), xs.end()), 6.0f);
  }
}

// (Infinite or NaN initializers are refused by the IR already.)
// Before opset 11 the bounds are attributes (ReLU6 in older exports, and a Clip with only a
// minimum): the server's loader turns them into inputs, and the result is what the float engine
// computes on the original file.
TEST(SecureOps, ClipWithAttributeBoundsFromAnOldOpset) {
  TestRng rng;
  model::Model m;
  m.opset = 9;
  m.graph.inputs = {{"x", DType::Float32, {2, 3, 5, 5}}};
  m.graph.outputs = {{"y", DType::Float32, {2, 3, 5, 5}}};
  auto relu6 = node("relu6", "Clip", {"x"}, {"c"});
  relu6.attributes["min"] = 0.0f;
  relu6.attributes["max"] = 6.0f;
  auto floor = node("floor", "Clip", {"c"}, {"y"});
  floor.attributes["min"] = 0.5f;
  m.graph.nodes = {relu6, floor};
  TempDir dir;
  model::save_onnx(m, dir / "old.onnx");
  model::Model original = model::load_onnx(dir / "old.onnx");
  ASSERT_EQ(original.opset, 9);
  const model::Model loaded = load_model_for_mpc((dir / "old.onnx").string());
  EXPECT_EQ(loaded.graph.nodes[0].inputs.size(), 3u);
  EXPECT_EQ(loaded.graph.nodes[1].inputs.size(), 2u);  // no maximum
  const Tensor x = random_tensor({2, 3, 5, 5}, rng, -4, 9);
  const Outputs o = run_both(loaded, x);
  expect_close(o);
  nn::Executor exec(original);
  expect_close({o.secure, exec.forward({x})[0]});
}

TEST(SecureOps, ClipBoundsMustBeConstantScalarsAndOrdered) {
  model::Graph g;
  g.inputs = {{"x", DType::Float32, {1, 4}}, {"t", DType::Float32, {}}};
  g.outputs = {{"y", DType::Float32, {1, 4}}};
  g.initializers["lo"] = Tensor::scalar(1.0f);
  g.initializers["hi"] = Tensor::scalar(-1.0f);
  g.initializers["pair"] = Tensor::from_floats({2}, {0.0f, 1.0f});
  g.nodes = {node("clip", "Clip", {"x", "lo", "hi"}, {"y"})};
  EXPECT_THROW(SecureModel m(g), Unsupported);  // min > max
  g.nodes[0].inputs = {"x", "pair"};
  EXPECT_THROW(SecureModel m(g), Unsupported);
  g.nodes[0].inputs = {"x", "t"};
  EXPECT_THROW(SecureModel m(g), Unsupported);  // not an initializer
  g.nodes[0].inputs = {"x", "hi", "lo"};
  EXPECT_NO_THROW(SecureModel m(g));
}

// AveragePool with padding (counted and not), ceil mode and strides other than the kernel.
TEST(SecureOps, AveragePoolWithPaddingMatchesTheFloatEngine) {
  TestRng rng;
  struct Case {
    std::vector<int64_t> kernel, strides, pads;
    bool count_pad, ceil;
    int64_t out;  // output height and width
  };
  const Case cases[] = {{{3, 3}, {1, 1}, {1, 1, 1, 1}, false, false, 7},
                        {{3, 3}, {1, 1}, {1, 1, 1, 1}, true, false, 7},
                        {{3, 2}, {2, 2}, {1, 0, 1, 1}, true, false, 4},
                        {{2, 2}, {2, 2}, {0, 0, 0, 0}, false, true, 4},
                        {{3, 3}, {2, 2}, {1, 1, 1, 1}, false, true, 4},
                        {{3, 3}, {2, 2}, {1, 1, 0, 0}, true, true, 4}};
  for (const Case& c : cases) {
    model::Graph g;
    g.inputs = {{"x", DType::Float32, {2, 2, 7, 7}}};
    g.outputs = {{"y", DType::Float32, {2, 2, c.out, c.out}}};
    auto n = node("pool", "AveragePool", {"x"}, {"y"});
    n.attributes["kernel_shape"] = c.kernel;
    n.attributes["strides"] = c.strides;
    n.attributes["pads"] = c.pads;
    n.attributes["count_include_pad"] = int64_t{c.count_pad};
    n.attributes["ceil_mode"] = int64_t{c.ceil};
    g.nodes = {n};
    SCOPED_TRACE(::testing::Message() << "kernel " << c.kernel[0] << "x" << c.kernel[1]
                                      << " count_pad " << c.count_pad << " ceil " << c.ceil);
    expect_close(run_both(exported(g), random_tensor({2, 2, 7, 7}, rng, -3, 3)));
  }
  model::Graph g;
  g.inputs = {{"x", DType::Float32, {2, 3, 5, 6}}};
  g.outputs = {{"y", DType::Float32, {2, 3, 1, 1}}};
  g.nodes = {node("gap", "GlobalAveragePool", {"x"}, {"y"})};
  expect_close(run_both(exported(g), random_tensor({2, 3, 5, 6}, rng, -3, 3)));
}

// Two conv branches concatenated on the channels (an Inception/DenseNet join), then the input
// with itself on the last axis and on the batch axis.
TEST(SecureOps, ConcatOnAnyAxisMatchesTheFloatEngine) {
  TestRng rng;
  const std::pair<int64_t, Shape> cases[] = {
      {1, {2, 8, 4, 4}}, {-1, {2, 2, 4, 12}}, {0, {6, 2, 4, 4}}, {2, {2, 2, 12, 4}}};
  for (const auto& [axis, out] : cases) {
    model::Graph g;
    g.inputs = {{"x", DType::Float32, {2, 2, 4, 4}}};
    g.outputs = {{"y", DType::Float32, out}};
    g.initializers["wa"] = random_tensor({3, 2, 1, 1}, rng, -1, 1);
    g.initializers["wb"] = random_tensor({3, 2, 1, 1}, rng, -1, 1);
    auto cat = node("cat", "Concat", {"a", "x", "b"}, {"c"});
    cat.attributes["axis"] = axis;
    const bool channels = axis == 1;
    if (!channels) {
      g.initializers["wb"] = random_tensor({2, 2, 1, 1}, rng, -1, 1);
      g.initializers["wa"] = random_tensor({2, 2, 1, 1}, rng, -1, 1);
    }
    g.nodes = {node("ca", "Conv", {"x", "wa"}, {"a"}), node("cb", "Conv", {"x", "wb"}, {"b"}), cat,
               node("act", "Relu", {"c"}, {"y"})};
    SCOPED_TRACE(axis);
    expect_close(run_both(exported(g), random_tensor({2, 2, 4, 4}, rng, -2, 2)));
  }
}

}  // namespace
}  // namespace veil::mpc
