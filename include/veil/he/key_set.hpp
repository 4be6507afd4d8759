// The owner's CKKS key set and the key directory it lives in.
//
// A key directory holds three files, so that each party gets only what it needs:
//   secret.vkey  the parameters and the secret key, sealed at rest (core/sealed_file.hpp, magic
//                "VEILHESK", HKDF info "veil.he.secretkey.v1") under the owner's KeySecret;
//                the sealed header's fingerprint is the key-set id. Owner only.
//   public.vkey  the parameters and the public key. Data sources encrypt with it.
//   eval.vkey    the relinearization key, the Galois keys for exactly the rotation steps the
//                compiled model needs, and the list of those steps. With public.vkey, all an
//                untrusted edge holds.
// The key-set id is the SHA-256 of the serialized public key: public.vkey and eval.vkey record it
// in their header and the sealed secret.vkey in its authenticated header, so files of different
// key sets (other parameters, or the same parameters and other keys) are never mixed.
//
// public.vkey and eval.vkey (little-endian):
//   0  magic "VEILHEKD"   8 bytes
//   8  version            u16 (= 1)
//  10  kind               u16 (1 = public, 2 = eval)
//  12  reserved           u32 (= 0)
//  16  parameter hash     32 bytes (HeContext::hash())
//  48  key-set id         32 bytes
//  80  body               public: u64 length + serialize_parameters(), u64 length + public key
//                         eval:   u32 count + count i32 steps (ascending), u64 length + relin
//                                 keys, u64 length + Galois keys (he/serialization.hpp objects)
//  ..  content digest     32 bytes: SHA-256 of every byte before it
// The digest catches truncation and flipped bits that would still parse (a residue that stays
// below its prime); it authenticates nothing: an edge that must not trust its copy of
// public.vkey compares the key-set id with the owner's out of band. Every loader bounds the file
// size before reading it and every length by the bytes that remain; a malformed file is
// MalformedInput, a file of another key set or a failed digest IntegrityError.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <span>
#include <vector>

#include "veil/core/sealed_file.hpp"
#include "veil/he/context.hpp"
#include "veil/he/keys.hpp"

namespace veil::he {

using KeySetId = std::array<uint8_t, 32>;

inline constexpr uint16_t kKeyDirVersion = 1;
// Bounds checked on the file size before a file is read.
inline constexpr uint64_t kMaxSecretKeyFileBytes = 256ull << 20;
inline constexpr uint64_t kMaxPublicKeyFileBytes = 256ull << 20;
inline constexpr uint64_t kMaxEvalKeyFileBytes = 16ull << 30;

inline constexpr const char* kSecretKeyFileName = "secret.vkey";
inline constexpr const char* kPublicKeyFileName = "public.vkey";
inline constexpr const char* kEvalKeyFileName = "eval.vkey";

// What the owner holds. `steps` are the rotation steps the Galois keys serve (ascending, one per
// Galois element, none a multiple of the slot count).
struct OwnerKeys {
  ContextPtr ctx;
  KeySetId id{};
  SecretKey secret;
  PublicKey pub;
  RelinKeys relin;
  GaloisKeys galois;
  std::vector<int> steps;
};

// What an untrusted edge holds.
struct EvalKeys {
  ContextPtr ctx;
  KeySetId id{};
  PublicKey pub;
  RelinKeys relin;
  GaloisKeys galois;
  std::vector<int> steps;
};

// What a data source holds.
struct PublicKeys {
  ContextPtr ctx;
  KeySetId id{};
  PublicKey pub;
};

// Fresh keys: a context from `params` (with `threads` threads), a relinearization key and Galois
// keys for exactly `rotation_steps` (no conjugation key, no default +-2^i set). Steps that are a
// multiple of the slot count (the identity) are dropped; steps naming the same rotation (s and
// s - slots) keep the first. InvalidArgument for parameters HeContext refuses.
OwnerKeys generate_owner_keys(const CkksParameters& params, std::span<const int> rotation_steps,
                              int threads);

// The parts of an owner's key set that an edge and a data source receive (copies, same context),
// for a one-shot run that keeps the roles apart without going through files.
EvalKeys eval_keys_of(const OwnerKeys& keys);
PublicKeys public_keys_of(const OwnerKeys& keys);

// The key-set id of a public key: SHA-256 of serialize(ctx, pub).
KeySetId key_set_id(const HeContext& ctx, const PublicKey& pub);

// The three files' bytes, and their checked parsers (for tests and fuzzing: no files needed).
// Test-only parameters (insecure_allow_for_testing_only) load only when the caller allows them,
// as in load_context.
struct KeyDirBytes {
  std::vector<uint8_t> secret, pub, eval;
};
KeyDirBytes encode_key_dir(const OwnerKeys& keys, const KeySecret& secret);
// public.vkey and eval.vkey alone (encode_key_dir writes the same bytes); loading and encoding
// again gives back the same bytes.
std::vector<uint8_t> encode_public_file(const PublicKeys& keys);
std::vector<uint8_t> encode_eval_file(const EvalKeys& keys);
PublicKeys load_public_keys_bytes(std::span<const uint8_t> public_file, int threads,
                                  bool allow_insecure_for_testing_only = false);
EvalKeys load_eval_keys_bytes(std::span<const uint8_t> public_file,
                              std::span<const uint8_t> eval_file, int threads,
                              bool allow_insecure_for_testing_only = false);
OwnerKeys load_owner_keys_bytes(std::span<const uint8_t> secret_file,
                                std::span<const uint8_t> public_file,
                                std::span<const uint8_t> eval_file, const KeySecret& secret,
                                int threads, bool allow_insecure_for_testing_only = false);

// Writes dir/secret.vkey (mode 0600), dir/public.vkey and dir/eval.vkey, creating `dir` if
// needed. Each file is written atomically; if one fails, the files this call created are removed
// (existing files it replaced stay replaced: refuse to overwrite a key directory before calling,
// see core/output_guard.hpp).
void save_key_dir(const std::filesystem::path& dir, const OwnerKeys& keys, const KeySecret& secret);
// Reads all three files. IntegrityError for a wrong secret or passphrase, tampering, or files of
// different key sets.
OwnerKeys load_owner_keys(const std::filesystem::path& dir, const KeySecret& secret, int threads,
                          bool allow_insecure_for_testing_only = false);
// Reads public.vkey and eval.vkey only, never secret.vkey.
EvalKeys load_eval_keys(const std::filesystem::path& dir, int threads,
                        bool allow_insecure_for_testing_only = false);
// Reads public.vkey only.
PublicKeys load_public_keys(const std::filesystem::path& dir, int threads,
                            bool allow_insecure_for_testing_only = false);

// The rotation steps eval.vkey holds Galois keys for.
std::vector<int> rotation_steps(const EvalKeys& keys);

}  // namespace veil::he
