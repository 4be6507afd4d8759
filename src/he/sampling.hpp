// Internal: randomness for keys and encryptions. Every draw comes from an AES-128-CTR stream
// (veil::AesCtrPrg) keyed by a seed from the OS CSPRNG, buffered to amortise the cipher calls.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "veil/core/random.hpp"
#include "veil/he/context.hpp"

namespace veil::he::detail {

class Sampler {
 public:
  explicit Sampler(const Seed& seed, uint64_t stream = 0);
  uint64_t next() {
    if (pos_ == buf_.size()) refill();
    return buf_[pos_++];
  }
  // Uniform in {-1, 0, 1}.
  void ternary(std::span<int32_t> out);
  // Discrete Gaussian, sigma = 3.2, truncated at |x| <= 19 (cumulative distribution table).
  void gaussian(std::span<int32_t> out);

 private:
  void refill();
  AesCtrPrg prg_;
  std::vector<uint64_t> buf_;
  size_t pos_;
};

// Uniform residues modulo prime `prime` (already "in NTT form": the NTT is a bijection),
// expanded deterministically from (seed, stream).
void sample_uniform(const HeContext& ctx, const Seed& seed, uint64_t stream, size_t prime,
                    uint64_t* out);

// Small signed coefficients -> residues modulo prime `prime`, then forward NTT.
void small_to_ntt(const HeContext& ctx, const int32_t* coeffs, size_t prime, uint64_t* out);

}  // namespace veil::he::detail
