#include <gtest/gtest.h>

#include "he/ntt.hpp"  // the context's NTT tables and primes are he internals
#include "he/thread_pool.hpp"
#include "he_test_util.hpp"
#include "veil/core/error.hpp"

namespace veil::he {
namespace {

TEST(Context, TableMatchesStandard) {
  EXPECT_EQ(max_modulus_bits(8192, SecurityLevel::k128), 218);
  EXPECT_EQ(max_modulus_bits(16384, SecurityLevel::k192), 305);
  EXPECT_EQ(max_modulus_bits(32768, SecurityLevel::k256), 476);
  EXPECT_EQ(max_modulus_bits(4096, SecurityLevel::k128), 109);
}

TEST(Context, BenchmarkParametersAreAccepted) {
  CkksParameters p;
  p.poly_degree = 8192;
  p.coeff_bits = {60, 40, 40, 60};
  auto ctx = HeContext::create(p);
  EXPECT_EQ(ctx->q_count(), 3u);
  EXPECT_EQ(ctx->special_count(), 1u);
  EXPECT_EQ(ctx->max_level(), 2u);
  for (size_t i = 0; i < ctx->prime_count(); ++i) {
    const uint64_t q = ctx->prime_values()[i];
    EXPECT_TRUE(is_prime(q));
    EXPECT_EQ(q % (2 * 8192), 1u);
    EXPECT_EQ(ctx->prime(i).bits(), p.coeff_bits[i]);
  }
}

TEST(Context, InsecureParametersAreRefused) {
  CkksParameters p;
  p.poly_degree = 8192;
  p.coeff_bits = {60, 40, 40, 40, 40, 60};  // 280 > 218
  EXPECT_THROW(HeContext::create(p), InvalidArgument);
  p.coeff_bits = {60, 40, 40, 60};  // 200: fine at 128, too much at 192 (152) and 256 (118)
  EXPECT_NO_THROW(HeContext::create(p));
  p.security = SecurityLevel::k192;
  EXPECT_THROW(HeContext::create(p), InvalidArgument);
  p.security = SecurityLevel::k256;
  EXPECT_THROW(HeContext::create(p), InvalidArgument);
  p.coeff_bits = {50, 30, 30};  // 110 <= 118
  EXPECT_NO_THROW(HeContext::create(p));
  // Small rings are refused outright without the test-only flag.
  CkksParameters s;
  s.poly_degree = 2048;
  s.coeff_bits = {27, 27};
  EXPECT_THROW(HeContext::create(s), InvalidArgument);
  s.insecure_allow_for_testing_only = true;
  EXPECT_NO_THROW(HeContext::create(s));
  // The flag lets over-sized chains through.
  p.security = SecurityLevel::k128;
  p.coeff_bits = {60, 40, 40, 40, 40, 60};
  p.insecure_allow_for_testing_only = true;
  EXPECT_NO_THROW(HeContext::create(p));
}

TEST(Context, MalformedParametersAreRefused) {
  CkksParameters p = test::small_params();
  p.poly_degree = 3000;
  EXPECT_THROW(HeContext::create(p), InvalidArgument);
  p = test::small_params();
  p.coeff_bits = {60};
  EXPECT_THROW(HeContext::create(p), InvalidArgument);
  p.coeff_bits = {62, 40, 60};
  EXPECT_THROW(HeContext::create(p), InvalidArgument);
  p = test::small_params();
  p.primes = {12289, 40961};  // not 1 mod 2n for n = 4096 / too small
  EXPECT_THROW(HeContext::create(p), InvalidArgument);
  p = test::small_params();
  p.default_scale = 0;
  EXPECT_THROW(HeContext::create(p), InvalidArgument);
}

TEST(Context, HashDependsOnPrimes) {
  auto a = HeContext::create(test::small_params());
  auto b = HeContext::create(test::small_params());
  EXPECT_EQ(a->hash(), b->hash());
  auto p = test::small_params();
  p.coeff_bits = {55, 40, 41, 55};
  auto c = HeContext::create(p);
  EXPECT_NE(a->hash(), c->hash());
  EXPECT_EQ(a->hash_hex().size(), 64u);
}

TEST(Context, GaloisPermutationMatchesCoefficientAutomorphism) {
  auto ctx = HeContext::create(test::small_params());
  const size_t n = ctx->n();
  const Modulus& m = ctx->prime(0);
  std::mt19937_64 rng(2);
  std::vector<uint64_t> a(n);
  for (auto& x : a) x = rng() % m.value;
  for (uint32_t g : {ctx->galois_element_for_step(1), ctx->galois_element_for_step(-3),
                     ctx->galois_element_conjugate()}) {
    // sigma_g(a)(X) = a(X^g) with X^n = -1.
    std::vector<uint64_t> want(n, 0);
    for (size_t k = 0; k < n; ++k) {
      const uint64_t e = (k * g) % (2 * n);
      if (e < n)
        want[e] = add_mod(want[e], a[k], m.value);
      else
        want[e - n] = sub_mod(want[e - n], a[k], m.value);
    }
    auto fa = a;
    ctx->ntt(0).forward(fa.data());
    const auto& perm = ctx->galois_permutation(g);
    std::vector<uint64_t> got(n);
    for (size_t i = 0; i < n; ++i) got[i] = fa[perm[i]];
    ctx->ntt(0).inverse(got.data());
    EXPECT_EQ(got, want) << "g = " << g;
  }
}

TEST(ThreadPool, RunsEveryIndexOnceAndPropagatesErrors) {
  ThreadPool pool(3);
  std::vector<int> hits(1000, 0);
  pool.parallel_for(hits.size(), [&](size_t i) { hits[i]++; });
  for (int h : hits) ASSERT_EQ(h, 1);
  EXPECT_THROW(pool.parallel_for(10,
                                 [](size_t i) {
                                   if (i == 7) throw InvalidArgument("x");
                                 }),
               InvalidArgument);
  // Nested calls run inline instead of deadlocking.
  std::vector<int> nested(16, 0);
  pool.parallel_for(
      4, [&](size_t i) { pool.parallel_for(4, [&](size_t j) { nested[i * 4 + j]++; }); });
  for (int h : nested) ASSERT_EQ(h, 1);
}

}  // namespace
}  // namespace veil::he
