#include "veil/nn/sgd.hpp"

#include <unordered_set>

#include "veil/core/error.hpp"

namespace veil::nn {

Sgd::Sgd(model::Model& model, std::vector<std::string> params, SgdOptions options)
    : model_(model), params_(std::move(params)), options_(options) {
  for (const auto& w : model::weight_tensors(model_.graph)) decay_[w.tensor] = true;
  for (const auto& p : params_) {
    auto it = model_.graph.initializers.find(p);
    if (it == model_.graph.initializers.end())
      throw InvalidArgument("SGD: no initializer named '" + p + "'");
    velocity_[p].assign(static_cast<size_t>(it->second.numel()), 0.0f);
  }
}

void Sgd::step(const TensorMap& grads, float lr) {
  const float m = options_.momentum;
  for (const auto& p : params_) {
    auto g = grads.find(p);
    if (g == grads.end()) continue;
    auto w = model_.graph.initializers.at(p).floats();
    auto gv = g->second.floats();
    if (gv.size() != w.size())
      throw InvalidArgument("SGD: gradient of '" + p + "' has the wrong size");
    auto& v = velocity_[p];
    const float wd = decay_.count(p) ? options_.weight_decay : 0.0f;
    for (size_t i = 0; i < w.size(); ++i) {
      float d = gv[i] + wd * w[i];
      v[i] = m * v[i] + d;
      w[i] -= lr * (options_.nesterov ? d + m * v[i] : v[i]);
    }
  }
}

std::vector<std::pair<std::string, std::vector<float>>> Sgd::velocity() const {
  std::vector<std::pair<std::string, std::vector<float>>> out;
  out.reserve(params_.size());
  for (const auto& p : params_) out.emplace_back(p, velocity_.at(p));
  return out;
}

void Sgd::restore_velocity(
    const std::vector<std::pair<std::string, std::vector<float>>>& velocity) {
  if (velocity.size() != params_.size())
    throw InvalidArgument("SGD: " + std::to_string(velocity.size()) + " momentum buffers for " +
                          std::to_string(params_.size()) + " parameters");
  std::unordered_set<std::string> seen;
  for (const auto& [name, v] : velocity) {
    if (!seen.insert(name).second)
      throw InvalidArgument("SGD: two momentum buffers for '" + name + "'");
    auto it = velocity_.find(name);
    if (it == velocity_.end())
      throw InvalidArgument("SGD: momentum buffer for '" + name + "', which is not trained");
    if (it->second.size() != v.size())
      throw InvalidArgument("SGD: momentum buffer of '" + name + "' has the wrong size");
  }
  // Checked in full first: a refused restore leaves the buffers as they were.
  for (const auto& [name, v] : velocity) velocity_[name] = v;
}

}  // namespace veil::nn
