#include "veil/mpc/block_relu/apply.hpp"

#include <gtest/gtest.h>

#include "veil/core/error.hpp"
#include "veil/model/shape_inference.hpp"
#include "veil/model/zoo.hpp"

namespace veil::mpc {
namespace {

// LeNet-5 on 28x28: relu1 reads [N, 6, 28, 28], relu2 [N, 16, 10, 10], relu3 [N, 120] (after
// Flatten); pool1 and pool2 are 2x2/2 MaxPools.
model::Model lenet() {
  model::Model m = model::build_arch("lenet5", {});
  model::infer_shapes(m);
  return m;
}

const model::Node& node(const model::Model& m, const std::string& name) {
  for (const auto& n : m.graph.nodes)
    if (n.name == name) return n;
  throw std::runtime_error("no node " + name);
}

std::vector<std::string> op_types(const model::Model& m) {
  std::vector<std::string> v;
  for (const auto& n : m.graph.nodes) v.push_back(n.op_type);
  return v;
}

TEST(BlockReluApply, ReplacesTheNamedRelus) {
  model::Model m = lenet();
  const model::Node relu2 = node(m, "relu2");
  BlockReluSpec spec;
  spec.layers["relu1"].assign(6, {1, 1});  // unchanged: stays a Relu
  spec.layers["relu2"] = std::vector<model::BlockSize>(16, {2, 2});
  spec.layers["relu2"][3] = {0, 0};
  spec.layers["relu2"][15] = {1, 3};
  const auto r = apply_block_relu_spec(m, spec, false);
  EXPECT_EQ(r.block_relus, 1);
  EXPECT_EQ(r.kept_relus, 1);
  EXPECT_EQ(r.avgpools, 0);
  EXPECT_EQ(node(m, "relu1").op_type, "Relu");
  const model::Node& b = node(m, "relu2");
  EXPECT_EQ(b.op_type, "BlockRelu");
  EXPECT_EQ(b.inputs, relu2.inputs);
  EXPECT_EQ(b.outputs, relu2.outputs);
  std::vector<int64_t> want;
  for (int c = 0; c < 16; ++c) {
    const int64_t h = c == 3 ? 0 : (c == 15 ? 1 : 2), w = c == 3 ? 0 : (c == 15 ? 3 : 2);
    want.insert(want.end(), {h, w});
  }
  EXPECT_EQ(b.attr_ints("blocks", {}), want);
  EXPECT_EQ(b.attributes.size(), 1u);
  EXPECT_EQ(node(m, "pool1").op_type, "MaxPool");
}

TEST(BlockReluApply, MaxPoolToAveragePoolKeepsTheGeometry) {
  model::Model m = lenet();
  const auto r = apply_block_relu_spec(m, {}, true);
  EXPECT_EQ(r.avgpools, 2);
  for (const char* name : {"pool1", "pool2"}) {
    const model::Node& p = node(m, name);
    EXPECT_EQ(p.op_type, "AveragePool");
    EXPECT_EQ(p.attr_ints("kernel_shape", {}), (std::vector<int64_t>{2, 2}));
    EXPECT_EQ(p.attr_ints("strides", {}), (std::vector<int64_t>{2, 2}));
    EXPECT_EQ(p.outputs.size(), 1u);
  }
  model::infer_shapes(m);  // still a valid graph of the same shapes
  EXPECT_EQ(m.graph.value_info.at(node(m, "pool2").outputs[0]).shape, (Shape{-1, 16, 5, 5}));
}

// A fine-tuned block model cut to another budget: the spec's sizes replace a BlockRelu's own,
// and all-{1, 1} makes it a plain Relu again.
TEST(BlockReluApply, RespecsABlockReluNode) {
  model::Model m = lenet();
  BlockReluSpec first;
  first.layers["relu1"].assign(6, {2, 2});
  first.layers["relu2"].assign(16, {2, 2});
  apply_block_relu_spec(m, first, false);
  BlockReluSpec second;
  second.layers["relu1"].assign(6, {1, 1});
  second.layers["relu2"].assign(16, {4, 4});
  second.layers["relu2"][0] = {0, 0};
  const auto r = apply_block_relu_spec(m, second, false);
  EXPECT_EQ(r.block_relus, 1);
  EXPECT_EQ(r.kept_relus, 1);
  const model::Node& relu1 = node(m, "relu1");
  EXPECT_EQ(relu1.op_type, "Relu");
  EXPECT_TRUE(relu1.attributes.empty());
  const model::Node& relu2 = node(m, "relu2");
  EXPECT_EQ(relu2.op_type, "BlockRelu");
  std::vector<int64_t> want = {0, 0};
  for (int c = 1; c < 16; ++c) want.insert(want.end(), {4, 4});
  EXPECT_EQ(relu2.attr_ints("blocks", {}), want);
  model::infer_shapes(m);  // still a valid graph

  BlockReluSpec wrong;
  wrong.layers["relu2"].assign(15, {2, 2});
  try {
    apply_block_relu_spec(m, wrong, false);
    ADD_FAILURE() << "accepted";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("has 16 channels, the spec gives 15"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(node(m, "relu2").attr_ints("blocks", {}), want);  // nothing changed
}

void expect_refused(BlockReluSpec spec, const std::string& needle, bool avgpool = false,
                    model::Model m = lenet()) {
  const auto before = op_types(m);
  try {
    apply_block_relu_spec(m, spec, avgpool);
    ADD_FAILURE() << "accepted";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
  EXPECT_EQ(op_types(m), before);  // nothing changed
}

TEST(BlockReluApply, RefusesWhatDoesNotFit) {
  BlockReluSpec ok;
  ok.layers["relu2"].assign(16, {2, 2});
  auto s = ok;
  s.layers["nope"] = {{1, 1}};
  expect_refused(s, "no node named 'nope'");
  s = ok;
  s.layers["conv1"].assign(6, {2, 2});
  expect_refused(s, "'conv1' (Conv) is not a Relu or BlockRelu");
  s = ok;
  s.layers["relu1"].assign(5, {2, 2});
  expect_refused(s, "has 6 channels, the spec gives 5");
  s = ok;
  s.layers["relu3"].assign(120, {2, 2});
  expect_refused(s, "not NCHW");
  model::Model m = lenet();
  for (auto& n : m.graph.nodes)
    if (n.name == "pool1") n.attributes["dilations"] = std::vector<int64_t>{2, 2};
  expect_refused(ok, "dilations", true, m);
}

}  // namespace
}  // namespace veil::mpc
