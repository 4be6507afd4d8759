// A sealed file: a payload encrypted and authenticated at rest with AES-256-GCM under a key
// derived from a KeySecret. Lock key files (lock/keyfile.hpp) and the HE owner's secret key
// (he/key_set.hpp) are both sealed files; they differ only in magic, version, HKDF info string
// and what the payload and the fingerprint mean.
//
// Layout (little-endian), the whole header is the GCM associated data:
//   0  magic                     8 bytes (the format's)
//   8  version                   u16 (the format's)
//  10  kdf                       u8  (1 = HKDF-SHA256 of a 32-byte secret file, 2 = scrypt)
//  11  scrypt log2(N)            u8  (0 for HKDF)
//  12  scrypt r, p               u32, u32 (0 for HKDF)
//  20  salt                      16 bytes (random per file)
//  36  nonce                     12 bytes (random per file)
//  48  fingerprint               32 bytes (what the payload is bound to, in clear)
//  80  payload length            u64
//  88  ciphertext                payload length bytes
//  ..  GCM tag                   16 bytes
// Any failure to open a sealed file — bad magic or version, wrong size, wrong secret, a flipped
// bit anywhere — is an IntegrityError; nothing is decrypted before the tag verifies.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace veil {

inline constexpr size_t kSealedHeaderSize = 88;
inline constexpr size_t kSealedTagSize = 16;
// Largest payload seal_payload accepts (GCM takes int lengths in OpenSSL's one-shot calls).
inline constexpr uint64_t kMaxSealedPayload = 1ull << 30;

struct ScryptParams {
  uint8_t log2_n = 15;  // N = 32768: 32 MiB and ~0.1 s per derivation
  uint32_t r = 8;
  uint32_t p = 1;
};

// What protects a sealed file at rest: 32 random bytes from a secret file, or a passphrase
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

// Bytes that are wiped (OPENSSL_cleanse) when the object dies: a decrypted payload.
class SecretBytes {
 public:
  SecretBytes() = default;
  explicit SecretBytes(size_t n) : bytes_(n) {}
  SecretBytes(SecretBytes&& o) noexcept : bytes_(std::move(o.bytes_)) {}
  SecretBytes& operator=(SecretBytes&& o) noexcept;
  SecretBytes(const SecretBytes&) = delete;
  SecretBytes& operator=(const SecretBytes&) = delete;
  ~SecretBytes() { wipe(); }

  uint8_t* data() { return bytes_.data(); }
  const uint8_t* data() const { return bytes_.data(); }
  size_t size() const { return bytes_.size(); }
  std::span<const uint8_t> span() const { return bytes_; }
  operator std::span<const uint8_t>() const { return bytes_; }

 private:
  void wipe() noexcept;
  std::vector<uint8_t> bytes_;
};

// One sealed format. kdf_info is the HKDF info string: it separates the keys of different
// formats, so a secret file that protects both a lock key and an HE secret key never yields the
// same AES key for both. `name` names the file in error messages ("key file").
struct SealedFormat {
  std::array<char, 8> magic;
  uint16_t version;
  std::string_view kdf_info;
  std::string_view name;
};

// The fields of the header, parsed and bounds-checked (IntegrityError on any problem, including
// a file size that disagrees with the payload length).
struct SealedHeader {
  uint16_t version = 0;
  KeySecret::Kind kdf = KeySecret::Kind::SecretFile;
  ScryptParams scrypt;
  std::array<uint8_t, 16> salt{};
  std::array<uint8_t, 12> nonce{};
  std::array<uint8_t, 32> fingerprint{};
  uint64_t payload_size = 0;
};
SealedHeader parse_sealed_header(std::span<const uint8_t> file, const SealedFormat& format);

// Seals `payload` with a fresh salt and nonce; `fingerprint` goes into the header in clear.
std::vector<uint8_t> seal_payload(std::span<const uint8_t> payload, const KeySecret& secret,
                                  const SealedFormat& format,
                                  std::span<const uint8_t, 32> fingerprint);
// Verifies and decrypts; the header (with its fingerprint) is returned through `header` when
// given. IntegrityError for a wrong secret, a secret of the other kind, or any tampering.
SecretBytes open_payload(std::span<const uint8_t> file, const KeySecret& secret,
                         const SealedFormat& format, SealedHeader* header = nullptr);

}  // namespace veil
