// Homomorphic operations on CKKS ciphertexts. All ciphertexts stay in NTT form. Binary operations
// on operands at different levels first drop the higher one to the lower level (modulus drop);
// scales must agree to within a relative 2^-16 (the result takes the first operand's scale).
#pragma once

#include <complex>
#include <span>
#include <vector>

#include "veil/he/ciphertext.hpp"
#include "veil/he/context.hpp"
#include "veil/he/keys.hpp"

namespace veil::he {

class Evaluator {
 public:
  explicit Evaluator(ContextPtr ctx);

  Ciphertext add(const Ciphertext& a, const Ciphertext& b) const;
  Ciphertext sub(const Ciphertext& a, const Ciphertext& b) const;
  Ciphertext negate(const Ciphertext& a) const;
  // In-place variants (a must be at a level <= b's).
  void add_inplace(Ciphertext& a, const Ciphertext& b) const;
  void sub_inplace(Ciphertext& a, const Ciphertext& b) const;

  Ciphertext add_plain(const Ciphertext& a, const Plaintext& p) const;
  Ciphertext sub_plain(const Ciphertext& a, const Plaintext& p) const;
  Ciphertext multiply_plain(const Ciphertext& a, const Plaintext& p) const;

  // Adds c to every slot (encoded at the ciphertext's scale).
  Ciphertext add_const(const Ciphertext& a, std::complex<double> c) const;
  // Multiplies every slot by c, encoded at `const_scale`; 0 picks q_level (so that a following
  // rescale restores the input scale exactly), or the default scale at level 0.
  Ciphertext multiply_const(const Ciphertext& a, std::complex<double> c,
                            double const_scale = 0) const;
  // Exact multiplication by an integer; the scale is unchanged.
  Ciphertext multiply_integer(const Ciphertext& a, int64_t k) const;

  // Tensor product: a 3-component ciphertext with scale a.scale * b.scale.
  Ciphertext multiply(const Ciphertext& a, const Ciphertext& b) const;
  Ciphertext square(const Ciphertext& a) const;
  Ciphertext relinearize(const Ciphertext& a, const RelinKeys& rk) const;
  Ciphertext multiply_relin(const Ciphertext& a, const Ciphertext& b, const RelinKeys& rk) const;

  // Divides by the last prime q_level (rounding): level - 1, scale / q_level.
  Ciphertext rescale(const Ciphertext& a) const;
  Ciphertext mod_drop_to(const Ciphertext& a, size_t level) const;
  Plaintext mod_drop_to(const Plaintext& p, size_t level) const;

  // Left rotation of the slots by `step` (negative: right). Uses the key for the step if
  // present, else composes power-of-two keys.
  Ciphertext rotate(const Ciphertext& a, int step, const GaloisKeys& gk) const;
  Ciphertext conjugate(const Ciphertext& a, const GaloisKeys& gk) const;
  Ciphertext apply_galois(const Ciphertext& a, uint32_t galois_element, const GaloisKeys& gk) const;
  // Several rotations of one ciphertext sharing one key-switching decomposition (hoisting,
  // Halevi-Shoup, "Faster homomorphic linear transformations in HElib", CRYPTO 2018).
  // Every step needs its own key.
  std::vector<Ciphertext> rotate_hoisted(const Ciphertext& a, std::span<const int> steps,
                                         const GaloisKeys& gk) const;
  // Slot i of the result holds a[i] + a[i+1] + ... + a[i+count-1] (indices mod slots);
  // count must be a power of two; with count = slots every slot holds the total.
  Ciphertext sum_slots(const Ciphertext& a, size_t count, const GaloisKeys& gk) const;

  const HeContext& context() const { return *ctx_; }

 private:
  struct Decomposed {
    size_t level = 0;
    size_t digits = 0;
    size_t ext = 0;  // level + 1 + K limbs per digit
    PolyVector data;
  };
  // a + b or a - b written straight into fresh storage (no copy of a first).
  Ciphertext add_sub(const Ciphertext& a, const Ciphertext& b, bool subtract) const;
  void add_sub_inplace(Ciphertext& a, const Ciphertext& b, bool subtract) const;
  Ciphertext add_sub_plain(const Ciphertext& a, const Plaintext& p, bool subtract) const;
  size_t ext_prime(size_t level, size_t pos) const;
  // `storage` is reused for the digits when large enough.
  Decomposed decompose(const uint64_t* poly, size_t level, PolyVector storage) const;
  // (ks0, ks1) = ModDown_P(sum_j D_j * key_j), D_j optionally permuted by a Galois element.
  void keyswitch(const Decomposed& d, const KeySwitchKey& key, const uint32_t* perm, uint64_t* ks0,
                 uint64_t* ks1) const;
  // The automorphism g applied to a, given the decomposition of a's c1: of c1 itself
  // (`permuted` false: the inner product gathers the digits through g's permutation, as hoisted
  // rotations need) or of c1 already permuted by g (`permuted` true).
  Ciphertext galois_with(const Ciphertext& a, const Decomposed& d, uint32_t g,
                         const KeySwitchKey& key, bool permuted) const;
  void check_key(const KeySwitchKey& key) const;
  double match_scale(double a, double b) const;

  ContextPtr ctx_;
};

}  // namespace veil::he
