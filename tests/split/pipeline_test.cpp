// The split core against the float engine: a model run through partition + pipeline with the
// plain scheme and an in-process accelerator gives the model's own outputs.
#include "veil/split/pipeline.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "veil/core/error.hpp"
#include "veil/model/shape_inference.hpp"
#include "veil/model/zoo.hpp"
#include "veil/nn/executor.hpp"
#include "veil/nn/reference.hpp"
#include "veil/split/accelerator.hpp"
#include "veil/split/transcript.hpp"

namespace veil::split {
namespace {

Tensor random_tensor(Shape shape, uint32_t seed, float scale = 1.0f) {
  Tensor t(std::move(shape));
  std::mt19937 gen(seed);
  std::normal_distribution<float> d(0.0f, scale);
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = d(gen);
  return t;
}

float max_abs_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  float m = 0;
  for (int64_t i = 0; i < a.numel(); ++i) m = std::max(m, std::fabs(a.data()[i] - b.data()[i]));
  return m;
}

model::Model arch(const std::string& name) {
  model::ArchSpec spec;
  spec.seed = 7;
  model::Model m = model::build_arch(name, spec);
  // Fresh models have zero biases and unit BN statistics: make every per-channel vector (biases,
  // BN scale/shift/mean/var) nonzero so a lost bias or a wrong fold shows.
  std::mt19937 gen(3);
  std::uniform_real_distribution<float> d(0.1f, 0.5f);
  for (auto& [name, t] : m.graph.initializers)
    if (t.shape().size() == 1 && t.dtype() == DType::Float32)
      for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] += d(gen);
  model::infer_shapes(m);
  return m;
}

Tensor float_engine(model::Model m, const Tensor& x) {
  nn::Executor e(m);
  return e.forward({x}).at(0);
}

TEST(LinearEngine, MatchesTheReferenceConvAndGemm) {
  LinearLayer conv;
  conv.kind = LinearKind::Conv;
  conv.input_shape = {3, 9, 8};
  conv.conv.strides = {2, 1};
  conv.conv.pads = {1, 0, 2, 1};
  conv.conv.dilations = {1, 2};
  Tensor w = random_tensor({5, 3, 3, 2}, 1);
  conv.output_shape = {5, 5, 7};
  Tensor x = random_tensor({2, 3, 9, 8}, 2);
  Tensor want = nn::reference::conv2d(x, w, nullptr, conv.conv);
  ASSERT_EQ(want.shape(), (Shape{2, 5, 5, 7}));
  EXPECT_LT(max_abs_diff(apply_linear(conv, w, x), want), 1e-4f);

  LinearLayer dense;
  dense.kind = LinearKind::Dense;
  dense.input_shape = {6};
  dense.output_shape = {4};
  Tensor wd = random_tensor({4, 6}, 3), xd = random_tensor({3, 6}, 4);
  Tensor want_d = nn::reference::gemm(xd, wd, nullptr, 1.0f, 0.0f, false, true);
  EXPECT_LT(max_abs_diff(apply_linear(dense, wd, xd), want_d), 1e-5f);
  EXPECT_THROW(apply_linear(dense, wd, random_tensor({3, 5}, 5)), InvalidArgument);
}

TEST(Partition, LeNetOffloadsEveryConvAndDenseLayer) {
  Partition p = partition(arch("lenet5"));
  EXPECT_EQ(p.linear.size(), 5u);  // 2 conv + 3 dense
  EXPECT_EQ(p.other_macs_per_image, 0);
  int64_t macs = 0;
  for (const auto& l : p.linear) macs += l.layer.macs_per_image();
  EXPECT_EQ(macs, p.linear_macs_per_image);
  EXPECT_FALSE(p.trusted.empty());
  EXPECT_TRUE(p.order.front().linear);  // LeNet starts with a conv
}

class PlainPipeline : public ::testing::TestWithParam<std::string> {};

TEST_P(PlainPipeline, EqualsTheFloatEngine) {
  model::Model m = arch(GetParam());
  Tensor x = random_tensor({3, 1, 28, 28}, 11);
  Tensor want = float_engine(m, x);
  Transcript view;
  AcceleratorOptions ao;
  ao.record = &view;
  auto acc = make_local_accelerator(ao);
  PipelineOptions po;
  po.scheme = SchemeKind::Plain;
  Pipeline pipe(m, po, *acc);
  Tensor got = pipe.infer(x);
  EXPECT_LT(max_abs_diff(got, want), 1e-3f);
  EXPECT_EQ(pipe.stats().images, 3);
  EXPECT_EQ(view.layers.size(), pipe.partition().linear.size());
  EXPECT_EQ(view.queries.size(), pipe.partition().linear.size());  // one batch
  EXPECT_GT(pipe.stats().bytes_sent(), 4 * x.numel() - 1);
  EXPECT_GT(pipe.trusted_bytes(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Archs, PlainPipeline, ::testing::Values("lenet5", "resnet20"));

TEST(LocalAccelerator, InjectsExactlyTheFaultsAskedForAndTheyChangeTheResult) {
  model::Model m = arch("lenet5");
  Tensor x = random_tensor({2, 1, 28, 28}, 12);
  Tensor want = float_engine(m, x);
  AcceleratorOptions ao;
  ao.inject_faults = 3;
  ao.fault_stride = 2;
  auto acc = make_local_accelerator(ao);
  PipelineOptions po;
  po.scheme = SchemeKind::Plain;
  Pipeline pipe(m, po, *acc);
  Tensor got = pipe.infer(x);  // 5 replies: 0, 2, 4 corrupted
  EXPECT_EQ(acc->faults_injected(), 3);
  EXPECT_GT(max_abs_diff(got, want), 1e-2f);  // the plain scheme does not verify
  EXPECT_EQ(pipe.stats().faults_detected(), 0);
}

}  // namespace
}  // namespace veil::split
