// Word-size modular arithmetic for RNS-CKKS: every modulus is a prime q < 2^61, so that the lazy
// NTT butterflies can keep values in [0, 4q) without overflowing 64 bits (Harvey, "Faster
// arithmetic for number-theoretic transforms", J. Symb. Comp. 2014).
#pragma once

#include <cstdint>
#include <vector>

namespace veil::he {

using u128 = unsigned __int128;

// A prime modulus with its Barrett constant floor(2^128 / q).
struct Modulus {
  uint64_t value = 0;
  uint64_t ratio_hi = 0;
  uint64_t ratio_lo = 0;
  uint64_t ratio64 = 0;  // floor(2^64 / q)

  Modulus() = default;
  explicit Modulus(uint64_t q);
  int bits() const;
};

// Reduces any 128-bit x modulo q. The quotient estimate floor(x * floor(2^128/q) / 2^128) is
// computed exactly modulo 2^64 and is at most one below floor(x/q), so one correction suffices.
inline uint64_t reduce128(u128 x, const Modulus& m) {
  const uint64_t xl = static_cast<uint64_t>(x);
  const uint64_t xh = static_cast<uint64_t>(x >> 64);
  const uint64_t c = static_cast<uint64_t>((static_cast<u128>(xl) * m.ratio_lo) >> 64);
  const u128 m1 = static_cast<u128>(xl) * m.ratio_hi;
  const u128 m2 = static_cast<u128>(xh) * m.ratio_lo;
  const u128 s = static_cast<u128>(static_cast<uint64_t>(m1)) + static_cast<uint64_t>(m2) + c;
  const uint64_t qe = xh * m.ratio_hi + static_cast<uint64_t>(m1 >> 64) +
                      static_cast<uint64_t>(m2 >> 64) + static_cast<uint64_t>(s >> 64);
  uint64_t r = xl - qe * m.value;
  return r >= m.value ? r - m.value : r;
}

// One-word Barrett: the quotient estimate is at most one below, so r < 2q before correction.
inline uint64_t reduce64(uint64_t x, const Modulus& m) {
  const uint64_t qe = static_cast<uint64_t>((static_cast<u128>(x) * m.ratio64) >> 64);
  const uint64_t r = x - qe * m.value;
  return r >= m.value ? r - m.value : r;
}

inline uint64_t mul_mod(uint64_t a, uint64_t b, const Modulus& m) {
  return reduce128(static_cast<u128>(a) * b, m);
}

// Branch-free: on random residues the comparisons are unpredictable.
inline uint64_t add_mod(uint64_t a, uint64_t b, uint64_t q) {
  const uint64_t s = a + b;
  return s - (q & (uint64_t{0} - static_cast<uint64_t>(s >= q)));
}

inline uint64_t sub_mod(uint64_t a, uint64_t b, uint64_t q) {
  return a - b + (q & (uint64_t{0} - static_cast<uint64_t>(a < b)));
}

inline uint64_t neg_mod(uint64_t a, uint64_t q) { return a == 0 ? 0 : q - a; }

// Shoup's precomputation for multiplying many values by a fixed w < q: floor(w * 2^64 / q).
inline uint64_t shoup(uint64_t w, uint64_t q) {
  return static_cast<uint64_t>((static_cast<u128>(w) << 64) / q);
}

// x * w mod q in [0, 2q) for any 64-bit x (the lazy form used inside the butterflies).
inline uint64_t mul_shoup_lazy(uint64_t x, uint64_t w, uint64_t w_shoup, uint64_t q) {
  const uint64_t hi = static_cast<uint64_t>((static_cast<u128>(x) * w_shoup) >> 64);
  return x * w - hi * q;
}

inline uint64_t mul_shoup(uint64_t x, uint64_t w, uint64_t w_shoup, uint64_t q) {
  const uint64_t r = mul_shoup_lazy(x, w, w_shoup, q);
  return r >= q ? r - q : r;
}

uint64_t pow_mod(uint64_t base, uint64_t exp, const Modulus& m);
// Inverse modulo a prime (Fermat); throws InvalidArgument for a == 0 mod q.
uint64_t inv_mod(uint64_t a, const Modulus& m);

// Deterministic Miller-Rabin for all 64-bit integers (bases 2..37).
bool is_prime(uint64_t n);

// Deterministically finds primes q = 1 mod 2n with exactly `bits` bits (searching down from
// 2^bits), skipping those in `exclude`. Throws InvalidArgument if the range is exhausted.
uint64_t find_ntt_prime(int bits, uint64_t n, const std::vector<uint64_t>& exclude);

// The smallest-candidate primitive 2n-th root of unity modulo q (q = 1 mod 2n).
uint64_t find_primitive_root(uint64_t two_n, const Modulus& m);

}  // namespace veil::he
