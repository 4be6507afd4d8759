// Secret, public and key-switching keys, and the generator that makes them.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <vector>

#include "veil/core/random.hpp"
#include "veil/he/context.hpp"

namespace veil::he {

// Ternary secret s in NTT form modulo every prime of the chain (q's and special primes).
class SecretKey {
 public:
  SecretKey() = default;
  uint64_t context_id() const { return context_id_; }
  const std::vector<uint64_t>& data() const { return data_; }  // (L + K) * n
  const uint64_t* limb(size_t i, size_t n) const { return data_.data() + i * n; }

 private:
  friend class KeyGenerator;
  friend struct KeyAccess;
  uint64_t context_id_ = 0;
  std::vector<uint64_t> data_;
};

// (b, a) = (-a s + e, a) modulo q_0 ... q_{L-1}, NTT form.
class PublicKey {
 public:
  PublicKey() = default;
  uint64_t context_id() const { return context_id_; }
  const std::vector<uint64_t>& b() const { return b_; }
  const std::vector<uint64_t>& a() const { return a_; }

 private:
  friend class KeyGenerator;
  friend struct KeyAccess;
  uint64_t context_id_ = 0;
  std::vector<uint64_t> b_, a_;
  std::optional<Seed> seed_;
};

// Switches a ciphertext component from key s' to key s. Digit j (j < dnum) is
// (b_j, a_j) = (-a_j s + e_j + P * [j-th gadget] * s', a_j) modulo Q * P, NTT form, each
// (L + K) * n words.
class KeySwitchKey {
 public:
  KeySwitchKey() = default;
  uint64_t context_id() const { return context_id_; }
  size_t digits() const { return b_.size(); }
  const std::vector<uint64_t>& b(size_t j) const { return b_[j]; }
  const std::vector<uint64_t>& a(size_t j) const { return a_[j]; }
  const std::optional<Seed>& seed() const { return seed_; }

 private:
  friend class KeyGenerator;
  friend struct KeyAccess;
  uint64_t context_id_ = 0;
  std::vector<std::vector<uint64_t>> b_, a_;
  std::optional<Seed> seed_;  // a_j expands from it (serialization stores the seed only)
};

class RelinKeys {
 public:
  RelinKeys() = default;
  explicit RelinKeys(KeySwitchKey k) : key_(std::move(k)) {}
  const KeySwitchKey& key() const { return key_; }
  uint64_t context_id() const { return key_.context_id(); }

 private:
  KeySwitchKey key_;
};

class GaloisKeys {
 public:
  GaloisKeys() = default;
  bool has(uint32_t galois_element) const { return keys_.count(galois_element) != 0; }
  const KeySwitchKey& key(uint32_t galois_element) const;
  const std::map<uint32_t, KeySwitchKey>& keys() const { return keys_; }
  void insert(uint32_t galois_element, KeySwitchKey k) { keys_[galois_element] = std::move(k); }
  uint64_t context_id() const { return keys_.empty() ? 0 : keys_.begin()->second.context_id(); }

 private:
  std::map<uint32_t, KeySwitchKey> keys_;
};

class KeyGenerator {
 public:
  // A fresh ternary secret from the OS CSPRNG.
  explicit KeyGenerator(ContextPtr ctx);
  KeyGenerator(ContextPtr ctx, const SecretKey& sk);

  const SecretKey& secret_key() const { return sk_; }
  PublicKey create_public_key() const;
  RelinKeys create_relin_keys() const;
  // Keys for left rotations by each step (negative = right) and, optionally, conjugation.
  GaloisKeys create_galois_keys(std::span<const int> steps, bool conjugate = true) const;
  // Rotations by +-2^i for all i (any step is then a product of these) and conjugation.
  GaloisKeys create_galois_keys() const;
  // A switching key from `from` (NTT form over all primes) to the secret key.
  KeySwitchKey create_switch_key(const std::vector<uint64_t>& from) const;

 private:
  ContextPtr ctx_;
  SecretKey sk_;
};

// Regenerates the uniform halves of a seeded key (used by the loader); internal.
struct KeyAccess {
  static SecretKey make_secret(uint64_t id, std::vector<uint64_t> data);
  static PublicKey make_public(uint64_t id, std::vector<uint64_t> b, std::vector<uint64_t> a,
                               std::optional<Seed> seed);
  static KeySwitchKey make_switch(uint64_t id, std::vector<std::vector<uint64_t>> b,
                                  std::vector<std::vector<uint64_t>> a, std::optional<Seed> seed);
  static const std::optional<Seed>& public_seed(const PublicKey& k) { return k.seed_; }

 private:
  // A public or key-switching key: its (b, a) polynomials and the seed `a` expands from.
  template <class Key, class Poly>
  static Key make_pair(uint64_t id, Poly b, Poly a, std::optional<Seed> seed);
};

}  // namespace veil::he
