// ShadowNet and the hardened scheme inside the trusted pipeline: LeNet-5 and ResNet-20 give the
// float engine's outputs, and with verification every fault the accelerator injects is caught
// (and the layer recomputed, so the answer stays right).
#include <gtest/gtest.h>

#include <ostream>
#include <random>

#include "test_layers.hpp"
#include "veil/model/shape_inference.hpp"
#include "veil/model/zoo.hpp"
#include "veil/nn/executor.hpp"
#include "veil/split/accelerator.hpp"
#include "veil/split/pipeline.hpp"

namespace veil::split {
namespace {

struct Case {
  SchemeKind scheme;
  std::string arch;
};

void PrintTo(const Case& c, std::ostream* os) { *os << scheme_name(c.scheme) << "_" << c.arch; }

class FloatSchemePipeline : public ::testing::TestWithParam<Case> {};

TEST_P(FloatSchemePipeline, MatchesTheFloatEngineAndCatchesEveryInjectedFault) {
  model::ArchSpec spec;
  spec.seed = 5;
  model::Model m = model::build_arch(GetParam().arch, spec);
  model::infer_shapes(m);
  std::mt19937 rng(6);
  const Tensor x = testing::random_tensor({4, 1, 28, 28}, rng);
  nn::Executor engine(m);
  const Tensor want = engine.forward({x}).at(0);

  AcceleratorOptions ao;
  ao.inject_faults = 3;
  auto acc = make_local_accelerator(ao);
  PipelineOptions po;
  po.scheme = GetParam().scheme;
  po.scheme_options.verify = true;
  Pipeline pipe(m, po, *acc);
  pipe.precompute(4, 2);
  for (int q = 0; q < 2; ++q) {
    const Tensor got = pipe.infer(x);
    EXPECT_LE(testing::max_abs_diff(got, want), 1e-3f * (1 + testing::max_abs(want)));
  }
  EXPECT_EQ(acc->faults_injected(), 3);
  EXPECT_EQ(pipe.stats().faults_detected(), 3);
  EXPECT_EQ(pipe.false_accept_bound(), 0.25);
}

INSTANTIATE_TEST_SUITE_P(Split, FloatSchemePipeline,
                         ::testing::Values(Case{SchemeKind::ShadowNet, "lenet5"},
                                           Case{SchemeKind::ShadowNet, "resnet20"},
                                           Case{SchemeKind::Hardened, "lenet5"},
                                           Case{SchemeKind::Hardened, "resnet20"}),
                         [](const auto& info) {
                           return std::string(scheme_name(info.param.scheme)) + "_" +
                                  info.param.arch;
                         });

}  // namespace
}  // namespace veil::split
