#include "veil/nn/trainer.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <numeric>
#include <random>

#include "blobs.hpp"
#include "veil/core/error.hpp"
#include "veil/model/zoo.hpp"
#include "veil/nn/executor.hpp"
#include "veil/nn/loss.hpp"

namespace veil::nn {
namespace {

using testing::blobs;

TEST(Trainer, LearningRateSchedules) {
  TrainOptions o;
  o.lr = 0.1f;
  o.epochs = 10;
  o.schedule = LrSchedule::Cosine;
  EXPECT_NEAR(learning_rate(o, 0), 0.1, 1e-7);
  EXPECT_NEAR(learning_rate(o, 5), 0.05, 1e-7);
  o.schedule = LrSchedule::Step;
  o.step_epochs = 3;
  o.step_gamma = 0.5f;
  EXPECT_NEAR(learning_rate(o, 2), 0.1, 1e-7);
  EXPECT_NEAR(learning_rate(o, 3), 0.05, 1e-7);
  EXPECT_NEAR(learning_rate(o, 6), 0.025, 1e-7);
}

TEST(Trainer, CountHitsAgreesWithSorting) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-1, 1);
  Tensor logits({50, 10});
  for (float& v : logits.floats()) v = u(rng);
  std::vector<int32_t> y(50);
  for (auto& v : y) v = static_cast<int32_t>(rng() % 10);
  int64_t t1 = 0, t5 = 0, e1 = 0, e5 = 0;
  count_hits(logits, y, t1, t5);
  for (int i = 0; i < 50; ++i) {
    std::vector<int> idx(10);
    std::iota(idx.begin(), idx.end(), 0);
    const float* row = logits.data() + i * 10;
    std::sort(idx.begin(), idx.end(), [&](int a, int b) { return row[a] > row[b]; });
    e1 += idx[0] == y[i];
    e5 += std::find(idx.begin(), idx.begin() + 5, y[i]) != idx.begin() + 5;
  }
  EXPECT_EQ(t1, e1);
  EXPECT_EQ(t5, e5);
}

// Constant logits rank every class equal: a stable arg-max picks class 0, so only the images
// labelled 0 are hits (ties must not favour the label, or a dead model would score 100 %).
TEST(Trainer, CountHitsBreaksTiesLikeAnArgMax) {
  Tensor logits({6, 3});
  for (float& v : logits.floats()) v = 0.25f;
  const std::vector<int32_t> y = {0, 1, 2, 0, 2, 1};
  int64_t t1 = 0, t5 = 0;
  EXPECT_EQ(count_hits(logits, y, t1, t5), 0);
  EXPECT_EQ(t1, 2);
  EXPECT_EQ(t5, 6);
  logits.floats()[4] = std::numeric_limits<float>::infinity();  // row 1
  t1 = t5 = 0;
  EXPECT_EQ(count_hits(logits, y, t1, t5), 1);
  EXPECT_EQ(t5, 5);
  const std::vector<int32_t> bad = {0, 1, 3, 0, 2, 1};
  EXPECT_THROW(count_hits(logits, bad, t1, t5), InvalidArgument);
}

class TrainArch : public ::testing::TestWithParam<const char*> {};

TEST_P(TrainArch, LearnsSeparableData) {
  auto train_set = blobs(512, 8, 1);
  auto test_set = blobs(128, 8, 2);
  auto m = model::build_arch(GetParam(), {1, 8, 8, 8, 3});
  TrainOptions o;
  o.epochs = 4;
  o.batch_size = 32;
  o.lr = 0.05f;
  o.progress = false;
  auto hist = train(m, train_set, &test_set, o);
  ASSERT_EQ(hist.size(), 4u);
  EXPECT_LT(hist.back().train_loss, hist.front().train_loss);
  EXPECT_GT(hist.back().test_top1, 0.9) << GetParam();
}

INSTANTIATE_TEST_SUITE_P(Archs, TrainArch, ::testing::Values("mlp", "resnet20"));

TEST(Trainer, DeterministicForASeed) {
  auto set = blobs(128, 4, 9);
  auto a = model::build_arch("mlp", {1, 8, 8, 4, 1});
  auto b = a;
  TrainOptions o;
  o.epochs = 1;
  o.progress = false;
  o.flip = true;
  o.crop_pad = 1;
  train(a, set, nullptr, o);
  train(b, set, nullptr, o);
  EXPECT_TRUE(a.graph.initializers.at("fc1.weight") == b.graph.initializers.at("fc1.weight"));
}

// alpha = 0 is plain cross-entropy: the same weights, bit for bit, whatever the teacher says.
TEST(Trainer, DistillationAtAlphaZeroIsPlainTraining) {
  auto set = blobs(128, 4, 9);
  auto a = model::build_arch("mlp", {1, 8, 8, 4, 1});
  auto b = a;
  auto teacher = model::build_arch("mlp", {1, 8, 8, 4, 2});
  TrainOptions o;
  o.epochs = 1;
  o.progress = false;
  train(a, set, nullptr, o);
  o.distill.teacher = &teacher;
  o.distill.alpha = 0;
  train(b, set, nullptr, o);
  EXPECT_TRUE(a.graph.initializers.at("fc1.weight") == b.graph.initializers.at("fc1.weight"));
}

// alpha = 1 ignores the labels: a student trained on scrambled labels still learns the task
// from a teacher that knows it (and, without the teacher, does not).
TEST(Trainer, DistillationLearnsFromTheTeacherAlone) {
  auto train_set = blobs(512, 8, 1);
  auto test_set = blobs(128, 8, 2);
  auto teacher = model::build_arch("mlp", {1, 8, 8, 8, 3});
  TrainOptions o;
  o.epochs = 4;
  o.batch_size = 32;
  o.lr = 0.05f;
  o.progress = false;
  ASSERT_GT(train(teacher, train_set, &test_set, o).back().test_top1, 0.9);
  auto scrambled = train_set;
  std::mt19937 rng(4);
  std::shuffle(scrambled.labels.begin(), scrambled.labels.end(), rng);
  auto alone = model::build_arch("mlp", {1, 8, 8, 8, 4});
  auto student = alone;
  EXPECT_LT(train(alone, scrambled, &test_set, o).back().test_top1, 0.5);
  o.distill.teacher = &teacher;
  o.distill.alpha = 1;
  EXPECT_GT(train(student, scrambled, &test_set, o).back().test_top1, 0.9);
  // A teacher with fewer classes than the data is refused before training.
  auto small = model::build_arch("mlp", {1, 8, 8, 4, 5});
  o.distill.teacher = &small;
  EXPECT_THROW(train(student, scrambled, &test_set, o), InvalidArgument);
}

// A ResNet's stages end where the resolution changes: one value per spatial size, each the output
// of a Relu of that size, the last in graph order. An MLP has none.
TEST(Trainer, StageOutputsAreTheLastActivationOfEachResolution) {
  const auto m = model::build_arch("resnet20", {1, 8, 8, 4, 1});
  const auto stages = stage_outputs(m);
  ASSERT_EQ(stages.size(), 3u);  // 8x8, 4x4, 2x2
  std::vector<size_t> at;
  for (const auto& name : stages) {
    size_t found = m.graph.nodes.size();
    for (size_t i = 0; i < m.graph.nodes.size(); ++i)
      if (m.graph.nodes[i].outputs.at(0) == name) found = i;
    ASSERT_LT(found, m.graph.nodes.size()) << name;
    EXPECT_EQ(m.graph.nodes[found].op_type, "Relu") << name;
    at.push_back(found);
  }
  EXPECT_TRUE(std::is_sorted(at.begin(), at.end()));
  // Nothing of the first resolution comes after the first stage's end: the next Relu is 4x4.
  size_t relus_after_first = 0;
  for (size_t i = at[0] + 1; i < at[1]; ++i)
    relus_after_first += m.graph.nodes[i].op_type == "Relu";
  EXPECT_GT(relus_after_first, 0u);
  EXPECT_TRUE(stage_outputs(model::build_arch("mlp", {1, 8, 8, 4, 1})).empty());
}

// The summed attention-transfer distance (beta 1) between `student` and `teacher` at `features`
// on `set`, both in inference mode.
double attention_gap(model::Model student, model::Model teacher,
                     const std::vector<std::string>& features, const data::Dataset& set) {
  for (auto* m : {&student, &teacher})
    for (const auto& f : features) m->graph.outputs.push_back({f, DType::Float32, {}});
  Executor es(student), et(teacher);
  const Tensor x = set.batch(0, set.size());
  const auto s = es.forward({x}), t = et.forward({x});
  double gap = 0;
  for (size_t k = 0; k < features.size(); ++k)
    gap += attention_transfer_loss(s.at(1 + k), t.at(1 + k), 1).loss;
  return gap;
}

// Matching the teacher's stage outputs pulls the student's attention maps toward the teacher's;
// at beta 0 the extra outputs change nothing, bit for bit; the model comes back with its own
// outputs only and the teacher untouched.
TEST(Trainer, FeatureDistillationFollowsTheTeachersStages) {
  auto set = blobs(256, 4, 3);
  auto teacher = model::build_arch("resnet20", {1, 8, 8, 4, 2});
  const auto teacher_before = teacher;
  const auto start = model::build_arch("resnet20", {1, 8, 8, 4, 1});
  const auto features = stage_outputs(start);
  TrainOptions o;
  o.epochs = 2;
  o.batch_size = 32;
  o.lr = 0.01f;
  o.progress = false;
  o.distill.teacher = &teacher;
  o.distill.alpha = 0.5;
  auto logits_only = start, beta_zero = start, matched = start;
  train(logits_only, set, nullptr, o);
  o.distill.features = features;
  o.distill.feature_beta = 0;
  train(beta_zero, set, nullptr, o);
  EXPECT_TRUE(beta_zero.graph.initializers.at("fc.weight") ==
              logits_only.graph.initializers.at("fc.weight"));
  o.distill.feature_beta = 1000;
  train(matched, set, nullptr, o);
  EXPECT_EQ(matched.graph.outputs.size(), start.graph.outputs.size());
  EXPECT_EQ(teacher.graph.outputs.size(), teacher_before.graph.outputs.size());
  EXPECT_TRUE(teacher.graph.initializers.at("fc.weight") ==
              teacher_before.graph.initializers.at("fc.weight"));
  const double before = attention_gap(start, teacher, features, set);
  const double without = attention_gap(logits_only, teacher, features, set);
  const double with = attention_gap(matched, teacher, features, set);
  EXPECT_LT(with, 0.5 * without) << before << " " << without << " " << with;
  EXPECT_LT(with, before) << before << " " << without << " " << with;
}

TEST(Trainer, FeatureDistillationRefusesWhatCannotBeMatched) {
  auto set = blobs(64, 4, 3);
  auto student = model::build_arch("resnet20", {1, 8, 8, 4, 1});
  auto teacher = model::build_arch("resnet20", {1, 8, 8, 4, 2});
  const auto features = stage_outputs(student);
  TrainOptions o;
  o.epochs = 1;
  o.progress = false;
  o.distill.features = features;
  EXPECT_THROW(train(student, set, nullptr, o), InvalidArgument);  // no teacher
  o.distill.teacher = &teacher;
  o.distill.features = {features[0], features[0]};
  EXPECT_THROW(train(student, set, nullptr, o), InvalidArgument);  // named twice
  o.distill.features = {"no_such_value"};
  EXPECT_THROW(train(student, set, nullptr, o), InvalidArgument);
  o.distill.features = {student.graph.inputs.at(0).name};  // an input, not an activation
  EXPECT_THROW(train(student, set, nullptr, o), InvalidArgument);
  auto mlp_teacher = model::build_arch("mlp", {1, 8, 8, 4, 2});
  o.distill.teacher = &mlp_teacher;  // the student's stages are not the teacher's values
  o.distill.features = features;
  EXPECT_THROW(train(student, set, nullptr, o), InvalidArgument);
  o.distill.teacher = &teacher;
  o.distill.feature_beta = std::numeric_limits<double>::infinity();
  EXPECT_THROW(train(student, set, nullptr, o), InvalidArgument);
  EXPECT_EQ(student.graph.outputs.size(), 1u);
}

}  // namespace
}  // namespace veil::nn
