// The vector kernels against the scalar ones (bit for bit) and against naive references.
#include "he/kernels.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>
#include <string>

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
  v[n - 1] = q - 1;
  if (n > 2) v[1] = q - 1;
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

// The pointwise kernels of every instruction set the CPU has (scalar too) against the scalar
// code (bit for bit) and naive references.
class PointwiseKernelsTest : public ::testing::TestWithParam<Isa> {
 protected:
  void SetUp() override {
    if (!isa_supported(GetParam())) GTEST_SKIP() << "CPU without " << isa_name(GetParam());
  }
};

// Every prime size the kernels meet: both sides of the double-precision (< 2^50) and IFMA
// bounds, and the bench primes (40 and 60 bits).
constexpr int kPrimeBits[] = {20, 25, 30, 36, 40, 41, 45, 48, 49, 50, 51, 52, 55, 59, 60, 61};
// Not multiples of the vector widths (4 and 8), and the smallest.
constexpr size_t kSizes[] = {1, 3, 4, 13, 67, 256, 1024};

uint64_t bench_prime(int bits) { return find_ntt_prime(bits, 16384, {}); }

TEST_P(PointwiseKernelsTest, SubMulConstAddModLift) {
  const Isa isa = GetParam();
  std::mt19937_64 rng(8);
  for (size_t n : kSizes) {
    const std::vector<uint32_t> perm = random_permutation(rng, n);
    for (int bits : kPrimeBits) {
      const uint64_t q = bench_prime(bits);
      const Modulus m(q);
      const auto x = random_residues(rng, n, q), y = random_residues(rng, n, q);
      for (const uint64_t w : {uint64_t{0}, uint64_t{1}, q - 1, rng() % q}) {
        for (const uint64_t* yy : std::initializer_list<const uint64_t*>{nullptr, y.data()}) {
          std::vector<uint64_t> s(n), v(n);
          kernels::sub_mul_const(Isa::kScalar, s.data(), x.data(), yy, w, m, n);
          kernels::sub_mul_const(isa, v.data(), x.data(), yy, w, m, n);
          ASSERT_EQ(s, v) << bits << " n " << n;
          for (size_t c = 0; c < n; ++c)
            ASSERT_EQ(v[c], naive_mul(yy ? (x[c] + q - yy[c]) % q : x[c], w, q));
          // In place.
          std::vector<uint64_t> ip = x;
          kernels::sub_mul_const(isa, ip.data(), ip.data(), yy, w, m, n);
          ASSERT_EQ(ip, v);
        }
      }
      for (const uint32_t* p : std::initializer_list<const uint32_t*>{nullptr, perm.data()}) {
        std::vector<uint64_t> s(n), v(n);
        kernels::add_mod(Isa::kScalar, s.data(), x.data(), y.data(), p, q, n);
        kernels::add_mod(isa, v.data(), x.data(), y.data(), p, q, n);
        ASSERT_EQ(s, v) << bits << " n " << n;
        for (size_t c = 0; c < n; ++c) ASSERT_EQ(v[c], (x[p ? p[c] : c] + y[c]) % q);
      }
      // Lifts from this prime to smaller, equal-size and larger primes.
      for (int tbits : {20, 30, 40, 50, 60, 61}) {
        const uint64_t tq = find_ntt_prime(tbits, 16, {q});
        const Modulus t(tq);
        for (bool centered : {false, true}) {
          std::vector<uint64_t> s(n), v(n);
          kernels::lift(Isa::kScalar, s.data(), x.data(), q, centered, t, n);
          kernels::lift(isa, v.data(), x.data(), q, centered, t, n);
          ASSERT_EQ(s, v) << bits << " -> " << tbits << " n " << n;
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
}

TEST_P(PointwiseKernelsTest, InnerProductMatchesScalarAndReference) {
  const Isa isa = GetParam();
  std::mt19937_64 rng(9);
  for (size_t n : {size_t{5}, size_t{67}, size_t{256}}) {
    const std::vector<uint32_t> perm = random_permutation(rng, n);
    for (int bits : kPrimeBits) {
      const uint64_t q = bench_prime(bits);
      const Modulus m(q);
      for (size_t terms : {1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 33, 64}) {
        // Random residues with 0 and q - 1 among them, then every operand q - 1 (the largest
        // partial sums the lazy reductions must hold).
        for (bool worst : {false, true}) {
          std::vector<std::vector<uint64_t>> d, k0, k1;
          std::vector<const uint64_t*> dp, k0p, k1p;
          for (size_t j = 0; j < terms; ++j) {
            d.push_back(random_residues(rng, n, q));
            k0.push_back(random_residues(rng, n, q));
            k1.push_back(random_residues(rng, n, q));
            if (worst) {
              std::fill(d.back().begin(), d.back().end(), q - 1);
              std::fill(k0.back().begin(), k0.back().end(), q - 1);
              std::fill(k1.back().begin() + n / 2, k1.back().end(), q - 1);
            }
          }
          for (size_t j = 0; j < terms; ++j) {
            dp.push_back(d[j].data());
            k0p.push_back(k0[j].data());
            k1p.push_back(k1[j].data());
          }
          for (const uint32_t* p : std::initializer_list<const uint32_t*>{nullptr, perm.data()}) {
            std::vector<uint64_t> s0(n), s1(n), v0(n), v1(n), w0(n);
            kernels::dot2(Isa::kScalar, s0.data(), s1.data(), dp.data(), k0p.data(), k1p.data(),
                          terms, p, m, n);
            kernels::dot2(isa, v0.data(), v1.data(), dp.data(), k0p.data(), k1p.data(), terms, p, m,
                          n);
            kernels::dot2(isa, w0.data(), nullptr, dp.data(), k0p.data(), nullptr, terms, p, m, n);
            ASSERT_EQ(s0, v0) << bits << " terms " << terms << " n " << n;
            ASSERT_EQ(s1, v1) << bits << " terms " << terms << " n " << n;
            ASSERT_EQ(w0, v0);
            for (size_t c = 0; c < n; ++c) {
              uint64_t r0 = 0, r1 = 0;
              for (size_t j = 0; j < terms; ++j) {
                r0 = (r0 + naive_mul(d[j][p ? p[c] : c], k0[j][c], q)) % q;
                r1 = (r1 + naive_mul(d[j][p ? p[c] : c], k1[j][c], q)) % q;
              }
              ASSERT_EQ(v0[c], r0) << bits << " terms " << terms << " c " << c;
              ASSERT_EQ(v1[c], r1) << bits << " terms " << terms << " c " << c;
            }
          }
        }
      }
    }
  }
}

TEST_P(PointwiseKernelsTest, SparseMatmulMatchesScalarAndReference) {
  const Isa isa = GetParam();
  std::mt19937_64 rng(10);
  const size_t inputs = 70, rows = 4;
  for (size_t n : {size_t{3}, size_t{20}, size_t{67}}) {
    for (int bits : kPrimeBits) {
      const uint64_t q = bench_prime(bits);
      const Modulus m(q);
      for (bool worst : {false, true}) {
        std::vector<std::vector<uint64_t>> x;
        std::vector<const uint64_t*> xp;
        for (size_t i = 0; i < inputs; ++i) {
          x.push_back(random_residues(rng, n, q));
          if (worst) std::fill(x.back().begin(), x.back().end(), q - 1);
          xp.push_back(x.back().data());
        }
        // Row r has every input (up to 70 terms), a few, one, or none.
        std::vector<uint32_t> start = {0}, col;
        std::vector<uint64_t> w;
        for (size_t r = 0; r < rows; ++r) {
          const size_t count = r == 0 ? inputs : r == 1 ? 5 : r == 2 ? 1 : 0;
          for (size_t i = 0; i < count; ++i) {
            col.push_back(static_cast<uint32_t>(r == 0 ? i : rng() % inputs));
            w.push_back(worst ? q - 1 : rng() % q);
          }
          start.push_back(static_cast<uint32_t>(col.size()));
        }
        std::vector<std::vector<uint64_t>> s(rows, std::vector<uint64_t>(n)), v = s;
        std::vector<uint64_t*> sp, vp;
        for (size_t r = 0; r < rows; ++r) {
          sp.push_back(s[r].data());
          vp.push_back(v[r].data());
        }
        kernels::sparse_matmul(Isa::kScalar, sp.data(), xp.data(), start.data(), col.data(),
                               w.data(), rows, m, n);
        kernels::sparse_matmul(isa, vp.data(), xp.data(), start.data(), col.data(), w.data(), rows,
                               m, n);
        ASSERT_EQ(s, v) << bits << " n " << n;
        for (size_t r = 0; r < rows; ++r) {
          for (size_t c = 0; c < n; ++c) {
            uint64_t ref = 0;
            for (uint32_t t = start[r]; t < start[r + 1]; ++t)
              ref = (ref + naive_mul(w[t], x[col[t]][c], q)) % q;
            ASSERT_EQ(v[r][c], ref) << bits << " row " << r << " c " << c;
          }
        }
      }
    }
  }
}

TEST_P(PointwiseKernelsTest, VectorProductsOnlyWhereDot2IsVectorized) {
  const Isa isa = GetParam();
  for (int bits : kPrimeBits) {
    const uint64_t q = bench_prime(bits);
    EXPECT_EQ(kernels::vector_products(isa, q), isa != Isa::kScalar && bits <= 50) << bits;
  }
}

INSTANTIATE_TEST_SUITE_P(Isas, PointwiseKernelsTest,
                         ::testing::Values(Isa::kScalar, Isa::kAvx2, Isa::kAvx512),
                         [](const ::testing::TestParamInfo<Isa>& info) {
                           return std::string(info.param == Isa::kScalar ? "scalar"
                                              : info.param == Isa::kAvx2 ? "avx2"
                                                                         : "avx512");
                         });

}  // namespace
}  // namespace veil::he
