#include "veil/mpc/secure_model.hpp"

#include <gtest/gtest.h>

#include <cmath>

#include "test_util.hpp"
#include "veil/core/error.hpp"
#include "veil/model/block_relu_node.hpp"
#include "veil/mpc/public_model.hpp"
#include "veil/nn/executor.hpp"

namespace veil::mpc {
namespace {

using testing::node;
using testing::random_tensor;
using testing::TestRng;

// x[1,2,6,6] -> Conv3x3(pad 1)+b -> Relu -> MaxPool2 -> Conv1x1 -> Add(residual) -> Relu
//   -> GlobalAveragePool -> Flatten -> Gemm(transB)+b -> y[1,4]
model::Graph tiny_graph(TestRng& rng) {
  model::Graph g;
  g.inputs = {{"x", DType::Float32, {1, 2, 6, 6}}};
  g.outputs = {{"y", DType::Float32, {1, 4}}};
  g.initializers["w1"] = random_tensor({3, 2, 3, 3}, rng, -0.5, 0.5);
  g.initializers["b1"] = random_tensor({3}, rng, -0.2, 0.2);
  g.initializers["w2"] = random_tensor({3, 3, 1, 1}, rng, -0.8, 0.8);
  g.initializers["wf"] = random_tensor({4, 3}, rng, -1, 1);
  g.initializers["bf"] = random_tensor({4}, rng, -0.5, 0.5);
  auto conv1 = node("conv1", "Conv", {"x", "w1", "b1"}, {"c1"});
  conv1.attributes["pads"] = std::vector<int64_t>{1, 1, 1, 1};
  auto pool = node("pool", "MaxPool", {"r1"}, {"m1"});
  pool.attributes["kernel_shape"] = std::vector<int64_t>{2, 2};
  pool.attributes["strides"] = std::vector<int64_t>{2, 2};
  auto fc = node("fc", "Gemm", {"f1", "wf", "bf"}, {"y"});
  fc.attributes["transB"] = int64_t{1};
  g.nodes = {conv1,
             node("relu1", "Relu", {"c1"}, {"r1"}),
             pool,
             node("conv2", "Conv", {"m1", "w2"}, {"c2"}),
             node("add", "Add", {"c2", "m1"}, {"a1"}),
             node("relu2", "Relu", {"a1"}, {"r2"}),
             node("gap", "GlobalAveragePool", {"r2"}, {"g1"}),
             node("flat", "Flatten", {"g1"}, {"f1"}),
             fc};
  return g;
}

// The same network as plain loops in double precision.
std::vector<double> plain_forward(const model::Graph& g, const Tensor& x) {
  auto w = [&](const char* n) { return g.initializers.at(n).to_floats(); };
  auto xin = x.to_floats();
  auto w1 = w("w1"), b1 = w("b1"), w2 = w("w2"), wf = w("wf"), bf = w("bf");
  double c1[3][6][6];
  for (int o = 0; o < 3; ++o)
    for (int i = 0; i < 6; ++i)
      for (int j = 0; j < 6; ++j) {
        double s = b1[o];
        for (int c = 0; c < 2; ++c)
          for (int ky = 0; ky < 3; ++ky)
            for (int kx = 0; kx < 3; ++kx) {
              int yy = i - 1 + ky, xx = j - 1 + kx;
              if (yy < 0 || yy >= 6 || xx < 0 || xx >= 6) continue;
              s += xin[(c * 6 + yy) * 6 + xx] * w1[((o * 2 + c) * 3 + ky) * 3 + kx];
            }
        c1[o][i][j] = std::max(0.0, s);
      }
  double m1[3][3][3], r2[3][3][3];
  for (int o = 0; o < 3; ++o)
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 3; ++j)
        m1[o][i][j] = std::max({c1[o][2 * i][2 * j], c1[o][2 * i + 1][2 * j],
                                c1[o][2 * i][2 * j + 1], c1[o][2 * i + 1][2 * j + 1]});
  for (int o = 0; o < 3; ++o)
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 3; ++j) {
        double s = m1[o][i][j];
        for (int c = 0; c < 3; ++c) s += m1[c][i][j] * w2[o * 3 + c];
        r2[o][i][j] = std::max(0.0, s);
      }
  double gap[3];
  for (int o = 0; o < 3; ++o) {
    gap[o] = 0;
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 3; ++j) gap[o] += r2[o][i][j] / 9;
  }
  std::vector<double> y(4);
  for (int k = 0; k < 4; ++k) {
    y[k] = bf[k];
    for (int c = 0; c < 3; ++c) y[k] += gap[c] * wf[k * 3 + c];
  }
  return y;
}

// One run of `server_model` (built from `g`) at the server and `public_model` at the others on
// a random input: the client's logits match the plaintext loops of tiny_graph on `g`.
void expect_run_matches_plaintext(const model::Graph& g, const SecureModel& server_model,
                                  const SecureModel& public_model, const SessionParams& sp,
                                  TestRng& rng) {
  Tensor x = random_tensor({1, 2, 6, 6}, rng, -2, 2);
  Tensor logits;
  run_local_session(sp, [&](Party& p) {
    const SecureModel& m = p.is(Role::Server) ? server_model : public_model;
    Tensor out = m.run(p, p.is(Role::Client) ? x : Tensor(x.shape()));
    if (p.is(Role::Client))
      logits = out;
    else
      EXPECT_TRUE(out.empty());
  });
  std::vector<double> want = plain_forward(g, x);
  ASSERT_EQ(logits.shape(), (Shape{1, 4}));
  for (int k = 0; k < 4; ++k) EXPECT_NEAR(logits.floats()[k], want[k], 0.01) << k;
}

model::Graph zeroed_weights(const model::Graph& g) {
  model::Graph public_copy = g;
  for (auto& [name, t] : public_copy.initializers) t = Tensor(t.shape());
  return public_copy;
}

// Runs `g` at the three parties (the client and helper hold zeroed weights) and compares the
// client's logits with the plaintext loops of tiny_graph.
void expect_matches_plaintext(const model::Graph& g, TestRng& rng) {
  const model::Graph public_copy = zeroed_weights(g);
  SessionParams sp;
  sp.frac_bits = 14;
  sp.model_hash = structure_hash(g);
  ASSERT_EQ(sp.model_hash, structure_hash(public_copy));
  SecureModel server_model(g), public_model(public_copy);
  for (int trial = 0; trial < 3; ++trial)
    expect_run_matches_plaintext(g, server_model, public_model, sp, rng);
}

TEST(SecureModel, TinyGraphMatchesPlaintextLoops) {
  TestRng rng;
  expect_matches_plaintext(tiny_graph(rng), rng);
}

// The server's encoded weights are kept from one run to the next, but only while the graph
// still holds the values they were encoded from: weights replaced in the graph (the
// convolutions', the transposed Gemm's, the biases) are the ones the next run uses.
TEST(SecureModel, WeightsChangedInTheGraphAreUsedOnTheNextRun) {
  TestRng rng;
  model::Graph g = tiny_graph(rng);
  const model::Graph public_copy = zeroed_weights(g);
  SessionParams sp;
  sp.frac_bits = 14;
  sp.model_hash = structure_hash(g);
  SecureModel server_model(g), public_model(public_copy);
  expect_run_matches_plaintext(g, server_model, public_model, sp, rng);
  for (const char* name : {"w1", "b1", "w2", "wf", "bf"}) {
    Tensor& t = g.initializers.at(name);
    t = random_tensor(t.shape(), rng, -0.5, 0.5);
  }
  expect_run_matches_plaintext(g, server_model, public_model, sp, rng);
  // Changed in place, too.
  g.initializers.at("wf").floats()[0] += 0.75f;
  g.initializers.at("w1").floats()[4] -= 0.5f;
  expect_run_matches_plaintext(g, server_model, public_model, sp, rng);
}

// auto_pad is resolved by model::spatial_geometry: SAME_UPPER for the 3x3 stride-1 conv is pad
// 1 on every side and VALID for the 2x2 stride-2 pool is no padding, so the plaintext loops of
// tiny_graph still apply.
TEST(SecureModel, AutoPadResolvedByTheModelGeometry) {
  TestRng rng;
  model::Graph g = tiny_graph(rng);
  g.nodes[0].attributes.erase("pads");
  g.nodes[0].attributes["auto_pad"] = std::string("SAME_UPPER");
  g.nodes[2].attributes["auto_pad"] = std::string("VALID");
  expect_matches_plaintext(g, rng);
}

TEST(SecureModel, StructureHashIgnoresWeightValuesButNotStructure) {
  TestRng rng;
  model::Graph a = tiny_graph(rng), b = a;
  b.initializers["w1"] = random_tensor({3, 2, 3, 3}, rng, -1, 1);
  EXPECT_EQ(structure_hash(a), structure_hash(b));
  b.nodes[0].attributes["pads"] = std::vector<int64_t>{0, 0, 0, 0};
  EXPECT_NE(structure_hash(a), structure_hash(b));
}

// tiny_graph with its two Relus replaced by block ReLUs (2x2 / identity / 1x1 on the 6x6 map,
// 3x2 / 1x1 / 4x4 on the 3x3 map: partial and over-sized tiles).
model::Graph block_graph(TestRng& rng) {
  model::Graph g = tiny_graph(rng);
  using B = std::vector<BlockSize>;
  g.nodes[1] = model::make_block_relu_node("relu1", "c1", "r1", B{{2, 2}, {0, 0}, {1, 1}});
  g.nodes[5] = model::make_block_relu_node("relu2", "a1", "r2", B{{3, 2}, {1, 1}, {4, 4}});
  return g;
}

TEST(SecureModel, BlockReluMatchesTheFloatEngine) {
  TestRng rng;
  model::Model m;
  m.graph = block_graph(rng);
  model::Graph public_copy = m.graph;
  for (auto& [name, t] : public_copy.initializers) t = Tensor(t.shape());
  SessionParams sp;
  sp.frac_bits = 14;
  sp.model_hash = structure_hash(m.graph);
  ASSERT_EQ(sp.model_hash, structure_hash(public_copy));
  SecureModel server_model(m.graph), public_model(public_copy);
  nn::Executor plain(m);
  // The weights and inputs are random: a tile whose sum lies within the fixed-point error of
  // zero may take either sign (and then a whole tile differs, not one small element). Such
  // inputs are drawn again: every multi-element tile's sum must be at least 0.05 from zero.
  model::Model probe = m;
  probe.graph.outputs = {{"c1", DType::Float32, {}}, {"a1", DType::Float32, {}}};
  nn::Executor pre_activations(probe);
  auto clear_of_zero = [&](const Tensor& x) {
    const std::vector<Tensor> v = pre_activations.forward({x});
    for (size_t layer = 0; layer < 2; ++layer) {
      const auto& blocks =
          std::get<std::vector<int64_t>>(m.graph.nodes[layer == 0 ? 1 : 5].attributes.at("blocks"));
      const Shape& s = v[layer].shape();
      for (int64_t c = 0; c < s[1]; ++c) {
        const int64_t bh = blocks[2 * c], bw = blocks[2 * c + 1];
        if (bh * bw <= 1) continue;  // identity, or 1x1: a near-zero element changes little
        for (int64_t h0 = 0; h0 < s[2]; h0 += bh)
          for (int64_t w0 = 0; w0 < s[3]; w0 += bw) {
            double sum = 0;
            for (int64_t h = h0; h < std::min(s[2], h0 + bh); ++h)
              for (int64_t w = w0; w < std::min(s[3], w0 + bw); ++w)
                sum += v[layer].floats()[(c * s[2] + h) * s[3] + w];
            if (std::fabs(sum) < 0.05) return false;
          }
      }
    }
    return true;
  };
  for (int trial = 0; trial < 4; ++trial) {
    Tensor x = random_tensor({1, 2, 6, 6}, rng, -2, 2);
    for (int draw = 0; draw < 100 && !clear_of_zero(x); ++draw)
      x = random_tensor({1, 2, 6, 6}, rng, -2, 2);
    ASSERT_TRUE(clear_of_zero(x));
    Tensor logits;
    std::vector<LayerCost> trace;
    run_local_session(sp, [&](Party& p) {
      const SecureModel& sm = p.is(Role::Server) ? server_model : public_model;
      Tensor out = sm.run(p, p.is(Role::Client) ? x : Tensor(x.shape()),
                          p.is(Role::Client) ? &trace : nullptr);
      if (p.is(Role::Client)) logits = out;
    });
    const Tensor want = plain.forward({x}).at(0);
    ASSERT_EQ(logits.shape(), want.shape());
    for (int k = 0; k < 4; ++k) EXPECT_NEAR(logits.floats()[k], want.floats()[k], 0.01) << k;
    bool traced = false;
    for (const auto& l : trace) traced = traced || (l.node == "relu1" && l.op == "BlockRelu");
    EXPECT_TRUE(traced);
  }
}

// Values are freed after their last reader, and Identity/Flatten move rather than copy the value
// they read last: a value read again later (r, by the Add after the Identity) or twice by one
// op (f, by the last Add) must survive until its last use.
TEST(SecureModel, ValuesFreedAfterTheirLastReaderAreNotReadAgain) {
  TestRng rng;
  model::Model m;
  m.graph.inputs = {{"x", DType::Float32, {1, 2, 4, 4}}};
  m.graph.outputs = {{"y", DType::Float32, {1, 32}}};
  m.graph.nodes = {node("relu", "Relu", {"x"}, {"r"}), node("id", "Identity", {"r"}, {"i"}),
                   node("add", "Add", {"i", "r"}, {"a"}), node("flat", "Flatten", {"a"}, {"f"}),
                   node("twice", "Add", {"f", "f"}, {"y"})};
  SessionParams sp;
  sp.frac_bits = 14;
  sp.model_hash = structure_hash(m.graph);
  SecureModel secure(m.graph);
  nn::Executor plain(m);
  for (int trial = 0; trial < 2; ++trial) {  // a second run of the same model starts afresh
    const Tensor x = random_tensor({1, 2, 4, 4}, rng, -2, 2);
    Tensor logits;
    run_local_session(sp, [&](Party& p) {
      Tensor out = secure.run(p, p.is(Role::Client) ? x : Tensor(x.shape()));
      if (p.is(Role::Client)) logits = out;
    });
    const Tensor want = plain.forward({x}).at(0);
    ASSERT_EQ(logits.shape(), want.shape());
    for (int64_t k = 0; k < want.numel(); ++k)
      EXPECT_NEAR(logits.floats()[k], want.floats()[k], 0.01) << k;
  }
}

TEST(SecureModel, StructureHashCoversTheBlockSpec) {
  TestRng rng;
  const model::Graph a = block_graph(rng);
  model::Graph b = a;
  b.nodes[1] = model::make_block_relu_node("relu1", "c1", "r1",
                                           std::vector<BlockSize>{{2, 2}, {0, 0}, {1, 2}});
  EXPECT_NE(structure_hash(a), structure_hash(b));
  // The public structure the server sends carries the spec: the rebuilt graph hashes the same.
  model::Model m;
  m.graph = a;
  const model::Model received = public_model_from_bytes(public_model_to_bytes(m));
  EXPECT_EQ(structure_hash(received.graph), structure_hash(a));
  EXPECT_EQ(received.graph.nodes[1].attributes, a.nodes[1].attributes);
}

TEST(SecureModel, RejectsUnfoldedBatchNorm) {
  TestRng rng;
  model::Graph g = tiny_graph(rng);
  g.nodes.insert(g.nodes.begin() + 1, node("bn", "BatchNormalization", {"c1"}, {"c1b"}));
  EXPECT_THROW(SecureModel m(g), Unsupported);
}

// An op the protocols lack is refused when the model is built, naming the op and the node.
TEST(SecureModel, RefusesAtConstructionNamingOpAndNode) {
  TestRng rng;
  auto refusal = [](const model::Graph& g) {
    try {
      SecureModel m(g);
    } catch (const Unsupported& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  model::Graph soft = tiny_graph(rng);
  soft.nodes.push_back(node("probs", "Softmax", {"y"}, {"p"}));
  soft.outputs = {{"p", DType::Float32, {1, 4}}};
  EXPECT_EQ(refusal(soft), "node 'probs' (Softmax): not supported by three-party inference");
  model::Graph bn = tiny_graph(rng);
  bn.nodes.insert(bn.nodes.begin() + 1, node("bn", "BatchNormalization", {"c1"}, {"c1b"}));
  EXPECT_EQ(refusal(bn),
            "node 'bn' (BatchNormalization): not supported by three-party inference (fold it "
            "into the conv first)");
  model::Graph unknown = tiny_graph(rng);
  unknown.nodes[1].op_type = "Swish";
  EXPECT_EQ(refusal(unknown), "node 'relu1' (Swish): operator is not supported by veil");
  // Attributes the protocols cannot honour are refused up front too, not at the first run.
  model::Graph alpha = tiny_graph(rng);
  alpha.nodes.back().attributes["alpha"] = 2.0f;
  EXPECT_EQ(refusal(alpha), "node 'fc' (Gemm): only alpha = beta = 1, transA = 0");
  EXPECT_EQ(refusal(tiny_graph(rng)), "accepted");
}

}  // namespace
}  // namespace veil::mpc
