// A model-locking key (SFGE, Cai et al., ICCAD 2019): per weight tensor, the sparse positions
// that were perturbed, the direction of each perturbation and — unlike the reference, which
// restores by computing (w + e) - e in fp32 — the exact original and locked float bits, so that
// decryption is bit-exact and every restored or re-locked weight can be verified.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "veil/core/tensor.hpp"
#include "veil/model/graph.hpp"

namespace veil::lock {

// SHA-256 over every initializer of a graph (name, dtype, shape, raw bytes, in name order).
using Fingerprint = std::array<uint8_t, 32>;
Fingerprint fingerprint(const model::Graph& graph);

enum class LockMode : uint8_t {
  Sfge = 0,      // the reference: w += intensity * sign(grad), an absolute step
  Stealthy = 1,  // w moves to a value inside the layer's own distribution (see keygen.hpp)
};
std::string to_string(LockMode mode);
LockMode parse_lock_mode(const std::string& text);  // "sfge" | "stealthy"; InvalidArgument

// What `intensity` is relative to (SFGE mode only). The reference's step is absolute; a relative
// step is intensity x max|w| of the layer's plaintext weights, so layers whose weights are small
// (wide FC layers) and large (first conv) are hit equally hard.
enum class IntensityMode : uint8_t { Absolute = 0, Relative = 1 };
std::string to_string(IntensityMode mode);
IntensityMode parse_intensity_mode(const std::string& text);  // "absolute" | "relative"

// The loss whose gradient picks positions and directions. The reference maximises the
// cross-entropy on the true labels (untargeted). Collapse is targeted: it maximises the summed
// log-probability of one class over the samples, so the locked model answers that class for
// every input (chance accuracy on a balanced test set) — the targeted variant of adversarial
// parameter perturbation (cf. AdvParams, 2021).
enum class Objective : uint8_t { CrossEntropy = 0, Collapse = 1 };
std::string to_string(Objective objective);
Objective parse_objective(const std::string& text);  // "ce" | "collapse"

struct KeyEntry {
  uint64_t index = 0;          // flat position in the tensor
  uint32_t original_bits = 0;  // IEEE-754 bits of the plaintext weight
  uint32_t locked_bits = 0;    // bits of the weight as stored in the locked model
  int8_t sign = 0;             // sign of the loss gradient that chose the direction (+1 / -1)
};

struct LayerKey {
  std::string tensor;  // initializer name
  std::string node;    // node that reads it (for reports)
  uint64_t numel = 0;  // size of the tensor, checked before anything is written
  // In the order the positions were chosen: by decreasing |gradient| (SFGE) or by round
  // (i-SFGE), so a prefix of k entries is the key SFGE / i-SFGE would give with num = k.
  std::vector<KeyEntry> entries;
};

// How the key was generated; informational except `intensity` and `mode`, which the reports use.
struct KeyParams {
  LockMode mode = LockMode::Sfge;
  bool incremental = false;
  int64_t num = 20;
  float intensity = 0.2f;
  double max_percent = 0.001;
  int64_t samples = 1000;
  std::string dataset;
  double keygen_seconds = 0;
  // Beyond the reference (stored in the key file only when they differ from these defaults, so
  // a reference-compatible key is encoded exactly as before).
  IntensityMode intensity_mode = IntensityMode::Absolute;
  Objective objective = Objective::CrossEntropy;
  int32_t target_class = -1;  // collapse: the class every input is pushed to (-1: none)
  int64_t per_round = 1;      // i-SFGE: positions added per layer per round
  bool has_extension() const {
    return intensity_mode != IntensityMode::Absolute || objective != Objective::CrossEntropy ||
           target_class != -1 || per_round != 1;
  }
};

struct LockKey {
  KeyParams params;
  Fingerprint plain_fingerprint{};   // of the model before locking
  Fingerprint locked_fingerprint{};  // of the model after locking: the key is bound to it
  std::vector<LayerKey> layers;

  int64_t total_entries() const;
  // The first min(k, size) entries of every layer (layers left empty are dropped).
  LockKey prefix(int64_t k) const;
};

// Checks that every layer names a float initializer of the right size, indices are in range and
// distinct; throws InvalidArgument (key/model mismatch is an IntegrityError in the callers below).
void check_key_fits(const model::Graph& graph, const LockKey& key);

// Low-level, per tensor: write the locked (or original) bits of every entry. When `verify` is
// set the current bits must equal the other state first (IntegrityError otherwise); nothing is
// written unless every entry verifies. Used by encrypt/decrypt and the runtime scheduler.
void lock_tensor(Tensor& tensor, const LayerKey& layer, bool verify);
void unlock_tensor(Tensor& tensor, const LayerKey& layer, bool verify);

// Sets plain_fingerprint from `plain` and locked_fingerprint from a locked copy of it.
void bind_fingerprints(LockKey& key, const model::Graph& plain);

// Encrypts a plaintext model in place. The model's fingerprint must equal the key's
// plain_fingerprint and the result must equal locked_fingerprint; otherwise IntegrityError and
// the model is unchanged.
void encrypt_model(model::Model& model, const LockKey& key);
// Decrypts a locked model in place: fingerprint must be locked_fingerprint before and is
// checked to be plain_fingerprint after (bit-exact restoration); IntegrityError otherwise and
// the model is unchanged.
void decrypt_model(model::Model& model, const LockKey& key);

// Unchecked variants for experiments that derive keys in memory (sweeps, attacks).
void apply_key_unchecked(model::Graph& graph, const LockKey& key);
void remove_key_unchecked(model::Graph& graph, const LockKey& key);

}  // namespace veil::lock
