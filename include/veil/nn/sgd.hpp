// Stochastic gradient descent with momentum and decoupled-from-nothing (L2) weight decay, the
// PyTorch formulation: v = m v + (g + wd w); w -= lr v.
#pragma once

#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "veil/model/graph.hpp"
#include "veil/nn/executor.hpp"

namespace veil::nn {

struct SgdOptions {
  float momentum = 0.9f;
  float weight_decay = 5e-4f;  // applied to Conv/Gemm/MatMul weights only, not biases or BN
  bool nesterov = false;
};

class Sgd {
 public:
  Sgd(model::Model& model, std::vector<std::string> params, SgdOptions options = {});
  // Updates the model's initializers in place from `grads` (missing entries are skipped).
  void step(const TensorMap& grads, float lr);

  // The momentum buffers, one per parameter in the constructor's order (a checkpoint keeps them:
  // a run continued without them would restart its momentum from zero).
  std::vector<std::pair<std::string, std::vector<float>>> velocity() const;
  // Puts back what velocity() returned. Throws InvalidArgument unless it names exactly this
  // optimizer's parameters, each with its size.
  void restore_velocity(const std::vector<std::pair<std::string, std::vector<float>>>& velocity);

 private:
  model::Model& model_;
  std::vector<std::string> params_;
  std::unordered_map<std::string, bool> decay_;
  std::unordered_map<std::string, std::vector<float>> velocity_;
  SgdOptions options_;
};

}  // namespace veil::nn
