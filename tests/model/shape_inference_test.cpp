#include "veil/model/shape_inference.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>

#include "veil/core/error.hpp"

namespace veil::model {
namespace {

using ::testing::HasSubstr;

Node make_node(const std::string& op, std::vector<std::string> inputs,
               std::map<std::string, Attribute> attrs = {}) {
  Node n;
  n.name = "n_" + op;
  n.op_type = op;
  n.inputs = std::move(inputs);
  n.outputs = {"out"};
  n.attributes = std::move(attrs);
  return n;
}

Shape pool_shape(const Shape& x, std::map<std::string, Attribute> attrs,
                 const std::string& op = "MaxPool") {
  Graph g;
  return output_shape(make_node(op, {"x"}, std::move(attrs)), {x}, g);
}

Shape conv_shape(const Shape& x, const Shape& w, std::map<std::string, Attribute> attrs) {
  Graph g;
  return output_shape(make_node("Conv", {"x", "w"}, std::move(attrs)), {x, w}, g);
}

using Ints = std::vector<int64_t>;

TEST(ShapeInference, ConvHandComputed) {
  // ResNet stem: 224, k7, s2, p3 -> (224 + 6 - 7) / 2 + 1 = 112.
  EXPECT_EQ(conv_shape({1, 3, 224, 224}, {64, 3, 7, 7},
                       {{"strides", Ints{2, 2}}, {"pads", Ints{3, 3, 3, 3}}}),
            (Shape{1, 64, 112, 112}));
  // Asymmetric pads and strides: H (10 + 1 + 0 - 3) / 3 + 1 = 3; W (7 + 0 + 2 - 3) / 1 + 1 = 7.
  EXPECT_EQ(conv_shape({2, 4, 10, 7}, {6, 4, 3, 3},
                       {{"strides", Ints{3, 1}}, {"pads", Ints{1, 0, 0, 2}}}),
            (Shape{2, 6, 3, 7}));
  // Dilation 2: effective kernel 5, (9 - 5) / 1 + 1 = 5.
  EXPECT_EQ(conv_shape({1, 1, 9, 9}, {1, 1, 3, 3}, {{"dilations", Ints{2, 2}}}),
            (Shape{1, 1, 5, 5}));
  // Depthwise (group = channels) and the batch stays dynamic.
  EXPECT_EQ(conv_shape({-1, 32, 14, 14}, {32, 1, 3, 3},
                       {{"group", int64_t{32}}, {"pads", Ints{1, 1, 1, 1}}}),
            (Shape{-1, 32, 14, 14}));
  // 1-D convolution.
  EXPECT_EQ(conv_shape({1, 2, 11}, {3, 2, 4}, {{"strides", Ints{2}}}), (Shape{1, 3, 4}));
}

TEST(ShapeInference, ConvAutoPad) {
  // SAME_*: ceil(in / stride); VALID: floor((in - k) / s) + 1.
  EXPECT_EQ(conv_shape({1, 1, 7, 8}, {1, 1, 3, 3},
                       {{"auto_pad", std::string("SAME_UPPER")}, {"strides", Ints{2, 2}}}),
            (Shape{1, 1, 4, 4}));
  EXPECT_EQ(conv_shape({1, 1, 7, 8}, {1, 1, 3, 3},
                       {{"auto_pad", std::string("SAME_LOWER")}, {"strides", Ints{2, 2}}}),
            (Shape{1, 1, 4, 4}));
  EXPECT_EQ(conv_shape({1, 1, 7, 8}, {1, 1, 3, 3},
                       {{"auto_pad", std::string("VALID")}, {"strides", Ints{2, 2}}}),
            (Shape{1, 1, 3, 3}));
}

TEST(ShapeInference, SamePadsSplitAsTheSpecSays) {
  Node n = make_node("Conv", {"x", "w"},
                     {{"auto_pad", std::string("SAME_UPPER")}, {"strides", Ints{2, 2}}});
  // H = 6: out 3, total pad (3 - 1) * 2 + 3 - 6 = 1 -> upper puts it at the end.
  // W = 5: out 3, total pad 4 + 3 - 5 = 2 -> 1 and 1.
  SpatialGeometry g = spatial_geometry(n, {1, 1, 6, 5}, {3, 3});
  EXPECT_EQ(g.pads_begin, (Ints{0, 1}));
  EXPECT_EQ(g.pads_end, (Ints{1, 1}));
  EXPECT_EQ(g.output, (Ints{3, 3}));
  n.attributes["auto_pad"] = std::string("SAME_LOWER");
  g = spatial_geometry(n, {1, 1, 6, 5}, {3, 3});
  EXPECT_EQ(g.pads_begin, (Ints{1, 1}));
  EXPECT_EQ(g.pads_end, (Ints{0, 1}));
}

TEST(ShapeInference, PoolCeilMode) {
  // SqueezeNet 1.1: 111 -> MaxPool k3 s2 ceil -> ceil(108 / 2) + 1 = 55.
  EXPECT_EQ(pool_shape(
                {1, 64, 111, 111},
                {{"kernel_shape", Ints{3, 3}}, {"strides", Ints{2, 2}}, {"ceil_mode", int64_t{1}}}),
            (Shape{1, 64, 55, 55}));
  // 55 -> ceil(52 / 2) + 1 = 27; floor would give the same; 13 -> ceil(10/2)+1 = 6.
  EXPECT_EQ(pool_shape(
                {1, 8, 14, 14},
                {{"kernel_shape", Ints{3, 3}}, {"strides", Ints{2, 2}}, {"ceil_mode", int64_t{1}}}),
            (Shape{1, 8, 7, 7}));
  EXPECT_EQ(pool_shape({1, 8, 14, 14}, {{"kernel_shape", Ints{3, 3}}, {"strides", Ints{2, 2}}}),
            (Shape{1, 8, 6, 6}));
  // in 5, k2, s2, pad 1: ceil gives 4 windows but the last would start in the right padding
  // ((4 - 1) * 2 = 6 >= 5 + 1), so it is dropped: 3 (PyTorch agrees).
  EXPECT_EQ(pool_shape({1, 1, 5, 5}, {{"kernel_shape", Ints{2, 2}},
                                      {"strides", Ints{2, 2}},
                                      {"pads", Ints{1, 1, 1, 1}},
                                      {"ceil_mode", int64_t{1}}}),
            (Shape{1, 1, 3, 3}));
  // ResNet max pool: 112, k3, s2, p1 -> 56.
  EXPECT_EQ(pool_shape(
                {-1, 64, 112, 112},
                {{"kernel_shape", Ints{3, 3}}, {"strides", Ints{2, 2}}, {"pads", Ints{1, 1, 1, 1}}},
                "AveragePool"),
            (Shape{-1, 64, 56, 56}));
}

// Floor-mode output size by counting window positions one by one.
int64_t count_windows(int64_t in, int64_t k, int64_t s, int64_t d, int64_t pb, int64_t pe) {
  int64_t n = 0;
  for (int64_t start = -pb; start + (k - 1) * d <= in - 1 + pe; start += s) ++n;
  return n;
}

TEST(ShapeInference, CeilModeEndPaddingReproducesTheOutputUnderFloor) {
  std::mt19937 rng(11);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  for (int t = 0; t < 300; ++t) {
    int64_t k = pick(1, 4), s = pick(1, 3), pb = pick(0, k - 1), pe = pick(0, k - 1);
    int64_t in = pick(k, 20);
    Node n = make_node("MaxPool", {"x"},
                       {{"kernel_shape", Ints{k}},
                        {"strides", Ints{s}},
                        {"pads", Ints{pb, pe}},
                        {"ceil_mode", int64_t{1}}});
    SpatialGeometry g = spatial_geometry(n, {1, 1, in}, {k});
    EXPECT_GE(g.pads_end_floor[0], pe);
    EXPECT_EQ(count_windows(in, k, s, 1, pb, g.pads_end_floor[0]), g.output[0]);
    // Every window starts inside the input or the left padding.
    EXPECT_LT((g.output[0] - 1) * s, in + pb);
  }
}

TEST(ShapeInference, ConvMatchesWindowCountingOnRandomGeometry) {
  std::mt19937 rng(7);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  for (int t = 0; t < 500; ++t) {
    int64_t k = pick(1, 5), s = pick(1, 4), d = pick(1, 3), pb = pick(0, 3), pe = pick(0, 3);
    int64_t in = pick((k - 1) * d + 1, 30);
    Shape out = conv_shape(
        {1, 1, in, 1}, {1, 1, k, 1},
        {{"strides", Ints{s, 1}}, {"dilations", Ints{d, 1}}, {"pads", Ints{pb, 0, pe, 0}}});
    EXPECT_EQ(out[2], count_windows(in, k, s, d, pb, pe))
        << "in=" << in << " k=" << k << " s=" << s << " d=" << d << " p=" << pb << "," << pe;
  }
}

TEST(ShapeInference, KernelLargerThanInputIsAnError) {
  try {
    conv_shape({1, 1, 2, 2}, {1, 1, 5, 5}, {});
    FAIL();
  } catch (const MalformedInput& e) {
    EXPECT_THAT(e.what(), HasSubstr("node 'n_Conv' (Conv)"));
  }
  EXPECT_THROW(conv_shape({1, 2, 5, 5}, {1, 3, 3, 3}, {}), MalformedInput);  // channels
  EXPECT_THROW(conv_shape({1, 2, 5, 5}, {1, 2, 3}, {}), MalformedInput);     // rank
}

TEST(ShapeInference, GemmAndMatMul) {
  Graph g;
  auto gemm = [&](Shape a, Shape b, int64_t ta, int64_t tb, std::optional<Shape> c = {}) {
    Node n = make_node("Gemm", {"a", "b"}, {{"transA", ta}, {"transB", tb}});
    std::vector<Shape> in = {a, b};
    if (c) {
      n.inputs.push_back("c");
      in.push_back(*c);
    }
    return output_shape(n, in, g);
  };
  EXPECT_EQ(gemm({5, 3}, {3, 7}, 0, 0), (Shape{5, 7}));
  EXPECT_EQ(gemm({3, 5}, {3, 7}, 1, 0), (Shape{5, 7}));
  EXPECT_EQ(gemm({5, 3}, {7, 3}, 0, 1, Shape{7}), (Shape{5, 7}));
  EXPECT_EQ(gemm({-1, 3}, {7, 3}, 0, 1, Shape{1, 7}), (Shape{-1, 7}));
  EXPECT_THROW(gemm({5, 3}, {7, 3}, 0, 0), MalformedInput);
  EXPECT_THROW(gemm({5, 3}, {7, 3}, 0, 1, Shape{6}), MalformedInput);

  auto mm = [&](Shape a, Shape b) {
    return output_shape(make_node("MatMul", {"a", "b"}), {a, b}, g);
  };
  EXPECT_EQ(mm({2, 1, 3, 4}, {5, 4, 6}), (Shape{2, 5, 3, 6}));
  EXPECT_EQ(mm({4}, {4, 6}), (Shape{6}));
  EXPECT_EQ(mm({3, 4}, {4}), (Shape{3}));
  EXPECT_EQ(mm({4}, {4}), Shape{});
  EXPECT_EQ(mm({-1, 4}, {4, 2}), (Shape{-1, 2}));
  EXPECT_THROW(mm({3, 4}, {5, 6}), MalformedInput);
  EXPECT_THROW(mm({2, 3, 4}, {3, 4, 6}), MalformedInput);
}

TEST(ShapeInference, Broadcasting) {
  Graph g;
  auto add = [&](Shape a, Shape b) {
    return output_shape(make_node("Add", {"a", "b"}), {a, b}, g);
  };
  EXPECT_EQ(add({2, 3, 1}, {4}), (Shape{2, 3, 4}));
  EXPECT_EQ(add({}, {5, 1}), (Shape{5, 1}));
  EXPECT_EQ(add({1, 3, 1, 5}, {2, 1, 4, 1}), (Shape{2, 3, 4, 5}));
  EXPECT_EQ(add({-1, 3}, {1, 3}), (Shape{-1, 3}));
  try {
    add({2, 3}, {4});
    FAIL();
  } catch (const MalformedInput& e) {
    EXPECT_THAT(e.what(), HasSubstr("node 'n_Add' (Add)"));
  }
}

TEST(ShapeInference, FlattenReshapeConcatPadGap) {
  Graph g;
  auto flat = [&](Shape x, int64_t axis) {
    return output_shape(make_node("Flatten", {"x"}, {{"axis", axis}}), {x}, g);
  };
  EXPECT_EQ(flat({2, 3, 4, 5}, 1), (Shape{2, 60}));
  EXPECT_EQ(flat({2, 3, 4, 5}, 0), (Shape{1, 120}));
  EXPECT_EQ(flat({2, 3, 4, 5}, 4), (Shape{120, 1}));
  EXPECT_EQ(flat({2, 3, 4, 5}, -1), (Shape{24, 5}));
  EXPECT_EQ(flat({-1, 3, 4, 5}, 1), (Shape{-1, 60}));
  EXPECT_THROW(flat({2, 3}, 3), MalformedInput);

  auto reshape = [&](Shape x, std::vector<int64_t> target, int64_t allowzero = 0) {
    Graph gg;
    gg.initializers["t"] = Tensor::from_int64({static_cast<int64_t>(target.size())}, target);
    return output_shape(make_node("Reshape", {"x", "t"}, {{"allowzero", allowzero}}),
                        {x, {static_cast<int64_t>(target.size())}}, gg);
  };
  EXPECT_EQ(reshape({2, 3, 4}, {0, -1}), (Shape{2, 12}));
  EXPECT_EQ(reshape({2, 3, 4}, {-1}), (Shape{24}));
  EXPECT_EQ(reshape({2, 3, 4}, {4, 0, 2}), (Shape{4, 3, 2}));
  EXPECT_EQ(reshape({-1, 512, 1, 1}, {0, -1}), (Shape{-1, 512}));
  EXPECT_EQ(reshape({-1, 512, 1, 1}, {-1, 512}), (Shape{-1, 512}));
  EXPECT_EQ(reshape({0, 3}, {0, 3}, 1), (Shape{0, 3}));
  EXPECT_THROW(reshape({2, 3, 4}, {5, -1}), MalformedInput);
  EXPECT_THROW(reshape({2, 3, 4}, {-1, -1}), MalformedInput);
  EXPECT_THROW(reshape({2, 3, 4}, {7}), MalformedInput);

  Node cat = make_node("Concat", {"a", "b", "c"}, {{"axis", int64_t{1}}});
  EXPECT_EQ(output_shape(cat, {{2, 3, 4}, {2, 5, 4}, {2, 1, 4}}, g), (Shape{2, 9, 4}));
  EXPECT_EQ(output_shape(cat, {{-1, 3, 4}, {-1, 5, 4}, {-1, 1, 4}}, g), (Shape{-1, 9, 4}));
  EXPECT_THROW(output_shape(cat, {{2, 3, 4}, {2, 5, 5}, {2, 1, 4}}, g), MalformedInput);

  Node pad9 = make_node("Pad", {"x"}, {{"pads", Ints{0, 0, 1, 2, 0, 0, 3, 4}}});
  EXPECT_EQ(output_shape(pad9, {{1, 2, 5, 5}}, g), (Shape{1, 2, 9, 11}));
  Graph gp;
  gp.initializers["p"] = Tensor::from_int64({4}, {1, 0, -1, 2});
  Node pad13 = make_node("Pad", {"x", "p"});
  EXPECT_EQ(output_shape(pad13, {{3, 4}, {4}}, gp), (Shape{3, 6}));

  Node gap = make_node("GlobalAveragePool", {"x"});
  EXPECT_EQ(output_shape(gap, {{-1, 7, 9, 3}}, g), (Shape{-1, 7, 1, 1}));
}

TEST(ShapeInference, InferShapesFillsValueInfoAndChecksDeclarations) {
  Model m;
  Graph& g = m.graph;
  g.inputs.push_back({"x", DType::Float32, {-1, 3, 8, 8}});
  g.initializers["w"] = Tensor({4, 3, 3, 3});
  g.initializers["fcw"] = Tensor({4, 10});
  g.nodes.push_back(make_node("Conv", {"x", "w"}, {{"pads", Ints{1, 1, 1, 1}}}));
  g.nodes.back().outputs = {"c"};
  g.nodes.push_back(make_node("Relu", {"c"}));
  g.nodes.back().outputs = {"r"};
  g.nodes.push_back(make_node("GlobalAveragePool", {"r"}));
  g.nodes.back().outputs = {"p"};
  g.nodes.push_back(make_node("Flatten", {"p"}));
  g.nodes.back().outputs = {"f"};
  g.nodes.push_back(make_node("MatMul", {"f", "fcw"}));
  g.nodes.back().outputs = {"y"};
  g.outputs.push_back({"y", DType::Float32, {}});
  infer_shapes(m);
  EXPECT_EQ(g.value_info.at("c").shape, (Shape{-1, 4, 8, 8}));
  EXPECT_EQ(g.value_info.at("p").shape, (Shape{-1, 4, 1, 1}));
  EXPECT_EQ(g.value_info.at("f").shape, (Shape{-1, 4}));
  EXPECT_EQ(g.outputs[0].shape, (Shape{-1, 10}));

  g.value_info["r"].shape = {-1, 4, 7, 8};  // a wrong declaration
  try {
    infer_shapes(m);
    FAIL();
  } catch (const MalformedInput& e) {
    EXPECT_THAT(e.what(), HasSubstr("(Relu)"));
  }
  g.value_info.erase("r");
  g.outputs[0].shape = {-1, 11};
  EXPECT_THROW(infer_shapes(m), MalformedInput);
  g.outputs[0].shape = {1, 10};  // a fixed batch in the declaration is kept
  infer_shapes(m);
  EXPECT_EQ(g.outputs[0].shape, (Shape{1, 10}));
}

TEST(ShapeInference, ShapeOpsAndDtypes) {
  Graph g;
  std::vector<ValueInfo> x = {{"x", DType::Float32, {2, 3, 4}}};
  auto out = infer_node(make_node("Shape", {"x"}), x, g);
  EXPECT_EQ(out[0].dtype, DType::Int64);
  EXPECT_EQ(out[0].shape, (Shape{3}));
  Node sh = make_node("Shape", {"x"}, {{"start", int64_t{1}}, {"end", int64_t{-1}}});
  EXPECT_EQ(infer_node(sh, x, g)[0].shape, (Shape{1}));

  g.initializers["i"] = Tensor::from_int64({2}, {0, 2});
  std::vector<ValueInfo> gi = {x[0], {"i", DType::Int64, {2}}};
  Node ga = make_node("Gather", {"x", "i"}, {{"axis", int64_t{1}}});
  EXPECT_EQ(infer_node(ga, gi, g)[0].shape, (Shape{2, 2, 4}));
  g.initializers["i"] = Tensor::from_int64({2}, {0, 3});
  EXPECT_THROW(infer_node(ga, gi, g), MalformedInput);  // index out of range

  Node cast = make_node("Cast", {"x"}, {{"to", int64_t{7}}});
  EXPECT_EQ(infer_node(cast, x, g)[0].dtype, DType::Int64);

  Node un = make_node("Unsqueeze", {"x"}, {{"axes", Ints{0, -1}}});
  EXPECT_EQ(infer_node(un, x, g)[0].shape, (Shape{1, 2, 3, 4, 1}));
  Node sq = make_node("Squeeze", {"x"});
  std::vector<ValueInfo> ones = {{"x", DType::Float32, {1, 3, 1}}};
  EXPECT_EQ(infer_node(sq, ones, g)[0].shape, (Shape{3}));
  Node sq0 = make_node("Squeeze", {"x"}, {{"axes", Ints{1}}});
  EXPECT_THROW(infer_node(sq0, ones, g), MalformedInput);

  Node sl = make_node("Slice", {"x"},
                      {{"starts", Ints{1, -3}}, {"ends", Ints{100, -1}}, {"axes", Ints{1, 2}}});
  EXPECT_EQ(infer_node(sl, x, g)[0].shape, (Shape{2, 2, 2}));

  Node mean = make_node("ReduceMean", {"x"}, {{"axes", Ints{-1}}, {"keepdims", int64_t{0}}});
  EXPECT_EQ(infer_node(mean, x, g)[0].shape, (Shape{2, 3}));

  Node unknown = make_node("Einsum", {"x"});
  EXPECT_THROW(infer_node(unknown, x, g), Unsupported);
}

}  // namespace
}  // namespace veil::model
