// The encrypted model (.vhe) and the image ciphertext batch (.vct): what travels between the
// owner, the data source and the untrusted machine.
//
// .vhe (little-endian):
//   "VEILHEMD", u16 version (1), u16 reserved (0)
//   parameter hash (32), key id (32: SHA-256 of the public key the set was made with)
//   u64 head size, then the head: str part, u32 metadata count, (str key, str value)...,
//     u64 size + layout bytes (ProgramLayout: shapes, layouts, levels, scales; no weights)
//   u64 size + ONNX bytes of the plaintext prefix (size 0 when the whole model is encrypted)
//   per linear layer: per term u8 present [+ u64 size + ciphertext], u64 size + bias ciphertext
// .vct:
//   "VEILHECT", u16 version (1), u8 kind, u8 reserved
//   parameter hash (32), key id (32), program id (32: SHA-256 of the layout bytes)
//   u32 images, u32 vectors per image, u32 values per image (the input or output size)
//   images x vectors: u64 size + ciphertext (encrypted kinds) or values x f32 (plain input)
// Every count is bounded (by the layout, the ring and the bytes that remain) before anything is
// allocated; ciphertexts go through load_ciphertext (residues below their primes, sizes exact)
// and must sit at the level and scale the layout says. Files made under other keys, parameters
// or another model are refused with IntegrityError.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "veil/he/inference/runtime.hpp"
#include "veil/he/key_set.hpp"
#include "veil/he/keys.hpp"

namespace veil::he {

using KeyId = KeySetId;  // key_set_id(): SHA-256 of the public key

inline constexpr uint64_t kMaxModelFileBytes = uint64_t{8} << 30;
inline constexpr uint64_t kMaxBatchFileBytes = uint64_t{16} << 30;

struct EncryptedModel {
  KeyId key_id{};
  std::string part;
  std::map<std::string, std::string> metadata;
  bool has_prefix = false;  // the model has plaintext layers before the encrypted part
  std::string prefix_onnx;  // their ONNX bytes (empty when not loaded or when there are none)
  EncryptedProgram program;
};

std::vector<uint8_t> serialize_layout(const ProgramLayout& layout);
// Checks every field against the ring (`ctx`): powers of two within the slots, levels in order,
// sizes that chain, gather indices in range. Throws MalformedInput.
ProgramLayout parse_layout(std::span<const uint8_t> bytes, const HeContext& ctx);
std::array<uint8_t, 32> program_id(const ProgramLayout& layout);

std::vector<uint8_t> serialize_model(const HeContext& ctx, const EncryptedModel& model);
// `expected_key` (when given) must match the file's key id.
EncryptedModel parse_model(std::span<const uint8_t> bytes, const HeContext& ctx,
                           const KeyId* expected_key = nullptr);
// What to read of a model file: a data source needs the prefix and the layout, not the weights;
// an edge given encrypted features needs the weights, not the prefix.
struct ModelLoad {
  bool prefix = true;
  bool weights = true;
};
// The same from a file, read one record at a time (the file is never held whole in memory);
// the parts not asked for are skipped, not read.
EncryptedModel load_model_file(const std::filesystem::path& path, const HeContext& ctx,
                               const KeyId* expected_key = nullptr, const ModelLoad& load = {});

enum class BatchKind : uint8_t {
  EncryptedInput = 1,   // features encrypted by the data source (input_vectors() per image)
  PlainInput = 2,       // the model's plaintext input, for --features plain (one vector per image)
  EncryptedOutput = 3,  // one output ciphertext per image
};
std::string batch_kind_name(BatchKind kind);

struct CiphertextBatch {
  BatchKind kind = BatchKind::EncryptedInput;
  KeyId key_id{};
  std::array<uint8_t, 32> program{};
  uint32_t vectors = 1;  // per image
  uint32_t values = 0;   // per image: plain input values, or the vector each ciphertext holds
  std::vector<Ciphertext> cts;  // images x vectors
  std::vector<float> plain;     // images x values
  size_t images() const;
};

std::vector<uint8_t> serialize_batch(const HeContext& ctx, const CiphertextBatch& batch);
// Checks the kind, key and program ids against `model`, and every ciphertext's level (the
// input level, or the output level for outputs).
CiphertextBatch parse_batch(std::span<const uint8_t> bytes, const HeContext& ctx,
                            const EncryptedModel* model = nullptr);

}  // namespace veil::he
