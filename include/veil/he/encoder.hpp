// CKKS encoder: the canonical embedding restricted to the n/2 slots m(zeta^(5^j)), computed with
// the "special FFT" of Cheon-Han-Kim-Kim-Song ("Bootstrapping for approximate homomorphic
// encryption", EUROCRYPT 2018, Algorithm 1) in O(n log n).
#pragma once

#include <complex>
#include <span>
#include <vector>

#include "veil/he/ciphertext.hpp"
#include "veil/he/context.hpp"

namespace veil::he {

class CkksEncoder {
 public:
  explicit CkksEncoder(ContextPtr ctx);

  size_t slot_count() const { return ctx_->slots(); }

  // Up to slot_count() values (the rest are zero), rounded at `scale`, at `level`.
  Plaintext encode(std::span<const std::complex<double>> values, double scale, size_t level) const;
  Plaintext encode(std::span<const double> values, double scale, size_t level) const;
  // Default scale, top level.
  Plaintext encode(std::span<const double> values) const;
  // The same value in every slot: round(re * scale) + round(im * scale) X^(n/2).
  Plaintext encode_constant(std::complex<double> value, double scale, size_t level) const;

  std::vector<std::complex<double>> decode_complex(const Plaintext& pt) const;
  std::vector<double> decode(const Plaintext& pt) const;

  // The plain transforms, exposed for tests: coefficients (length n, real) <-> slots.
  std::vector<std::complex<double>> slots_from_coefficients(std::span<const double> coeffs) const;
  std::vector<double> coefficients_from_slots(std::span<const std::complex<double>> slots) const;

 private:
  void fft_special(std::span<std::complex<double>> v) const;
  void fft_special_inv(std::span<std::complex<double>> v) const;
  // coefficients_from_slots into `coeffs` (2 * slots doubles), with pooled scratch.
  void to_coefficients(std::span<const std::complex<double>> slots, double* coeffs) const;

  ContextPtr ctx_;
  std::vector<uint64_t> rot_group_;             // 5^j mod 2n
  std::vector<std::complex<double>> ksi_pows_;  // exp(2 pi i k / 2n), k = 0 .. 2n
  std::vector<uint32_t> bitrev_;
  // Per-stage twiddles of the special FFT and of its inverse (see the constructor).
  std::vector<std::complex<double>> fft_roots_, fft_inv_roots_;
};

}  // namespace veil::he
