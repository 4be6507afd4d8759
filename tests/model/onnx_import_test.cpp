#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "model/onnx_builder.hpp"
#include "veil/core/error.hpp"
#include "veil/model/lowered.hpp"
#include "veil/model/onnx.hpp"

namespace veil::model {
namespace {

using test::OnnxBuilder;
using ::testing::HasSubstr;

const Node& find_node(const Model& m, const std::string& name) {
  for (const auto& n : m.graph.nodes)
    if (n.name == name) return n;
  throw std::runtime_error("no node " + name);
}

bool has_op(const Model& m, const std::string& op) {
  for (const auto& n : m.graph.nodes)
    if (n.op_type == op) return true;
  return false;
}

template <typename E>
std::string error_of(const OnnxBuilder& b) {
  try {
    b.parse();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("wrong exception type: ") + e.what();
  }
  return "no exception";
}

std::vector<float> iota(size_t n, float scale = 0.1f) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = scale * static_cast<float>(i) - 1.0f;
  return v;
}

// x[1,3,8,8] -> Conv(W[4,3,3,3], B[4]) -> y
OnnxBuilder conv_model(int64_t opset = 13) {
  OnnxBuilder b(opset);
  b.input("x", {1, 3, 8, 8});
  b.initializer("W", {4, 3, 3, 3}, iota(108));
  b.initializer("B", {4}, {0.5f, -0.5f, 0.25f, 0.0f});
  auto& n = b.node("Conv", {"x", "W", "B"}, {"y"}, "conv1");
  OnnxBuilder::attr(n, "strides", std::vector<int64_t>{2, 2});
  OnnxBuilder::attr(n, "pads", std::vector<int64_t>{1, 1, 1, 1});
  OnnxBuilder::attr(n, "kernel_shape", std::vector<int64_t>{3, 3});
  OnnxBuilder::attr(n, "group", int64_t{1});
  b.output("y");
  return b;
}

TEST(OnnxImport, ConvWithAttributes) {
  OnnxBuilder b = conv_model();
  b.metadata("veil.arch", "tiny");
  b.proto().set_producer_version("1.2");
  Model m = b.parse();
  EXPECT_EQ(m.opset, 13);
  EXPECT_EQ(m.ir_version, 8);
  EXPECT_EQ(m.producer_name, "veil-test");
  EXPECT_EQ(m.producer_version, "1.2");
  EXPECT_EQ(m.metadata.at("veil.arch"), "tiny");
  EXPECT_EQ(m.graph.name, "test_graph");
  ASSERT_EQ(m.graph.nodes.size(), 1u);
  const Node& n = m.graph.nodes[0];
  EXPECT_EQ(n.name, "conv1");
  EXPECT_EQ(n.inputs, (std::vector<std::string>{"x", "W", "B"}));
  EXPECT_EQ(n.attr_ints("strides", {}), (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(n.attr_int("group", 0), 1);
  ASSERT_EQ(m.graph.inputs.size(), 1u);
  EXPECT_EQ(m.graph.inputs[0].shape, (Shape{1, 3, 8, 8}));
  EXPECT_EQ(m.graph.initializers.at("W").shape(), (Shape{4, 3, 3, 3}));
  auto w = m.graph.initializers.at("W").floats();
  auto expect = iota(108);
  EXPECT_TRUE(std::equal(w.begin(), w.end(), expect.begin()));
  // (8 + 2 - 3) / 2 + 1 = 4
  EXPECT_EQ(m.graph.outputs[0].shape, (Shape{1, 4, 4, 4}));
  EXPECT_EQ(m.graph.value_info.at("y").shape, (Shape{1, 4, 4, 4}));
}

TEST(OnnxImport, TypedFieldsAndConversions) {
  OnnxBuilder b;
  b.input("x", {2, 3});
  b.initializer("f", {3}, {1.5f, -2.0f, 3.25f}, /*raw=*/false);
  auto* d = b.graph().add_initializer();
  d->set_name("d");
  d->set_data_type(onnx::TensorProto::DOUBLE);
  d->add_dims(3);
  for (double v : {0.1, -1e-3, 7.0}) d->add_double_data(v);
  auto* i32 = b.graph().add_initializer();
  i32->set_name("i32");
  i32->set_data_type(onnx::TensorProto::INT32);
  i32->add_dims(2);
  int32_t raw32[2] = {-7, 2147483647};
  i32->set_raw_data(std::string(reinterpret_cast<const char*>(raw32), 8));
  b.initializer_i64("i64", {2}, {-1, int64_t{1} << 40}, /*raw=*/true);
  b.node("Add", {"x", "f"}, {"a"});
  b.node("Mul", {"a", "d"}, {"y"});
  b.output("y");
  b.output("i32");
  b.output("i64");
  Model m = b.parse();
  EXPECT_EQ(m.graph.initializers.at("f").to_floats(), (std::vector<float>{1.5f, -2.0f, 3.25f}));
  EXPECT_EQ(m.graph.initializers.at("d").to_floats(),
            (std::vector<float>{0.1f, static_cast<float>(-1e-3), 7.0f}));
  EXPECT_EQ(m.graph.initializers.at("i32").dtype(), DType::Int64);
  EXPECT_EQ(m.graph.initializers.at("i32").to_int64s(), (std::vector<int64_t>{-7, 2147483647}));
  EXPECT_EQ(m.graph.initializers.at("i64").to_int64s(),
            (std::vector<int64_t>{-1, int64_t{1} << 40}));
  EXPECT_EQ(m.graph.outputs[0].shape, (Shape{2, 3}));
}

// A weight holding NaN or an infinity (a corrupted or hand-edited file) is refused at import
// and at lowering, naming the tensor; a Constant node's value is a weight like any other.
TEST(OnnxImport, NonFiniteInitializerIsRefusedNamingIt) {
  const float nan = std::nanf(""), inf = INFINITY;
  for (float bad : {nan, inf, -inf}) {
    OnnxBuilder b;
    b.input("x", {1, 4});
    b.initializer("fc.weight", {3, 4}, {1, 2, 3, 4, 5, 6, 7, bad, 9, 10, 11, 12});
    auto& g = b.node("Gemm", {"x", "fc.weight"}, {"y"}, "fc");
    OnnxBuilder::attr(g, "transB", int64_t{1});
    b.output("y");
    const std::string e = error_of<MalformedInput>(b);
    EXPECT_THAT(e, HasSubstr("initializer 'fc.weight' holds"));
    EXPECT_THAT(e, HasSubstr(std::isnan(bad) ? "NaN at index 7" : bad > 0 ? "+inf" : "-inf"));
  }
  OnnxBuilder b;
  b.input("x", {3});
  auto& c = b.node("Constant", {}, {"shift"});
  OnnxBuilder::fill_float_tensor(OnnxBuilder::attr_t(c, "value"), {3}, {1, nan, 3});
  b.node("Add", {"x", "shift"}, {"y"});
  b.output("y");
  EXPECT_THAT(error_of<MalformedInput>(b), HasSubstr("initializer 'shift' holds NaN at index 1"));
  // A model built in memory (lock, training, tests) is checked when lowered.
  b = OnnxBuilder();
  b.input("x", {3});
  b.initializer("shift", {3}, {1, 2, 3});
  b.node("Add", {"x", "shift"}, {"y"});
  b.output("y");
  Model m = b.parse();
  EXPECT_NO_THROW(lower(m));
  m.graph.initializers.at("shift").floats()[2] = -inf;
  try {
    lower(m);
    ADD_FAILURE() << "lowered a model with a -inf weight";
  } catch (const MalformedInput& e) {
    EXPECT_THAT(e.what(), HasSubstr("initializer 'shift' holds -inf at index 2"));
  }
}

TEST(OnnxImport, ConstantNodesBecomeInitializers) {
  OnnxBuilder b;
  b.input("x", {2, 3});
  auto& c1 = b.node("Constant", {}, {"c1"});
  OnnxBuilder::fill_float_tensor(OnnxBuilder::attr_t(c1, "value"), {3}, {1, 2, 3});
  auto& c2 = b.node("Constant", {}, {"c2"});
  OnnxBuilder::attr_f(c2, "value_float", 2.5f);
  auto& c3 = b.node("Constant", {}, {"c3"});
  OnnxBuilder::attr_floats(c3, "value_floats", {4, 5, 6});
  auto& c4 = b.node("Constant", {}, {"c4"});
  OnnxBuilder::attr(c4, "value_ints", std::vector<int64_t>{3, 2});
  auto& c5 = b.node("Constant", {}, {"c5"});
  OnnxBuilder::attr(c5, "value_int", int64_t{9});
  b.node("Add", {"x", "c1"}, {"a"});
  b.node("Mul", {"a", "c2"}, {"m"});
  b.node("Sub", {"m", "c3"}, {"s"});
  b.node("Reshape", {"s", "c4"}, {"y"});
  b.output("y");
  b.output("c5");
  Model m = b.parse();
  EXPECT_FALSE(has_op(m, "Constant"));
  EXPECT_EQ(m.graph.initializers.at("c1").to_floats(), (std::vector<float>{1, 2, 3}));
  EXPECT_EQ(m.graph.initializers.at("c2").shape(), Shape{});
  EXPECT_EQ(m.graph.initializers.at("c2").to_floats(), (std::vector<float>{2.5f}));
  EXPECT_EQ(m.graph.initializers.at("c3").shape(), (Shape{3}));
  EXPECT_EQ(m.graph.initializers.at("c5").to_int64s(), (std::vector<int64_t>{9}));
  EXPECT_EQ(m.graph.outputs[0].shape, (Shape{3, 2}));
  EXPECT_EQ(m.graph.outputs[1].dtype, DType::Int64);
}

// Every supported compute op imports with its attributes, and its output shape is inferred.
struct OpCase {
  std::string op;
  int64_t opset;
  Shape expect;
};

Model build_op(const std::string& op, int64_t opset) {
  OnnxBuilder b(opset);
  b.input("x", {2, 4, 6, 6});
  std::vector<std::string> in = {"x"};
  auto extra = [&](const std::string& name, const std::vector<int64_t>& dims) {
    int64_t n = 1;
    for (int64_t d : dims) n *= d;
    b.initializer(name, dims, iota(static_cast<size_t>(n), 0.01f));
    in.push_back(name);
  };
  if (op == "Gemm" || op == "MatMul") {
    b.graph()
        .mutable_input(0)
        ->mutable_type()
        ->mutable_tensor_type()
        ->mutable_shape()
        ->mutable_dim(1)
        ->set_dim_value(4);
    b.graph()
        .mutable_input(0)
        ->mutable_type()
        ->mutable_tensor_type()
        ->mutable_shape()
        ->mutable_dim()
        ->DeleteSubrange(2, 2);
  }
  onnx::NodeProto* n = nullptr;
  if (op == "Conv") {
    extra("W", {8, 2, 3, 3});
    extra("B", {8});
    n = &b.node(op, in, {"y"});
    OnnxBuilder::attr(*n, "group", int64_t{2});
    OnnxBuilder::attr(*n, "dilations", std::vector<int64_t>{2, 1});
  } else if (op == "Gemm") {
    extra("W", {3, 4});
    extra("C", {3});
    n = &b.node(op, in, {"y"});
    OnnxBuilder::attr(*n, "transB", int64_t{1});
    OnnxBuilder::attr_f(*n, "alpha", 0.5f);
  } else if (op == "MatMul") {
    extra("W", {4, 5});
    n = &b.node(op, in, {"y"});
  } else if (op == "Add" || op == "Sub" || op == "Mul" || op == "Div") {
    extra("c", {4, 1, 1});
    n = &b.node(op, in, {"y"});
  } else if (op == "Clip") {
    if (opset >= 11) {
      b.initializer("lo", {}, {0.0f});
      b.initializer("hi", {}, {6.0f});
      in = {"x", "lo", "hi"};
    }
    n = &b.node(op, in, {"y"});
    if (opset < 11) {
      OnnxBuilder::attr_f(*n, "min", 0.0f);
      OnnxBuilder::attr_f(*n, "max", 6.0f);
    }
  } else if (op == "LeakyRelu") {
    n = &b.node(op, in, {"y"});
    OnnxBuilder::attr_f(*n, "alpha", 0.2f);
  } else if (op == "MaxPool" || op == "AveragePool") {
    n = &b.node(op, in, {"y"});
    OnnxBuilder::attr(*n, "kernel_shape", std::vector<int64_t>{3, 3});
    OnnxBuilder::attr(*n, "strides", std::vector<int64_t>{2, 2});
    if (op == "AveragePool") OnnxBuilder::attr(*n, "count_include_pad", int64_t{1});
    if (opset >= 10) OnnxBuilder::attr(*n, "ceil_mode", int64_t{1});
  } else if (op == "BatchNormalization") {
    for (const char* p : {"scale", "bias", "mean", "var"}) extra(p, {4});
    n = &b.node(op, in, {"y"});
    OnnxBuilder::attr_f(*n, "epsilon", 1e-3f);
  } else if (op == "Flatten") {
    n = &b.node(op, in, {"y"});
    OnnxBuilder::attr(*n, "axis", int64_t{2});
  } else if (op == "Softmax") {
    n = &b.node(op, in, {"y"});
    OnnxBuilder::attr(*n, "axis", int64_t{1});
  } else if (op == "Dropout") {
    n = &b.node(op, in, {"y"});
    OnnxBuilder::attr_f(*n, "ratio", 0.3f);
  } else if (op == "Pad") {
    if (opset >= 11) {
      b.initializer_i64("pads", {8}, {0, 0, 1, 2, 0, 0, 3, 4});
      in.push_back("pads");
    }
    n = &b.node(op, in, {"y"});
    if (opset < 11) OnnxBuilder::attr(*n, "pads", std::vector<int64_t>{0, 0, 1, 2, 0, 0, 3, 4});
    OnnxBuilder::attr_s(*n, "mode", "constant");
  } else if (op == "Concat") {
    in.push_back("x");
    n = &b.node(op, in, {"y"});
    OnnxBuilder::attr(*n, "axis", int64_t{1});
  } else if (op == "Unsqueeze" || op == "Squeeze") {
    // Squeeze runs on the Unsqueeze output.
    if (opset >= 13) b.initializer_i64("axes", {1}, {2});
    auto& u = b.node("Unsqueeze", opset >= 13 ? std::vector<std::string>{"x", "axes"} : in, {"u"});
    if (opset < 13) OnnxBuilder::attr(u, "axes", std::vector<int64_t>{2});
    if (op == "Unsqueeze") {
      b.output("u");
      return b.parse();
    }
    n = &b.node("Squeeze",
                opset >= 13 ? std::vector<std::string>{"u", "axes"} : std::vector<std::string>{"u"},
                {"y"});
    if (opset < 13) OnnxBuilder::attr(*n, "axes", std::vector<int64_t>{2});
  } else {
    n = &b.node(op, in, {"y"});
  }
  b.output("y");
  return b.parse();
}

class OpImport : public ::testing::TestWithParam<OpCase> {};

TEST_P(OpImport, ImportsAndInfersShape) {
  const OpCase& c = GetParam();
  Model m = build_op(c.op, c.opset);
  EXPECT_EQ(m.opset, c.opset);
  EXPECT_EQ(m.graph.outputs.at(0).shape, c.expect) << c.op;
}

INSTANTIATE_TEST_SUITE_P(
    AllOps, OpImport,
    ::testing::Values(
        // dilation 2 on H: (6 - 5) + 1 = 2; W: 6 - 3 + 1 = 4
        OpCase{"Conv", 13, {2, 8, 2, 4}}, OpCase{"Conv", 9, {2, 8, 2, 4}},
        OpCase{"Gemm", 13, {2, 3}}, OpCase{"Gemm", 9, {2, 3}}, OpCase{"MatMul", 13, {2, 5}},
        OpCase{"Add", 13, {2, 4, 6, 6}}, OpCase{"Sub", 9, {2, 4, 6, 6}},
        OpCase{"Mul", 13, {2, 4, 6, 6}}, OpCase{"Div", 13, {2, 4, 6, 6}},
        OpCase{"Relu", 13, {2, 4, 6, 6}}, OpCase{"Sigmoid", 13, {2, 4, 6, 6}},
        OpCase{"Tanh", 13, {2, 4, 6, 6}}, OpCase{"LeakyRelu", 13, {2, 4, 6, 6}},
        OpCase{"Clip", 9, {2, 4, 6, 6}}, OpCase{"Clip", 13, {2, 4, 6, 6}},
        // floor: (6-3)/2+1 = 2; ceil: ceil(3/2)+1 = 3
        OpCase{"MaxPool", 9, {2, 4, 2, 2}}, OpCase{"MaxPool", 13, {2, 4, 3, 3}},
        OpCase{"AveragePool", 13, {2, 4, 3, 3}}, OpCase{"GlobalAveragePool", 13, {2, 4, 1, 1}},
        OpCase{"BatchNormalization", 9, {2, 4, 6, 6}},
        OpCase{"BatchNormalization", 15, {2, 4, 6, 6}}, OpCase{"Flatten", 13, {8, 36}},
        OpCase{"Softmax", 13, {2, 4, 6, 6}}, OpCase{"Identity", 13, {2, 4, 6, 6}},
        OpCase{"Dropout", 9, {2, 4, 6, 6}}, OpCase{"Dropout", 13, {2, 4, 6, 6}},
        OpCase{"Pad", 9, {2, 4, 10, 12}}, OpCase{"Pad", 13, {2, 4, 10, 12}},
        OpCase{"Concat", 13, {2, 8, 6, 6}}, OpCase{"Unsqueeze", 9, {2, 4, 1, 6, 6}},
        OpCase{"Unsqueeze", 13, {2, 4, 1, 6, 6}}, OpCase{"Squeeze", 11, {2, 4, 6, 6}},
        OpCase{"Squeeze", 13, {2, 4, 6, 6}}, OpCase{"Sigmoid", 17, {2, 4, 6, 6}}),
    [](const auto& info) { return info.param.op + "_v" + std::to_string(info.param.opset); });

TEST(OnnxImport, OpsetDifferencesAreKeptAsWritten) {
  Model clip9 = build_op("Clip", 9);
  EXPECT_EQ(clip9.graph.nodes[0].attr_float("max", 0), 6.0f);
  EXPECT_EQ(clip9.graph.nodes[0].inputs.size(), 1u);
  Model clip13 = build_op("Clip", 13);
  EXPECT_EQ(clip13.graph.nodes[0].inputs.size(), 3u);
  EXPECT_FALSE(clip13.graph.nodes[0].has("max"));
  Model pad11 = build_op("Pad", 13);
  EXPECT_EQ(pad11.graph.initializers.at(pad11.graph.nodes[0].inputs[1]).to_int64s().size(), 8u);
  Model drop = build_op("Dropout", 9);
  EXPECT_FLOAT_EQ(drop.graph.nodes[0].attr_float("ratio", 0), 0.3f);
}

TEST(OnnxImport, AttributesFromTheWrongOpsetAreRejected) {
  {
    OnnxBuilder b(13);  // Clip-13 takes min/max as inputs
    b.input("x", {1, 2});
    auto& n = b.node("Clip", {"x"}, {"y"}, "clip");
    OnnxBuilder::attr_f(n, "max", 6.0f);
    b.output("y");
    EXPECT_THAT(error_of<Unsupported>(b), HasSubstr("node 'clip' (Clip)"));
  }
  {
    OnnxBuilder b(9);  // Unsqueeze-9 needs the axes attribute
    b.input("x", {1, 2});
    b.initializer_i64("axes", {1}, {0});
    b.node("Unsqueeze", {"x", "axes"}, {"y"}, "u");
    b.output("y");
    EXPECT_THAT(error_of<MalformedInput>(b), HasSubstr("node 'u' (Unsqueeze)"));
  }
}

TEST(OnnxImport, OpsetOutsideTheSupportedRangeIsRejected) {
  for (int64_t opset : {1, 8, 18, 100}) {
    OnnxBuilder b = conv_model(opset);
    std::string msg = error_of<Unsupported>(b);
    EXPECT_THAT(msg, HasSubstr("opset " + std::to_string(opset))) << msg;
    EXPECT_THAT(msg, HasSubstr("9 to 17"));
  }
  OnnxBuilder b;
  b.proto().mutable_opset_import(0)->set_domain("ai.onnx.ml");
  EXPECT_THAT(error_of<MalformedInput>(b), HasSubstr("no opset"));
}

TEST(OnnxImport, UnknownOpNamesNodeAndOpType) {
  OnnxBuilder b;
  b.input("x", {1, 2});
  b.node("Relu", {"x"}, {"r"}, "relu0");
  b.node("Einsum", {"r"}, {"y"}, "mystery_node");
  b.output("y");
  std::string msg = error_of<Unsupported>(b);
  EXPECT_THAT(msg, HasSubstr("node 'mystery_node' (Einsum)"));
  EXPECT_THAT(msg, HasSubstr("test.onnx"));

  OnnxBuilder d;
  d.input("x", {1, 2});
  d.node("Relu", {"x"}, {"y"}, "custom").set_domain("com.microsoft");
  d.output("y");
  EXPECT_THAT(error_of<Unsupported>(d), HasSubstr("node 'custom' (Relu)"));
}

TEST(OnnxImport, UnsupportedFeaturesSayWhat) {
  {
    OnnxBuilder b;  // MaxPool indices output
    b.input("x", {1, 1, 4, 4});
    auto& n = b.node("MaxPool", {"x"}, {"y", "idx"}, "pool");
    OnnxBuilder::attr(n, "kernel_shape", std::vector<int64_t>{2, 2});
    b.output("y");
    EXPECT_THAT(error_of<Unsupported>(b), HasSubstr("node 'pool' (MaxPool)"));
  }
  {
    OnnxBuilder b;  // a GRAPH attribute
    b.input("x", {1, 2});
    auto& n = b.node("Relu", {"x"}, {"y"}, "r");
    auto* a = n.add_attribute();
    a->set_name("body");
    a->set_type(onnx::AttributeProto::GRAPH);
    b.output("y");
    EXPECT_THAT(error_of<Unsupported>(b), HasSubstr("GRAPH"));
  }
  {
    OnnxBuilder b;  // external data
    b.input("x", {1, 2});
    auto& t = b.initializer("w", {2}, {1, 2});
    t.clear_raw_data();
    t.set_data_location(onnx::TensorProto::EXTERNAL);
    auto* e = t.add_external_data();
    e->set_key("location");
    e->set_value("weights.bin");
    b.node("Add", {"x", "w"}, {"y"});
    b.output("y");
    EXPECT_THAT(error_of<Unsupported>(b), HasSubstr("external"));
  }
  {
    OnnxBuilder b;  // float16 weights
    b.input("x", {1, 2});
    auto& t = b.initializer("w", {2}, {});
    t.set_data_type(onnx::TensorProto::FLOAT16);
    t.set_raw_data(std::string(4, '\0'));
    b.node("Add", {"x", "w"}, {"y"});
    b.output("y");
    EXPECT_THAT(error_of<Unsupported>(b), HasSubstr("FLOAT16"));
  }
  {
    OnnxBuilder b;  // training-mode BN
    b.input("x", {1, 2, 3, 3});
    for (const char* p : {"s", "b", "m", "v"}) b.initializer(p, {2}, {1, 1});
    auto& n = b.node("BatchNormalization", {"x", "s", "b", "m", "v"}, {"y"}, "bn");
    OnnxBuilder::attr(n, "training_mode", int64_t{1});
    b.output("y");
    EXPECT_THAT(error_of<Unsupported>(b), HasSubstr("node 'bn' (BatchNormalization)"));
  }
}

TEST(OnnxImport, TruncatedBytesNeverCrash) {
  OnnxBuilder b = conv_model();
  std::string bytes = b.bytes();
  int parsed = 0, rejected = 0;
  for (size_t len = 0; len < bytes.size(); len += (len < 64 ? 1 : 7)) {
    try {
      test::parse_bytes(bytes.substr(0, len));
      ++parsed;
    } catch (const Error&) {
      ++rejected;
    }
  }
  EXPECT_GT(rejected, 0);
  EXPECT_THROW(test::parse_bytes(bytes.substr(0, bytes.size() / 2)), MalformedInput);
  EXPECT_THROW(test::parse_bytes("this is not a protobuf \xff\xff\xff"), MalformedInput);
  EXPECT_THROW(test::parse_bytes(""), MalformedInput);
}

TEST(OnnxImport, CorruptedBytesNeverCrash) {
  std::string bytes = conv_model().bytes();
  uint64_t state = 12345;
  for (int round = 0; round < 300; ++round) {
    std::string mutated = bytes;
    for (int k = 0; k < 4; ++k) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      mutated[(state >> 33) % mutated.size()] = static_cast<char>(state >> 56);
    }
    try {
      test::parse_bytes(mutated);
    } catch (const Error&) {
    }
  }
}

TEST(OnnxImport, RawDataSizeMustMatchDims) {
  {
    OnnxBuilder b = conv_model();
    b.graph().mutable_initializer(0)->mutable_raw_data()->resize(107 * 4);
    EXPECT_THAT(error_of<MalformedInput>(b), HasSubstr("initializer 'W'"));
  }
  {
    OnnxBuilder b = conv_model();
    b.graph().mutable_initializer(0)->mutable_raw_data()->append("x");
    EXPECT_THAT(error_of<MalformedInput>(b), HasSubstr("raw_data"));
  }
  {
    OnnxBuilder b;
    b.input("x", {3});
    b.initializer("w", {3}, {1, 2}, /*raw=*/false);
    b.node("Add", {"x", "w"}, {"y"});
    b.output("y");
    EXPECT_THAT(error_of<MalformedInput>(b), HasSubstr("needs 3 values"));
  }
}

TEST(OnnxImport, HugeDimsAreRejectedBeforeAllocating) {
  {
    OnnxBuilder b = conv_model();
    auto* w = b.graph().mutable_initializer(0);
    w->clear_dims();
    for (int64_t d : {int64_t{1} << 30, int64_t{1} << 30, int64_t{4}, int64_t{4}}) w->add_dims(d);
    EXPECT_THROW(b.parse(), MalformedInput);
  }
  {
    OnnxBuilder b = conv_model();
    b.graph().mutable_initializer(0)->set_dims(0, -3);
    EXPECT_THAT(error_of<MalformedInput>(b), HasSubstr("invalid dimension"));
  }
  {
    OnnxBuilder b = conv_model();  // int64 overflow of the element count, with a zero dim
    auto* w = b.graph().mutable_initializer(0);
    w->clear_dims();
    for (int64_t d : {int64_t{1} << 40, int64_t{1} << 40, int64_t{0}}) w->add_dims(d);
    w->clear_raw_data();
    w->set_raw_data("");
    EXPECT_THROW(b.parse(), MalformedInput);
  }
  {
    OnnxBuilder b = conv_model();  // a huge input dimension
    b.graph()
        .mutable_input(0)
        ->mutable_type()
        ->mutable_tensor_type()
        ->mutable_shape()
        ->mutable_dim(2)
        ->set_dim_value(int64_t{1} << 62);
    EXPECT_THROW(b.parse(), MalformedInput);
  }
}

TEST(OnnxImport, UndefinedValuesAndCyclesAreRejected) {
  {
    OnnxBuilder b;
    b.input("x", {1, 2});
    b.node("Add", {"x", "ghost"}, {"y"}, "adder");
    b.output("y");
    std::string msg = error_of<MalformedInput>(b);
    EXPECT_THAT(msg, HasSubstr("node 'adder' (Add)"));
    EXPECT_THAT(msg, HasSubstr("ghost"));
  }
  {
    OnnxBuilder b;
    b.input("x", {1, 2});
    b.node("Add", {"x", "b"}, {"a"}, "first");
    b.node("Relu", {"a"}, {"b"}, "second");
    b.output("b");
    EXPECT_THAT(error_of<MalformedInput>(b), HasSubstr("cycle"));
  }
  {
    OnnxBuilder b;
    b.input("x", {1, 2});
    b.node("Relu", {"x"}, {"y"}, "r1");
    b.node("Relu", {"x"}, {"y"}, "r2");
    b.output("y");
    EXPECT_THAT(error_of<MalformedInput>(b), HasSubstr("defined twice"));
  }
  {
    OnnxBuilder b;
    b.input("x", {1, 2});
    b.node("Relu", {"x"}, {"y"});
    b.output("nowhere");
    EXPECT_THAT(error_of<MalformedInput>(b), HasSubstr("nowhere"));
  }
  {
    OnnxBuilder b;  // required input missing
    b.input("x", {1, 3, 4, 4});
    b.node("Conv", {"x"}, {"y"}, "c");
    b.output("y");
    EXPECT_THAT(error_of<MalformedInput>(b), HasSubstr("node 'c' (Conv)"));
  }
}

TEST(OnnxImport, OutOfOrderNodesAreSorted) {
  OnnxBuilder b;
  b.input("x", {1, 2});
  b.node("Sigmoid", {"r"}, {"y"}, "second");
  b.node("Relu", {"x"}, {"r"}, "first");
  b.output("y");
  Model m = b.parse();
  ASSERT_EQ(m.graph.nodes.size(), 2u);
  EXPECT_EQ(m.graph.nodes[0].name, "first");
  EXPECT_EQ(m.graph.nodes[1].name, "second");
}

TEST(OnnxImport, InconsistentShapesNameTheNode) {
  OnnxBuilder b = conv_model();
  // Weight expects 3 input channels; feed 5.
  b.graph()
      .mutable_input(0)
      ->mutable_type()
      ->mutable_tensor_type()
      ->mutable_shape()
      ->mutable_dim(1)
      ->set_dim_value(5);
  EXPECT_THAT(error_of<MalformedInput>(b), HasSubstr("node 'conv1' (Conv)"));
}

TEST(OnnxImport, UnnamedNodesGetUniqueNames) {
  OnnxBuilder b;
  b.input("x", {1, 2});
  b.node("Relu", {"x"}, {"a"}).clear_name();
  b.node("Relu", {"a"}, {"y"}).clear_name();
  b.output("y");
  Model m = b.parse();
  EXPECT_FALSE(m.graph.nodes[0].name.empty());
  EXPECT_NE(m.graph.nodes[0].name, m.graph.nodes[1].name);
}

TEST(OnnxImport, InitializerAlsoListedAsInputIsAConstant) {
  OnnxBuilder b(9, 3);  // IR 3 lists initializers among the inputs
  b.input("x", {1, 2});
  b.input("w", {2});
  b.initializer("w", {2}, {1, 2});
  b.node("Add", {"x", "w"}, {"y"});
  b.output("y");
  Model m = b.parse();
  ASSERT_EQ(m.graph.inputs.size(), 1u);
  EXPECT_EQ(m.graph.inputs[0].name, "x");
}

TEST(OnnxImport, DynamicBatchIsMinusOne) {
  OnnxBuilder b = conv_model();
  b.graph()
      .mutable_input(0)
      ->mutable_type()
      ->mutable_tensor_type()
      ->mutable_shape()
      ->mutable_dim(0)
      ->set_dim_param("batch");
  Model m = b.parse();
  EXPECT_EQ(m.graph.inputs[0].shape, (Shape{-1, 3, 8, 8}));
  EXPECT_EQ(m.graph.outputs[0].shape, (Shape{-1, 4, 4, 4}));
}

TEST(OnnxImport, DropoutMaskIsDroppedWhenUnused) {
  OnnxBuilder b(9);
  b.input("x", {1, 2});
  b.node("Dropout", {"x"}, {"y", "mask"}, "drop");
  b.output("y");
  Model m = b.parse();
  EXPECT_EQ(m.graph.nodes[0].outputs, (std::vector<std::string>{"y"}));

  OnnxBuilder used(9);
  used.input("x", {1, 2});
  used.node("Dropout", {"x"}, {"y", "mask"}, "drop");
  used.output("y");
  used.output("mask");
  EXPECT_THAT(error_of<Unsupported>(used), HasSubstr("node 'drop' (Dropout)"));
}

// torch.onnx (torch <= 1.1) exported `x.view(x.size(0), -1)` as a Shape/Gather/Unsqueeze/Concat
// chain feeding Reshape.
OnnxBuilder view_flatten_model(bool dynamic_batch, bool shape_of_pre_pool, int64_t opset) {
  OnnxBuilder b(opset);
  b.input("x", {dynamic_batch ? -1 : 2, 3, 4, 4});
  b.node("GlobalAveragePool", {"x"}, {"p"}, "pool");
  b.node("Shape", {shape_of_pre_pool ? "x" : "p"}, {"s"}, "shape");
  auto& idx = b.node("Constant", {}, {"zero"}, "const0");
  OnnxBuilder::fill_int64_tensor(OnnxBuilder::attr_t(idx, "value"), {}, {0});
  auto& g = b.node("Gather", {"s", "zero"}, {"n"}, "gather");
  OnnxBuilder::attr(g, "axis", int64_t{0});
  if (opset >= 13) {
    b.initializer_i64("ax0", {1}, {0});
    b.node("Unsqueeze", {"n", "ax0"}, {"n1"}, "unsqueeze");
  } else {
    auto& u = b.node("Unsqueeze", {"n"}, {"n1"}, "unsqueeze");
    OnnxBuilder::attr(u, "axes", std::vector<int64_t>{0});
  }
  auto& m1 = b.node("Constant", {}, {"minus1"}, "const1");
  OnnxBuilder::fill_int64_tensor(OnnxBuilder::attr_t(m1, "value"), {1}, {-1});
  auto& cat = b.node("Concat", {"n1", "minus1"}, {"target"}, "concat");
  OnnxBuilder::attr(cat, "axis", int64_t{0});
  b.node("Reshape", {"p", "target"}, {"flat"}, "reshape");
  b.initializer("W", {5, 3}, iota(15));
  b.initializer("C", {5}, iota(5));
  auto& gemm = b.node("Gemm", {"flat", "W", "C"}, {"y"}, "fc");
  OnnxBuilder::attr(gemm, "transB", int64_t{1});
  b.output("y");
  return b;
}

TEST(OnnxImport, FoldsViewFlattenWithFixedBatch) {
  Model m = view_flatten_model(false, false, 9).parse();
  std::vector<std::string> ops;
  for (const auto& n : m.graph.nodes) ops.push_back(n.op_type);
  EXPECT_EQ(ops, (std::vector<std::string>{"GlobalAveragePool", "Reshape", "Gemm"}));
  const Node& r = find_node(m, "reshape");
  EXPECT_EQ(m.graph.initializers.at(r.inputs[1]).to_int64s(), (std::vector<int64_t>{2, -1}));
  EXPECT_EQ(m.graph.value_info.at("flat").shape, (Shape{2, 3}));
  EXPECT_EQ(m.graph.outputs[0].shape, (Shape{2, 5}));
  // No leftover shape constants.
  EXPECT_EQ(m.graph.initializers.size(), 3u);
}

TEST(OnnxImport, FoldsViewFlattenWithDynamicBatch) {
  for (bool pre_pool : {false, true})
    for (int64_t opset : {9, 13}) {
      Model m = view_flatten_model(true, pre_pool, opset).parse();
      std::vector<std::string> ops;
      for (const auto& n : m.graph.nodes) ops.push_back(n.op_type);
      EXPECT_EQ(ops, (std::vector<std::string>{"GlobalAveragePool", "Reshape", "Gemm"}));
      const Node& r = find_node(m, "reshape");
      auto target = m.graph.initializers.at(r.inputs[1]).to_int64s();
      // Both [0, -1] and [-1, 3] keep the batch; which one depends on where Shape was taken.
      EXPECT_TRUE(target == (std::vector<int64_t>{0, -1}) ||
                  target == (std::vector<int64_t>{-1, 3}))
          << target[0] << "," << target[1];
      EXPECT_EQ(m.graph.value_info.at("flat").shape, (Shape{-1, 3}));
      EXPECT_EQ(m.graph.outputs[0].shape, (Shape{-1, 5}));
    }
}

TEST(OnnxImport, FoldsBatchDependentTargetAtAnotherPosition) {
  // Reshape [N, 6] -> [3, N * 2] written as Concat([3], Shape(x)[0:1] * 2) is not foldable, but
  // [2, 3, N] as Concat([2, 3], Shape(x)[0:1]) is: the batch moves, so it becomes -1.
  OnnxBuilder b(13);
  b.input("x", {-1, 6});
  b.node("Shape", {"x"}, {"s"}, "shape");
  b.initializer_i64("st", {1}, {0});
  b.initializer_i64("en", {1}, {1});
  b.node("Slice", {"s", "st", "en"}, {"n"}, "slice");
  b.initializer_i64("lead", {2}, {2, 3});
  auto& cat = b.node("Concat", {"lead", "n"}, {"target"}, "concat");
  OnnxBuilder::attr(cat, "axis", int64_t{0});
  b.node("Reshape", {"x", "target"}, {"y"}, "reshape");
  b.output("y");
  Model m = b.parse();
  ASSERT_EQ(m.graph.nodes.size(), 1u);
  const Node& r = m.graph.nodes[0];
  EXPECT_EQ(m.graph.initializers.at(r.inputs[1]).to_int64s(), (std::vector<int64_t>{2, 3, -1}));
  EXPECT_EQ(m.graph.outputs[0].shape, (Shape{2, 3, -1}));
}

TEST(OnnxImport, FoldsCastConstantOfShapeAndSlice) {
  OnnxBuilder b(13);
  b.input("x", {2, 3, 4});
  b.node("Shape", {"x"}, {"s"}, "shape");
  b.initializer_i64("st", {1}, {1});
  b.initializer_i64("en", {1}, {3});
  b.node("Slice", {"s", "st", "en"}, {"hw"}, "slice");  // [3, 4]
  auto& c = b.node("Cast", {"hw"}, {"hwf"}, "cast");
  OnnxBuilder::attr(c, "to", int64_t{onnx::TensorProto::FLOAT});
  auto& c2 = b.node("Cast", {"hwf"}, {"hwi"}, "cast2");
  OnnxBuilder::attr(c2, "to", int64_t{onnx::TensorProto::INT64});
  auto& k = b.node("ConstantOfShape", {"hwi"}, {"ones"}, "cos");
  OnnxBuilder::fill_float_tensor(OnnxBuilder::attr_t(k, "value"), {1}, {1.0f});
  b.node("Add", {"x", "ones"}, {"y"}, "add");
  b.output("y");
  Model m = b.parse();
  ASSERT_EQ(m.graph.nodes.size(), 1u);
  EXPECT_EQ(m.graph.nodes[0].op_type, "Add");
  const Tensor& ones = m.graph.initializers.at("ones");
  EXPECT_EQ(ones.shape(), (Shape{3, 4}));
  EXPECT_EQ(ones.to_floats(), std::vector<float>(12, 1.0f));
}

TEST(OnnxImport, ReduceMeanOverSpatialAxesBecomesGlobalAveragePool) {
  for (int64_t keep : {0, 1}) {
    OnnxBuilder b(11);
    b.input("x", {-1, 8, 7, 7});
    auto& r = b.node("ReduceMean", {"x"}, {"y"}, "mean");
    OnnxBuilder::attr(r, "axes", std::vector<int64_t>{2, 3});
    OnnxBuilder::attr(r, "keepdims", keep);
    b.output("y");
    Model m = b.parse();
    EXPECT_EQ(m.graph.nodes[0].op_type, "GlobalAveragePool");
    EXPECT_EQ(m.graph.nodes.size(), keep ? 1u : 2u);
    EXPECT_EQ(m.graph.outputs[0].shape, keep ? Shape({-1, 8, 1, 1}) : Shape({-1, 8}));
  }
}

TEST(OnnxImport, MetadataDuplicatesAreRejected) {
  OnnxBuilder b = conv_model();
  b.metadata("k", "1");
  b.metadata("k", "2");
  EXPECT_THAT(error_of<MalformedInput>(b), HasSubstr("'k'"));
}

TEST(OnnxImport, LoadFromFileBoundsAndErrors) {
  EXPECT_THROW(load_onnx("/nonexistent/dir/model.onnx"), IoError);
}

}  // namespace
}  // namespace veil::model
