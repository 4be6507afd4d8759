// Accuracy of a model on a labelled dataset, and the input preparation the lock commands share.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "veil/core/tensor.hpp"
#include "veil/data/dataset.hpp"
#include "veil/model/graph.hpp"
#include "veil/nn/executor.hpp"

namespace veil::lock {

// Turns a dataset batch [N, C, H, W] in [0, 1] into what the graph's first input expects:
// per-channel normalisation from the metadata "veil.normalize.mean"/"veil.normalize.std" (when
// present) and a reshape to [N, features] for a rank-2 input.
Tensor prepare_input(const model::Model& model, const Tensor& images);

// One forward pass over a batch of dataset images (prepare_input applied): every output of the
// model, and its first output viewed as [N, classes] logits.
struct BatchForward {
  std::vector<Tensor> outputs;
  Tensor logits;
};
BatchForward forward_batch(nn::Executor& executor, const model::Model& model, const Tensor& images,
                           nn::Mode mode);

// Back-propagates d(objective)/d(logits) ([N, classes], as from softmax_cross_entropy) through
// the pass that produced `forward`: the gradient takes the first output's shape, every other
// output gets a zero gradient.
void backward_from_logits(nn::Executor& executor, const BatchForward& forward, Tensor logits_grad);

struct Accuracy {
  double top1 = 0;  // fractions in [0, 1]
  double top5 = 0;
  int64_t count = 0;
};

// Runs the model in inference mode over the dataset in batches. The second form uses a caller's
// executor (e.g. one with the runtime encryption scheduler's hooks installed).
Accuracy evaluate(model::Model& model, const data::Dataset& dataset, int64_t batch = 256);
Accuracy evaluate(nn::Executor& executor, const model::Model& model, const data::Dataset& dataset,
                  int64_t batch = 256);

}  // namespace veil::lock
