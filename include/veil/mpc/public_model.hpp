// The public part of a model, as the server sends it to the client and the helper at session
// start: the graph's structure (inputs, outputs, nodes with their attributes, initializer names,
// dtypes and shapes, integer constants such as Reshape targets) and the preprocessing metadata
// ("veil.normalize.*", class names). Float initializer *values* never leave the server; the
// receiver rebuilds zero tensors of the right shapes, which is all SecureModel needs on the
// client and the helper. structure_hash() of the rebuilt graph equals that of the original.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <span>
#include <string>

#include "veil/model/graph.hpp"

namespace veil::mpc {

// Limits enforced on a received structure (it comes from another party, so it is untrusted).
inline constexpr uint64_t kMaxPublicModelBytes = uint64_t{64} << 20;
inline constexpr int64_t kMaxPublicModelNodes = 100000;
inline constexpr int64_t kMaxPublicModelElements = int64_t{1} << 28;  // zero tensors rebuilt

// Metadata keys that are public and travel with the structure.
bool is_public_metadata_key(const std::string& key);

nlohmann::json public_model_to_json(const model::Model& model);

// Parses and validates (bounded sizes, model::validate). Throws MalformedInput.
model::Model public_model_from_json(const nlohmann::json& j);
model::Model public_model_from_bytes(std::span<const uint8_t> bytes);
std::vector<uint8_t> public_model_to_bytes(const model::Model& model);

// A hash from 64 hex digits (either case) with an optional "sha256:" prefix, as veil::to_hex
// writes it (throws InvalidArgument).
std::array<uint8_t, 32> hash_from_hex(const std::string& hex);

}  // namespace veil::mpc
