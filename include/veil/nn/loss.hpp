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

// Attention transfer (Zagoruyko and Komodakis, "Paying More Attention to Attention", ICLR 2017,
// section 3.1, in the form of the authors' code): a feature map A [N, C, H, W] gives each image
// the spatial map Q = mean over channels of A^2, flattened and scaled to unit L2 norm (a norm
// under 1e-12 counts as 1e-12); then
//   loss = beta / 2 * mean over images and positions of (q_student - q_teacher)^2.
// It tells the student *where* the teacher's features are strong, not their values, so a
// block-ReLU student whose activations differ by design can still follow its full-ReLU
// teacher stage by stage. `grad` is d(loss)/d(student); `correct` stays 0. Throws
// InvalidArgument when the shapes differ, are not rank 4, or beta is negative or not finite,
// and Error when the teacher's features are not finite.
LossResult attention_transfer_loss(const Tensor& student, const Tensor& teacher, double beta);

}  // namespace veil::nn
