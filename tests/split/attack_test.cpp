#include "veil/split/attack.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "veil/data/dataset.hpp"
#include "veil/model/zoo.hpp"
#include "veil/nn/preprocess.hpp"
#include "veil/nn/threads.hpp"
#include "veil/nn/trainer.hpp"
#include "veil/split/accelerator.hpp"
#include "veil/split/partition.hpp"
#include "veil/split/pipeline.hpp"
#include "veil/split/restore.hpp"

namespace veil::split {
namespace {

enum class Transform { ShadowNet, DenseMixing };

// The accelerator's view of a ShadowNet run (split.md: W'[pi(n)] = (W_n - R_rho(n)) / s_n,
// W'[pi(N + j)] = R_j, M = ceil(1.2 N), a fixed input mask for every layer but the first), or of
// a dense mixing W' = Q [W; R] with Q random orthogonal, built from the plain scheme's transcript
// of the same queries: the outsourced weights and every reply are recomputed.
Transcript transformed_view(const Transcript& plain, const Partition& part, Transform kind,
                            uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> g(0, 1);
  Transcript view;
  view.scheme = kind == Transform::ShadowNet ? "shadownet" : "dense-mixing";
  std::vector<Tensor> masks;
  for (const auto& step : part.linear) {
    const LinearLayer& l = step.layer;
    const int64_t n = l.out_channels(), dim = l.weight.numel() / n;
    const int64_t m = static_cast<int64_t>(std::ceil(1.2 * static_cast<double>(n)));
    const auto w = l.weight.floats();
    double mean = std::accumulate(w.begin(), w.end(), 0.0) / static_cast<double>(w.size()), var = 0;
    for (float v : w) var += (v - mean) * (v - mean);
    const double sd = std::sqrt(var / static_cast<double>(w.size()));
    std::vector<double> fakes((m - n) * dim);
    for (auto& v : fakes) v = sd * g(rng);
    Shape shape = l.weight.shape();
    shape[0] = m;
    Tensor out(shape);
    if (kind == Transform::ShadowNet) {
      std::vector<int64_t> pi(m);
      std::iota(pi.begin(), pi.end(), 0);
      std::shuffle(pi.begin(), pi.end(), rng);
      std::uniform_int_distribution<int64_t> pick(0, m - n - 1);
      std::uniform_real_distribution<double> scale(0.5, 2.0);
      for (int64_t i = 0; i < n; ++i) {
        const int64_t rho = pick(rng);
        const double s = scale(rng);
        for (int64_t j = 0; j < dim; ++j)
          out.data()[pi[i] * dim + j] =
              static_cast<float>((w[i * dim + j] - fakes[rho * dim + j]) / s);
      }
      for (int64_t k = 0; k < m - n; ++k)
        for (int64_t j = 0; j < dim; ++j)
          out.data()[pi[n + k] * dim + j] = static_cast<float>(fakes[k * dim + j]);
    } else {
      std::vector<double> q(m * m);
      for (auto& v : q) v = g(rng);
      for (int64_t i = 0; i < m; ++i) {  // Gram-Schmidt
        for (int64_t k = 0; k < i; ++k) {
          double d = 0;
          for (int64_t j = 0; j < m; ++j) d += q[i * m + j] * q[k * m + j];
          for (int64_t j = 0; j < m; ++j) q[i * m + j] -= d * q[k * m + j];
        }
        double s = 0;
        for (int64_t j = 0; j < m; ++j) s += q[i * m + j] * q[i * m + j];
        for (int64_t j = 0; j < m; ++j) q[i * m + j] /= std::sqrt(s);
      }
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < dim; ++j) {
          double v = 0;
          for (int64_t k = 0; k < m; ++k)
            v += q[i * m + k] * (k < n ? w[k * dim + j] : fakes[(k - n) * dim + j]);
          out.data()[i * dim + j] = static_cast<float>(v);
        }
    }
    view.layers.push_back(outsourced_geometry(l, out));
    Tensor mask(Shape(l.input_shape));
    if (l.index > 0)
      for (float& v : mask.floats()) v = static_cast<float>(g(rng));
    masks.push_back(mask);
  }
  for (const auto& q : plain.queries) {
    const LinearLayer& l = part.linear[q.layer].layer;
    Tensor x = std::get<Tensor>(q.inputs.at(0));
    const int64_t per = masks[q.layer].numel();
    for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] += masks[q.layer].data()[i % per];
    const Tensor& weight = std::get<Tensor>(view.layers[q.layer].weight);
    Tensor y = apply_linear(with_out_channels(l, weight.shape()[0]), weight, x);
    view.queries.push_back({q.layer, {x}, {y}});
  }
  return view;
}

class AttackTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    nn::set_num_threads(1);  // on a loaded machine OpenMP threads spin at every barrier
    train_ = new data::Dataset(data::load_dataset("fashion-mnist", data::Split::Train, 4000));
    test_ = new data::Dataset(data::load_dataset("fashion-mnist", data::Split::Test, 500));
    victim_ = new model::Model(model::build_arch("lenet5", {1, 28, 28, 10, 3}));
    const auto norm = data::Normalization::fit(*train_);
    nn::set_normalization(*victim_, norm);
    nn::TrainOptions t;
    t.epochs = 2;
    t.progress = false;
    nn::train(*victim_, *train_, nullptr, t);
    // The victim answers 256 training images the attacker does not hold.
    options_.data_fraction = 0.1;  // 400 of the 4000 images here
    options_.surrogate_epochs = 4;
    options_.finetune_epochs = 3;
    options_.test_limit = 500;
    auto held = attacker_images(train_->size(), options_);
    std::vector<char> taken(train_->size(), 0);
    for (auto i : held) taken[i] = 1;
    std::vector<int64_t> queries;
    for (int64_t i = 0; i < train_->size() && queries.size() < 256; ++i)
      if (!taken[i]) queries.push_back(i);
    plain_ = new Transcript;
    AcceleratorOptions ao;
    ao.record = plain_;
    auto acc = make_local_accelerator(ao);
    PipelineOptions po;
    po.scheme = SchemeKind::Plain;
    Pipeline pipe(*victim_, po, *acc);
    for (size_t b = 0; b < queries.size(); b += 64) {
      Tensor x = train_->batch(std::vector<int64_t>(queries.begin() + b, queries.begin() + b + 64));
      norm.apply(x);
      pipe.infer(x);
    }
  }
  static void TearDownTestSuite() { delete train_, delete test_, delete victim_, delete plain_; }
  static data::Dataset* train_;
  static data::Dataset* test_;
  static model::Model* victim_;
  static Transcript* plain_;
  static AttackOptions options_;
};
data::Dataset* AttackTest::train_ = nullptr;
data::Dataset* AttackTest::test_ = nullptr;
model::Model* AttackTest::victim_ = nullptr;
Transcript* AttackTest::plain_ = nullptr;
AttackOptions AttackTest::options_;

TEST_F(AttackTest, RecoversAShadowNetLeNet) {
  const auto view = transformed_view(*plain_, partition(*victim_), Transform::ShadowNet, 5);
  const AttackReport r = steal_model(*victim_, view, *train_, *test_, options_);
  ASSERT_EQ(r.layers.size(), 5u);
  for (const auto& l : r.layers) {
    EXPECT_EQ(l.recovery, "paired") << l.name << " confidence " << l.confidence;
    EXPECT_TRUE(l.unpermuted) << l.name;
    EXPECT_GE(l.paired, 0.9) << l.name;
    // fc1 has units that never fire on these queries: nothing can place them (nor do they matter)
    EXPECT_GE(l.matched, 0.85) << l.name;
    EXPECT_GT(l.weight_cosine, 0.85) << l.name;
  }
  EXPECT_EQ(r.chosen, "recovered");
  EXPECT_GE(r.fidelity, 0.9);
  EXPECT_GT(r.fidelity, r.surrogate_fidelity);
  EXPECT_EQ(r.test_images, 500);
  EXPECT_EQ(r.transcript_images, 256);
}

TEST_F(AttackTest, ClaimsNothingAgainstDenseMixingAndFallsBackToTheSurrogate) {
  auto o = options_;
  o.finetune_epochs = 0;
  const auto view = transformed_view(*plain_, partition(*victim_), Transform::DenseMixing, 5);
  const AttackReport r = steal_model(*victim_, view, *train_, *test_, o);
  for (const auto& l : r.layers) EXPECT_EQ(l.recovery, "none") << l.name << " " << l.confidence;
  EXPECT_EQ(r.chosen, "surrogate");
  EXPECT_EQ(r.fidelity, r.surrogate_fidelity);
  EXPECT_EQ(r.recovered_fidelity, -1);
}

TEST_F(AttackTest, TakesWeightsInTheClear) {
  auto o = options_;
  o.surrogate_epochs = 1;
  o.finetune_epochs = 0;
  const AttackReport r = steal_model(*victim_, *plain_, *train_, *test_, o);
  for (const auto& l : r.layers) {
    EXPECT_EQ(l.recovery, "clear");
    EXPECT_NEAR(l.weight_cosine, 1, 1e-6);
  }
  // Biases are not outsourced: the model without them is the one the attacker has here.
  EXPECT_GE(r.recovered_fidelity, 0);
}

}  // namespace
}  // namespace veil::split
