// A fresh symmetric ciphertext kept as (c_0, seed of c_1): half the memory of a Ciphertext.
// Weights that are encrypted once and read many times (an encrypted model's diagonals) are held
// this way and expanded into a scratch ciphertext just before each use: the AES-CTR expansion
// costs less than the memory traffic of keeping c_1 (docs/HE.md, "Memory").
#pragma once

#include <cstddef>

#include "veil/core/random.hpp"
#include "veil/he/ciphertext.hpp"
#include "veil/he/context.hpp"

namespace veil::he {

class SeededCiphertext {
 public:
  SeededCiphertext() = default;
  // `ct` must be a size-2 ciphertext whose c_1 is the expansion of its seed (a fresh
  // encrypt_symmetric, or one loaded from a compressed serialization); InvalidArgument if not.
  SeededCiphertext(const HeContext& ctx, Ciphertext ct);

  size_t level() const { return level_; }
  double scale() const { return scale_; }
  // Writes the full ciphertext into `out` (reusing its storage when the shape matches).
  void expand(const HeContext& ctx, Ciphertext& out) const;
  size_t bytes() const { return c0_.size() * sizeof(uint64_t); }

 private:
  uint64_t context_id_ = 0;
  size_t n_ = 0, level_ = 0;
  double scale_ = 1, noise_ = 0;
  Seed seed_{};
  PolyVector c0_;
};

}  // namespace veil::he
