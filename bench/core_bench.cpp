// Inference and training throughput of the float engine on the built-in architectures.
// Run through scripts/bench, which also measures PyTorch CPU in the same run.
#include <benchmark/benchmark.h>

#include <random>

#include "veil/model/zoo.hpp"
#include "veil/nn/executor.hpp"
#include "veil/nn/loss.hpp"
#include "veil/nn/sgd.hpp"

namespace {

veil::Tensor random_batch(int64_t n) {
  veil::Tensor x({n, 1, 28, 28});
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(0, 1);
  for (float& v : x.floats()) v = u(rng);
  return x;
}

void BM_Inference(benchmark::State& state, const char* arch) {
  const int64_t batch = state.range(0);
  auto m = veil::model::build_arch(arch, {});
  veil::nn::Executor exec(m);
  auto x = random_batch(batch);
  exec.forward({x});  // warm-up: primitive creation and weight reorders
  for (auto _ : state) benchmark::DoNotOptimize(exec.forward({x}));
  state.counters["images/s"] = benchmark::Counter(static_cast<double>(batch * state.iterations()),
                                                  benchmark::Counter::kIsRate);
}

void BM_TrainStep(benchmark::State& state, const char* arch) {
  const int64_t batch = state.range(0);
  auto m = veil::model::build_arch(arch, {});
  veil::nn::Executor exec(m);
  veil::nn::Sgd sgd(m, exec.trainable());
  auto x = random_batch(batch);
  std::vector<int32_t> y(static_cast<size_t>(batch));
  for (size_t i = 0; i < y.size(); ++i) y[i] = static_cast<int32_t>(i % 10);
  for (auto _ : state) {
    auto out = exec.forward({x}, veil::nn::Mode::Training);
    auto loss = veil::nn::softmax_cross_entropy(out[0], y);
    exec.backward({loss.grad});
    sgd.step(exec.param_grads(), 0.01f);
    exec.parameters_changed();
  }
  state.counters["images/s"] = benchmark::Counter(static_cast<double>(batch * state.iterations()),
                                                  benchmark::Counter::kIsRate);
}

BENCHMARK_CAPTURE(BM_Inference, lenet5, "lenet5")->Arg(1)->Arg(64)->UseRealTime();
BENCHMARK_CAPTURE(BM_Inference, resnet20, "resnet20")->Arg(1)->Arg(64)->UseRealTime();
BENCHMARK_CAPTURE(BM_TrainStep, lenet5, "lenet5")->Arg(64)->UseRealTime();
BENCHMARK_CAPTURE(BM_TrainStep, resnet20, "resnet20")->Arg(64)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
