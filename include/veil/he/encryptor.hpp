// Encryption (public key, or secret key with the uniform half compressed to a seed) and
// decryption.
#pragma once

#include "veil/he/ciphertext.hpp"
#include "veil/he/context.hpp"
#include "veil/he/keys.hpp"

namespace veil::he {

class Encryptor {
 public:
  Encryptor(ContextPtr ctx, const PublicKey& pk);
  Encryptor(ContextPtr ctx, const SecretKey& sk);

  // With a public key: (u b + e_0 + m, u a + e_1), u ternary. With a secret key: as
  // encrypt_symmetric.
  Ciphertext encrypt(const Plaintext& pt) const;
  // (-a s + e + m, a) with a expanded from a fresh seed kept in the ciphertext.
  Ciphertext encrypt_symmetric(const Plaintext& pt) const;

 private:
  ContextPtr ctx_;
  std::optional<PublicKey> pk_;
  std::optional<SecretKey> sk_;
};

class Decryptor {
 public:
  Decryptor(ContextPtr ctx, const SecretKey& sk);
  // c_0 + c_1 s (+ c_2 s^2).
  Plaintext decrypt(const Ciphertext& ct) const;

 private:
  ContextPtr ctx_;
  SecretKey sk_;
};

// Throws InvalidArgument if `ct` was not made under `ctx` or is internally inconsistent.
void check_ciphertext(const HeContext& ctx, const Ciphertext& ct);
void check_plaintext(const HeContext& ctx, const Plaintext& pt);

}  // namespace veil::he
