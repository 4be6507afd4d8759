// The op registry and the lowering pass: one entry per supported op, unknown ops refused with the
// node's name, every params struct read from its attributes (ONNX defaults when absent), the
// lowered graph's value ids, and the one geometry / Reshape resolution.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <limits>

#include "veil/core/error.hpp"
#include "veil/model/lowered.hpp"
#include "veil/model/op_support.hpp"
#include "veil/model/shape_inference.hpp"

namespace veil::model {
namespace {

using ::testing::HasSubstr;
using Ints = std::vector<int64_t>;

Node make_node(const std::string& op, std::vector<std::string> inputs,
               std::map<std::string, Attribute> attrs = {},
               std::vector<std::string> outputs = {"y"}) {
  Node n;
  n.name = "the_" + op;
  n.op_type = op;
  n.inputs = std::move(inputs);
  n.outputs = std::move(outputs);
  n.attributes = std::move(attrs);
  return n;
}

template <typename T>
T lowered(const Node& n, int64_t opset = 13) {
  OpParams p = lower_node(n, opset);
  EXPECT_TRUE(std::holds_alternative<T>(p)) << n.op_type;
  return std::get<T>(p);
}

TEST(OpRegistry, EverySupportedOpHasOneEntry) {
  // The names veil documents as supported (docs/ARCHITECTURE.md), independent of the registry.
  const std::set<std::string> expected = {"Add",
                                          "AveragePool",
                                          "BatchNormalization",
                                          "BlockRelu",
                                          "Cast",
                                          "Clip",
                                          "Concat",
                                          "Constant",
                                          "ConstantOfShape",
                                          "Conv",
                                          "Div",
                                          "Dropout",
                                          "Flatten",
                                          "Gather",
                                          "Gemm",
                                          "GlobalAveragePool",
                                          "GlobalMaxPool",
                                          "Identity",
                                          "LeakyRelu",
                                          "MatMul",
                                          "MaxPool",
                                          "Mul",
                                          "Pad",
                                          "PRelu",
                                          "ReduceMean",
                                          "Relu",
                                          "Reshape",
                                          "Shape",
                                          "Sigmoid",
                                          "Slice",
                                          "Softmax",
                                          "Squeeze",
                                          "Sub",
                                          "Tanh",
                                          "Unsqueeze"};
  EXPECT_EQ(supported_ops(), expected);
  EXPECT_EQ(all_op_kinds().size(), expected.size());
  std::set<OpKind> kinds;
  for (const auto& name : expected) {
    auto kind = op_kind(name);
    ASSERT_TRUE(kind.has_value()) << name;
    EXPECT_EQ(op_name(*kind), name);
    kinds.insert(*kind);
  }
  EXPECT_EQ(kinds.size(), expected.size());
  for (OpKind k : all_op_kinds()) EXPECT_TRUE(expected.count(op_name(k))) << op_name(k);
  EXPECT_FALSE(op_kind("Einsum").has_value());
  EXPECT_FALSE(op_kind("relu").has_value());  // ONNX names are case-sensitive
  const std::set<std::string> shape = {
      "Shape",   "Gather", "Unsqueeze", "Squeeze",         "Concat",  "Cast",
      "Reshape", "Slice",  "Constant",  "ConstantOfShape", "Identity"};
  EXPECT_EQ(shape_ops(), shape);
}

TEST(OpRegistry, UnknownOpRefusedWithTheNodeName) {
  Model m;
  m.graph.inputs.push_back({"x", DType::Float32, {1, 4}});
  m.graph.nodes.push_back(make_node("Einsum", {"x"}));
  m.graph.nodes.back().name = "mystery";
  m.graph.outputs.push_back({"y", DType::Float32, {}});
  try {
    lower(m);
    FAIL() << "expected Unsupported";
  } catch (const Unsupported& e) {
    EXPECT_THAT(e.what(), HasSubstr("node 'mystery' (Einsum)"));
  }
  EXPECT_THROW(check_node(m.graph.nodes[0], 13), Unsupported);
  EXPECT_THROW(infer_shapes(m), Unsupported);
}

TEST(OpRegistry, InvalidAttributesRefusedAtLowering) {
  // lower() validates as import does.
  EXPECT_THROW(lower_node(make_node("Conv", {"x", "w"}, {{"group", int64_t{0}}}), 13),
               MalformedInput);
  EXPECT_THROW(lower_node(make_node("Relu", {"x"}, {{"alpha", 1.0f}}), 13), Unsupported);
  EXPECT_THROW(lower_node(make_node("Cast", {"x"}, {{"to", int64_t{10}}}), 13), Unsupported);
}

TEST(OpLowering, ConvAndPools) {
  auto c = lowered<ConvParams>(make_node("Conv", {"x", "w", "b"},
                                         {{"strides", Ints{2, 1}},
                                          {"pads", Ints{1, 2, 3, 4}},
                                          {"dilations", Ints{1, 2}},
                                          {"group", int64_t{4}},
                                          {"kernel_shape", Ints{3, 3}}}));
  EXPECT_EQ(c.spatial.strides, (Ints{2, 1}));
  EXPECT_EQ(c.spatial.pads, (Ints{1, 2, 3, 4}));
  EXPECT_EQ(c.spatial.dilations, (Ints{1, 2}));
  EXPECT_EQ(c.spatial.kernel_shape, (Ints{3, 3}));
  EXPECT_EQ(c.spatial.auto_pad, AutoPad::NotSet);
  EXPECT_EQ(c.group, 4);
  auto d =
      lowered<ConvParams>(make_node("Conv", {"x", "w"}, {{"auto_pad", std::string("SAME_LOWER")}}));
  EXPECT_EQ(d.spatial.auto_pad, AutoPad::SameLower);
  EXPECT_EQ(d.group, 1);
  EXPECT_TRUE(d.spatial.strides.empty());

  auto mp = lowered<PoolParams>(make_node("MaxPool", {"x"},
                                          {{"kernel_shape", Ints{3, 3}},
                                           {"ceil_mode", int64_t{1}},
                                           {"auto_pad", std::string("VALID")}}));
  EXPECT_TRUE(mp.max);
  EXPECT_FALSE(mp.global);
  EXPECT_TRUE(mp.spatial.ceil_mode);
  EXPECT_EQ(mp.spatial.auto_pad, AutoPad::Valid);
  EXPECT_EQ(mp.storage_order, 0);
  auto ap = lowered<PoolParams>(make_node(
      "AveragePool", {"x"}, {{"kernel_shape", Ints{2, 2}}, {"count_include_pad", int64_t{1}}}));
  EXPECT_FALSE(ap.max);
  EXPECT_TRUE(ap.count_include_pad);
  EXPECT_FALSE(ap.spatial.ceil_mode);
  auto gap = lowered<PoolParams>(make_node("GlobalAveragePool", {"x"}));
  EXPECT_TRUE(gap.global);
  EXPECT_FALSE(gap.max);
  auto gmp = lowered<PoolParams>(make_node("GlobalMaxPool", {"x"}));
  EXPECT_TRUE(gmp.global && gmp.max);
}

TEST(OpLowering, DenseAndActivations) {
  auto g =
      lowered<GemmParams>(make_node("Gemm", {"a", "b"}, {{"alpha", 0.5f}, {"transB", int64_t{1}}}));
  EXPECT_EQ(g.alpha, 0.5f);
  EXPECT_EQ(g.beta, 1.0f);
  EXPECT_FALSE(g.trans_a);
  EXPECT_TRUE(g.trans_b);
  EXPECT_TRUE(std::holds_alternative<NoParams>(lower_node(make_node("MatMul", {"a", "b"}), 13)));
  EXPECT_TRUE(std::holds_alternative<NoParams>(lower_node(make_node("Relu", {"x"}), 13)));
  EXPECT_EQ(lowered<LeakyReluParams>(make_node("LeakyRelu", {"x"})).alpha, 0.01f);
  EXPECT_EQ(lowered<LeakyReluParams>(make_node("LeakyRelu", {"x"}, {{"alpha", 0.2f}})).alpha, 0.2f);
  auto clip6 = lowered<ClipParams>(make_node("Clip", {"x"}, {{"min", 0.0f}, {"max", 6.0f}}), 6);
  EXPECT_EQ(clip6.min, 0.0f);
  EXPECT_EQ(clip6.max, 6.0f);
  auto clip13 = lowered<ClipParams>(make_node("Clip", {"x", "lo", "hi"}));
  EXPECT_EQ(clip13.min, -std::numeric_limits<float>::infinity());
  EXPECT_EQ(clip13.max, std::numeric_limits<float>::infinity());
  auto s13 = lowered<SoftmaxParams>(make_node("Softmax", {"x"}));
  EXPECT_EQ(s13.axis, -1);
  EXPECT_FALSE(s13.coerce_2d);
  auto s11 = lowered<SoftmaxParams>(make_node("Softmax", {"x"}), 11);
  EXPECT_EQ(s11.axis, 1);
  EXPECT_TRUE(s11.coerce_2d);
  auto bn = lowered<BatchNormParams>(
      make_node("BatchNormalization", {"x", "s", "b", "m", "v"}, {{"epsilon", 1e-3f}}));
  EXPECT_EQ(bn.epsilon, 1e-3f);
  EXPECT_EQ(bn.momentum, 0.9f);
  EXPECT_EQ(lowered<DropoutParams>(make_node("Dropout", {"x"}, {{"ratio", 0.25f}})).ratio, 0.25f);
}

TEST(OpLowering, ShapeAndDataMovement) {
  EXPECT_TRUE(lowered<ReshapeParams>(make_node("Reshape", {"x", "s"}, {{"allowzero", int64_t{1}}}))
                  .allowzero);
  EXPECT_FALSE(lowered<ReshapeParams>(make_node("Reshape", {"x", "s"})).allowzero);
  EXPECT_EQ(lowered<FlattenParams>(make_node("Flatten", {"x"})).axis, 1);
  EXPECT_EQ(lowered<FlattenParams>(make_node("Flatten", {"x"}, {{"axis", int64_t{-2}}})).axis, -2);
  EXPECT_EQ(lowered<ConcatParams>(make_node("Concat", {"a", "b"}, {{"axis", int64_t{2}}})).axis, 2);
  auto pad2 = lowered<PadParams>(
      make_node("Pad", {"x"},
                {{"pads", Ints{0, 1, 0, 1}}, {"value", 2.0f}, {"mode", std::string("reflect")}}),
      10);
  EXPECT_TRUE(pad2.attributes);
  EXPECT_EQ(pad2.mode, PadMode::Reflect);
  EXPECT_EQ(pad2.pads, (Ints{0, 1, 0, 1}));
  EXPECT_EQ(pad2.value, 2.0f);
  auto pad13 = lowered<PadParams>(make_node("Pad", {"x", "p"}));
  EXPECT_FALSE(pad13.attributes);
  EXPECT_EQ(pad13.mode, PadMode::Constant);
  auto sl = lowered<SliceParams>(
      make_node("Slice", {"x"}, {{"starts", Ints{1}}, {"ends", Ints{3}}, {"axes", Ints{2}}}), 9);
  EXPECT_TRUE(sl.attributes);
  EXPECT_EQ(sl.starts, (Ints{1}));
  EXPECT_EQ(sl.ends, (Ints{3}));
  EXPECT_EQ(sl.axes, (Ints{2}));
  EXPECT_FALSE(lowered<SliceParams>(make_node("Slice", {"x", "s", "e"})).attributes);
  auto cast = lowered<CastParams>(make_node("Cast", {"x"}, {{"to", int64_t{6}}}));
  EXPECT_EQ(cast.to, 6);
  EXPECT_EQ(cast.dtype, DType::Int64);
  EXPECT_EQ(lowered<CastParams>(make_node("Cast", {"x"}, {{"to", int64_t{11}}})).dtype,
            DType::Float32);
  EXPECT_EQ(lowered<GatherParams>(make_node("Gather", {"x", "i"}, {{"axis", int64_t{1}}})).axis, 1);
  auto sh = lowered<ShapeParams>(make_node("Shape", {"x"}, {{"start", int64_t{1}}}), 15);
  EXPECT_EQ(sh.start, 1);
  EXPECT_FALSE(sh.end.has_value());
  EXPECT_EQ(lowered<ShapeParams>(make_node("Shape", {"x"}, {{"end", int64_t{-1}}}), 15).end, -1);
  auto sq = lowered<AxesParams>(make_node("Squeeze", {"x"}, {{"axes", Ints{1}}}), 11);
  EXPECT_TRUE(sq.attribute);
  EXPECT_EQ(sq.axes, (Ints{1}));
  EXPECT_FALSE(lowered<AxesParams>(make_node("Squeeze", {"x"})).attribute);
  auto rm = lowered<ReduceMeanParams>(
      make_node("ReduceMean", {"x"}, {{"axes", Ints{2, 3}}, {"keepdims", int64_t{0}}}));
  EXPECT_EQ(rm.axes, (Ints{2, 3}));
  EXPECT_FALSE(rm.keepdims);
  EXPECT_TRUE(lowered<ReduceMeanParams>(make_node("ReduceMean", {"x"})).keepdims);
}

TEST(OpLowering, Constants) {
  auto ints = lowered<ConstantParams>(make_node("Constant", {}, {{"value_ints", Ints{3, -1}}}));
  EXPECT_EQ(ints.value.dtype(), DType::Int64);
  EXPECT_EQ(ints.value.to_int64s(), (Ints{3, -1}));
  auto f = lowered<ConstantParams>(make_node("Constant", {}, {{"value_float", 1.5f}}));
  EXPECT_EQ(f.value.shape(), Shape{});
  EXPECT_EQ(f.value.floats()[0], 1.5f);
  auto cos = lowered<ConstantOfShapeParams>(make_node("ConstantOfShape", {"s"}));
  EXPECT_EQ(cos.value.dtype(), DType::Float32);
  EXPECT_EQ(cos.value.floats()[0], 0.0f);
  auto cos7 = lowered<ConstantOfShapeParams>(
      make_node("ConstantOfShape", {"s"}, {{"value", Attribute{Tensor::from_int64({1}, {7})}}}));
  EXPECT_EQ(cos7.value.to_int64s(), (Ints{7}));
}

TEST(OpLowering, GraphValueIds) {
  Model m;
  m.opset = 13;
  Graph& g = m.graph;
  g.inputs.push_back({"x", DType::Float32, {-1, 3, 8, 8}});
  g.initializers["w"] = Tensor({4, 3, 3, 3});
  g.nodes.push_back(make_node("Conv", {"x", "w", ""}, {}, {"c"}));
  g.nodes.push_back(make_node("Relu", {"c"}, {}, {"r"}));
  g.outputs.push_back({"r", DType::Float32, {}});
  infer_shapes(m);
  LoweredGraph lg = lower(m);
  ASSERT_EQ(lg.ops.size(), 2u);
  EXPECT_EQ(lg.opset, 13);
  EXPECT_EQ(lg.inputs, (std::vector<int>{0}));
  EXPECT_EQ(lg.values[0].name, "x");
  EXPECT_EQ(lg.values[1].name, "w");
  EXPECT_TRUE(lg.is_initializer[1]);
  EXPECT_FALSE(lg.is_initializer[0]);
  const LoweredOp& conv = lg.ops[0];
  EXPECT_EQ(conv.kind, OpKind::Conv);
  EXPECT_EQ(conv.describe(), "node 'the_Conv' (Conv)");
  EXPECT_EQ(conv.input_ids, (std::vector<int>{0, 1, -1}));
  EXPECT_TRUE(conv.has_input(1));
  EXPECT_FALSE(conv.has_input(2));
  ASSERT_EQ(conv.output_ids.size(), 1u);
  const int c = conv.output_ids[0];
  EXPECT_EQ(lg.values[c].name, "c");
  EXPECT_EQ(lg.values[c].shape, (Shape{-1, 4, 6, 6}));  // from shape inference
  EXPECT_EQ(lg.ops[1].input_ids, (std::vector<int>{c}));
  EXPECT_EQ(lg.ops[1].node, 1u);
  EXPECT_EQ(lg.outputs, (std::vector<int>{lg.ops[1].output_ids[0]}));
  EXPECT_EQ(lg.find("r"), lg.ops[1].output_ids[0]);
  EXPECT_FALSE(lg.find("nothing").has_value());
  EXPECT_THROW(conv.as<GemmParams>(), Error);
  EXPECT_EQ(conv.as<ConvParams>().group, 1);

  // A graph input shadows an initializer of the same name: one value, not an initializer.
  Model shadow = m;
  shadow.graph.initializers["x"] = Tensor({1, 3, 8, 8});
  LoweredGraph ls = lower(shadow);
  EXPECT_EQ(ls.values.size(), lg.values.size());
  EXPECT_EQ(ls.values[0].name, "x");
  EXPECT_FALSE(ls.is_initializer[0]);
  EXPECT_EQ(ls.ops[0].input_ids[0], 0);
}

TEST(OpLowering, SpatialGeometryFromParams) {
  // SAME_UPPER, 5 wide, kernel 2, stride 2: out 3, total pad (3-1)*2+2-5 = 1, at the end.
  SpatialParams p;
  p.auto_pad = AutoPad::SameUpper;
  p.strides = {2};
  SpatialGeometry g = spatial_geometry(p, {1, 1, 5}, {2}, "node 'p' (MaxPool)");
  EXPECT_EQ(g.output, (Ints{3}));
  EXPECT_EQ(g.pads_begin, (Ints{0}));
  EXPECT_EQ(g.pads_end, (Ints{1}));
  p.auto_pad = AutoPad::SameLower;
  g = spatial_geometry(p, {1, 1, 5}, {2}, "node 'p' (MaxPool)");
  EXPECT_EQ(g.pads_begin, (Ints{1}));
  EXPECT_EQ(g.pads_end, (Ints{0}));
  // ceil_mode: (6 + 0 - 3) / 2 = 1.5 -> 2 windows (+1), pads_end_floor grows by one.
  SpatialParams c;
  c.strides = {2};
  c.ceil_mode = true;
  g = spatial_geometry(c, {1, 1, 6}, {3}, "who");
  EXPECT_EQ(g.output, (Ints{3}));
  EXPECT_EQ(g.pads_end, (Ints{0}));
  EXPECT_EQ(g.pads_end_floor, (Ints{1}));
  c.pads = {0};  // wrong length
  try {
    spatial_geometry(c, {1, 1, 6}, {3}, "node 'k' (AveragePool)");
    FAIL();
  } catch (const MalformedInput& e) {
    EXPECT_THAT(e.what(), HasSubstr("node 'k' (AveragePool): pads"));
  }
}

TEST(OpLowering, ReshapeResolution) {
  const std::string who = "node 'r' (Reshape)";
  EXPECT_EQ(reshape_output({2, 3, 4}, {0, -1}, false, who), (Shape{2, 12}));
  EXPECT_EQ(reshape_output({2, 3, 4}, {-1, 4}, false, who), (Shape{6, 4}));
  EXPECT_EQ(reshape_output({2, 3, 4}, {4, 0, 2}, false, who), (Shape{4, 3, 2}));
  EXPECT_EQ(reshape_output({0, 3}, {0, 3}, true, who), (Shape{0, 3}));
  EXPECT_THROW(reshape_output({2, 3, 4}, {-1, -1}, false, who), MalformedInput);
  EXPECT_THROW(reshape_output({2, 3, 4}, {5, -1}, false, who), MalformedInput);
  EXPECT_THROW(reshape_output({2, 3, 4}, {7, 3}, false, who), MalformedInput);
  EXPECT_THROW(reshape_output({2, 3}, {0, 0, 0}, false, who), MalformedInput);
  // A symbolic batch is carried through.
  EXPECT_EQ(reshape_output({-2, 512, 1, 1}, {0, -1}, false, who), (Shape{-2, 512}));
}

}  // namespace
}  // namespace veil::model
