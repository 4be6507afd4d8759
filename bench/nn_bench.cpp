// Micro-benchmarks of the float engine: single Conv / Gemm layers and a LeNet-5-like network,
// inference and training steps (forward in training mode + backward). Thread count follows
// OMP_NUM_THREADS.
#include <benchmark/benchmark.h>

#include <random>

#include "veil/model/graph.hpp"
#include "veil/model/zoo.hpp"
#include "veil/nn/executor.hpp"

namespace {

using veil::Shape;
using veil::Tensor;
using Ints = std::vector<int64_t>;

Tensor random_tensor(const Shape& shape, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  Tensor t(shape);
  for (float& v : t.floats()) v = u(rng) * 0.1f;
  return t;
}

void add_node(veil::model::Model& m, const std::string& op, std::vector<std::string> in,
              std::vector<std::string> out,
              std::map<std::string, veil::model::Attribute> attrs = {}) {
  veil::model::Node n;
  n.name = op + std::to_string(m.graph.nodes.size());
  n.op_type = op;
  n.inputs = std::move(in);
  n.outputs = std::move(out);
  n.attributes = std::move(attrs);
  m.graph.nodes.push_back(std::move(n));
}

// LeNet-5 as in PyTorch tutorials, on 28x28x1 inputs (first conv padded).
veil::model::Model lenet() {
  veil::model::Model m;
  auto& g = m.graph;
  g.inputs.push_back({"x", veil::DType::Float32, {-1, 1, 28, 28}});
  g.initializers["w1"] = random_tensor({6, 1, 5, 5}, 1);
  g.initializers["b1"] = random_tensor({6}, 2);
  g.initializers["w2"] = random_tensor({16, 6, 5, 5}, 3);
  g.initializers["b2"] = random_tensor({16}, 4);
  g.initializers["f1"] = random_tensor({120, 400}, 5);
  g.initializers["g1"] = random_tensor({120}, 6);
  g.initializers["f2"] = random_tensor({84, 120}, 7);
  g.initializers["g2"] = random_tensor({84}, 8);
  g.initializers["f3"] = random_tensor({10, 84}, 9);
  g.initializers["g3"] = random_tensor({10}, 10);
  const std::map<std::string, veil::model::Attribute> pool{{"kernel_shape", Ints{2, 2}},
                                                           {"strides", Ints{2, 2}}};
  add_node(m, "Conv", {"x", "w1", "b1"}, {"c1"}, {{"pads", Ints{2, 2, 2, 2}}});
  add_node(m, "Relu", {"c1"}, {"r1"});
  add_node(m, "MaxPool", {"r1"}, {"p1"}, pool);
  add_node(m, "Conv", {"p1", "w2", "b2"}, {"c2"});
  add_node(m, "Relu", {"c2"}, {"r2"});
  add_node(m, "MaxPool", {"r2"}, {"p2"}, pool);
  add_node(m, "Flatten", {"p2"}, {"f"});
  add_node(m, "Gemm", {"f", "f1", "g1"}, {"h1"}, {{"transB", int64_t{1}}});
  add_node(m, "Relu", {"h1"}, {"a1"});
  add_node(m, "Gemm", {"a1", "f2", "g2"}, {"h2"}, {{"transB", int64_t{1}}});
  add_node(m, "Relu", {"h2"}, {"a2"});
  add_node(m, "Gemm", {"a2", "f3", "g3"}, {"y"}, {{"transB", int64_t{1}}});
  g.outputs.push_back({"y", veil::DType::Float32, {-1, 10}});
  return m;
}

veil::model::Model single_conv(int64_t c, int64_t m_out, int64_t k, int64_t hw) {
  veil::model::Model m;
  m.graph.inputs.push_back({"x", veil::DType::Float32, {-1, c, hw, hw}});
  m.graph.initializers["w"] = random_tensor({m_out, c, k, k}, 1);
  m.graph.initializers["b"] = random_tensor({m_out}, 2);
  add_node(m, "Conv", {"x", "w", "b"}, {"y"}, {{"pads", Ints{k / 2, k / 2, k / 2, k / 2}}});
  m.graph.outputs.push_back({"y", veil::DType::Float32, {}});
  return m;
}

veil::model::Model single_gemm(int64_t k, int64_t n) {
  veil::model::Model m;
  m.graph.inputs.push_back({"x", veil::DType::Float32, {-1, k}});
  m.graph.initializers["w"] = random_tensor({n, k}, 1);
  m.graph.initializers["b"] = random_tensor({n}, 2);
  add_node(m, "Gemm", {"x", "w", "b"}, {"y"}, {{"transB", int64_t{1}}});
  m.graph.outputs.push_back({"y", veil::DType::Float32, {}});
  return m;
}

void run_inference(benchmark::State& state, veil::model::Model m, const Shape& x_shape) {
  veil::nn::Executor ex(m);
  const Tensor x = random_tensor(x_shape, 11);
  ex.forward({x});  // primitive creation and weight reorders
  for (auto _ : state) benchmark::DoNotOptimize(ex.forward({x}));
  state.counters["images/s"] = benchmark::Counter(
      static_cast<double>(x_shape[0] * state.iterations()), benchmark::Counter::kIsRate);
}

void run_training(benchmark::State& state, veil::model::Model m, const Shape& x_shape) {
  veil::nn::Executor ex(m);
  const Tensor x = random_tensor(x_shape, 11);
  auto y = ex.forward({x}, veil::nn::Mode::Training);
  const Tensor gy = random_tensor(y[0].shape(), 12);
  ex.backward({gy});
  for (auto _ : state) {
    benchmark::DoNotOptimize(ex.forward({x}, veil::nn::Mode::Training));
    ex.backward({gy});
  }
  state.counters["images/s"] = benchmark::Counter(
      static_cast<double>(x_shape[0] * state.iterations()), benchmark::Counter::kIsRate);
}

void BM_ConvForward(benchmark::State& state) {
  const int64_t n = state.range(0), c = state.range(1), hw = state.range(2);
  run_inference(state, single_conv(c, c, 3, hw), {n, c, hw, hw});
}
BENCHMARK(BM_ConvForward)->Args({64, 16, 28})->Args({64, 64, 7})->Args({1, 16, 28});

void BM_ConvTrainStep(benchmark::State& state) {
  const int64_t n = state.range(0), c = state.range(1), hw = state.range(2);
  run_training(state, single_conv(c, c, 3, hw), {n, c, hw, hw});
}
BENCHMARK(BM_ConvTrainStep)->Args({64, 16, 28});

void BM_GemmForward(benchmark::State& state) {
  const int64_t n = state.range(0);
  run_inference(state, single_gemm(400, 120), {n, 400});
}
BENCHMARK(BM_GemmForward)->Arg(1)->Arg(64);

void BM_LeNetForward(benchmark::State& state) {
  run_inference(state, lenet(), {state.range(0), 1, 28, 28});
}
BENCHMARK(BM_LeNetForward)->Arg(1)->Arg(64);

void BM_LeNetTrainStep(benchmark::State& state) {
  run_training(state, lenet(), {state.range(0), 1, 28, 28});
}
BENCHMARK(BM_LeNetTrainStep)->Arg(64);

void BM_ResNet20Forward(benchmark::State& state) {
  run_inference(state, veil::model::build_arch("resnet20", {}), {state.range(0), 1, 28, 28});
}
BENCHMARK(BM_ResNet20Forward)->Arg(1)->Arg(64);

void BM_ResNet20TrainStep(benchmark::State& state) {
  run_training(state, veil::model::build_arch("resnet20", {}), {state.range(0), 1, 28, 28});
}
BENCHMARK(BM_ResNet20TrainStep)->Arg(64);

}  // namespace

BENCHMARK_MAIN();
