#include "veil/nn/sgd.hpp"

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

}  // namespace veil::nn
