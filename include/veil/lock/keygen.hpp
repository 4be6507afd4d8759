// Key generation: SFGE and i-SFGE (Cai et al., "Enabling Secure in-Memory Neural Network
// Computing by Sparse Fast Gradient Encryption", ICCAD 2019, Sec. IV), plus a stealthy variant.
//
// SFGE (the reference): gradients of the cross-entropy loss, summed over a sample set from the
// training split, w.r.t. every Conv/Gemm/MatMul weight (never biases or BN), model in inference
// semantics. Per layer number = min(floor(numel * max_percent), num); the `number` largest
// |gradient| positions get w += intensity * sign(grad). i-SFGE: `num` rounds, each recomputing
// the summed gradient at the already perturbed weights and adding the arg-max |grad| position per
// layer (excluding earlier picks).
//
// Stealthy (ours): the absolute 0.1-0.2 steps of the reference leave the perturbed weights far
// outside the layer's distribution, which an attacker detects (see attack.hpp). In stealthy mode
// a chosen weight is moved to a value drawn inside the layer's own distribution — uniformly
// between the quantiles [band_low, band_high] on the side the gradient points to (its mirror
// [1 - band_high, 1 - band_low] for a negative gradient) — positions are ranked by the first-order
// loss increase |g| * (distance to that band), and spread across output channels (at most
// ceil(number / channels) per channel). `intensity` is not used in this mode.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "veil/core/random.hpp"
#include "veil/data/dataset.hpp"
#include "veil/lock/key.hpp"
#include "veil/model/graph.hpp"

namespace veil::lock {

struct KeygenOptions {
  int64_t num = 20;
  float intensity = 0.2f;
  double max_percent = 0.001;
  int64_t samples = 1000;  // informational here: the caller passes the sample set
  bool incremental = false;
  LockMode mode = LockMode::Sfge;
  int64_t batch = 100;
  double band_low = 0.75;  // stealthy mode: target quantile band (upper side)
  double band_high = 0.99;
  bool spread = true;        // stealthy mode: spread positions across output channels
  std::optional<Seed> seed;  // stealthy draws; from the OS CSPRNG when unset
  std::string dataset;       // recorded in the key
  // Called after every i-SFGE round (round index from 0) — progress reporting.
  std::function<void(int64_t round, int64_t rounds)> on_round;
};

// Throws InvalidArgument with one clear message for num < 0, intensity <= 0 (or not finite),
// max_percent outside (0, 1], samples < 1, batch < 1, or a bad stealth band.
void validate_options(const KeygenOptions& options);

// number = min(floor(numel * max_percent), num) — the per-layer budget of the reference.
int64_t layer_budget(int64_t numel, int64_t num, double max_percent);

// The k positions with the largest |g| (ties: lower index first), skipping excluded positions
// and exact zeros (whose sign(g) = 0 would leave the weight unchanged), in decreasing order.
std::vector<uint64_t> top_k_abs(std::span<const float> grad, int64_t k,
                                const std::vector<bool>* excluded = nullptr);

// Summed (not averaged) gradient of the softmax cross-entropy over every example of `samples`
// w.r.t. each tensor in `tensors`, evaluated with inference-mode semantics (BN running stats,
// no dropout). Returns one vector per tensor name.
std::map<std::string, std::vector<float>> summed_gradients(const model::Model& model,
                                                           const data::Dataset& samples,
                                                           const std::vector<std::string>& tensors,
                                                           int64_t batch = 100);

// Generates a key for the plaintext `model`; fingerprints are bound (see key.hpp). The model is
// not modified. The key's params.keygen_seconds is measured here.
LockKey generate_key(const model::Model& model, const data::Dataset& samples,
                     const KeygenOptions& options);

}  // namespace veil::lock
