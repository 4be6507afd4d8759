// Attacks on a locked model, to measure the "hard to crack" claim SFGE makes but never tests.
//
// Outlier attack: the attacker holds only the locked model. For every Conv/Gemm/MatMul weight
// tensor it ranks the weights by their robust z-score |w - median| / (1.4826 * MAD) (Iglewicz &
// Hoaglin's modified z-score), resets the top suspects to the layer median and uses the model.
// With the key (held by the evaluator only) precision / recall of the guesses are scored against
// chance (guessing uniformly at random with the same budget).
//
// Fine-tuning attack: a few epochs of SGD on the locked model with a small share of the
// training data (the attacker's own labelled data).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "veil/data/dataset.hpp"
#include "veil/lock/key.hpp"
#include "veil/model/graph.hpp"

namespace veil::lock {

// Modified z-scores of a tensor: |w - median| / (1.4826 * MAD); MAD == 0 falls back to the mean
// absolute deviation (then to 1).
std::vector<double> robust_z_scores(std::span<const float> w);

struct OutlierAttackOptions {
  // Suspects per tensor: a fixed count (>= 0) ...
  int64_t suspects_per_layer = 20;
  // ... or, when > 0, every weight whose robust z-score exceeds this threshold.
  double z_threshold = 0;
};

struct OutlierLayerResult {
  std::string tensor;
  int64_t numel = 0;
  int64_t encrypted = 0;  // key entries in this tensor (0 when scored without a key)
  int64_t suspects = 0;
  int64_t hits = 0;  // suspects that are encrypted positions
  double max_z = 0;  // largest robust z-score in the tensor
};

struct OutlierAttackResult {
  std::vector<OutlierLayerResult> layers;
  int64_t suspects = 0, hits = 0, encrypted = 0, weights = 0;
  double precision = 0;         // hits / suspects
  double recall = 0;            // hits / encrypted
  double chance_precision = 0;  // expected precision of random guessing with the same budget
  double exact_restored = 0;    // share of encrypted weights whose plaintext bits came back
};

// Runs the attack on `graph` in place (the "repaired" model is left in it). `key` may be null;
// then only the suspects are reported.
OutlierAttackResult outlier_attack(model::Graph& graph, const OutlierAttackOptions& options,
                                   const LockKey* key);

struct FinetuneOptions {
  int64_t epochs = 3;
  float learning_rate = 0.01f;
  float momentum = 0.9f;
  int64_t batch = 32;
  uint32_t shuffle_seed = 1;  // data order only (std::mt19937), nothing secret
};

// Plain mini-batch SGD with momentum on every trainable parameter (training mode); returns the
// mean training loss of the last epoch.
double finetune(model::Model& model, const data::Dataset& train, const FinetuneOptions& options);

}  // namespace veil::lock
