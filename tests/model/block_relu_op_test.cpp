// BlockRelu as a model op: validation of its `blocks` attribute, shape inference, lowering to
// BlockReluParams, and the ONNX round trip through veil's own domain (ai.veil), which import
// accepts for this op only.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "model/onnx_builder.hpp"
#include "veil/core/error.hpp"
#include "veil/model/block_relu_node.hpp"
#include "veil/model/lowered.hpp"
#include "veil/model/onnx.hpp"
#include "veil/model/op_support.hpp"
#include "veil/model/shape_inference.hpp"

namespace veil::model {
namespace {

using test::OnnxBuilder;
using ::testing::HasSubstr;
using Ints = std::vector<int64_t>;

template <typename E, typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("wrong exception type: ") + e.what();
  }
  return "no exception";
}

Node block_node(Ints blocks, std::string name = "br") {
  Node n;
  n.name = std::move(name);
  n.op_type = "BlockRelu";
  n.inputs = {"x"};
  n.outputs = {"y"};
  n.attributes["blocks"] = std::move(blocks);
  return n;
}

// x[N,3,5,7] -> BlockRelu -> y
Model block_model(Ints blocks, Shape x = {-1, 3, 5, 7}) {
  Model m;
  m.graph.name = "g";
  m.graph.inputs.push_back({"x", DType::Float32, x});
  m.graph.nodes.push_back(block_node(std::move(blocks)));
  m.graph.outputs.push_back({"y", DType::Float32, {}});
  return m;
}

TEST(BlockReluOp, RegistryEntryIsInVeilsDomain) {
  ASSERT_TRUE(op_kind("BlockRelu").has_value());
  EXPECT_EQ(*op_kind("BlockRelu"), OpKind::BlockRelu);
  EXPECT_EQ(op_domain(OpKind::BlockRelu), "ai.veil");
  EXPECT_EQ(op_domain(OpKind::Relu), "");
  EXPECT_FALSE(shape_ops().count("BlockRelu"));
}

TEST(BlockReluOp, LowersToOneBlockSizePerChannel) {
  OpParams p = lower_node(block_node({0, 0, 1, 1, 2, 3}), 13);
  ASSERT_TRUE(std::holds_alternative<BlockReluParams>(p));
  const auto& b = std::get<BlockReluParams>(p).blocks;
  ASSERT_EQ(b.size(), 3u);
  EXPECT_TRUE(b[0].identity());
  EXPECT_EQ(b[1], (BlockSize{1, 1}));
  EXPECT_EQ(b[2], (BlockSize{2, 3}));
}

TEST(BlockReluOp, InvalidAttributesAreRefusedNamingTheNode) {
  for (const Ints& bad : {Ints{}, Ints{1}, Ints{1, 1, 2}, Ints{0, 1}, Ints{1, 0}, Ints{-1, 2},
                          Ints{2, (int64_t{1} << 20) + 1}}) {
    const std::string msg = error_of<MalformedInput>([&] { check_node(block_node(bad), 13); });
    EXPECT_THAT(msg, HasSubstr("node 'br' (BlockRelu)")) << msg;
  }
  // The largest allowed side and the identity pass.
  EXPECT_NO_THROW(check_node(block_node({int64_t{1} << 20, 1, 0, 0}), 13));
  Node missing = block_node({1, 1});
  missing.attributes.clear();
  EXPECT_THAT(error_of<MalformedInput>([&] { check_node(missing, 13); }),
              HasSubstr("missing required attribute 'blocks'"));
  Node typed = block_node({1, 1});
  typed.attributes["blocks"] = int64_t{1};
  EXPECT_THROW(check_node(typed, 13), MalformedInput);
  Node extra = block_node({1, 1});
  extra.attributes["alpha"] = 1.0f;
  EXPECT_THROW(check_node(extra, 13), Unsupported);
  Node two_inputs = block_node({1, 1});
  two_inputs.inputs.push_back("z");
  EXPECT_THROW(check_node(two_inputs, 13), MalformedInput);
  // More channels than the bound: refused before anything is sized by it.
  EXPECT_THROW(check_node(block_node(Ints(2 * ((size_t{1} << 20) + 1), 1)), 13), MalformedInput);
}

TEST(BlockReluOp, ShapeIsTheInputsAndChannelsMustMatch) {
  Model m = block_model({1, 1, 2, 2, 0, 0});
  infer_shapes(m);
  EXPECT_EQ(m.graph.value_info.at("y").shape, (Shape{-1, 3, 5, 7}));

  Model wrong_c = block_model({1, 1, 2, 2});
  EXPECT_THAT(error_of<MalformedInput>([&] { infer_shapes(wrong_c); }),
              HasSubstr("node 'br' (BlockRelu): input has 3 channels"));
  Model rank2 = block_model({1, 1}, {1, 4});
  EXPECT_THAT(error_of<MalformedInput>([&] { infer_shapes(rank2); }),
              HasSubstr("node 'br' (BlockRelu): input must be NCHW"));
  // C unknown until run time: accepted.
  Model unknown_c = block_model({1, 1, 2, 2}, {1, -1, 4, 4});
  EXPECT_NO_THROW(infer_shapes(unknown_c));
}

TEST(BlockReluOp, MakeNodeBuildsWhatLoweringReads) {
  const std::vector<BlockSize> spec = {{1, 1}, {0, 0}, {3, 2}};
  Node n = make_block_relu_node("b", "x", "y", spec);
  EXPECT_EQ(n.op_type, "BlockRelu");
  EXPECT_EQ(std::get<Ints>(n.attributes.at("blocks")), (Ints{1, 1, 0, 0, 3, 2}));
  EXPECT_EQ(std::get<BlockReluParams>(lower_node(n, 13)).blocks, spec);
  EXPECT_THROW(make_block_relu_node("b", "x", "y", std::vector<BlockSize>{}), InvalidArgument);
  EXPECT_THROW(make_block_relu_node("b", "x", "y", std::vector<BlockSize>{{0, 2}}),
               InvalidArgument);
}

TEST(BlockReluOp, OnnxRoundTripCarriesTheDomainAndTheSpec) {
  Model m = block_model({1, 1, 2, 2, 0, 0});
  m.metadata["veil.normalize.mean"] = "0.5";
  const std::string bytes = serialize_onnx(m);
  onnx::ModelProto proto;
  ASSERT_TRUE(proto.ParseFromString(bytes));
  ASSERT_EQ(proto.graph().node_size(), 1);
  EXPECT_EQ(proto.graph().node(0).domain(), "ai.veil");
  bool imports_veil = false;
  for (const auto& op : proto.opset_import())
    if (op.domain() == "ai.veil") imports_veil = op.version() == 1;
  EXPECT_TRUE(imports_veil);

  Model back = test::parse_bytes(bytes);
  ASSERT_EQ(back.graph.nodes.size(), 1u);
  EXPECT_EQ(back.graph.nodes[0].op_type, "BlockRelu");
  EXPECT_EQ(std::get<Ints>(back.graph.nodes[0].attributes.at("blocks")), (Ints{1, 1, 2, 2, 0, 0}));
  EXPECT_EQ(back.metadata.at("veil.normalize.mean"), "0.5");
  EXPECT_EQ(serialize_onnx(back), serialize_onnx(test::parse_bytes(serialize_onnx(back))));

  // A model without veil ops does not import the domain.
  Model plain = block_model({1, 1});
  plain.graph.nodes[0] = Node{"r", "Relu", {"x"}, {"y"}, {}};
  ASSERT_TRUE(proto.ParseFromString(serialize_onnx(plain)));
  for (const auto& op : proto.opset_import()) EXPECT_NE(op.domain(), "ai.veil");
}

OnnxBuilder block_file(const std::string& domain, bool import_veil, int64_t version = 1,
                       const std::string& op = "BlockRelu") {
  OnnxBuilder b;
  if (import_veil) {
    auto* o = b.proto().add_opset_import();
    o->set_domain("ai.veil");
    o->set_version(version);
  }
  b.input("x", {1, 2, 4, 4});
  auto& n = b.node(op, {"x"}, {"y"}, "blocky");
  n.set_domain(domain);
  OnnxBuilder::attr(n, "blocks", Ints{2, 2, 1, 1});
  b.output("y");
  return b;
}

TEST(BlockReluOp, ImportAcceptsVeilsDomainForThisOpOnly) {
  Model m = block_file("ai.veil", true).parse();
  ASSERT_EQ(m.graph.nodes.size(), 1u);
  EXPECT_EQ(m.graph.nodes[0].op_type, "BlockRelu");
  EXPECT_EQ(m.graph.value_info.at("y").shape, (Shape{1, 2, 4, 4}));

  auto refused = [](const OnnxBuilder& b) { return error_of<Unsupported>([&] { b.parse(); }); };
  // The op outside its domain, and a standard op or an unknown one inside it.
  EXPECT_THAT(refused(block_file("", true)), HasSubstr("node 'blocky' (BlockRelu)"));
  EXPECT_THAT(refused(block_file("ai.onnx", true)), HasSubstr("domain 'ai.veil'"));
  EXPECT_THAT(refused(block_file("ai.veil", true, 1, "Relu")), HasSubstr("node 'blocky' (Relu)"));
  EXPECT_THAT(refused(block_file("ai.veil", true, 1, "Blur")), HasSubstr("node 'blocky' (Blur)"));
  // Other domains stay refused, naming the node.
  EXPECT_THAT(refused(block_file("com.microsoft", true)), HasSubstr("node 'blocky' (BlockRelu)"));
  // The domain must be imported, at the version veil reads.
  EXPECT_THAT(error_of<MalformedInput>([] { block_file("ai.veil", false).parse(); }),
              HasSubstr("does not import it"));
  EXPECT_THAT(refused(block_file("ai.veil", true, 2)), HasSubstr("version 2"));
}

}  // namespace
}  // namespace veil::model
