// Training and evaluation loops over a labelled dataset.
#pragma once

#include <cstdint>
#include <functional>
#include <random>
#include <span>
#include <string>
#include <utility>
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

// Where a run stands between two steps. With the model's initializers it is everything train()
// needs to go on exactly as if it had not stopped: the same batches, augmentation and updates,
// so a continued run ends with the weights of an uninterrupted one (at the same thread count;
// oneDNN's reductions may differ between thread counts). Stored by checkpoint.hpp.
struct TrainState {
  int epoch = 0;     // epochs finished
  int64_t step = 0;  // steps of epoch `epoch + 1` finished (0: it has not started)
  // The shuffling and augmentation generator, as std::mt19937_64 writes itself to a stream.
  std::string rng;
  // The sample order: the current epoch's while step > 0, else the last one's (each epoch
  // shuffles the previous order, so it is state too). Empty before the first epoch.
  std::vector<int64_t> order;
  // The unfinished epoch's running totals (all 0 when step is 0).
  double loss_sum = 0;
  int64_t correct = 0;
  int64_t seen = 0;
  double seconds = 0;
  std::vector<EpochStats> history;                                   // one per finished epoch
  std::vector<std::pair<std::string, std::vector<float>>> velocity;  // Sgd::velocity()
};

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
  // Checkpoints: `on_checkpoint` gets the state after every epoch (its test evaluation
  // included) and, with checkpoint_every > 0, after every that many steps as well; returning
  // false stops the run there. `resume` continues a run from a state it handed out, with the
  // model's initializers already put back to that moment (checkpoint.hpp does both).
  std::function<bool(const TrainState&)> on_checkpoint;
  int64_t checkpoint_every = 0;
  const TrainState* resume = nullptr;
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
// record per finished epoch (with `resume`, the earlier ones too; fewer than `epochs` when
// on_checkpoint stopped the run). `test` may be null; `on_epoch` is called after each epoch this
// call runs. A `resume` state that does not fit the options and data (another order size, a step
// past the epoch's end, momentum for other parameters, ...) is refused with InvalidArgument.
std::vector<EpochStats> train(model::Model& model, const data::Dataset& train_set,
                              const data::Dataset* test, const TrainOptions& options,
                              const std::function<void(const EpochStats&)>& on_epoch = {});

struct EvalOptions {
  int64_t batch_size = 256;
  data::Normalization normalization;
  bool progress = true;
};

EvalResult evaluate(model::Model& model, const data::Dataset& set, const EvalOptions& options);

// TrainState::rng: the generator as it writes itself to a stream, and back. The reader refuses
// (InvalidArgument) any text the writer would not have produced.
std::string generator_state(const std::mt19937_64& rng);
std::mt19937_64 generator_from_state(const std::string& text);

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
