#include "modarith.hpp"

#include <algorithm>

#include "veil/core/error.hpp"

namespace veil::he {

Modulus::Modulus(uint64_t q) : value(q) {
  if (q < 3 || q >= (uint64_t{1} << 61)) throw InvalidArgument("modulus out of range [3, 2^61)");
  // floor(2^128 / q) = floor((2^128 - 1) / q) because q is odd and does not divide 2^128.
  const u128 r = ~static_cast<u128>(0) / q;
  ratio_hi = static_cast<uint64_t>(r >> 64);
  ratio_lo = static_cast<uint64_t>(r);
  ratio64 = ~uint64_t{0} / q;
}

int Modulus::bits() const { return 64 - __builtin_clzll(value); }

uint64_t pow_mod(uint64_t base, uint64_t exp, const Modulus& m) {
  uint64_t result = 1 % m.value;
  base = reduce64(base, m);
  while (exp) {
    if (exp & 1) result = mul_mod(result, base, m);
    base = mul_mod(base, base, m);
    exp >>= 1;
  }
  return result;
}

uint64_t inv_mod(uint64_t a, const Modulus& m) {
  if (reduce64(a, m) == 0) throw InvalidArgument("inv_mod: zero has no inverse");
  return pow_mod(a, m.value - 2, m);
}

namespace {

uint64_t mulmod_slow(uint64_t a, uint64_t b, uint64_t n) {
  return static_cast<uint64_t>(static_cast<u128>(a) * b % n);
}

uint64_t powmod_slow(uint64_t b, uint64_t e, uint64_t n) {
  uint64_t r = 1 % n;
  b %= n;
  while (e) {
    if (e & 1) r = mulmod_slow(r, b, n);
    b = mulmod_slow(b, b, n);
    e >>= 1;
  }
  return r;
}

}  // namespace

bool is_prime(uint64_t n) {
  if (n < 2) return false;
  static constexpr uint64_t kBases[] = {2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37};
  for (uint64_t p : kBases) {
    if (n % p == 0) return n == p;
  }
  uint64_t d = n - 1;
  int s = 0;
  while ((d & 1) == 0) {
    d >>= 1;
    ++s;
  }
  for (uint64_t a : kBases) {
    uint64_t x = powmod_slow(a, d, n);
    if (x == 1 || x == n - 1) continue;
    bool composite = true;
    for (int r = 1; r < s; ++r) {
      x = mulmod_slow(x, x, n);
      if (x == n - 1) {
        composite = false;
        break;
      }
    }
    if (composite) return false;
  }
  return true;
}

uint64_t find_ntt_prime(int bits, uint64_t n, const std::vector<uint64_t>& exclude) {
  if (bits < 2 || bits > 61) throw InvalidArgument("prime bit size must be in [2, 61]");
  const uint64_t two_n = 2 * n;
  const uint64_t upper = uint64_t{1} << bits;
  const uint64_t lower = uint64_t{1} << (bits - 1);
  if (upper <= two_n) throw InvalidArgument("prime bit size too small for the ring dimension");
  // Largest candidate below 2^bits that is 1 mod 2n.
  uint64_t q = ((upper - 1) / two_n) * two_n + 1;
  if (q >= upper) q -= two_n;
  for (; q > lower; q -= two_n) {
    if (is_prime(q) && std::find(exclude.begin(), exclude.end(), q) == exclude.end()) return q;
  }
  throw InvalidArgument("not enough NTT-friendly primes of " + std::to_string(bits) + " bits");
}

uint64_t find_primitive_root(uint64_t two_n, const Modulus& m) {
  const uint64_t q = m.value;
  if ((q - 1) % two_n != 0) throw InvalidArgument("modulus is not 1 mod 2n");
  const uint64_t cofactor = (q - 1) / two_n;
  for (uint64_t x = 2; x < q; ++x) {
    const uint64_t r = pow_mod(x, cofactor, m);
    // r has order dividing 2n; it is primitive iff r^n = -1 (2n is a power of two).
    if (pow_mod(r, two_n / 2, m) == q - 1) return r;
  }
  throw InvalidArgument("no primitive root found");
}

}  // namespace veil::he
