#include "veil/nn/trainer.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <numeric>
#include <random>

#include "veil/core/error.hpp"
#include "veil/model/zoo.hpp"
#include "veil/nn/executor.hpp"

namespace veil::nn {
namespace {

// Two Gaussian blobs per class on an 8x8 "image": learnable by any of the architectures.
data::Dataset blobs(int64_t n, int64_t classes, uint64_t seed) {
  data::Dataset d;
  d.name = "blobs";
  d.num_classes = classes;
  d.images = Tensor({n, 1, 8, 8});
  std::mt19937 rng(static_cast<unsigned>(seed));
  std::normal_distribution<float> noise(0, 0.15f);
  for (int64_t i = 0; i < n; ++i) {
    int32_t y = static_cast<int32_t>(i % classes);
    d.labels.push_back(y);
    float* img = d.images.data() + i * 64;
    for (int k = 0; k < 64; ++k) img[k] = 0.2f + noise(rng);
    // Each class lights up its own 2x2 patch.
    int r = static_cast<int>(2 * (y / 4)), c = static_cast<int>(2 * (y % 4));
    for (int dy = 0; dy < 2; ++dy)
      for (int dx = 0; dx < 2; ++dx) img[(r + dy) * 8 + c + dx] += 1.0f;
  }
  return d;
}

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

}  // namespace
}  // namespace veil::nn
