// Small valid models covering the importer's paths. They are checked to import here; with
// VEIL_FUZZ_SEED_DIR set (scripts/fuzz does) they are also written out as the fuzz seed corpus.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "model/onnx_builder.hpp"

namespace veil::model {
namespace {

using test::OnnxBuilder;

std::vector<float> ramp(size_t n) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = 0.01f * static_cast<float>(i) - 0.5f;
  return v;
}

OnnxBuilder small_cnn(int64_t opset, bool dynamic) {
  OnnxBuilder b(opset);
  b.metadata("veil.arch", "seed");
  b.input("x", {dynamic ? -1 : 1, 2, 8, 8});
  b.initializer("w", {4, 2, 3, 3}, ramp(72));
  b.initializer("bias", {4}, ramp(4), false);
  auto& c = b.node("Conv", {"x", "w", "bias"}, {"c"}, "conv");
  OnnxBuilder::attr(c, "pads", std::vector<int64_t>{1, 1, 1, 1});
  OnnxBuilder::attr(c, "strides", std::vector<int64_t>{1, 1});
  for (const char* p : {"s", "bb", "m", "v"}) b.initializer(p, {4}, {1, 0.5f, 0.25f, 2});
  b.node("BatchNormalization", {"c", "s", "bb", "m", "v"}, {"n"}, "bn");
  if (opset < 11) {
    auto& cl = b.node("Clip", {"n"}, {"r"}, "relu6");
    OnnxBuilder::attr_f(cl, "min", 0.0f);
    OnnxBuilder::attr_f(cl, "max", 6.0f);
  } else {
    b.initializer("lo", {}, {0.0f});
    b.initializer("hi", {}, {6.0f});
    b.node("Clip", {"n", "lo", "hi"}, {"r"}, "relu6");
  }
  auto& p = b.node("MaxPool", {"r"}, {"p"}, "pool");
  OnnxBuilder::attr(p, "kernel_shape", std::vector<int64_t>{2, 2});
  OnnxBuilder::attr(p, "strides", std::vector<int64_t>{2, 2});
  b.node("GlobalAveragePool", {"p"}, {"g"}, "gap");
  b.node("Shape", {"g"}, {"shp"}, "shape");
  auto& k = b.node("Constant", {}, {"zero"}, "zero");
  OnnxBuilder::fill_int64_tensor(OnnxBuilder::attr_t(k, "value"), {}, {0});
  b.node("Gather", {"shp", "zero"}, {"batch"}, "gather");
  if (opset >= 13) {
    b.initializer_i64("axes", {1}, {0});
    b.node("Unsqueeze", {"batch", "axes"}, {"b1"}, "unsqueeze");
  } else {
    auto& u = b.node("Unsqueeze", {"batch"}, {"b1"}, "unsqueeze");
    OnnxBuilder::attr(u, "axes", std::vector<int64_t>{0});
  }
  b.initializer_i64("minus1", {1}, {-1});
  auto& cat = b.node("Concat", {"b1", "minus1"}, {"target"}, "concat");
  OnnxBuilder::attr(cat, "axis", int64_t{0});
  b.node("Reshape", {"g", "target"}, {"f"}, "reshape");
  b.initializer("fw", {3, 4}, ramp(12));
  b.initializer("fb", {3}, ramp(3));
  auto& gemm = b.node("Gemm", {"f", "fw", "fb"}, {"logits"}, "fc");
  OnnxBuilder::attr(gemm, "transB", int64_t{1});
  auto& sm = b.node("Softmax", {"logits"}, {"y"}, "softmax");
  OnnxBuilder::attr(sm, "axis", int64_t{1});
  b.output("y");
  return b;
}

OnnxBuilder small_mlp(int64_t opset) {
  OnnxBuilder b(opset);
  b.input("x", {-1, 6});
  b.initializer("w", {6, 5}, ramp(30));
  b.node("MatMul", {"x", "w"}, {"h"}, "mm");
  b.initializer("b", {5}, ramp(5));
  b.node("Add", {"h", "b"}, {"a"}, "add");
  auto& lr = b.node("LeakyRelu", {"a"}, {"l"}, "lrelu");
  OnnxBuilder::attr_f(lr, "alpha", 0.1f);
  b.node("Dropout", {"l"}, {"d"}, "drop");
  b.node("Sigmoid", {"d"}, {"s"}, "sig");
  b.node("Tanh", {"s"}, {"t"}, "tanh");
  b.initializer("two", {}, {2.0f});
  b.node("Div", {"t", "two"}, {"q"}, "div");
  b.node("Sub", {"q", "two"}, {"u"}, "sub");
  b.node("Mul", {"u", "two"}, {"v"}, "mul");
  auto& fl = b.node("Flatten", {"v"}, {"y"}, "flatten");
  OnnxBuilder::attr(fl, "axis", int64_t{1});
  b.output("y");
  return b;
}

// veil's own domain: a BlockRelu node (ai.veil, imported at version 1).
OnnxBuilder small_block_relu() {
  OnnxBuilder b(13);
  auto* veil = b.proto().add_opset_import();
  veil->set_domain("ai.veil");
  veil->set_version(1);
  b.input("x", {-1, 3, 5, 5});
  auto& br = b.node("BlockRelu", {"x"}, {"r"}, "block_relu");
  br.set_domain("ai.veil");
  OnnxBuilder::attr(br, "blocks", std::vector<int64_t>{0, 0, 1, 1, 2, 3});
  b.node("GlobalAveragePool", {"r"}, {"g"}, "gap");
  auto& fl = b.node("Flatten", {"g"}, {"y"}, "flatten");
  OnnxBuilder::attr(fl, "axis", int64_t{1});
  b.output("y");
  return b;
}

TEST(OnnxFuzzSeeds, ImportAndWriteWhenRequested) {
  std::vector<std::pair<std::string, OnnxBuilder>> seeds;
  for (int64_t opset : {9, 11, 13, 17})
    for (bool dyn : {false, true})
      seeds.emplace_back("cnn_v" + std::to_string(opset) + (dyn ? "_dyn" : ""),
                         small_cnn(opset, dyn));
  seeds.emplace_back("mlp_v13", small_mlp(13));
  seeds.emplace_back("mlp_v9", small_mlp(9));
  seeds.emplace_back("block_relu_v13", small_block_relu());
  const char* dir = std::getenv("VEIL_FUZZ_SEED_DIR");
  for (const auto& [name, b] : seeds) {
    Model m = b.parse();
    EXPECT_FALSE(m.graph.nodes.empty()) << name;
    EXPECT_EQ(m.graph.outputs[0].shape.size(), 2u) << name;
    if (dir) {
      std::ofstream out(std::filesystem::path(dir) / ("seed_" + name + ".onnx"), std::ios::binary);
      out << b.bytes();
    }
  }
}

}  // namespace
}  // namespace veil::model
