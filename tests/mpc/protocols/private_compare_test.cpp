#include "veil/mpc/protocols/private_compare.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "mpc/test_util.hpp"
#include "veil/core/cpu.hpp"
#include "veil/core/error.hpp"
#include "veil/mpc/kernels/z67.hpp"

namespace veil::mpc {
namespace {

using testing::TestRng;

struct Inputs {
  std::vector<uint64_t> r;
  std::vector<uint8_t> beta, xs, sv, uv, rot;
};

// Random inputs for n elements of m digits; r covers the edges 0, 1, 2^m - 2 and 2^m - 1
// (the planted-zero case when beta = 1).
Inputs random_inputs(TestRng& rng, int m, size_t n) {
  const uint64_t mask = (uint64_t{1} << m) - 1;
  const size_t nd = n * static_cast<size_t>(m);
  Inputs in;
  in.r.resize(n);
  in.beta.resize(n);
  in.rot.resize(n);
  for (size_t e = 0; e < n; ++e) {
    const uint64_t edges[] = {0, 1, mask - 1, mask};
    in.r[e] = e < 8 ? edges[e % 4] & mask : rng.u64() & mask;
    in.beta[e] = static_cast<uint8_t>(e < 8 ? (e / 4) & 1 : rng.u64() & 1);
    in.rot[e] = static_cast<uint8_t>(rng.u64() % static_cast<uint64_t>(m));
  }
  for (auto* v : {&in.xs, &in.sv, &in.uv}) v->resize(nd);
  for (size_t i = 0; i < nd; ++i) {
    in.xs[i] = static_cast<uint8_t>(rng.u64() % kP);
    in.sv[i] = static_cast<uint8_t>(1 + rng.u64() % (kP - 1));
    in.uv[i] = static_cast<uint8_t>(rng.u64() % kP);
  }
  return in;
}

std::vector<uint8_t> digits(const Inputs& in, int m, bool client, CompareKernel kernel) {
  std::vector<uint8_t> out(in.r.size() * static_cast<size_t>(m), 0xee);
  private_compare_digits(m, client, in.r.size(), in.r.data(), in.beta.data(), in.xs.data(),
                         in.sv.data(), in.uv.data(), in.rot.data(), out.data(), kernel);
  return out;
}

// The protocol's meaning, checked on the scalar kernel: with the client holding x_i shares and
// the server x_i' so that x_i + x_i' = bit i of a secret x, the two parties' digit sums contain
// a zero iff beta xor [x > r] = 1 (and exactly one zero then).
TEST(PrivateCompare, DigitSumsRevealExactlyTheMaskedComparison) {
  TestRng rng;
  for (int m : {1, 2, 5, 15, 31, 32, 33, 63}) {
    const size_t n = 300;
    const uint64_t mask = (uint64_t{1} << m) - 1;
    Inputs client = random_inputs(rng, m, n);
    Inputs server = client;  // same public r, beta, multipliers, masks, rotations
    std::vector<uint64_t> secret(n);
    for (size_t e = 0; e < n; ++e) {
      secret[e] = e % 3 == 0 ? client.r[e] : rng.u64() & mask;  // equal values too
      for (int i = 0; i < m; ++i) {
        const size_t k = e * static_cast<size_t>(m) + static_cast<size_t>(i);
        const unsigned bit = (secret[e] >> i) & 1;
        server.xs[k] = static_cast<uint8_t>((bit + kP - client.xs[k]) % kP);
      }
    }
    for (CompareKernel kernel :
         {CompareKernel::Scalar, CompareKernel::Avx2, CompareKernel::Avx512}) {
      if (!compare_kernel_available(kernel)) continue;
      auto dc = digits(client, m, true, kernel), ds = digits(server, m, false, kernel);
      for (size_t e = 0; e < n; ++e) {
        int zeros = 0;
        for (int i = 0; i < m; ++i) {
          const size_t k = e * static_cast<size_t>(m) + static_cast<size_t>(i);
          ASSERT_LT(dc[k], kP);
          ASSERT_LT(ds[k], kP);
          zeros += (dc[k] + ds[k]) % kP == 0;
        }
        const int want = client.beta[e] ^ (secret[e] > client.r[e] ? 1 : 0);
        ASSERT_EQ(zeros, want) << "m " << m << " element " << e << " r " << client.r[e] << " x "
                               << secret[e] << " beta " << int(client.beta[e]);
      }
    }
  }
}

// The vector kernels available here (every one of them, whatever the kernel path).
std::vector<CompareKernel> vector_kernels() {
  std::vector<CompareKernel> ks;
  for (CompareKernel k : {CompareKernel::Avx2, CompareKernel::Avx512})
    if (compare_kernel_available(k)) ks.push_back(k);
  return ks;
}

const char* name_of(CompareKernel k) { return k == CompareKernel::Avx2 ? "avx2" : "avx512"; }

// Every vector kernel is bit-for-bit the scalar one (the parties' digits must not depend on
// which machine computes them), for every m and element counts around the vector widths (the
// AVX2 kernel's last elements take a padded path), on both sides.
TEST(PrivateCompare, VectorKernelsMatchScalar) {
  if (vector_kernels().empty()) GTEST_SKIP() << "no vector kernel here";
  TestRng rng;
  for (int m = 1; m <= 63; ++m)
    for (size_t n : {size_t{1}, size_t{2}, size_t{37}, size_t{129}}) {
      Inputs in = random_inputs(rng, m, n);
      for (bool client : {true, false}) {
        const auto want = digits(in, m, client, CompareKernel::Scalar);
        for (CompareKernel k : vector_kernels())
          ASSERT_EQ(digits(in, m, client, k), want)
              << name_of(k) << " m " << m << " n " << n << " client " << client;
      }
    }
}

// Bits of r above m, and coins other than 0/1, are ignored as the scalar kernel ignores them.
TEST(PrivateCompare, VectorKernelsIgnoreWhatScalarIgnores) {
  TestRng rng;
  for (int m : {1, 7, 32, 33, 63}) {
    Inputs in = random_inputs(rng, m, 200);
    for (size_t e = 0; e < in.r.size(); e += 3) in.r[e] |= ~uint64_t{0} << m;
    for (size_t e = 1; e < in.beta.size(); e += 5) in.beta[e] = 2;
    for (bool client : {true, false}) {
      const auto want = digits(in, m, client, CompareKernel::Scalar);
      for (CompareKernel k : vector_kernels())
        ASSERT_EQ(digits(in, m, client, k), want) << name_of(k) << " m " << m;
    }
  }
}

// The helper's steps on every vector kernel against the scalar one, for every m and counts
// that leave a tail of the flat 32-digit steps.
TEST(PrivateCompare, VectorHelperStepsMatchScalar) {
  TestRng rng;
  for (int m = 1; m <= 63; ++m)
    for (size_t n : {size_t{0}, size_t{1}, size_t{5}, size_t{97}}) {
      const size_t nd = n * static_cast<size_t>(m);
      std::vector<uint64_t> r(n);
      for (auto& v : r) v = rng.u64();  // bits above m too: ignored
      std::vector<uint8_t> client(nd), dc(nd), ds(nd);
      for (auto& v : client) v = static_cast<uint8_t>(rng.u64() % kP);
      for (size_t i = 0; i < nd; ++i) {
        dc[i] = static_cast<uint8_t>(rng.u64() % kP);
        // About one sum in 2m is 0 mod 67 (as 0 or 67), so some elements have none.
        const bool plant = rng.u64() % (2 * static_cast<uint64_t>(m)) == 0;
        ds[i] = static_cast<uint8_t>(plant ? (kP - dc[i]) % kP : rng.u64() % kP);
      }
      std::vector<uint8_t> want_shares = client, want_zero(n, 7);
      private_compare_bit_shares(m, n, r.data(), want_shares.data(), CompareKernel::Scalar);
      private_compare_any_zero(m, n, dc.data(), ds.data(), want_zero.data(), CompareKernel::Scalar);
      for (CompareKernel k : vector_kernels()) {
        std::vector<uint8_t> shares = client, zero(n, 7);
        private_compare_bit_shares(m, n, r.data(), shares.data(), k);
        private_compare_any_zero(m, n, dc.data(), ds.data(), zero.data(), k);
        ASSERT_EQ(shares, want_shares) << name_of(k) << " m " << m << " n " << n;
        ASSERT_EQ(zero, want_zero) << name_of(k) << " m " << m << " n " << n;
      }
    }
}

// The helper's two steps, on every kernel: server shares complete the client's to the bits of r,
// and the zero test sees exactly the digit sums that are 0 mod 67.
TEST(PrivateCompare, HelperStepsMatchTheirDefinition) {
  TestRng rng;
  for (int m : {1, 7, 15, 32, 63}) {
    const size_t n = 257, mm = static_cast<size_t>(m);
    const uint64_t mask = (uint64_t{1} << m) - 1;
    std::vector<uint64_t> r(n);
    std::vector<uint8_t> client(n * mm), dc(n * mm), ds(n * mm);
    for (auto& v : r) v = rng.u64() & mask;
    r[0] = 0;
    r[1] = mask;
    for (auto& v : client) v = static_cast<uint8_t>(rng.u64() % kP);
    for (size_t i = 0; i < dc.size(); ++i) {
      dc[i] = static_cast<uint8_t>(rng.u64() % kP);
      // Plant sums of 0 and 67 in some elements, non-zero sums elsewhere.
      const size_t e = i / mm;
      ds[i] = static_cast<uint8_t>(e % 3 == 0 && i % mm == e % mm ? (kP - dc[i]) % kP
                                                                  : (kP - dc[i] + 1) % kP);
    }
    for (CompareKernel kernel :
         {CompareKernel::Scalar, CompareKernel::Avx2, CompareKernel::Avx512}) {
      if (!compare_kernel_available(kernel)) continue;
      std::vector<uint8_t> shares = client;
      private_compare_bit_shares(m, n, r.data(), shares.data(), kernel);
      for (size_t e = 0; e < n; ++e)
        for (size_t i = 0; i < mm; ++i) {
          ASSERT_LT(shares[e * mm + i], kP);
          ASSERT_EQ((shares[e * mm + i] + client[e * mm + i]) % kP, (r[e] >> i) & 1)
              << "m " << m << " e " << e << " i " << i;
        }
      std::vector<uint8_t> zero(n, 7);
      private_compare_any_zero(m, n, dc.data(), ds.data(), zero.data(), kernel);
      for (size_t e = 0; e < n; ++e) ASSERT_EQ(zero[e], e % 3 == 0 ? 1 : 0) << "m " << m;
    }
  }
}

// Auto runs the best kernel the CPU has within the kernel path, and names it.
class CompareKernelPath : public ::testing::Test {
 protected:
  void TearDown() override { set_kernel_path(saved_); }
  KernelPath saved_ = kernel_path();
};

TEST_F(CompareKernelPath, AutoStaysWithinTheKernelPath) {
  EXPECT_TRUE(compare_kernel_available(CompareKernel::Scalar));
  EXPECT_TRUE(compare_kernel_available(CompareKernel::Auto));
  const CpuFeatures& f = cpu_features();
  EXPECT_EQ(compare_kernel_available(CompareKernel::Avx2), f.avx2 && f.fma && f.bmi2);
  for (KernelPath path : {KernelPath::Scalar, KernelPath::Avx2, KernelPath::Avx512}) {
    if (path > detected_kernel_path()) continue;
    set_kernel_path(path);
    const std::string want =
        path == KernelPath::Avx512 && compare_kernel_available(CompareKernel::Avx512) ? "avx512bw"
        : path >= KernelPath::Avx2 && compare_kernel_available(CompareKernel::Avx2)   ? "avx2"
                                                                                      : "scalar";
    EXPECT_EQ(compare_kernel_name(), want) << kernel_path_name(path);
  }
  uint64_t r = 0;
  uint8_t b = 0;
  for (CompareKernel k : {CompareKernel::Avx2, CompareKernel::Avx512}) {
    if (!compare_kernel_available(k)) {
      EXPECT_THROW(private_compare_digits(1, true, 1, &r, &b, &b, &b, &b, &b, &b, k),
                   InvalidArgument);
    }
  }
}

TEST(PrivateCompare, RejectsBadDigitCounts) {
  uint64_t r = 0;
  uint8_t b = 0;
  EXPECT_THROW(private_compare_digits(0, true, 1, &r, &b, &b, &b, &b, &b, &b), InvalidArgument);
  EXPECT_THROW(private_compare_digits(64, true, 1, &r, &b, &b, &b, &b, &b, &b), InvalidArgument);
}

}  // namespace
}  // namespace veil::mpc
