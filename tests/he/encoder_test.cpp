#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <numbers>

#include "he_test_util.hpp"
#include "veil/core/cpu.hpp"

namespace veil::he {
namespace {

using test::cd;

// Slot j = m(zeta^(5^j)) with zeta = exp(i pi / n), evaluated directly.
std::vector<cd> naive_slots(const std::vector<double>& coeffs) {
  const size_t n = coeffs.size();
  std::vector<cd> out(n / 2);
  uint64_t g = 1;
  for (size_t j = 0; j < n / 2; ++j) {
    cd acc = 0;
    for (size_t k = 0; k < n; ++k) {
      const long double angle =
          std::numbers::pi_v<long double> * static_cast<long double>((g * k) % (2 * n)) / n;
      acc += coeffs[k] *
             cd(std::cos(static_cast<double>(angle)), std::sin(static_cast<double>(angle)));
    }
    out[j] = acc;
    g = g * 5 % (2 * n);
  }
  return out;
}

class EncoderTest : public ::testing::Test {
 protected:
  EncoderTest() : ctx_(HeContext::create(test::small_params())), enc_(ctx_) {}
  ContextPtr ctx_;
  CkksEncoder enc_;
};

TEST(Encoder, SpecialFftMatchesNaiveEmbedding) {
  CkksParameters p;
  p.poly_degree = 1024;
  p.coeff_bits = {50, 50};
  p.insecure_allow_for_testing_only = true;
  CkksEncoder enc(HeContext::create(p));
  std::mt19937 rng(3);
  std::uniform_real_distribution<double> d(-1, 1);
  std::vector<double> coeffs(1024);
  for (auto& c : coeffs) c = d(rng);
  const auto fast = enc.slots_from_coefficients(coeffs);
  const auto slow = naive_slots(coeffs);
  EXPECT_LT(test::max_error(fast, slow), 1e-9);
  // And the inverse transform recovers the coefficients.
  const auto back = enc.coefficients_from_slots(fast);
  for (size_t i = 0; i < coeffs.size(); ++i) ASSERT_NEAR(back[i], coeffs[i], 1e-12);
}

TEST_F(EncoderTest, RoundTripErrorBelow2ToMinus30AtScale2To40) {
  const auto values = test::random_values(ctx_->slots(), 5, 10.0);
  for (size_t level : {size_t{0}, ctx_->max_level()}) {
    const Plaintext pt = enc_.encode(values, std::ldexp(1.0, 40), level);
    const auto back = enc_.decode_complex(pt);
    EXPECT_LT(test::max_error(values, back), std::ldexp(1.0, -30)) << "level " << level;
  }
}

TEST_F(EncoderTest, RealValuesAndPadding) {
  std::vector<double> v = {1.5, -2.25, 3.0};
  const auto back = enc_.decode(enc_.encode(v));
  ASSERT_EQ(back.size(), ctx_->slots());
  for (size_t i = 0; i < back.size(); ++i) EXPECT_NEAR(back[i], i < v.size() ? v[i] : 0.0, 1e-9);
}

TEST_F(EncoderTest, ConstantEncodingFillsEverySlot) {
  const cd c(0.75, -1.25);
  const auto back = enc_.decode_complex(enc_.encode_constant(c, std::ldexp(1.0, 40), 1));
  for (const auto& x : back) ASSERT_LT(std::abs(x - c), 1e-9);
}

TEST_F(EncoderTest, LargeScaleBeyond64BitsIsExact) {
  // scale 2^70 at the top level (log2 Q ~ 135): coefficients exceed 2^63.
  const auto values = test::random_values(16, 9, 100.0);
  const auto back = enc_.decode_complex(enc_.encode(values, std::ldexp(1.0, 70), 2));
  for (size_t i = 0; i < values.size(); ++i) EXPECT_LT(std::abs(back[i] - values[i]), 1e-9);
}

// The vector FFT (AVX2, on the avx2 and avx512 paths) performs the scalar code's operations in
// the same order: encode and decode give the same bits on every kernel path the CPU has.
TEST(Encoder, EveryKernelPathGivesTheSameBits) {
  const KernelPath saved = kernel_path();
  const KernelPath detected = detected_kernel_path();
  for (size_t n : {size_t{1024}, size_t{4096}}) {
    CkksParameters p = test::small_params();
    p.poly_degree = n;
    const ContextPtr ctx = HeContext::create(p);
    const CkksEncoder enc(ctx);
    std::vector<cd> values = test::random_values(ctx->slots(), 11, 1000.0);
    values[1] = cd(0, 0);
    values[2] = cd(-1e-300, 5e-324);
    values[3] = cd(1e6, -1e6);
    std::vector<double> coeffs(n);
    std::mt19937 rng(4);
    std::uniform_real_distribution<double> dist(-1e9, 1e9);
    for (auto& c : coeffs) c = dist(rng);
    std::vector<uint64_t> ref_pt;
    std::vector<cd> ref_dec, ref_slots;
    std::vector<double> ref_coeffs;
    for (KernelPath path : {KernelPath::Scalar, KernelPath::Avx2, KernelPath::Avx512}) {
      if (path > detected) continue;
      set_kernel_path(path);
      const Plaintext pt = enc.encode(values, std::ldexp(1.0, 40), ctx->max_level());
      const std::vector<uint64_t> data(pt.data().begin(), pt.data().end());
      const auto dec = enc.decode_complex(pt);
      const auto slots = enc.slots_from_coefficients(coeffs);
      const auto back = enc.coefficients_from_slots(values);
      if (path == KernelPath::Scalar) {
        ref_pt = data;
        ref_dec = dec;
        ref_slots = slots;
        ref_coeffs = back;
        continue;
      }
      const char* name = kernel_path_name(path);
      EXPECT_EQ(data, ref_pt) << name << " n " << n;
      // Bit for bit, not within a tolerance (-0.0 differs from 0.0 here).
      const auto same_bits = [](const auto& a, const auto& b) {
        return a.size() == b.size() &&
               std::memcmp(a.data(), b.data(), a.size() * sizeof(a[0])) == 0;
      };
      EXPECT_TRUE(same_bits(dec, ref_dec)) << name << " n " << n;
      EXPECT_TRUE(same_bits(slots, ref_slots)) << name << " n " << n;
      EXPECT_TRUE(same_bits(back, ref_coeffs)) << name << " n " << n;
    }
  }
  set_kernel_path(saved);
}

TEST_F(EncoderTest, RejectsBadInput) {
  std::vector<cd> too_many(ctx_->slots() + 1);
  EXPECT_THROW(enc_.encode(too_many, 1e6, 0), InvalidArgument);
  std::vector<cd> nan = {cd(std::nan(""), 0)};
  EXPECT_THROW(enc_.encode(nan, 1e6, 0), InvalidArgument);
  std::vector<cd> huge = {cd(1e30, 0)};
  EXPECT_THROW(enc_.encode(huge, std::ldexp(1.0, 40), 0), InvalidArgument);
  EXPECT_THROW(enc_.encode(std::vector<cd>{1.0}, 1e6, ctx_->max_level() + 1), InvalidArgument);
}

}  // namespace
}  // namespace veil::he
