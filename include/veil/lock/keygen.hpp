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
//
// Options beyond the reference (defaults reproduce it): a step relative to the layer's weight
// scale (IntensityMode::Relative), a targeted "collapse" objective (Objective::Collapse, see
// key.hpp), and i-SFGE with several positions per layer per round (per_round). They combine with
// both modes; `apply_preset` sets the strongest combination measured in docs/LOCK.md.
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
  IntensityMode intensity_mode = IntensityMode::Absolute;  // sfge mode: step = intensity x scale
  Objective objective = Objective::CrossEntropy;
  int32_t target_class = -1;  // collapse: the class to push every input to; -1 = automatic
  int64_t per_round = 1;      // i-SFGE: positions per layer per round (the reference: 1)
  // Called after every i-SFGE round (round index from 0) — progress reporting.
  std::function<void(int64_t round, int64_t rounds)> on_round;
};

// Throws InvalidArgument with one clear message for num < 0, intensity <= 0 (or not finite),
// max_percent outside (0, 1], samples < 1, batch < 1, a bad stealth band, per_round < 1 or
// target_class < -1.
void validate_options(const KeygenOptions& options);

// Named option sets. "reference" leaves the options as they are; "strong" sets i-SFGE,
// the collapse objective with an automatic target, relative intensity 1.0, num 30,
// max_percent 0.2 (so every layer with >= 150 weights gets the full 30) and 3 positions per
// round; "stealthy" additionally switches to stealthy mode (in-distribution values).
// Throws InvalidArgument for an unknown name.
void apply_preset(KeygenOptions& options, const std::string& name);

// The preset `veil lock keygen` applies when none is named. KeygenOptions' own defaults are the
// reference's knobs, which leave a small network far above chance (LeNet-5: 91 % -> 90 %, see
// docs/LOCK.md); "stealthy" takes LeNet-5 and ResNet-20 to chance with in-distribution values
// that the outlier attack does not find.
inline constexpr const char* kDefaultPreset = "stealthy";

// A weight tensor of the model that the key leaves untouched: its budget
// min(floor(numel * max_percent), num) is 0, or no position was chosen (every gradient zero).
struct UnlockedLayer {
  std::string tensor;
  std::string node;
  int64_t numel = 0;
  int64_t budget = 0;
};

// Every conv/FC weight tensor of `graph` (in graph order) without an entry in `key`; the budget
// is computed from the key's num and max_percent.
std::vector<UnlockedLayer> unlocked_layers(const model::Graph& graph, const LockKey& key);

// The step of a relative intensity: max |w| over the tensor (0 for an empty tensor).
float layer_scale(std::span<const float> weights);

// The automatic collapse target: the class with the largest summed softmax probability over the
// samples (ties: lower class), i.e. the class the model already leans to; model in inference
// semantics.
int32_t collapse_target(const model::Model& model, const data::Dataset& samples,
                        int64_t batch = 100);

// number = min(floor(numel * max_percent), num) — the per-layer budget of the reference.
int64_t layer_budget(int64_t numel, int64_t num, double max_percent);

// The k positions with the largest |g| (ties: lower index first), skipping excluded positions
// and exact zeros (whose sign(g) = 0 would leave the weight unchanged), in decreasing order.
std::vector<uint64_t> top_k_abs(std::span<const float> grad, int64_t k,
                                const std::vector<bool>* excluded = nullptr);

// Summed (not averaged) gradient of the softmax cross-entropy over every example of `samples`
// w.r.t. each tensor in `tensors`, evaluated with inference-mode semantics (BN running stats,
// no dropout). Returns one vector per tensor name. With target >= 0 it is instead the gradient
// of the summed log-probability of class `target` (the collapse objective, to be maximised).
std::map<std::string, std::vector<float>> summed_gradients(const model::Model& model,
                                                           const data::Dataset& samples,
                                                           const std::vector<std::string>& tensors,
                                                           int64_t batch = 100,
                                                           int32_t target = -1);

// Generates a key for the plaintext `model`; fingerprints are bound (see key.hpp). The model is
// not modified. The key's params.keygen_seconds is measured here.
LockKey generate_key(const model::Model& model, const data::Dataset& samples,
                     const KeygenOptions& options);

}  // namespace veil::lock
