// The key file (.vkey): a LockKey encrypted and authenticated at rest with AES-256-GCM.
//
// Layout (little-endian), the whole header is the GCM associated data:
//   0  magic "VEILLOCK"          8 bytes
//   8  version                   u16 (= 1)
//  10  kdf                       u8  (1 = HKDF-SHA256 of a 32-byte secret file, 2 = scrypt)
//  11  scrypt log2(N)            u8  (0 for HKDF)
//  12  scrypt r, p               u32, u32 (0 for HKDF)
//  20  salt                      16 bytes (random per file)
//  36  nonce                     12 bytes (random per file)
//  48  locked-model fingerprint  32 bytes (SHA-256, see key.hpp): binds the key to its model
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

#include "veil/lock/key.hpp"

namespace veil::lock {

inline constexpr size_t kKeyFileHeaderSize = 88;
inline constexpr size_t kKeyFileTagSize = 16;
inline constexpr uint16_t kKeyFileVersion = 1;
inline constexpr uint64_t kMaxKeyFileBytes = 512ull << 20;

struct ScryptParams {
  uint8_t log2_n = 15;  // N = 32768: 32 MiB and ~0.1 s per derivation
  uint32_t r = 8;
  uint32_t p = 1;
};

// What protects a key file at rest: 32 random bytes from a secret file, or a passphrase
// stretched with scrypt. The material is wiped when the object dies.
class KeySecret {
 public:
  enum class Kind : uint8_t { SecretFile = 1, Passphrase = 2 };

  static KeySecret from_bytes(std::span<const uint8_t> secret32);
  static KeySecret from_passphrase(const std::string& passphrase, ScryptParams params = {});

  KeySecret(const KeySecret&);
  KeySecret& operator=(const KeySecret&);
  ~KeySecret();

  Kind kind() const { return kind_; }
  const ScryptParams& scrypt() const { return scrypt_; }
  std::span<const uint8_t> material() const { return material_; }

 private:
  KeySecret() = default;
  Kind kind_ = Kind::SecretFile;
  ScryptParams scrypt_;
  std::vector<uint8_t> material_;
};

// Reads a secret file (exactly 32 bytes). With create_if_missing, a missing file is created
// with 32 bytes from the OS CSPRNG, mode 0600, never overwriting an existing file.
KeySecret load_secret_file(const std::filesystem::path& path, bool create_if_missing);
// Reads a passphrase file; one trailing newline (LF or CRLF) is dropped; must not be empty.
KeySecret load_passphrase_file(const std::filesystem::path& path, ScryptParams params = {});

// The plaintext payload inside the key file. decode_key_payload is the one checked parser for
// it: every count is bounded by the bytes that remain before anything is allocated; throws
// MalformedInput.
std::vector<uint8_t> encode_key_payload(const LockKey& key);
LockKey decode_key_payload(std::span<const uint8_t> bytes);

// The fields of the header, parsed and bounds-checked (IntegrityError on any problem).
struct KeyFileHeader {
  uint16_t version = 0;
  KeySecret::Kind kdf = KeySecret::Kind::SecretFile;
  ScryptParams scrypt;
  std::array<uint8_t, 16> salt{};
  std::array<uint8_t, 12> nonce{};
  Fingerprint locked_fingerprint{};
  uint64_t payload_size = 0;
};
KeyFileHeader parse_key_file_header(std::span<const uint8_t> file);

std::vector<uint8_t> seal_key(const LockKey& key, const KeySecret& secret);
LockKey open_key(std::span<const uint8_t> file, const KeySecret& secret);

void save_key_file(const std::filesystem::path& path, const LockKey& key, const KeySecret& secret);
LockKey load_key_file(const std::filesystem::path& path, const KeySecret& secret);

}  // namespace veil::lock
