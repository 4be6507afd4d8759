// model::summarize's ReLU and DReLU counts (what `veil info` prints) on a small network whose
// counts are worked out by hand below.
#include "veil/model/summary.hpp"

#include <gtest/gtest.h>

#include "veil/model/block_relu_node.hpp"

namespace veil::model {
namespace {

Node make(const std::string& name, const std::string& op, std::vector<std::string> in,
          std::vector<std::string> out, std::map<std::string, Attribute> attrs = {}) {
  Node n;
  n.name = name;
  n.op_type = op;
  n.inputs = std::move(in);
  n.outputs = std::move(out);
  n.attributes = std::move(attrs);
  return n;
}

// x[N,3,8,8] -> Conv(4, 3x3, pad 1) -> Relu -> MaxPool(3x3, stride 2, pad 1) -> BlockRelu
//   -> Flatten -> Gemm(64 -> 5)
Model counted_model() {
  Model m;
  Graph& g = m.graph;
  g.inputs = {{"x", DType::Float32, {-1, 3, 8, 8}}};
  g.outputs = {{"y", DType::Float32, {}}};
  g.initializers["w"] = Tensor({4, 3, 3, 3});
  g.initializers["fc"] = Tensor({64, 5});
  g.initializers["fb"] = Tensor({5});
  using Ints = std::vector<int64_t>;
  g.nodes = {
      make("conv", "Conv", {"x", "w"}, {"c"}, {{"pads", Ints{1, 1, 1, 1}}}),
      make("relu", "Relu", {"c"}, {"r"}),
      make("pool", "MaxPool", {"r"}, {"p"},
           {{"kernel_shape", Ints{3, 3}}, {"strides", Ints{2, 2}}, {"pads", Ints{1, 1, 1, 1}}}),
      make_block_relu_node("br", "p", "b", std::vector<BlockSize>{{0, 0}, {1, 1}, {2, 2}, {3, 3}}),
      make("flat", "Flatten", {"b"}, {"f"}),
      make("fc", "Gemm", {"f", "fc", "fb"}, {"y"})};
  return m;
}

TEST(Summary, ReluAndDreluCountsByHand) {
  const ModelSummary s = summarize(counted_model());
  ASSERT_EQ(s.layers.size(), 6u);
  // Relu on [4, 8, 8]: one DReLU per element.
  EXPECT_EQ(s.layers[1].relu_count, 4 * 8 * 8);
  EXPECT_EQ(s.layers[1].drelus, 4 * 8 * 8);
  // MaxPool 3x3 / 2, pad 1 on 8x8 -> 4x4: windows start at -1, 1, 3, 5 along each axis and
  // hold 2, 3, 3, 3 in-bounds taps (11 in all), so a channel has 11 * 11 window elements over
  // 16 windows: 121 - 16 = 105 comparisons, 420 for 4 channels.
  EXPECT_EQ(s.layers[2].drelus, 4 * (11 * 11 - 16));
  EXPECT_EQ(s.layers[2].relu_count, 0);
  // BlockRelu on [4, 4, 4]: identity 0, 1x1 16, 2x2 4, 3x3 2 * 2 = 4 (edge tiles partial).
  EXPECT_EQ(s.layers[3].drelus, 0 + 16 + 4 + 4);
  EXPECT_EQ(s.layers[3].relu_count, 4 * 4 * 4);
  EXPECT_EQ(s.layers[0].drelus, 0);
  EXPECT_EQ(s.layers[5].drelus, 0);
  EXPECT_EQ(s.drelus, 256 + 420 + 24);
  EXPECT_EQ(s.relu_count, 256 + 64);
}

TEST(Summary, AllOnesBlocksCountAsTheReluTheyReplace) {
  Model m = counted_model();
  m.graph.nodes[1] =
      make_block_relu_node("relu", "c", "r", std::vector<BlockSize>(4, BlockSize{1, 1}));
  const ModelSummary s = summarize(m);
  EXPECT_EQ(s.layers[1].drelus, 256);
  EXPECT_EQ(s.layers[1].relu_count, 256);
  EXPECT_EQ(s.drelus, 256 + 420 + 24);
}

}  // namespace
}  // namespace veil::model
