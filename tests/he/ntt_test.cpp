#include "he/ntt.hpp"

#include <gtest/gtest.h>

#include <random>

#include "he/modarith.hpp"
#include "he/ntt_avx2.hpp"
#include "veil/he/bench.hpp"
#include "veil/he/context.hpp"

namespace veil::he {
namespace {

TEST(ModArith, ReduceMatchesDivision) {
  std::mt19937_64 rng(1);
  for (int bits : {20, 40, 55, 60, 61}) {
    const uint64_t q = find_ntt_prime(bits, 1024, {});
    const Modulus m(q);
    for (int i = 0; i < 20000; ++i) {
      const u128 x = (static_cast<u128>(rng()) << 64) | rng();
      ASSERT_EQ(reduce128(x, m), static_cast<uint64_t>(x % q));
      ASSERT_EQ(reduce64(static_cast<uint64_t>(x), m), static_cast<uint64_t>(x) % q);
      const uint64_t a = rng() % q, b = rng() % q;
      ASSERT_EQ(mul_mod(a, b, m), static_cast<uint64_t>(static_cast<u128>(a) * b % q));
      const uint64_t w = rng() % q;
      ASSERT_EQ(mul_shoup(a, w, shoup(w, q), q),
                static_cast<uint64_t>(static_cast<u128>(a) * w % q));
    }
  }
}

TEST(ModArith, MillerRabinMatchesTrialDivision) {
  auto slow = [](uint64_t n) {
    if (n < 2) return false;
    for (uint64_t d = 2; d * d <= n; ++d)
      if (n % d == 0) return false;
    return true;
  };
  for (uint64_t n = 0; n < 20000; ++n) ASSERT_EQ(is_prime(n), slow(n)) << n;
  EXPECT_FALSE(is_prime(3215031751ULL));  // strong pseudoprime to bases 2, 3, 5, 7
  EXPECT_TRUE(is_prime((uint64_t{1} << 61) - 1));
}

TEST(ModArith, NttPrimesAreDistinctAndFriendly) {
  std::vector<uint64_t> used;
  for (int i = 0; i < 6; ++i) used.push_back(find_ntt_prime(40, 8192, used));
  for (size_t i = 0; i < used.size(); ++i) {
    EXPECT_TRUE(is_prime(used[i]));
    EXPECT_EQ(used[i] % 16384, 1u);
    EXPECT_EQ(64 - __builtin_clzll(used[i]), 40);
    for (size_t j = 0; j < i; ++j) EXPECT_NE(used[i], used[j]);
  }
}

std::vector<uint64_t> schoolbook_negacyclic(const std::vector<uint64_t>& a,
                                            const std::vector<uint64_t>& b, const Modulus& m) {
  const size_t n = a.size();
  std::vector<uint64_t> c(n, 0);
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < n; ++j) {
      const uint64_t p = mul_mod(a[i], b[j], m);
      if (i + j < n)
        c[i + j] = add_mod(c[i + j], p, m.value);
      else
        c[i + j - n] = sub_mod(c[i + j - n], p, m.value);
    }
  return c;
}

class NttTest : public ::testing::TestWithParam<std::pair<size_t, int>> {};

TEST_P(NttTest, MultiplicationMatchesSchoolbook) {
  const auto [n, bits] = GetParam();
  const Modulus m(find_ntt_prime(bits, n, {}));
  NttTables t(m, n);
  std::mt19937_64 rng(n * 31 + bits);
  std::vector<uint64_t> a(n), b(n);
  for (auto& x : a) x = rng() % m.value;
  for (auto& x : b) x = rng() % m.value;
  const auto want = schoolbook_negacyclic(a, b, m);
  auto fa = a, fb = b;
  t.forward(fa.data());
  t.forward(fb.data());
  std::vector<uint64_t> fc(n);
  for (size_t i = 0; i < n; ++i) fc[i] = mul_mod(fa[i], fb[i], m);
  t.inverse(fc.data());
  EXPECT_EQ(fc, want);
  t.inverse(fa.data());
  EXPECT_EQ(fa, a);
}

TEST_P(NttTest, SlotIsEvaluationAtOddPowerOfPsi) {
  const auto [n, bits] = GetParam();
  const Modulus m(find_ntt_prime(bits, n, {}));
  NttTables t(m, n);
  int logn = 0;
  while ((size_t{1} << logn) < n) ++logn;
  std::mt19937_64 rng(7);
  std::vector<uint64_t> a(n);
  for (auto& x : a) x = rng() % m.value;
  auto fa = a;
  t.forward(fa.data());
  for (size_t i = 0; i < n; i += n / 8 + 1) {
    const uint64_t e = 2 * bit_reverse(static_cast<uint32_t>(i), logn) + 1;
    const uint64_t x = pow_mod(t.psi(), e, m);
    uint64_t v = 0;  // Horner
    for (size_t k = n; k-- > 0;) v = add_mod(mul_mod(v, x, m), a[k], m.value);
    EXPECT_EQ(fa[i], v) << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Sizes, NttTest,
                         ::testing::Values(std::make_pair(size_t{8}, 30),
                                           std::make_pair(size_t{64}, 40),
                                           std::make_pair(size_t{256}, 60),
                                           std::make_pair(size_t{512}, 61)));

TEST(Ntt, LargeInputsStayReduced) {
  // Inputs at q - 1 everywhere exercise the lazy-reduction bounds.
  const size_t n = 4096;
  const Modulus m(find_ntt_prime(61, n, {}));
  NttTables t(m, n);
  std::vector<uint64_t> a(n, m.value - 1);
  auto f = a;
  t.forward(f.data());
  for (uint64_t v : f) ASSERT_LT(v, m.value);
  t.inverse(f.data());
  EXPECT_EQ(f, a);
}

// Every kernel set the CPU supports against the scalar transform, forward and inverse, on random
// residues and on edge values, for every size from the smallest one to 32768.
std::vector<Isa> supported_isas() {
  std::vector<Isa> isas;
  for (Isa isa : {Isa::kAvx2, Isa::kAvx512})
    if (isa_supported(isa)) isas.push_back(isa);
  return isas;
}

std::vector<std::vector<uint64_t>> ntt_inputs(size_t n, uint64_t q, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::vector<uint64_t>> in(5, std::vector<uint64_t>(n));
  for (size_t i = 0; i < n; ++i) {
    in[0][i] = rng() % q;
    in[1][i] = 0;
    in[2][i] = q - 1;
    in[3][i] = i % 2 ? q - 1 : 0;
    in[4][i] = rng() % 3 == 0 ? rng() % q : q - 1 - rng() % 2;  // mostly at the top
  }
  in[1][n / 2] = 1;
  return in;
}

// The definition: slot i of the forward transform is a(psi^(2 brv(i) + 1)).
std::vector<uint64_t> naive_forward(const std::vector<uint64_t>& a, uint64_t psi,
                                    const Modulus& m) {
  const size_t n = a.size();
  int logn = 0;
  while ((size_t{1} << logn) < n) ++logn;
  std::vector<uint64_t> out(n);
  for (size_t i = 0; i < n; ++i) {
    const uint64_t x = pow_mod(psi, 2 * bit_reverse(static_cast<uint32_t>(i), logn) + 1, m);
    uint64_t v = 0;
    for (size_t k = n; k-- > 0;) v = add_mod(mul_mod(v, x, m), a[k], m.value);
    out[i] = v;
  }
  return out;
}

void expect_paths_match(const Modulus& m, size_t n) {
  const NttTables t(m, n);
  const auto inputs = ntt_inputs(n, m.value, n * 131 + m.value);
  for (size_t k = 0; k < inputs.size(); ++k) {
    auto want_f = inputs[k], want_i = inputs[k];
    t.forward(want_f.data(), Isa::kScalar);
    t.inverse(want_i.data(), Isa::kScalar);
    if (n <= 128) {
      ASSERT_EQ(want_f, naive_forward(inputs[k], t.psi(), m));
      auto back = want_i;
      t.forward(back.data(), Isa::kScalar);
      ASSERT_EQ(back, inputs[k]);
    }
    for (Isa isa : supported_isas()) {
      SCOPED_TRACE(::testing::Message()
                   << isa_name(isa) << " q=" << m.value << " n=" << n << " input " << k);
      auto f = inputs[k], i = inputs[k];
      t.forward(f.data(), isa);
      t.inverse(i.data(), isa);
      ASSERT_EQ(f, want_f);
      ASSERT_EQ(i, want_i);
      t.inverse(f.data(), isa);
      ASSERT_EQ(f, inputs[k]);
    }
  }
}

class NttPaths : public ::testing::TestWithParam<int> {};

TEST_P(NttPaths, EveryKernelMatchesScalar) {
  const int bits = GetParam();
  for (size_t n = 2; n <= 32768; n *= 2)
    expect_paths_match(Modulus(find_ntt_prime(bits, n, {})), n);
}

// 20..61 bits; 49 and 50 bits are the largest primes of the AVX2 double-precision and AVX-512
// IFMA paths, 51 the smallest of their integer paths.
INSTANTIATE_TEST_SUITE_P(Bits, NttPaths,
                         ::testing::Values(20, 30, 36, 40, 45, 49, 50, 51, 55, 59, 60, 61));

TEST(NttPaths, BenchPrimesMatchScalar) {
  for (size_t n : {size_t{8192}, size_t{16384}}) {
    const auto ctx = HeContext::create(bench_parameters(n), 1);
    for (size_t i = 0; i < ctx->prime_count(); ++i) expect_paths_match(ctx->prime(i), n);
  }
}

TEST(NttPaths, Avx2PathsForEveryPrimeSize) {
  // Which arithmetic the AVX2 kernels use is a function of q alone.
  EXPECT_TRUE(avx2::fp_friendly(find_ntt_prime(50, 1024, {})));
  EXPECT_FALSE(avx2::fp_friendly(find_ntt_prime(51, 1024, {})));
}

}  // namespace
}  // namespace veil::he
