// The key file (.vkey): a LockKey sealed at rest (core/sealed_file.hpp) with magic "VEILLOCK",
// version 1 and HKDF info "veil.lock.keyfile.v1"; the header's fingerprint is the locked model's
// (SHA-256, see key.hpp), which binds the key to its model. Layout (little-endian), the whole
// header is the GCM associated data:
//   0  magic "VEILLOCK"          8 bytes
//   8  version                   u16 (= 1)
//  10  kdf                       u8  (1 = HKDF-SHA256 of a 32-byte secret file, 2 = scrypt)
//  11  scrypt log2(N)            u8  (0 for HKDF)
//  12  scrypt r, p               u32, u32 (0 for HKDF)
//  20  salt                      16 bytes (random per file)
//  36  nonce                     12 bytes (random per file)
//  48  locked-model fingerprint  32 bytes
//  80  payload length            u64
//  88  ciphertext                payload length bytes
//  ..  GCM tag                   16 bytes
// Any failure to open a key file — bad magic or version, wrong size, wrong secret, a flipped
// bit anywhere — is an IntegrityError; nothing is decrypted before the tag verifies.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "veil/core/sealed_file.hpp"
#include "veil/lock/key.hpp"

namespace veil::lock {

inline constexpr size_t kKeyFileHeaderSize = kSealedHeaderSize;
inline constexpr size_t kKeyFileTagSize = kSealedTagSize;
inline constexpr uint16_t kKeyFileVersion = 1;
inline constexpr uint64_t kMaxKeyFileBytes = 512ull << 20;

// The secret that protects a key file; shared with every sealed file (core/sealed_file.hpp).
using ::veil::KeySecret;
using ::veil::load_passphrase_file;
using ::veil::load_secret_file;
using ::veil::ScryptParams;

// The plaintext payload inside the key file. decode_key_payload is the one checked parser for
// it: every count is bounded by the bytes that remain before anything is allocated; throws
// MalformedInput.
std::vector<uint8_t> encode_key_payload(const LockKey& key);
LockKey decode_key_payload(std::span<const uint8_t> bytes);

// The fields of the header, parsed and bounds-checked (IntegrityError on any problem); the
// fingerprint is the locked model's.
using KeyFileHeader = SealedHeader;
KeyFileHeader parse_key_file_header(std::span<const uint8_t> file);

std::vector<uint8_t> seal_key(const LockKey& key, const KeySecret& secret);
LockKey open_key(std::span<const uint8_t> file, const KeySecret& secret);

void save_key_file(const std::filesystem::path& path, const LockKey& key, const KeySecret& secret);
LockKey load_key_file(const std::filesystem::path& path, const KeySecret& secret);

}  // namespace veil::lock
