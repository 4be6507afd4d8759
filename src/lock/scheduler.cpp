#include "veil/lock/scheduler.hpp"

#include <algorithm>

#include "veil/core/error.hpp"

namespace veil::lock {

RuntimeScheduler::RuntimeScheduler(model::Model& locked, const LockKey& key)
    : model_(locked), key_(key) {
  if (fingerprint(locked.graph) != key.locked_fingerprint)
    throw IntegrityError("runtime scheduling needs the locked model the key is bound to");
  check_key_fits(locked.graph, key_);
  for (size_t i = 0; i < key_.layers.size(); ++i) layer_of_[key_.layers[i].tensor] = i;
}

void RuntimeScheduler::attach(nn::Executor& executor) {
  executor_ = &executor;
  executor.set_hooks(
      {[this](const model::Node& n) { before(n); }, [this](const model::Node& n) { after(n); }});
}

int64_t RuntimeScheduler::writes_per_inference() const { return 2 * key_.total_entries(); }

void RuntimeScheduler::before(const model::Node& node) {
  for (const auto& in : node.inputs) {
    auto it = layer_of_.find(in);
    if (it == layer_of_.end()) continue;
    // A tensor read twice by one node, or by nested hooks, is decrypted once.
    if (open_[in]++ > 0) continue;
    const LayerKey& layer = key_.layers[it->second];
    unlock_tensor(model_.graph.initializers.at(in), layer, /*verify=*/true);
    if (executor_) executor_->parameter_changed(in);
    stats_.weight_writes += static_cast<int64_t>(layer.entries.size());
    ++stats_.layer_decryptions;
    ++plaintext_;
    stats_.max_plaintext_layers = std::max(stats_.max_plaintext_layers, plaintext_);
  }
}

void RuntimeScheduler::after(const model::Node& node) {
  for (const auto& in : node.inputs) {
    auto it = layer_of_.find(in);
    if (it == layer_of_.end()) continue;
    auto open = open_.find(in);
    if (open == open_.end() || open->second == 0) continue;
    if (--open->second > 0) continue;
    const LayerKey& layer = key_.layers[it->second];
    lock_tensor(model_.graph.initializers.at(in), layer, /*verify=*/true);
    if (executor_) executor_->parameter_changed(in);
    stats_.weight_writes += static_cast<int64_t>(layer.entries.size());
    --plaintext_;
  }
}

}  // namespace veil::lock
