// Shared helpers for the CKKS tests: small (insecure, test-only) parameter sets and plaintext
// reference computations.
#pragma once

#include <complex>
#include <random>
#include <vector>

#include "veil/core/error.hpp"
#include "veil/he/he.hpp"

namespace veil::he::test {

using cd = std::complex<double>;

// N = 4096 with a 4-prime chain: above the 128-bit bound for this N, so test-only.
inline CkksParameters small_params(size_t special = 1) {
  CkksParameters p;
  p.poly_degree = 4096;
  p.coeff_bits =
      special == 1 ? std::vector<int>{55, 40, 40, 55} : std::vector<int>{55, 40, 40, 40, 55, 55};
  p.special_primes = special;
  p.default_scale = 1099511627776.0;  // 2^40
  p.insecure_allow_for_testing_only = true;
  return p;
}

inline std::vector<cd> random_values(size_t n, uint32_t seed, double mag = 1.0) {
  std::mt19937 rng(seed);  // test data only
  std::uniform_real_distribution<double> d(-mag, mag);
  std::vector<cd> v(n);
  for (auto& x : v) x = {d(rng), d(rng)};
  return v;
}

inline double max_error(const std::vector<cd>& a, const std::vector<cd>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

struct Keys {
  ContextPtr ctx;
  KeyGenerator keygen;
  PublicKey pk;
  RelinKeys rk;
  CkksEncoder encoder;
  Encryptor encryptor;
  Decryptor decryptor;
  Evaluator evaluator;

  explicit Keys(ContextPtr c)
      : ctx(c),
        keygen(c),
        pk(keygen.create_public_key()),
        rk(keygen.create_relin_keys()),
        encoder(c),
        encryptor(c, pk),
        decryptor(c, keygen.secret_key()),
        evaluator(c) {}

  Ciphertext encrypt(const std::vector<cd>& v) {
    return encryptor.encrypt(encoder.encode(v, ctx->parameters().default_scale, ctx->max_level()));
  }
  std::vector<cd> decrypt(const Ciphertext& ct) {
    return encoder.decode_complex(decryptor.decrypt(ct));
  }
};

}  // namespace veil::he::test
