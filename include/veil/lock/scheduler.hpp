// Runtime encryption scheduling (RES, Cai et al., ICCAD 2019, Sec. V): the locked model stays
// locked in memory; just before a node runs, the key entries of the weights it reads are
// restored, and right after it ran they are re-encrypted, so at most one layer is ever in
// plaintext and an interruption at any time exposes at most that layer. Cost: two weight writes
// per encrypted weight per inference.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "veil/lock/key.hpp"
#include "veil/model/graph.hpp"
#include "veil/nn/executor.hpp"

namespace veil::lock {

struct SchedulerStats {
  int64_t weight_writes = 0;  // total, since construction or reset()
  int64_t layer_decryptions = 0;
  int64_t max_plaintext_layers = 0;  // most layers in plaintext at the same time
};

class RuntimeScheduler {
 public:
  // `locked` must be the model the key is bound to (IntegrityError otherwise) and outlive the
  // scheduler; the key is copied.
  RuntimeScheduler(model::Model& locked, const LockKey& key);

  // Installs the before/after hooks on `executor`, which must run on the same model.
  void attach(nn::Executor& executor);

  const SchedulerStats& stats() const { return stats_; }
  void reset_stats() { stats_ = {}; }
  // Number of key layers currently in plaintext (0 between inferences).
  int64_t plaintext_layers() const { return plaintext_; }
  // Weight writes one inference costs: 2 x encrypted weights of every layer.
  int64_t writes_per_inference() const;

 private:
  void before(const model::Node& node);
  void after(const model::Node& node);

  model::Model& model_;
  LockKey key_;
  std::map<std::string, size_t> layer_of_;  // tensor -> index into key_.layers
  std::map<std::string, int> open_;         // tensor -> nodes currently using it in plaintext
  nn::Executor* executor_ = nullptr;
  SchedulerStats stats_;
  int64_t plaintext_ = 0;
};

}  // namespace veil::lock
