#include "veil/model/zoo.hpp"

#include <gtest/gtest.h>

#include "veil/core/error.hpp"
#include "veil/model/shape_inference.hpp"

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

TEST(Zoo, Resnet18InTheCifarLayoutHas11Point17MParameters) {
  const Model m = build_arch("resnet18", {3, 32, 32, 10, 1});
  // The count from the architecture's definition: a 3x3 stem to 64 channels, then per stage of
  // width w (64, 128, 256, 512) two basic blocks of two 3x3 convs; the first block of stages 2-4
  // takes w/2 channels in and adds a 1x1 projection. Every conv (no bias) is followed by a BN
  // with scale and bias trained (plus running mean and variance stored); then fc 512 -> 10.
  int64_t trained = 3 * 64 * 9 + 2 * 64, stats = 2 * 64;
  int64_t in = 64;
  for (int64_t w : {64, 128, 256, 512}) {
    for (int block = 0; block < 2; ++block) {
      trained += in * w * 9 + w * w * 9 + 2 * (2 * w);
      stats += 2 * (2 * w);
      if (in != w) trained += in * w + 2 * w, stats += 2 * w;
      in = w;
    }
  }
  trained += 512 * 10 + 10;
  EXPECT_EQ(trained, 11173962);  // torchvision-style CIFAR ResNet-18, as widely reported
  int64_t trainable = 0;
  for (const auto& [name, t] : m.graph.initializers) {
    const bool stat = name.ends_with(".mean") || name.ends_with(".var");
    trainable += stat ? 0 : t.numel();
  }
  EXPECT_EQ(trainable, trained);
  EXPECT_EQ(count_params(m), trained + stats);
  EXPECT_EQ(count_ops(m, "Conv"), 1 + 16 + 3);
  EXPECT_EQ(count_ops(m, "Add"), 8);
  EXPECT_EQ(count_ops(m, "Relu"), 17);
  EXPECT_EQ(count_ops(m, "MaxPool"), 0);
  EXPECT_EQ(m.metadata.at("veil.arch"), "resnet18");
  Model shaped = m;
  infer_shapes(shaped);
  EXPECT_EQ(shaped.graph.value_info.at("layer4.1.relu2.out").shape, (Shape{-1, 512, 4, 4}));
  EXPECT_EQ(shaped.graph.value_info.at("layer1.1.relu2.out").shape, (Shape{-1, 64, 32, 32}));
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

const Node& node_named(const Model& m, const std::string& name) {
  for (const auto& n : m.graph.nodes)
    if (n.name == name) return n;
  throw InvalidArgument("no node " + name);
}

// The inferred shape of a value (after infer_shapes).
Shape shape_of(const Model& m, const std::string& value) {
  return m.graph.value_info.at(value).shape;
}

// The Mul nodes whose two inputs are one value: the squares an HE compiler sees as degree 2.
int64_t count_squares(const Model& m) {
  int64_t n = 0;
  for (const auto& node : m.graph.nodes)
    n += node.op_type == "Mul" && node.inputs.size() == 2 && node.inputs[0] == node.inputs[1];
  return n;
}

TEST(Zoo, HeCnnIsCryptoNetsConvSquareDenseSquareDense) {
  auto m = build_arch("he-cnn", {});
  infer_shapes(m);
  const Node& conv = node_named(m, "conv1");
  EXPECT_EQ(conv.attr_ints("strides", {}), (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(conv.attr_ints("pads", {}), (std::vector<int64_t>{0, 0, 1, 1}));  // 28 -> 29
  EXPECT_EQ(m.graph.initializers.at("conv1.weight").shape(), (Shape{5, 1, 5, 5}));
  EXPECT_EQ(shape_of(m, "conv1.out"), (Shape{-1, 5, 13, 13}));
  EXPECT_EQ(m.graph.initializers.at("fc1.weight").shape(), (Shape{100, 845}));
  EXPECT_EQ(m.graph.initializers.at("fc2.weight").shape(), (Shape{10, 100}));
  EXPECT_EQ(shape_of(m, "act2.out"), (Shape{-1, 100}));
  EXPECT_EQ(count_squares(m), 2);
  EXPECT_EQ(count_ops(m, "Relu"), 0);
  // 0.125 x^2 + 0.5 x: the square, then Mul by a, Mul of x by b, Add.
  const Node& sq = node_named(m, "act1.square");
  EXPECT_EQ(sq.inputs, (std::vector<std::string>{"conv1.out", "conv1.out"}));
  EXPECT_EQ(m.graph.initializers.at("act1.a").floats()[0], 0.125f);
  EXPECT_EQ(m.graph.initializers.at("act1.b").floats()[0], 0.5f);
  EXPECT_EQ(node_named(m, "act1.linear").inputs, (std::vector<std::string>{"conv1.out", "act1.b"}));
  EXPECT_EQ(node_named(m, "act1").op_type, "Add");
  EXPECT_EQ(m.graph.outputs.at(0).name, "logits");
}

TEST(Zoo, KerasCifar10FollowsTheExampleAndTakesTheDatasetShape) {
  // conv32 same, conv32 valid, pool, conv64 same, conv64 valid, pool: 28 -> 26 -> 13 -> 11 -> 5
  // for Fashion-MNIST, 32 -> 30 -> 15 -> 13 -> 6 for CIFAR-10.
  for (const auto& [spec, flat] : std::vector<std::pair<ArchSpec, int64_t>>{
           {{1, 28, 28, 10, 1}, 64 * 5 * 5}, {{3, 32, 32, 10, 1}, 64 * 6 * 6}}) {
    auto m = build_arch("keras-cifar10", spec);
    infer_shapes(m);
    EXPECT_EQ(m.graph.inputs.at(0).shape, (Shape{-1, spec.channels, spec.height, spec.width}));
    EXPECT_EQ(m.graph.initializers.at("conv1.weight").shape(), (Shape{32, spec.channels, 3, 3}));
    EXPECT_EQ(m.graph.initializers.at("conv4.weight").shape(), (Shape{64, 64, 3, 3}));
    EXPECT_EQ(m.graph.initializers.at("fc1.weight").shape(), (Shape{512, flat}));
    EXPECT_EQ(m.graph.initializers.at("fc2.weight").shape(), (Shape{10, 512}));
    EXPECT_EQ(count_ops(m, "Conv"), 4);
    EXPECT_EQ(count_ops(m, "MaxPool"), 2);
    EXPECT_EQ(count_ops(m, "Relu"), 5);  // four in the features, the classifier's by default
    EXPECT_EQ(shape_of(m, "logits"), (Shape{-1, 10}));
  }
}

TEST(Zoo, KerasCifar10ClassifierActivationIsTheOnlyDifference) {
  const ArchSpec fmnist{1, 28, 28, 10, 1};
  auto relu = build_arch("keras-cifar10", fmnist, "relu");
  auto square = build_arch("keras-cifar10", fmnist, "square");
  auto none = build_arch("keras-cifar10", fmnist, "none");
  EXPECT_EQ(count_ops(relu, "Relu"), 5);
  EXPECT_EQ(count_squares(relu), 0);
  EXPECT_EQ(count_ops(square, "Relu"), 4);
  EXPECT_EQ(count_squares(square), 1);
  EXPECT_EQ(node_named(square, "act1.square").inputs.at(0), "fc1.out");
  EXPECT_EQ(count_ops(none, "Relu"), 4);
  EXPECT_EQ(count_squares(none), 0);
  EXPECT_EQ(node_named(none, "fc2").inputs.at(0), "fc1.out");  // fc1 feeds fc2 directly
  // Same seed, same weights: only the activation differs between the variants.
  EXPECT_TRUE(relu.graph.initializers.at("fc1.weight") == none.graph.initializers.at("fc1.weight"));
}

TEST(Zoo, ClassifierActivationIsRefusedWhereItDoesNotApply) {
  for (const char* arch : {"lenet5", "mlp", "he-cnn", "resnet20"})
    EXPECT_THROW(build_arch(arch, {}, "square"), InvalidArgument) << arch;
  EXPECT_THROW(build_arch("keras-cifar10", {}, "tanh"), InvalidArgument);
  EXPECT_THROW(build_arch("keras-cifar10", {1, 8, 8, 10, 1}), InvalidArgument);
}

TEST(Zoo, RejectsUnknownNamesAndBadShapes) {
  EXPECT_THROW(build_arch("alexnet", {}), InvalidArgument);
  EXPECT_THROW(build_arch("lenet5", {1, 4, 4, 10, 1}), InvalidArgument);
  EXPECT_THROW(build_arch("mlp", {1, 28, 28, 1, 1}), InvalidArgument);
}

}  // namespace
}  // namespace veil::model
