// CKKS parameters and the precomputed context shared by every object made under them.
//
// Modulus chain: q_0 .. q_{L-1} (the ciphertext modulus Q at the top level) followed by K
// special primes P = p_0 .. p_{K-1} used only inside key switching. Key switching uses the
// hybrid decomposition of Han-Ki ("Better bootstrapping for approximate homomorphic encryption",
// CT-RSA 2020): digits are groups of K consecutive q primes, dnum = ceil(L / K).
#pragma once

#include <array>
#include <complex>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace veil::he {

// The modular arithmetic, NTT tables and thread pool behind a context are private to the he
// module (src/he/modarith.hpp, ntt.hpp, thread_pool.hpp).
struct Modulus;
class NttTables;
class ThreadPool;
using u128 = unsigned __int128;

enum class SecurityLevel : int { k128 = 128, k192 = 192, k256 = 256 };

// Largest log2(Q*P) allowed by the HomomorphicEncryption.org standard (ternary secret, classical
// attacks) for ring dimension n; 0 if the table has no entry. n = 2^16 is not in the table; it
// uses twice the 2^15 bound (the table is linear in n), see docs/HE.md.
int max_modulus_bits(size_t n, SecurityLevel level);

struct CkksParameters {
  size_t poly_degree = 8192;
  // Bit sizes of q_0 .. q_{L-1} followed by the special primes (the last `special_primes`).
  std::vector<int> coeff_bits = {60, 40, 40, 60};
  size_t special_primes = 1;
  // Explicit primes instead of coeff_bits (used when loading serialized parameters).
  std::vector<uint64_t> primes;
  double default_scale = 1099511627776.0;  // 2^40
  SecurityLevel security = SecurityLevel::k128;
  // Test-only: accept parameters below the chosen security level (or ring dimensions down to
  // 2^10). Never set this for real data.
  bool insecure_allow_for_testing_only = false;
};

constexpr double kErrorSigma = 3.2;
constexpr int kErrorBound = 19;  // ~6 sigma

using ParamsHash = std::array<uint8_t, 32>;

// Fast base conversion (Bajard et al., SAC 2016) from a set of source primes to every prime of
// the chain: x mod t = sum_i [x_i * (B/b_i)^-1]_{b_i} * (B/b_i) mod t, exact up to a small
// multiple of B.
struct BaseConverter {
  std::vector<size_t> source;                        // prime indices
  std::vector<uint64_t> inv_punct, inv_punct_shoup;  // (B/b_i)^-1 mod b_i
  std::vector<std::vector<uint64_t>> punct;          // [target prime][i] = (B/b_i) mod t
};

// Number of threads to use by default: hardware concurrency, at least 1.
int default_thread_count();

class HeContext {
 public:
  // Validates and precomputes; throws InvalidArgument for malformed or insecure parameters.
  static std::shared_ptr<const HeContext> create(const CkksParameters& params, int threads = 1);
  ~HeContext();

  const CkksParameters& parameters() const { return params_; }
  size_t n() const { return n_; }
  int log_n() const { return log_n_; }
  size_t slots() const { return n_ / 2; }
  size_t q_count() const { return q_count_; }        // L
  size_t special_count() const { return k_count_; }  // K
  size_t prime_count() const { return q_count_ + k_count_; }
  size_t max_level() const { return q_count_ - 1; }
  size_t digit_size() const { return k_count_; }  // alpha
  size_t digit_count(size_t level) const { return (level + k_count_) / k_count_; }
  const Modulus& prime(size_t i) const;
  const std::vector<uint64_t>& prime_values() const { return prime_values_; }
  const NttTables& ntt(size_t i) const;
  double total_bits() const { return total_bits_; }
  double q_bits(size_t level) const;  // log2(q_0 ... q_level)
  const ParamsHash& hash() const { return hash_; }
  uint64_t id() const { return id_; }
  std::string hash_hex() const;

  ThreadPool& pool() const { return *pool_; }
  // Not to be called while another thread is using this context.
  void set_threads(int threads) const;
  int threads() const;

  // Precomputations (indices are prime indices).
  uint64_t inv_q_last(size_t level, size_t i) const { return rescale_inv_[level][i]; }
  uint64_t inv_q_last_shoup(size_t level, size_t i) const { return rescale_inv_shoup_[level][i]; }
  uint64_t p_mod(size_t i) const { return p_mod_[i]; }
  uint64_t p_inv(size_t i) const { return p_inv_[i]; }
  uint64_t p_inv_shoup(size_t i) const { return p_inv_shoup_[i]; }
  const BaseConverter& special_converter() const { return special_conv_; }
  const BaseConverter& digit_converter(size_t digit, size_t count) const;
  // NTT form of X^(n/2) (evaluates to +-i on the slots), per prime.
  const std::vector<uint64_t>& half_monomial(size_t i) const { return half_monomial_[i]; }

  // CRT reconstruction data for decoding at a level: x = sum_i y_i * (Q/q_i) - v * Q computed
  // modulo 2^128, with y_i = [x_i * (Q/q_i)^-1]_{q_i} and v = round(sum y_i / q_i).
  struct CrtLevel {
    std::vector<uint64_t> inv_punct, inv_punct_shoup;
    std::vector<u128> punct_mod_2_128;
    u128 q_mod_2_128;
  };
  const CrtLevel& crt(size_t level) const { return crt_[level]; }

  // Galois elements and the NTT-domain permutation each one induces (cached).
  uint32_t galois_element_for_step(int step) const;
  uint32_t galois_element_conjugate() const { return static_cast<uint32_t>(2 * n_ - 1); }
  const std::vector<uint32_t>& galois_permutation(uint32_t galois_element) const;

 private:
  HeContext() = default;
  CkksParameters params_;
  size_t n_ = 0;
  int log_n_ = 0;
  size_t q_count_ = 0, k_count_ = 0;
  std::vector<Modulus> primes_;
  std::vector<uint64_t> prime_values_;
  std::vector<NttTables> ntt_;
  double total_bits_ = 0;
  ParamsHash hash_{};
  uint64_t id_ = 0;
  mutable std::shared_ptr<ThreadPool> pool_;
  std::vector<std::vector<uint64_t>> rescale_inv_, rescale_inv_shoup_;
  std::vector<uint64_t> p_mod_, p_inv_, p_inv_shoup_;
  BaseConverter special_conv_;
  std::vector<std::vector<BaseConverter>> digit_conv_;  // [digit][count - 1]
  std::vector<std::vector<uint64_t>> half_monomial_;
  std::vector<CrtLevel> crt_;
  mutable std::mutex galois_mutex_;
  mutable std::map<uint32_t, std::vector<uint32_t>> galois_perm_;
};

using ContextPtr = std::shared_ptr<const HeContext>;

}  // namespace veil::he
