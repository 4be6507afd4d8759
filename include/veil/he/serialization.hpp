// Binary serialization of CKKS parameters, keys, plaintexts and ciphertexts.
//
// Every object starts with a 48-byte header: magic "VEILCKKS", u16 version (1), u16 kind,
// u32 reserved (0), and the SHA-256 parameter hash of the context it was made under; loading
// under a context with another hash throws IntegrityError. All integers are little-endian. The
// loaders treat their input as hostile: every count is bounded and the exact total size is
// checked before anything is allocated, every residue must be below its prime, and objects are
// built in temporaries and returned only when complete (MalformedInput otherwise).
// Seeded objects (fresh symmetric ciphertexts, public and key-switching keys) store the 16-byte
// seed of their uniform half instead of the half itself.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "veil/he/ciphertext.hpp"
#include "veil/he/context.hpp"
#include "veil/he/keys.hpp"

namespace veil::he {

constexpr uint16_t kSerialVersion = 1;

enum class ObjectKind : uint16_t {
  kParameters = 1,
  kCiphertext = 2,
  kPlaintext = 3,
  kSecretKey = 4,
  kPublicKey = 5,
  kRelinKeys = 6,
  kGaloisKeys = 7,
};

std::vector<uint8_t> serialize_parameters(const HeContext& ctx);
// Rebuilds the context; insecure parameters are refused unless allow_insecure_for_testing_only.
ContextPtr load_context(std::span<const uint8_t> bytes,
                        bool allow_insecure_for_testing_only = false, int threads = 1);

std::vector<uint8_t> serialize(const HeContext& ctx, const Ciphertext& ct);
std::vector<uint8_t> serialize(const HeContext& ctx, const Plaintext& pt);
std::vector<uint8_t> serialize(const HeContext& ctx, const SecretKey& sk);
std::vector<uint8_t> serialize(const HeContext& ctx, const PublicKey& pk);
std::vector<uint8_t> serialize(const HeContext& ctx, const RelinKeys& rk);
std::vector<uint8_t> serialize(const HeContext& ctx, const GaloisKeys& gk);

Ciphertext load_ciphertext(const HeContext& ctx, std::span<const uint8_t> bytes);
Plaintext load_plaintext(const HeContext& ctx, std::span<const uint8_t> bytes);
SecretKey load_secret_key(const HeContext& ctx, std::span<const uint8_t> bytes);
PublicKey load_public_key(const HeContext& ctx, std::span<const uint8_t> bytes);
RelinKeys load_relin_keys(const HeContext& ctx, std::span<const uint8_t> bytes);
GaloisKeys load_galois_keys(const HeContext& ctx, std::span<const uint8_t> bytes);

}  // namespace veil::he
