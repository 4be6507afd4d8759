#include "veil/model/zoo.hpp"

#include <gtest/gtest.h>

#include "veil/core/error.hpp"

namespace veil::model {
namespace {

int64_t count_params(const Model& m) {
  int64_t n = 0;
  for (const auto& [name, t] : m.graph.initializers) n += t.numel();
  return n;
}

int64_t count_ops(const Model& m, const std::string& op) {
  int64_t n = 0;
  for (const auto& node : m.graph.nodes) n += node.op_type == op;
  return n;
}

TEST(Zoo, Lenet5HasTheClassicParameterCount) {
  // conv1 6x1x5x5+6, conv2 16x6x5x5+16, fc 400x120+120, 120x84+84, 84x10+10 (LeCun et al.).
  const int64_t expect =
      (6 * 25 + 6) + (16 * 6 * 25 + 16) + (400 * 120 + 120) + (120 * 84 + 84) + (84 * 10 + 10);
  auto m = build_arch("lenet5", {});
  EXPECT_EQ(count_params(m), expect);
  EXPECT_EQ(m.graph.outputs.at(0).name, "logits");
  EXPECT_EQ(m.metadata.at("veil.arch"), "lenet5");
}

TEST(Zoo, Resnet20HasNineteenConvsOneDenseAndNineSkips) {
  auto m = build_arch("resnet20", {1, 28, 28, 10, 1});
  int64_t conv3x3 = 0;
  for (const auto& n : m.graph.nodes)
    if (n.op_type == "Conv" && n.attr_ints("kernel_shape", {}) == std::vector<int64_t>{3, 3})
      ++conv3x3;
  EXPECT_EQ(conv3x3, 19);
  EXPECT_EQ(count_ops(m, "Gemm"), 1);
  EXPECT_EQ(count_ops(m, "Add"), 9);
  EXPECT_EQ(count_ops(m, "Conv"), 21);  // two 1x1 projection shortcuts
}

TEST(Zoo, SeedDeterminesWeights) {
  auto a = build_arch("mlp", {1, 28, 28, 10, 7});
  auto b = build_arch("mlp", {1, 28, 28, 10, 7});
  auto c = build_arch("mlp", {1, 28, 28, 10, 8});
  EXPECT_TRUE(a.graph.initializers.at("fc1.weight") == b.graph.initializers.at("fc1.weight"));
  EXPECT_FALSE(a.graph.initializers.at("fc1.weight") == c.graph.initializers.at("fc1.weight"));
}

TEST(Zoo, EveryArchitectureValidatesForColourInputs) {
  for (const auto& name : arch_names()) {
    auto m = build_arch(name, {3, 32, 32, 100, 1});
    EXPECT_NO_THROW(validate(m.graph)) << name;
    EXPECT_EQ(m.graph.inputs.at(0).shape, (Shape{-1, 3, 32, 32})) << name;
  }
}

TEST(Zoo, RejectsUnknownNamesAndBadShapes) {
  EXPECT_THROW(build_arch("alexnet", {}), InvalidArgument);
  EXPECT_THROW(build_arch("lenet5", {1, 4, 4, 10, 1}), InvalidArgument);
  EXPECT_THROW(build_arch("mlp", {1, 28, 28, 1, 1}), InvalidArgument);
}

}  // namespace
}  // namespace veil::model
