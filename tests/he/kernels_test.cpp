// The AVX-512 kernels against the scalar ones (bit for bit) and against naive references.
#include "he/kernels.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>

#include "he/ntt.hpp"

namespace veil::he {
namespace {

constexpr int kBits[] = {30, 40, 49, 50, 52, 55, 60, 61};

uint64_t naive_mul(uint64_t a, uint64_t b, uint64_t q) {
  return static_cast<uint64_t>(static_cast<u128>(a) * b % q);
}

std::vector<uint64_t> random_residues(std::mt19937_64& rng, size_t n, uint64_t q) {
  std::vector<uint64_t> v(n);
  for (auto& x : v) x = rng() % q;
  // Extremes exercise the lazy-reduction bounds.
  v[0] = 0;
  v[1] = q - 1;
  v[n - 1] = q - 1;
  return v;
}

std::vector<uint32_t> random_permutation(std::mt19937_64& rng, size_t n) {
  std::vector<uint32_t> perm(n);
  std::iota(perm.begin(), perm.end(), 0u);
  std::shuffle(perm.begin(), perm.end(), rng);
  return perm;
}

class KernelsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (detected_isa() != Isa::kAvx512) GTEST_SKIP() << "CPU without AVX-512 IFMA";
  }
};

TEST_F(KernelsTest, NttVectorMatchesScalar) {
  std::mt19937_64 rng(7);
  for (size_t n : {16, 32, 64, 1024, 8192}) {
    for (int bits : kBits) {
      const uint64_t q = find_ntt_prime(bits, n, {});
      const NttTables t(Modulus(q), n);
      for (int rep = 0; rep < 3; ++rep) {
        auto a = random_residues(rng, n, q);
        if (rep == 2) std::fill(a.begin(), a.end(), q - 1);
        auto s = a, v = a;
        t.forward(s.data(), Isa::kScalar);
        t.forward(v.data(), Isa::kAvx512);
        ASSERT_EQ(s, v) << "forward n=" << n << " bits=" << bits;
        t.inverse(s.data(), Isa::kScalar);
        t.inverse(v.data(), Isa::kAvx512);
        ASSERT_EQ(s, v) << "inverse n=" << n << " bits=" << bits;
        ASSERT_EQ(v, a);
      }
    }
  }
}

TEST_F(KernelsTest, PointwiseMatchScalarAndReference) {
  std::mt19937_64 rng(8);
  const size_t n = 1024;
  const std::vector<uint32_t> perm = random_permutation(rng, n);
  for (int bits : kBits) {
    const uint64_t q = find_ntt_prime(bits, n, {});
    const Modulus m(q);
    const auto x = random_residues(rng, n, q), y = random_residues(rng, n, q);
    const uint64_t w = rng() % q;
    for (const uint64_t* yy : std::initializer_list<const uint64_t*>{nullptr, y.data()}) {
      std::vector<uint64_t> s(n), v(n);
      kernels::sub_mul_const(Isa::kScalar, s.data(), x.data(), yy, w, m, n);
      kernels::sub_mul_const(Isa::kAvx512, v.data(), x.data(), yy, w, m, n);
      ASSERT_EQ(s, v) << bits;
      for (size_t c = 0; c < n; ++c)
        ASSERT_EQ(v[c], naive_mul(yy ? (x[c] + q - yy[c]) % q : x[c], w, q));
    }
    for (const uint32_t* p : std::initializer_list<const uint32_t*>{nullptr, perm.data()}) {
      std::vector<uint64_t> s(n), v(n);
      kernels::add_mod(Isa::kScalar, s.data(), x.data(), y.data(), p, q, n);
      kernels::add_mod(Isa::kAvx512, v.data(), x.data(), y.data(), p, q, n);
      ASSERT_EQ(s, v) << bits;
      for (size_t c = 0; c < n; ++c) ASSERT_EQ(v[c], (x[p ? p[c] : c] + y[c]) % q);
    }
    // Lifts from this prime to smaller, equal-size and larger primes.
    for (int tbits : {30, 40, 50, 60, 61}) {
      const uint64_t tq = find_ntt_prime(tbits, n, {q});
      const Modulus t(tq);
      for (bool centered : {false, true}) {
        std::vector<uint64_t> s(n), v(n);
        kernels::lift(Isa::kScalar, s.data(), x.data(), q, centered, t, n);
        kernels::lift(Isa::kAvx512, v.data(), x.data(), q, centered, t, n);
        ASSERT_EQ(s, v) << bits << " -> " << tbits;
        for (size_t c = 0; c < n; ++c) {
          const bool neg = centered && x[c] > q / 2;
          const uint64_t mag = neg ? q - x[c] : x[c];
          const uint64_t r = mag % tq;
          ASSERT_EQ(v[c], neg ? (tq - r) % tq : r);
        }
      }
    }
  }
}

TEST_F(KernelsTest, InnerProductMatchesScalarAndReference) {
  std::mt19937_64 rng(9);
  const size_t n = 256;
  const std::vector<uint32_t> perm = random_permutation(rng, n);
  for (int bits : kBits) {
    const uint64_t q = find_ntt_prime(bits, n, {});
    const Modulus m(q);
    for (size_t terms : {1, 2, 3, 7, 8, 9, 17, 40}) {
      std::vector<std::vector<uint64_t>> d, k0, k1;
      std::vector<const uint64_t*> dp, k0p, k1p;
      for (size_t j = 0; j < terms; ++j) {
        d.push_back(random_residues(rng, n, q));
        k0.push_back(random_residues(rng, n, q));
        k1.push_back(random_residues(rng, n, q));
        // Worst case for the accumulators: every operand q - 1.
        if (j % 2 == 0) std::fill(d.back().begin(), d.back().begin() + 16, q - 1);
        if (j % 2 == 0) std::fill(k0.back().begin(), k0.back().begin() + 16, q - 1);
      }
      for (size_t j = 0; j < terms; ++j) {
        dp.push_back(d[j].data());
        k0p.push_back(k0[j].data());
        k1p.push_back(k1[j].data());
      }
      for (const uint32_t* p : std::initializer_list<const uint32_t*>{nullptr, perm.data()}) {
        std::vector<uint64_t> s0(n), s1(n), v0(n), v1(n), w0(n);
        kernels::dot2(Isa::kScalar, s0.data(), s1.data(), dp.data(), k0p.data(), k1p.data(), terms,
                      p, m, n);
        kernels::dot2(Isa::kAvx512, v0.data(), v1.data(), dp.data(), k0p.data(), k1p.data(), terms,
                      p, m, n);
        kernels::dot2(Isa::kAvx512, w0.data(), nullptr, dp.data(), k0p.data(), nullptr, terms, p, m,
                      n);
        ASSERT_EQ(s0, v0) << bits << " terms " << terms;
        ASSERT_EQ(s1, v1) << bits << " terms " << terms;
        ASSERT_EQ(w0, v0);
        for (size_t c = 0; c < n; ++c) {
          uint64_t r0 = 0, r1 = 0;
          for (size_t j = 0; j < terms; ++j) {
            r0 = (r0 + naive_mul(d[j][p ? p[c] : c], k0[j][c], q)) % q;
            r1 = (r1 + naive_mul(d[j][p ? p[c] : c], k1[j][c], q)) % q;
          }
          ASSERT_EQ(v0[c], r0);
          ASSERT_EQ(v1[c], r1);
        }
      }
    }
  }
}

}  // namespace
}  // namespace veil::he
