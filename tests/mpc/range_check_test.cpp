#include "veil/mpc/range_check.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "test_util.hpp"
#include "veil/core/error.hpp"
#include "veil/model/fold_batch_norm.hpp"
#include "veil/model/shape_inference.hpp"
#include "veil/model/zoo.hpp"
#include "veil/nn/executor.hpp"

namespace veil::mpc {
namespace {

using testing::node;
using testing::TestRng;

constexpr int kF = 12;

// A weight or input as the ring holds it: a multiple of 2^-f (exact in float at these sizes).
float on_grid(double v) { return static_cast<float>(std::round(std::ldexp(v, kF)) * 0x1p-12); }

Tensor grid_tensor(Shape s, TestRng& rng, double lo, double hi) {
  std::vector<float> v(static_cast<size_t>(shape_numel(s)));
  for (auto& x : v) x = on_grid(rng.uniform(lo, hi));
  return Tensor::from_floats(std::move(s), std::move(v));
}

// x[N,3,7,7] -> Conv3x3 (pad 1, stride 2 or 1, groups 1 or 3) + b -> Relu -> MaxPool2 (pad 1)
//   -> Conv1x1 -> Add(residual) -> AveragePool2 -> Flatten -> Gemm(transB) + b -> Relu
//   -> MatMul -> y
model::Model random_layers(TestRng& rng, int64_t batch) {
  model::Model m;
  model::Graph& g = m.graph;
  const int64_t groups = rng.u64() % 2 ? 3 : 1, stride = rng.u64() % 2 ? 2 : 1;
  g.inputs = {{"x", DType::Float32, {batch, 3, 7, 7}}};
  g.outputs = {{"f1", DType::Float32, {}}};
  g.initializers["w1"] = grid_tensor({6, 3 / groups, 3, 3}, rng, -1, 1);
  g.initializers["b1"] = grid_tensor({6}, rng, -1, 1);
  g.initializers["w2"] = grid_tensor({6, 6, 1, 1}, rng, -1, 1);
  auto conv1 = node("conv1", "Conv", {"x", "w1", "b1"}, {"c1"});
  conv1.attributes["pads"] = std::vector<int64_t>{1, 1, 1, 1};
  conv1.attributes["strides"] = std::vector<int64_t>{stride, stride};
  conv1.attributes["group"] = groups;
  auto pool = node("pool", "MaxPool", {"r1"}, {"m1"});
  pool.attributes["kernel_shape"] = std::vector<int64_t>{2, 2};
  pool.attributes["pads"] = std::vector<int64_t>{1, 1, 1, 1};
  auto avg = node("avg", "AveragePool", {"a1"}, {"p1"});
  avg.attributes["kernel_shape"] = std::vector<int64_t>{2, 2};
  avg.attributes["strides"] = std::vector<int64_t>{2, 2};
  g.nodes = {conv1,
             node("relu1", "Relu", {"c1"}, {"r1"}),
             pool,
             node("conv2", "Conv", {"m1", "w2"}, {"c2"}),
             node("add", "Add", {"c2", "m1"}, {"a1"}),
             avg,
             node("flat", "Flatten", {"p1"}, {"f1"})};
  model::infer_shapes(m);
  const int64_t features = g.value_info.at("f1").shape.at(1);
  g.initializers["wf"] = grid_tensor({5, features}, rng, -1, 1);
  g.initializers["bf"] = grid_tensor({5}, rng, -1, 1);
  g.initializers["wm"] = grid_tensor({5, 4}, rng, -1, 1);
  auto fc = node("fc", "Gemm", {"f1", "wf", "bf"}, {"g1"});
  fc.attributes["transB"] = int64_t{1};
  g.nodes.push_back(fc);
  g.nodes.push_back(node("relu2", "Relu", {"g1"}, {"r2"}));
  g.nodes.push_back(node("mm", "MatMul", {"r2", "wm"}, {"y"}));
  g.outputs = {{"y", DType::Float32, {}}};
  g.value_info.clear();
  model::infer_shapes(m);
  return m;
}

// Every op's output on `x`, through the float engine.
std::vector<Tensor> all_outputs(model::Model m, const Tensor& x) {
  const model::LoweredGraph lowered = model::lower(m);
  m.graph.outputs.clear();
  for (const auto& op : lowered.ops)
    m.graph.outputs.push_back(model::ValueInfo{op.outputs.at(0), DType::Float32, {}});
  nn::ExecutorOptions eo;
  eo.fuse = false;
  nn::Executor e(m, eo);
  return e.forward({x});
}

// Every op's output on 16 images of [16, 3, 7, 7] in [lo, hi] (random points of the box and
// its corners, every pixel at one end) lies in the report's bounds.
void expect_inside(const model::Model& m, const SecureModel& secure, const RangeReport& r,
                   double lo, double hi, TestRng& rng, int trial) {
  std::vector<float> v(16 * 3 * 7 * 7);
  for (size_t i = 0; i < v.size(); ++i)
    v[i] = on_grid(i < 147 ? lo : i < 294 ? hi : rng.uniform(lo, hi));
  const std::vector<Tensor> outs = all_outputs(m, Tensor::from_floats({16, 3, 7, 7}, v));
  const auto& ops = secure.lowered().ops;
  ASSERT_EQ(outs.size(), ops.size());
  for (size_t o = 0; o < ops.size(); ++o) {
    const Interval b = r.outputs.at(ops[o].name);
    for (float y : outs[o].to_floats()) {
      EXPECT_GE(y, b.lo) << ops[o].name << " trial " << trial;
      EXPECT_LE(y, b.hi) << ops[o].name << " trial " << trial;
    }
  }
}

TEST(RangeCheck, IntervalBoundsContainEveryOutputOfRandomInputs) {
  TestRng rng;
  for (int trial = 0; trial < 20; ++trial) {
    const double lo = rng.uniform(-2, 0.5), hi = lo + rng.uniform(0.1, 3);
    model::Model m = random_layers(rng, 16);
    SecureModel secure(m.graph);
    const RangeReport r = analyze_ranges(secure, {{lo, hi}}, kF, {});
    EXPECT_TRUE(r.guaranteed);
    expect_inside(m, secure, r, lo, hi, rng, trial);
  }
}

// The bounds are on the ring computation: the secure run's decoded logits stay inside too.
TEST(RangeCheck, TheSecureRunStaysInsideTheBounds) {
  TestRng rng;
  for (int trial = 0; trial < 3; ++trial) {
    model::Model m = random_layers(rng, 4);
    SecureModel secure(m.graph);
    const Interval b = analyze_ranges(secure, {{0, 1}}, kF, {}).outputs.at("mm");
    std::vector<float> v(4 * 3 * 7 * 7);
    for (size_t i = 0; i < v.size(); ++i) v[i] = i < 147 ? 1.0f : on_grid(rng.uniform(0, 1));
    const Tensor x = Tensor::from_floats({4, 3, 7, 7}, v);
    SessionParams sp;
    sp.frac_bits = kF;
    Tensor logits;
    run_local_session(sp, [&](Party& p) {
      Tensor out = secure.run(p, p.is(Role::Client) ? x : Tensor(x.shape()));
      if (p.is(Role::Client)) logits = out;
    });
    ASSERT_EQ(logits.numel(), 16);
    for (float y : logits.to_floats()) {
      EXPECT_GE(y, b.lo);
      EXPECT_LE(y, b.hi);
    }
  }
}

// For one dense layer the interval bound is attained: at the corner x_k = hi where w_k > 0.
TEST(RangeCheck, TheBoundOfOneLayerIsTight) {
  TestRng rng;
  model::Model m;
  m.graph.inputs = {{"x", DType::Float32, {1, 8}}};
  m.graph.outputs = {{"y", DType::Float32, {1, 3}}};
  m.graph.initializers["w"] = grid_tensor({8, 3}, rng, -2, 2);
  m.graph.nodes = {node("mm", "MatMul", {"x", "w"}, {"y"})};
  model::infer_shapes(m);
  SecureModel secure(m.graph);
  const RangeReport r = analyze_ranges(secure, {{-1, 0.5}}, kF, {});
  const std::vector<float> w = m.graph.initializers.at("w").to_floats();
  double hi = -1e300, lo = 1e300;
  for (int j = 0; j < 3; ++j) {
    double up = 0, down = 0;
    for (int k = 0; k < 8; ++k) {
      const double wk = w[static_cast<size_t>(k * 3 + j)];
      up += wk > 0 ? wk * 0.5 : -wk;
      down += wk > 0 ? -wk : wk * 0.5;
    }
    hi = std::max(hi, up), lo = std::min(lo, down);
  }
  const Interval b = r.outputs.at("mm");
  const double ulp = 0x1p-12;  // input rounding (half an ulp times the weights) and truncation
  EXPECT_NEAR(b.hi, hi, 40 * ulp);
  EXPECT_NEAR(b.lo, lo, 40 * ulp);
  ASSERT_EQ(r.checks.front().what, "product before truncation");
  EXPECT_NEAR(r.checks.front().magnitude, std::max(hi, -lo), 40 * ulp);
}

model::Model lenet5() {
  model::ArchSpec spec;
  spec.seed = 11;
  model::Model m = model::build_arch("lenet5", spec);
  m.metadata["veil.normalize.mean"] = "0.28";
  m.metadata["veil.normalize.std"] = "0.35";
  return m;
}

void scale_node(model::Model& m, const std::string& name, float factor) {
  for (const auto& n : m.graph.nodes)
    if (n.name == name)
      for (size_t i = 1; i < n.inputs.size(); ++i)
        for (float& w : m.graph.initializers.at(n.inputs[i]).floats()) w *= factor;
}

TEST(RangeCheck, ANormalLenet5IsGuaranteed) {
  model::Model m = lenet5();
  SecureModel secure(m.graph);
  const RangeReport r = check_fixed_point_range(m, secure, kF, {});
  EXPECT_TRUE(r.guaranteed);
  EXPECT_GT(r.headroom_bits(), 0);
  EXPECT_NE(describe_range(r).find("no overflow for any input"), std::string::npos);
}

TEST(RangeCheck, AResnet20RunsAtTheDefaultFixedPointButIsOnlyEstimated) {
  model::ArchSpec spec;
  spec.height = spec.width = 16;
  model::Model m = model::build_arch("resnet20", spec);
  model::fold_batch_norm(m);
  SecureModel secure(m.graph);
  const RangeReport r = check_fixed_point_range(m, secure, kF, {});
  // Interval bounds compound over 20 layers; the probes show the real headroom.
  EXPECT_FALSE(r.guaranteed);
  ASSERT_TRUE(r.worst_case.has_value());
  EXPECT_FALSE(r.worst_case->fits());
  EXPECT_GT(r.headroom_bits(), 0);
  EXPECT_NE(describe_range(r).find("not excluded"), std::string::npos);
}

// The check's refusal of `m` at frac_bits 12 ("" when it accepts the model).
std::string refusal(const model::Model& m) {
  SecureModel secure(m.graph);
  try {
    check_fixed_point_range(m, secure, kF, {});
    return "";
  } catch (const InvalidArgument& e) {
    return e.what();
  }
}

TEST(RangeCheck, WeightsScaledBy1e12AreRefusedNamingTheLayer) {
  model::Model m = lenet5();
  scale_node(m, "fc3", 1e12f);
  const std::string msg = refusal(m);
  EXPECT_NE(msg.find("node 'fc3' (Gemm) overflows Z_2^64 at frac_bits 12"), std::string::npos)
      << msg;
  EXPECT_NE(msg.find("product before truncation"), std::string::npos) << msg;
  EXPECT_NE(msg.find("the limit is 2^43"), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
}

TEST(RangeCheck, EveryLayerScaledFailsAtTheFirstAndNoFixedPointFits) {
  model::Model m = lenet5();
  for (const char* n : {"conv1", "conv2", "fc1", "fc2", "fc3"}) scale_node(m, n, 1e12f);
  const std::string msg = refusal(m);
  EXPECT_NE(msg.find("node 'conv1' (Conv)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("no frac_bits from 8 up fits"), std::string::npos) << msg;
}

// A moderately large model fits at a smaller fixed point, and the message says which.
TEST(RangeCheck, TheMessageNamesAFixedPointThatFits) {
  model::Model m = lenet5();
  scale_node(m, "fc3", 2e3f);
  SecureModel secure(m.graph);
  int fits = -1;
  for (int f = 16; f >= 0 && fits < 0; --f)
    if (!analyze_ranges(secure, normalized_input(m, {}), f, {}).first_failure()) fits = f;
  ASSERT_GE(fits, kMinUsefulFracBits);
  ASSERT_LT(fits, 16);
  try {
    check_fixed_point_range(m, secure, 16, {});
    FAIL() << "accepted at f = 16";
  } catch (const InvalidArgument& e) {
    // The probes may allow more than the worst case; never less.
    EXPECT_NE(std::string(e.what()).find("would fit"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(check_fixed_point_range(m, secure, fits, {}));
}

TEST(RangeCheck, TheInputRangeComesFromTheMetadataAndBindsTheClient) {
  model::Model m = lenet5();
  EXPECT_EQ(input_range_of(m).lo, 0);
  EXPECT_EQ(input_range_of(m).hi, 1);
  const auto in = normalized_input(m, input_range_of(m));
  ASSERT_EQ(in.size(), 1u);
  EXPECT_NEAR(in[0].lo, -0.28 / 0.35, 1e-6);
  EXPECT_NEAR(in[0].hi, 0.72 / 0.35, 1e-6);
  m.metadata["veil.input.range"] = "-1,255";
  EXPECT_EQ(input_range_of(m).hi, 255);
  for (const char* bad : {"1", "2,1", "0,nan", "0,1,2", "a,b"}) {
    m.metadata["veil.input.range"] = bad;
    EXPECT_THROW(input_range_of(m), InvalidArgument) << bad;
  }
  EXPECT_NO_THROW(check_input_range(Tensor::from_floats({2}, {0, 1}), {}));
  EXPECT_THROW(check_input_range(Tensor::from_floats({2}, {0, 1.5f}), {}), InvalidArgument);
  EXPECT_THROW(check_input_range(Tensor::from_floats({1}, {NAN}), {}), InvalidArgument);
}

// The exact DReLU needs |x| < 2^63 (the MSB is the sign): a ReLU input that can reach 2^63 in
// the ring is refused even when no product is truncated before it.
TEST(RangeCheck, DreluInputsMustKeepTheSignBit) {
  model::Model m;
  m.graph.inputs = {{"x", DType::Float32, {1, 4}}};
  m.graph.outputs = {{"y", DType::Float32, {1, 4}}};
  m.graph.nodes = {node("relu", "Relu", {"x"}, {"y"})};
  model::infer_shapes(m);
  SecureModel secure(m.graph);
  const RangeReport ok = analyze_ranges(secure, {{-1e6, 1e6}}, kF, {});
  EXPECT_EQ(ok.first_failure(), nullptr);
  const RangeReport bad = analyze_ranges(secure, {{-0x1p52, 1}}, kF, {});
  ASSERT_NE(bad.first_failure(), nullptr);
  EXPECT_EQ(bad.first_failure()->what, "DReLU input");
  EXPECT_EQ(bad.first_failure()->limit_bits, 63);
}

// A block ReLU's DReLU sees tile sums: up to (tile area, clipped to the map) times an element.
// 2x2 tiles on a 3x3 map (area 4), 8x8 tiles clipped to the map (area 9), identity channels none.
TEST(RangeCheck, BlockReluBoundsTheTileSums) {
  auto block_model = [](std::vector<int64_t> blocks, Shape x = {1, 2, 3, 3}) {
    model::Model m;
    m.graph.inputs = {{"x", DType::Float32, x}};
    m.graph.outputs = {{"y", DType::Float32, {}}};
    auto n = node("br", "BlockRelu", {"x"}, {"y"});
    n.attributes["blocks"] = std::move(blocks);
    m.graph.nodes = {n};
    model::infer_shapes(m);
    return m;
  };
  const std::vector<Interval> input = {{-3, 1}, {-0.5, 2}};
  for (const auto& [blocks, want] : std::vector<std::pair<std::vector<int64_t>, double>>{
           {{2, 2, 1, 1}, 12.0}, {{1, 1, 8, 8}, 18.0}, {{0, 0, 1, 2}, 4.0}, {{0, 0, 0, 0}, 0.0}}) {
    model::Model m = block_model(blocks);
    SecureModel secure(m.graph);
    const RangeReport r = analyze_ranges(secure, input, kF, {});
    const RangeCheck* gate = nullptr;
    for (const RangeCheck& c : r.checks)
      if (c.node == "node 'br' (BlockRelu)" && c.what != "output") gate = &c;
    ASSERT_NE(gate, nullptr);
    EXPECT_EQ(gate->what, "DReLU input (block sum)");
    EXPECT_NEAR(gate->magnitude, want, 0.01) << blocks[0] << "," << blocks[2];  // + input rounding
    // Gated channels end non-negative; identity channels keep their range.
    const Interval out = r.outputs.at("br");
    EXPECT_NEAR(out.lo, blocks[0] == 0 ? -3.0 : 0.0, 1e-3);
  }
  // A tile sum overflows where the elements alone would not: 1024x1024 tiles of elements up to
  // 2^33 sum to 2^53, 2^65 in the ring at f = 12; single elements are 2^45.
  auto on_big_map = [&](std::vector<int64_t> blocks) {
    return block_model(std::move(blocks), {1, 2, 1024, 1024});
  };
  const model::Model relu_like = on_big_map({1, 1, 1, 1}),
                     tiled = on_big_map({1 << 20, 1 << 20, 1, 1});
  const SecureModel relu_secure(relu_like.graph), tiled_secure(tiled.graph);
  EXPECT_EQ(analyze_ranges(relu_secure, {{-0x1p33, 1}}, kF, {}).first_failure(), nullptr);
  const RangeReport bad = analyze_ranges(tiled_secure, {{-0x1p33, 1}}, kF, {});
  ASSERT_NE(bad.first_failure(), nullptr);
  EXPECT_EQ(bad.first_failure()->node, "node 'br' (BlockRelu)");
  EXPECT_NEAR(bad.first_failure()->bound_bits, 33 + 20 + kF, 1e-9);
}

// x[N,3,7,7] -> Conv3x3 (pad 1) + b -> LeakyRelu (alpha in [-0.5, 1.5]) -> Clip (random
//   bounds, or only one) -> Concat(axis 1, PRelu (a slope per channel) of Conv1x1 of x) ->
//   AveragePool3 (stride 2, pad 1, count_include_pad either way) -> Concat(axis 3, itself) ->
//   Flatten -> Gemm(transB) + b -> y
model::Model widened_layers(TestRng& rng, int64_t batch) {
  model::Model m;
  model::Graph& g = m.graph;
  g.inputs = {{"x", DType::Float32, {batch, 3, 7, 7}}};
  g.initializers["w1"] = grid_tensor({4, 3, 3, 3}, rng, -1, 1);
  g.initializers["b1"] = grid_tensor({4}, rng, -1, 1);
  g.initializers["w2"] = grid_tensor({2, 3, 1, 1}, rng, -1, 1);
  g.initializers["slope"] = grid_tensor({2, 1, 1}, rng, -0.5, 1.5);
  const double lo = rng.uniform(-2, 0.5);
  g.initializers["lo"] = Tensor::scalar(on_grid(lo));
  g.initializers["hi"] = Tensor::scalar(on_grid(lo + rng.uniform(0.1, 3)));
  g.initializers["wf"] = grid_tensor({5, 6 * 4 * 8}, rng, -1, 1);
  g.initializers["bf"] = grid_tensor({5}, rng, -1, 1);
  auto conv1 = node("conv1", "Conv", {"x", "w1", "b1"}, {"c1"});
  conv1.attributes["pads"] = std::vector<int64_t>{1, 1, 1, 1};
  auto leaky = node("leaky", "LeakyRelu", {"c1"}, {"l1"});
  leaky.attributes["alpha"] = on_grid(rng.uniform(-0.5, 1.5));
  const uint64_t which = rng.u64() % 3;  // both bounds, only the minimum, only the maximum
  auto clip = node("clip", "Clip",
                   which == 0   ? std::vector<std::string>{"l1", "lo", "hi"}
                   : which == 1 ? std::vector<std::string>{"l1", "lo"}
                                : std::vector<std::string>{"l1", "", "hi"},
                   {"k1"});
  auto cat1 = node("cat1", "Concat", {"k1", "q2"}, {"j1"});
  cat1.attributes["axis"] = int64_t{1};
  auto avg = node("avg", "AveragePool", {"j1"}, {"p1"});
  avg.attributes["kernel_shape"] = std::vector<int64_t>{3, 3};
  avg.attributes["strides"] = std::vector<int64_t>{2, 2};
  avg.attributes["pads"] = std::vector<int64_t>{1, 1, 1, 1};
  avg.attributes["count_include_pad"] = static_cast<int64_t>(rng.u64() % 2);
  auto cat2 = node("cat2", "Concat", {"p1", "p1"}, {"j2"});
  cat2.attributes["axis"] = int64_t{3};
  auto fc = node("fc", "Gemm", {"f1", "wf", "bf"}, {"y"});
  fc.attributes["transB"] = int64_t{1};
  g.nodes = {conv1,
             leaky,
             clip,
             node("conv2", "Conv", {"x", "w2"}, {"c2"}),
             node("prelu", "PRelu", {"c2", "slope"}, {"q2"}),
             cat1,
             avg,
             cat2,
             node("flat", "Flatten", {"j2"}, {"f1"}),
             fc};
  g.outputs = {{"y", DType::Float32, {}}};
  model::infer_shapes(m);
  return m;
}

TEST(RangeCheck, WidenedOpsBoundEveryOutputOfRandomInputs) {
  TestRng rng;
  for (int trial = 0; trial < 20; ++trial) {
    const double lo = rng.uniform(-2, 0.5), hi = lo + rng.uniform(0.1, 3);
    model::Model m = widened_layers(rng, 16);
    SecureModel secure(m.graph);
    const RangeReport r = analyze_ranges(secure, {{lo, hi}}, kF, {});
    EXPECT_TRUE(r.guaranteed);
    expect_inside(m, secure, r, lo, hi, rng, trial);
    // The comparisons and the truncated product are checked, where each op has them.
    auto has = [&](const std::string& node, const std::string& what) {
      return std::any_of(r.checks.begin(), r.checks.end(),
                         [&](const RangeCheck& c) { return c.node == node && c.what == what; });
    };
    EXPECT_TRUE(has("node 'leaky' (LeakyRelu)", "DReLU input"));
    EXPECT_TRUE(has("node 'leaky' (LeakyRelu)", "product before truncation"));
    EXPECT_TRUE(has("node 'clip' (Clip)", "DReLU input"));
    EXPECT_TRUE(has("node 'prelu' (PRelu)", "DReLU input"));
    EXPECT_TRUE(has("node 'prelu' (PRelu)", "product before truncation"));
    EXPECT_TRUE(has("node 'avg' (AveragePool)", "product before truncation"));
  }
}

// The bounds are tight where they can be: Clip's output is its bounds' interval when the input
// covers both, and a Clip input that can reach 2^63 in the ring is refused.
TEST(RangeCheck, ClipBoundsAreTheOutputAndItsComparisonsAreChecked) {
  model::Model m;
  m.graph.inputs = {{"x", DType::Float32, {1, 4}}};
  m.graph.outputs = {{"y", DType::Float32, {1, 4}}};
  m.graph.initializers["lo"] = Tensor::scalar(-0.5f);
  m.graph.initializers["hi"] = Tensor::scalar(6.0f);
  m.graph.nodes = {node("clip", "Clip", {"x", "lo", "hi"}, {"y"})};
  model::infer_shapes(m);
  SecureModel secure(m.graph);
  const RangeReport ok = analyze_ranges(secure, {{-10, 10}}, kF, {});
  EXPECT_EQ(ok.first_failure(), nullptr);
  EXPECT_EQ(ok.outputs.at("clip").lo, -0.5);
  EXPECT_EQ(ok.outputs.at("clip").hi, 6.0);
  const RangeReport bad = analyze_ranges(secure, {{-1, 0x1p52}}, kF, {});
  ASSERT_NE(bad.first_failure(), nullptr);
  EXPECT_EQ(bad.first_failure()->node, "node 'clip' (Clip)");
  EXPECT_EQ(bad.first_failure()->what, "DReLU input");
}

}  // namespace
}  // namespace veil::mpc
