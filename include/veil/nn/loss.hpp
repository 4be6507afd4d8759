// Softmax cross-entropy over logits [N, C] with integer labels, and knowledge distillation.
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

// Knowledge distillation (Hinton, Vinyals and Dean, "Distilling the Knowledge in a Neural
// Network", 2015, section 2): the student matches the teacher's softened class probabilities.
//   loss = (1 - alpha) * CE(student, labels) + alpha * T^2 * KL(softmax(t/T) || softmax(s/T))
// The T^2 factor keeps the soft term's gradient on the scale of the hard term's as T changes.
// ReLU-reduction work fine-tunes the reduced network against the full one this way (SNL,
// DeepReDuce); veil uses it to fine-tune block-ReLU models (docs/MPC.md). `correct`
// counts the student's top-1 hits. Throws InvalidArgument when the shapes differ, alpha is
// outside [0, 1] or T is not positive, and Error when the teacher's logits are not finite.
LossResult distillation_loss(const Tensor& student, const Tensor& teacher,
                             std::span<const int32_t> labels, double alpha, double temperature);

}  // namespace veil::nn
