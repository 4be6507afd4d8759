// The square activation of the HE-friendly architectures is Mul(x, x) plus multiplications and
// additions by constants: the float engine must differentiate it as 2 x g (both inputs of the Mul
// are one value, so the executor sums two gradient contributions), and the architectures that
// use it must train without diverging.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "graph_builder.hpp"
#include "veil/model/zoo.hpp"
#include "veil/nn/loss.hpp"
#include "veil/nn/sgd.hpp"

namespace veil::nn {
namespace {

using testing::all_close;
using testing::check_gradients;
using testing::GradCheck;
using testing::GraphBuilder;
using testing::random_tensor;

// y = x * x on a graph input; then on a computed value (h = x + c), which the Mul reads twice and
// the backward pass still needs after the forward pass (it must not be overwritten in place).
TEST(SquareActivation, ForwardAndBackwardMatchANaiveSquare) {
  std::mt19937 rng(3);
  const Shape shape{2, 3, 4, 4};
  const Tensor x = random_tensor(shape, rng, -2.0f, 2.0f);
  const Tensor c = random_tensor({1, 3, 1, 1}, rng);
  for (const bool computed : {false, true}) {
    SCOPED_TRACE(computed ? "Mul(h, h), h = x + c" : "Mul(x, x)");
    GraphBuilder g;
    g.input("x", shape);
    std::string v = "x";
    if (computed) {
      g.init("c", c).node("Add", {"x", "c"}, {"h"});
      v = "h";
    }
    g.node("Mul", {v, v}, {"y"}).output("y");
    auto m = g.build();
    ExecutorOptions opts;
    opts.input_gradients = true;
    Executor ex(m, opts);
    const Tensor y = ex.forward({x}, Mode::Training).at(0);
    const Tensor gy = random_tensor(shape, rng);
    ex.backward({gy});
    const Tensor& gx = ex.input_grads().at(0);
    Tensor want_y(shape), want_gx(shape);
    for (int64_t n = 0; n < 2; ++n)
      for (int64_t ch = 0; ch < 3; ++ch)
        for (int64_t i = 0; i < 16; ++i) {
          const int64_t k = (n * 3 + ch) * 16 + i;
          const float h = computed ? x.floats()[k] + c.floats()[ch] : x.floats()[k];
          want_y.floats()[k] = h * h;
          want_gx.floats()[k] = 2.0f * h * gy.floats()[k];
        }
    EXPECT_TRUE(all_close(y, want_y, 1e-6, 0));
    EXPECT_TRUE(all_close(gx, want_gx, 1e-6, 0));
  }
}

// The whole he-cnn (conv, 0.125 x^2 + 0.5 x, dense, square, dense) against finite differences,
// for the conv weights (upstream of both squares), a dense weight and the input.
TEST(SquareActivation, HeCnnGradientsMatchFiniteDifferences) {
  std::mt19937 rng(5);
  auto m = model::build_arch("he-cnn", {1, 7, 7, 3, 2});
  GradCheck c;
  c.trainable = {"conv1.weight", "conv1.bias", "fc2.weight"};
  check_gradients(m, {random_tensor({2, 1, 7, 7}, rng)}, c);
}

// A few SGD steps on one small synthetic batch lower the loss and keep it finite, for each
// architecture with a square at the default learning rate of `veil train` (0.05).
TEST(SquareActivation, SgdStepsLowerTheLossWithoutNan) {
  const model::ArchSpec spec{1, 12, 12, 10, 1};
  for (const auto& [arch, activation] : std::vector<std::pair<std::string, std::string>>{
           {"he-cnn", ""}, {"keras-cifar10", "square"}, {"keras-cifar10", "none"}}) {
    SCOPED_TRACE(arch + " " + activation);
    auto m = model::build_arch(arch, spec, activation);
    std::mt19937 rng(9);
    const Tensor x = random_tensor({16, 1, 12, 12}, rng, 0.0f, 1.0f);
    std::vector<int32_t> labels(16);
    for (size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<int32_t>(i % 10);
    Executor ex(m);
    Sgd sgd(m, ex.trainable());
    float first = 0, last = 0;
    for (int step = 0; step < 8; ++step) {
      auto loss = softmax_cross_entropy(ex.forward({x}, Mode::Training).at(0), labels);
      ASSERT_TRUE(std::isfinite(loss.loss)) << "step " << step;
      if (step == 0) first = loss.loss;
      last = loss.loss;
      ex.backward({loss.grad});
      sgd.step(ex.param_grads(), 0.05f);
      ex.parameters_changed();
    }
    EXPECT_LT(last, 0.8f * first);
  }
}

}  // namespace
}  // namespace veil::nn
