// Slalom and DarkNight through the whole split pipeline (partition, in-process accelerator,
// trusted steps): the model's outputs within quantisation error, and every injected fault caught
// with verification on.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "veil/model/shape_inference.hpp"
#include "veil/model/zoo.hpp"
#include "veil/nn/executor.hpp"
#include "veil/split/accelerator.hpp"
#include "veil/split/pipeline.hpp"
#include "veil/split/slalom.hpp"

namespace veil::split {
namespace {

struct SplitRun {
  Tensor want, got;
  int64_t detected = 0, injected = 0;
  double bound = 1;
};

SplitRun run_split(const std::string& arch, SchemeKind scheme, bool verify, int64_t faults,
                   int64_t batch) {
  model::ArchSpec spec;
  spec.seed = 5;
  model::Model m = model::build_arch(arch, spec);
  model::infer_shapes(m);
  Tensor x({batch, 1, 28, 28});
  std::mt19937 gen(9);
  std::normal_distribution<float> d(0.0f, 1.0f);
  for (float& v : x.floats()) v = d(gen);
  SplitRun r;
  r.want = nn::Executor(m).forward({x}).at(0);
  AcceleratorOptions ao;
  ao.inject_faults = faults;
  auto acc = make_local_accelerator(ao);
  PipelineOptions po;
  po.scheme = scheme;
  po.scheme_options.verify = verify;
  Pipeline pipe(m, po, *acc);
  pipe.precompute(batch, 1);
  r.got = pipe.infer(x);
  r.detected = pipe.stats().faults_detected();
  r.injected = acc->faults_injected();
  r.bound = pipe.false_accept_bound();
  return r;
}

// Largest |got - want| relative to the largest |want|.
double relative_error(const SplitRun& r) {
  EXPECT_EQ(r.got.shape(), r.want.shape());
  double num = 0, den = 0;
  for (int64_t i = 0; i < r.want.numel(); ++i) {
    num = std::max(num, static_cast<double>(std::fabs(r.got.data()[i] - r.want.data()[i])));
    den = std::max(den, static_cast<double>(std::fabs(r.want.data()[i])));
  }
  return num / den;
}

class FieldPipeline : public ::testing::TestWithParam<SchemeKind> {};

TEST_P(FieldPipeline, LeNetMatchesTheFloatEngineWithinQuantisation) {
  for (int64_t batch : {1, 4}) {
    const SplitRun r = run_split("lenet5", GetParam(), false, 0, batch);
    EXPECT_LT(relative_error(r), 2e-3) << "batch " << batch;  // measured: 5.9e-4, 6.6e-4
    EXPECT_EQ(r.bound, 1.0);
  }
}

TEST_P(FieldPipeline, EveryInjectedFaultIsDetectedAndTheAnswerStaysRight) {
  const SplitRun r = run_split("lenet5", GetParam(), true, 3, 2);
  EXPECT_EQ(r.injected, 3);
  EXPECT_EQ(r.detected, 3);
  EXPECT_LT(relative_error(r), 2e-3);
  EXPECT_LT(r.bound, 1e-9);
}

INSTANTIATE_TEST_SUITE_P(SlalomAndDarkNight, FieldPipeline,
                         ::testing::Values(SchemeKind::Slalom, SchemeKind::DarkNight),
                         [](const auto& info) { return std::string(scheme_name(info.param)); });

}  // namespace
}  // namespace veil::split
