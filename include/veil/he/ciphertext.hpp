// Plaintexts and ciphertexts: RNS polynomials in NTT form, stored limb-major (limb i holds the
// residues modulo prime i). A ciphertext at level l lives modulo q_0 ... q_l. The coefficients
// live in pooled, 64-byte-aligned storage (poly_vector.hpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include "veil/core/random.hpp"
#include "veil/he/poly_vector.hpp"

namespace veil::he {

// Tag for the constructors that leave the coefficients uninitialised, for callers that
// overwrite every word (the evaluator, encryptor, encoder and loaders): no memset of
// megabytes that are rewritten right after.
struct NoInit {
  explicit NoInit() = default;
};
inline constexpr NoInit kNoInit{};

class Plaintext {
 public:
  Plaintext() = default;
  // Coefficients zero.
  Plaintext(uint64_t context_id, size_t n, size_t level, double scale)
      : context_id_(context_id), n_(n), level_(level), scale_(scale), data_((level + 1) * n, 0) {}
  // Coefficients unspecified: the caller writes all of them.
  Plaintext(uint64_t context_id, size_t n, size_t level, double scale, NoInit)
      : context_id_(context_id), n_(n), level_(level), scale_(scale), data_((level + 1) * n) {}

  uint64_t context_id() const { return context_id_; }
  size_t n() const { return n_; }
  size_t level() const { return level_; }
  double scale() const { return scale_; }
  void set_scale(double s) { scale_ = s; }
  uint64_t* limb(size_t i) { return data_.data() + i * n_; }
  const uint64_t* limb(size_t i) const { return data_.data() + i * n_; }
  PolyVector& data() { return data_; }
  const PolyVector& data() const { return data_; }

 private:
  uint64_t context_id_ = 0;
  size_t n_ = 0;
  size_t level_ = 0;
  double scale_ = 1.0;
  PolyVector data_;
};

class Ciphertext {
 public:
  Ciphertext() = default;
  // Coefficients zero.
  Ciphertext(uint64_t context_id, size_t n, size_t size, size_t level, double scale)
      : context_id_(context_id),
        n_(n),
        size_(size),
        level_(level),
        scale_(scale),
        data_(size * (level + 1) * n, 0) {}
  // Coefficients unspecified: the caller writes all of them.
  Ciphertext(uint64_t context_id, size_t n, size_t size, size_t level, double scale, NoInit)
      : context_id_(context_id),
        n_(n),
        size_(size),
        level_(level),
        scale_(scale),
        data_(size * (level + 1) * n) {}

  uint64_t context_id() const { return context_id_; }
  size_t n() const { return n_; }
  size_t size() const { return size_; }  // number of polynomials (2, or 3 before relinearising)
  size_t level() const { return level_; }
  double scale() const { return scale_; }
  void set_scale(double s) { scale_ = s; }
  // Estimated standard deviation of the error in each slot, in units of the integer
  // polynomial (divide by scale() for the error of the decoded values); see precision.hpp.
  double noise() const { return noise_; }
  void set_noise(double v) { noise_ = v; }

  uint64_t* poly(size_t k) { return data_.data() + k * (level_ + 1) * n_; }
  const uint64_t* poly(size_t k) const { return data_.data() + k * (level_ + 1) * n_; }
  uint64_t* limb(size_t k, size_t i) { return poly(k) + i * n_; }
  const uint64_t* limb(size_t k, size_t i) const { return poly(k) + i * n_; }
  PolyVector& data() { return data_; }
  const PolyVector& data() const { return data_; }

  // Seed of the uniform half c_1 when this is a fresh symmetric encryption, so that
  // serialization can store 16 bytes instead of c_1. Cleared by any change.
  const std::optional<Seed>& seed() const { return seed_; }
  void set_seed(const std::optional<Seed>& s) { seed_ = s; }

 private:
  uint64_t context_id_ = 0;
  size_t n_ = 0;
  size_t size_ = 0;
  size_t level_ = 0;
  double scale_ = 1.0;
  double noise_ = 0.0;
  PolyVector data_;
  std::optional<Seed> seed_;
};

}  // namespace veil::he
