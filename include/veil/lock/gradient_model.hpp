// A copy of a model whose training-mode forward equals its inference-mode forward, so that
// gradients can be taken "in eval mode" as the SFGE reference does (model.eval() in PyTorch):
// every BatchNormalization becomes the affine map it computes with its running statistics
// (Mul + Add with per-channel constants) and every Dropout is bypassed. The Conv/Gemm/MatMul
// weights keep their names, so gradients map one-to-one onto the original tensors.
#pragma once

#include "veil/model/graph.hpp"

namespace veil::lock {

model::Model gradient_model(const model::Model& model);

}  // namespace veil::lock
