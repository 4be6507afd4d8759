// Negacyclic number-theoretic transform over Z_q[X]/(X^n + 1).
//
// Forward: Cooley-Tukey with the powers of a primitive 2n-th root psi stored in bit-reversed
// order, so the negacyclic twist is merged into the butterflies (Longa-Naehrig, "Speeding up the
// NTT for lattice-based cryptography", CANS 2016). Output slot i holds a(psi^(2 brv(i) + 1)).
// Inverse: Gentleman-Sande with the inverse powers. Both use Harvey's lazy butterflies with
// Shoup precomputed twiddles, keeping intermediates in [0, 4q) (forward) or [0, 2q) (inverse).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels.hpp"
#include "modarith.hpp"

namespace veil::he {

class NttTables {
 public:
  NttTables(const Modulus& modulus, size_t n);

  // In place; input and output in [0, q). The kernel follows active_isa(); every kernel gives
  // the same output.
  void forward(uint64_t* a) const { forward(a, active_isa()); }
  void inverse(uint64_t* a) const { inverse(a, active_isa()); }
  void forward(uint64_t* a, Isa isa) const;
  void inverse(uint64_t* a, Isa isa) const;

  const Modulus& modulus() const { return mod_; }
  size_t n() const { return n_; }
  uint64_t psi() const { return psi_; }

 private:
  Modulus mod_;
  size_t n_;
  uint64_t psi_;
  std::vector<uint64_t> roots_, roots_shoup_, inv_roots_, inv_roots_shoup_;
  uint64_t inv_n_, inv_n_shoup_;
  uint64_t last_w_, last_w_shoup_;  // inv_roots_[1] / n, for the fused last inverse stage
  // Radix-2^52 Shoup companions for the IFMA kernels (only when ifma_friendly(q)).
  bool ifma_ = false;
  std::vector<uint64_t> roots_shoup52_, inv_roots_shoup52_;
  uint64_t inv_n_shoup52_ = 0, last_w_shoup52_ = 0;
  // The AVX2 double-precision path's twiddles (only when the CPU has AVX2 and q < 2^50).
  std::vector<double> fp_roots_, fp_roots_q_, fp_inv_roots_, fp_inv_roots_q_;

  void forward_scalar(uint64_t* a) const;
  void inverse_scalar(uint64_t* a) const;
};

// Bit reversal of the low `bits` bits.
inline uint32_t bit_reverse(uint32_t x, int bits) {
  uint32_t r = 0;
  for (int i = 0; i < bits; ++i) r |= ((x >> i) & 1u) << (bits - 1 - i);
  return r;
}

}  // namespace veil::he
