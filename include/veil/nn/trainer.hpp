// Training and evaluation loops over a labelled dataset.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "veil/data/dataset.hpp"
#include "veil/data/normalization.hpp"
#include "veil/model/graph.hpp"
#include "veil/nn/sgd.hpp"

namespace veil::nn {

enum class LrSchedule { Constant, Step, Cosine };

// Fine-tuning against a teacher's logits (distillation_loss in loss.hpp) and, optionally, its
// intermediate feature maps (attention_transfer_loss). The teacher runs in inference mode on the
// same augmented batch as the student, through its own input normalisation, and is never changed.
struct Distillation {
  model::Model* teacher = nullptr;  // null: plain cross-entropy
  data::Normalization normalization;
  double alpha = 0.9;  // weight of the soft term
  double temperature = 4;
  // Values ([N, C, H, W]) both models compute under these names, matched by attention transfer
  // with weight `feature_beta` added to the logit loss; empty: logits only. A block-ReLU model
  // made by `veil relu apply` keeps its original's value names, so stage_outputs(student) fits.
  std::vector<std::string> features;
  double feature_beta = 1000;  // the attention-transfer paper's beta
};

// The end of every resolution stage: for each spatial size [H, W] of a rank-4 activation (Relu
// or BlockRelu output), the output of the last such node of that size, in graph order. For a
// ResNet these are the outputs of its stages (Zagoruyko and Komodakis match there).
std::vector<std::string> stage_outputs(const model::Model& model);

struct TrainOptions {
  int epochs = 10;
  int64_t batch_size = 64;
  float lr = 0.05f;
  LrSchedule schedule = LrSchedule::Cosine;
  int step_epochs = 5;  // Step: multiply lr by step_gamma every step_epochs
  float step_gamma = 0.1f;
  SgdOptions sgd;
  int64_t crop_pad = 0;  // random crop after zero padding by this many pixels (0 = off)
  bool flip = false;     // random horizontal flip
  uint64_t seed = 1;     // shuffling and augmentation (std::mt19937: not secret)
  data::Normalization normalization;
  bool progress = true;
  // Only these initializers are trained (empty: every trainable one).
  std::vector<std::string> trainable;
  Distillation distill;
};

struct EpochStats {
  int epoch = 0;  // 1-based
  double lr = 0;
  double train_loss = 0;
  double train_top1 = 0;  // fraction
  double test_top1 = -1;  // fraction, -1 without a test set
  double test_top5 = -1;
  double seconds = 0;
  double images_per_s = 0;
};

struct EvalResult {
  int64_t count = 0;
  double top1 = 0;  // fraction
  double top5 = 0;
  int64_t non_finite = 0;  // images whose logits hold NaN or an infinity (counted as misses)
  double seconds = 0;
  double images_per_s = 0;
};

// Trains `model` in place (its initializers, including BN running statistics) and returns one
// record per epoch. `test` may be null; `on_epoch` is called after each epoch.
std::vector<EpochStats> train(model::Model& model, const data::Dataset& train_set,
                              const data::Dataset* test, const TrainOptions& options,
                              const std::function<void(const EpochStats&)>& on_epoch = {});

struct EvalOptions {
  int64_t batch_size = 256;
  data::Normalization normalization;
  bool progress = true;
};

EvalResult evaluate(model::Model& model, const data::Dataset& set, const EvalOptions& options);

// The learning rate of `epoch` (0-based) under `options`.
double learning_rate(const TrainOptions& options, int epoch);

// Adds the top-1 and top-5 hits of one batch of logits [N, C] with N labels. The label's rank is
// that of a stable arg-max (a class scoring the same as the label counts above it when its index
// is lower), so a model that outputs constant logits scores chance, not 100 %. A row holding NaN
// or an infinity has no meaningful ranking (every comparison with NaN is false, which would make
// the label rank first): it is a miss. Returns the number of such rows. Throws InvalidArgument
// when the shapes do not match or a label is outside [0, C).
int64_t count_hits(const Tensor& logits, std::span<const int32_t> labels, int64_t& top1,
                   int64_t& top5);

}  // namespace veil::nn
