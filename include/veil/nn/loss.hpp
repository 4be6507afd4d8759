// Softmax cross-entropy over logits [N, C] with integer labels.
#pragma once

#include <cstdint>
#include <span>

#include "veil/core/tensor.hpp"

namespace veil::nn {

struct LossResult {
  double loss = 0;      // mean over the batch
  int64_t correct = 0;  // top-1 hits
  Tensor grad;          // d(mean loss)/d(logits), same shape as logits
};

// Numerically stable (log-sum-exp). Throws InvalidArgument on a label outside [0, C).
LossResult softmax_cross_entropy(const Tensor& logits, std::span<const int32_t> labels,
                                 bool want_grad = true);

}  // namespace veil::nn
