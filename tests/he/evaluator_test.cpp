#include <gtest/gtest.h>

#include <cmath>

#include "he_test_util.hpp"
#include "veil/core/error.hpp"

namespace veil::he {
namespace {

using test::cd;

// Fresh ciphertexts at scale 2^40 carry ~2^-26 error; each operation below is checked against
// the same computation on the plaintext values.
constexpr double kFreshTol = 1e-6;

class EvaluatorTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    keys_ = new test::Keys(HeContext::create(test::small_params()));
    gk_ = new GaloisKeys(keys_->keygen.create_galois_keys());
  }
  static void TearDownTestSuite() {
    delete gk_;
    delete keys_;
  }
  static test::Keys* keys_;
  static GaloisKeys* gk_;
  test::Keys& k() { return *keys_; }
  size_t slots() const { return keys_->ctx->slots(); }
};
test::Keys* EvaluatorTest::keys_ = nullptr;
GaloisKeys* EvaluatorTest::gk_ = nullptr;

TEST_F(EvaluatorTest, EncryptDecryptPublicAndSymmetric) {
  const auto v = test::random_values(slots(), 1);
  EXPECT_LT(test::max_error(k().decrypt(k().encrypt(v)), v), kFreshTol);
  Encryptor sym(k().ctx, k().keygen.secret_key());
  const auto ct = sym.encrypt(k().encoder.encode(v, std::ldexp(1.0, 40), 1));
  EXPECT_TRUE(ct.seed().has_value());
  EXPECT_EQ(ct.level(), 1u);
  EXPECT_LT(test::max_error(k().decrypt(ct), v), kFreshTol);
  // A different secret key does not decrypt.
  KeyGenerator other(k().ctx);
  Decryptor wrong(k().ctx, other.secret_key());
  EXPECT_GT(test::max_error(k().encoder.decode_complex(wrong.decrypt(ct)), v), 1.0);
}

TEST_F(EvaluatorTest, AddSubNegate) {
  const auto a = test::random_values(slots(), 2), b = test::random_values(slots(), 3);
  const auto ca = k().encrypt(a), cb = k().encrypt(b);
  std::vector<cd> sum(slots()), diff(slots()), neg(slots());
  for (size_t i = 0; i < slots(); ++i) {
    sum[i] = a[i] + b[i];
    diff[i] = a[i] - b[i];
    neg[i] = -a[i];
  }
  EXPECT_LT(test::max_error(k().decrypt(k().evaluator.add(ca, cb)), sum), kFreshTol);
  EXPECT_LT(test::max_error(k().decrypt(k().evaluator.sub(ca, cb)), diff), kFreshTol);
  EXPECT_LT(test::max_error(k().decrypt(k().evaluator.negate(ca)), neg), kFreshTol);
  Ciphertext acc = ca;
  k().evaluator.add_inplace(acc, cb);
  EXPECT_LT(test::max_error(k().decrypt(acc), sum), kFreshTol);
}

TEST_F(EvaluatorTest, PlaintextOperations) {
  const auto a = test::random_values(slots(), 4), b = test::random_values(slots(), 5);
  const auto ca = k().encrypt(a);
  const Plaintext pb = k().encoder.encode(b, std::ldexp(1.0, 40), k().ctx->max_level());
  std::vector<cd> sum(slots()), diff(slots()), prod(slots());
  for (size_t i = 0; i < slots(); ++i) {
    sum[i] = a[i] + b[i];
    diff[i] = a[i] - b[i];
    prod[i] = a[i] * b[i];
  }
  EXPECT_LT(test::max_error(k().decrypt(k().evaluator.add_plain(ca, pb)), sum), kFreshTol);
  EXPECT_LT(test::max_error(k().decrypt(k().evaluator.sub_plain(ca, pb)), diff), kFreshTol);
  const auto m = k().evaluator.multiply_plain(ca, pb);
  EXPECT_NEAR(std::log2(m.scale()), 80, 1e-9);
  const auto r = k().evaluator.rescale(m);
  EXPECT_EQ(r.level(), ca.level() - 1);
  EXPECT_LT(test::max_error(k().decrypt(r), prod), kFreshTol);
}

TEST_F(EvaluatorTest, ConstantOperations) {
  const auto a = test::random_values(slots(), 6);
  const auto ca = k().encrypt(a);
  const cd c(0.5, -1.75);
  std::vector<cd> plus(slots()), times(slots()), times_re(slots()), times_int(slots());
  for (size_t i = 0; i < slots(); ++i) {
    plus[i] = a[i] + c;
    times[i] = a[i] * c;
    times_re[i] = a[i] * 3.25;
    times_int[i] = a[i] * -7.0;
  }
  EXPECT_LT(test::max_error(k().decrypt(k().evaluator.add_const(ca, c)), plus), kFreshTol);
  const auto m = k().evaluator.rescale(k().evaluator.multiply_const(ca, c));
  // The default constant scale is q_level, so the rescale restores the input scale.
  EXPECT_DOUBLE_EQ(m.scale(), ca.scale());
  EXPECT_LT(test::max_error(k().decrypt(m), times), kFreshTol);
  const auto mr = k().evaluator.rescale(k().evaluator.multiply_const(ca, 3.25));
  EXPECT_LT(test::max_error(k().decrypt(mr), times_re), kFreshTol);
  const auto mi = k().evaluator.multiply_integer(ca, -7);
  EXPECT_EQ(mi.level(), ca.level());
  EXPECT_LT(test::max_error(k().decrypt(mi), times_int), 10 * kFreshTol);
}

TEST_F(EvaluatorTest, MultiplyRelinearizeRescale) {
  const auto a = test::random_values(slots(), 7), b = test::random_values(slots(), 8);
  const auto ca = k().encrypt(a), cb = k().encrypt(b);
  std::vector<cd> prod(slots()), sq(slots());
  for (size_t i = 0; i < slots(); ++i) {
    prod[i] = a[i] * b[i];
    sq[i] = a[i] * a[i];
  }
  const auto c3 = k().evaluator.multiply(ca, cb);
  EXPECT_EQ(c3.size(), 3u);
  // A 3-component ciphertext decrypts with s^2 directly.
  EXPECT_LT(test::max_error(k().decrypt(k().evaluator.rescale(c3)), prod), kFreshTol);
  const auto c2 = k().evaluator.relinearize(c3, k().rk);
  EXPECT_EQ(c2.size(), 2u);
  const auto r = k().evaluator.rescale(c2);
  EXPECT_LT(test::max_error(k().decrypt(r), prod), kFreshTol);
  const auto s = k().evaluator.rescale(k().evaluator.relinearize(k().evaluator.square(ca), k().rk));
  EXPECT_LT(test::max_error(k().decrypt(s), sq), kFreshTol);
  // Depth 2: (a*b)^2 uses the last level.
  const auto r2 = k().evaluator.rescale(k().evaluator.multiply_relin(r, r, k().rk));
  EXPECT_EQ(r2.level(), 0u);
  std::vector<cd> p2(slots());
  for (size_t i = 0; i < slots(); ++i) p2[i] = prod[i] * prod[i];
  EXPECT_LT(test::max_error(k().decrypt(r2), p2), 1e-5);
  EXPECT_THROW(k().evaluator.rescale(r2), InvalidArgument);
}

TEST_F(EvaluatorTest, LevelsAreMatchedByModulusDrop) {
  const auto a = test::random_values(slots(), 9), b = test::random_values(slots(), 10);
  const auto ca = k().encrypt(a);
  // b * 1 rescaled lands one level lower with the input scale (constant scale = q_level).
  const auto cb = k().evaluator.rescale(k().evaluator.multiply_const(k().encrypt(b), 1.0));
  ASSERT_EQ(cb.level() + 1, ca.level());
  std::vector<cd> sum(slots()), prod(slots());
  for (size_t i = 0; i < slots(); ++i) {
    sum[i] = a[i] + b[i];
    prod[i] = a[i] * b[i];
  }
  const auto s1 = k().evaluator.add(ca, cb);
  const auto s2 = k().evaluator.add(cb, ca);
  EXPECT_EQ(s1.level(), cb.level());
  EXPECT_LT(test::max_error(k().decrypt(s1), sum), kFreshTol);
  EXPECT_LT(test::max_error(k().decrypt(s2), sum), kFreshTol);
  const auto p = k().evaluator.rescale(k().evaluator.multiply_relin(ca, cb, k().rk));
  EXPECT_LT(test::max_error(k().decrypt(p), prod), kFreshTol);
  const auto dropped = k().evaluator.mod_drop_to(ca, 0);
  EXPECT_EQ(dropped.level(), 0u);
  EXPECT_LT(test::max_error(k().decrypt(dropped), a), kFreshTol);
  EXPECT_THROW(k().evaluator.mod_drop_to(dropped, 1), InvalidArgument);
  // Operands at different scales are refused.
  const auto big = k().evaluator.multiply_const(ca, 1.0);
  EXPECT_THROW(k().evaluator.add(big, ca), InvalidArgument);
}

// The out-of-place and in-place operations read a higher operand at the lower level in place
// and copy (or negate) a component only one operand has: the result must equal the explicit
// drop-then-operate computation bit for bit, and decrypt correctly.
TEST_F(EvaluatorTest, MixedLevelsAndSizesMatchExplicitDrop) {
  const auto a = test::random_values(slots(), 15), b = test::random_values(slots(), 16);
  const auto& ev = k().evaluator;
  const auto ca = k().encrypt(a);
  const auto cb = ev.rescale(ev.multiply_const(k().encrypt(b), 1.0));  // one level lower
  // A 3-component ciphertext, (b at 2^30) * (1 at 2^30), and a at the same scale 2^60.
  const size_t top = k().ctx->max_level();
  auto encrypt_at = [&](const std::vector<cd>& v, int log_scale) {
    return k().encryptor.encrypt(k().encoder.encode(v, std::ldexp(1.0, log_scale), top));
  };
  const auto c3 = ev.multiply(encrypt_at(b, 30), encrypt_at(std::vector<cd>(slots(), 1.0), 30));
  const auto ca60 = encrypt_at(a, 60);
  ASSERT_EQ(c3.size(), 3u);
  ASSERT_EQ(c3.scale(), ca60.scale());
  const auto ca_low = ev.mod_drop_to(ca, cb.level());
  EXPECT_EQ(ev.add(ca, cb).data(), ev.add(ca_low, cb).data());
  EXPECT_EQ(ev.add(cb, ca).data(), ev.add(cb, ca_low).data());
  EXPECT_EQ(ev.sub(ca, cb).data(), ev.add(ca_low, ev.negate(cb)).data());
  EXPECT_EQ(ev.sub(cb, ca).data(), ev.add(cb, ev.negate(ca_low)).data());
  EXPECT_EQ(ev.sub(ca60, c3).data(), ev.add(ca60, ev.negate(c3)).data());
  EXPECT_EQ(ev.sub(c3, ca60).data(), ev.add(c3, ev.negate(ca60)).data());
  Ciphertext acc = ca;
  ev.add_inplace(acc, cb);  // drops acc
  EXPECT_EQ(acc.level(), cb.level());
  EXPECT_EQ(acc.data(), ev.add(ca, cb).data());
  acc = ca60;
  ev.sub_inplace(acc, c3);  // grows acc
  EXPECT_EQ(acc.size(), 3u);
  EXPECT_EQ(acc.data(), ev.sub(ca60, c3).data());
  acc = c3;
  ev.sub_inplace(acc, ca60);
  EXPECT_EQ(acc.data(), ev.sub(c3, ca60).data());

  const Plaintext pb_low = k().encoder.encode(b, ca.scale(), cb.level());
  EXPECT_EQ(ev.add_plain(ca, pb_low).data(), ev.add_plain(ca_low, pb_low).data());
  EXPECT_EQ(ev.sub_plain(ca, pb_low).data(), ev.sub_plain(ca_low, pb_low).data());
  EXPECT_EQ(ev.multiply_plain(ca, pb_low).data(), ev.multiply_plain(ca_low, pb_low).data());
  EXPECT_EQ(ev.multiply(ca, cb).data(), ev.multiply(ca_low, cb).data());

  std::vector<cd> diff(slots());
  for (size_t i = 0; i < slots(); ++i) diff[i] = a[i] - b[i];
  EXPECT_LT(test::max_error(k().decrypt(ev.sub(ca, cb)), diff), kFreshTol);
  EXPECT_LT(test::max_error(k().decrypt(ev.sub_plain(ca, pb_low)), diff), kFreshTol);
  // The 2^30-scale factors carry ~2^-13 error.
  EXPECT_LT(test::max_error(k().decrypt(ev.sub(ca60, c3)), diff), 1e-3);
  std::vector<cd> rdiff(slots());  // acc = c3 - a
  for (size_t i = 0; i < slots(); ++i) rdiff[i] = b[i] - a[i];
  EXPECT_LT(test::max_error(k().decrypt(acc), rdiff), 1e-3);
}

std::vector<cd> rotated(const std::vector<cd>& v, int step) {
  const int64_t n = static_cast<int64_t>(v.size());
  std::vector<cd> out(v.size());
  for (int64_t i = 0; i < n; ++i) out[i] = v[(((i + step) % n) + n) % n];
  return out;
}

TEST_F(EvaluatorTest, RotateConjugateHoisted) {
  const auto a = test::random_values(slots(), 11);
  const auto ca = k().encrypt(a);
  for (int step : {1, 2, 5, -1, -7, 100, static_cast<int>(slots()) - 1}) {
    const auto r = k().evaluator.rotate(ca, step, *gk_);
    EXPECT_LT(test::max_error(k().decrypt(r), rotated(a, step)), kFreshTol) << step;
  }
  std::vector<cd> conj(slots());
  for (size_t i = 0; i < slots(); ++i) conj[i] = std::conj(a[i]);
  EXPECT_LT(test::max_error(k().decrypt(k().evaluator.conjugate(ca, *gk_)), conj), kFreshTol);

  const std::vector<int> steps = {0, 1, 2, 4, -8, 16};
  const auto hoisted = k().evaluator.rotate_hoisted(ca, steps, *gk_);
  ASSERT_EQ(hoisted.size(), steps.size());
  for (size_t i = 0; i < steps.size(); ++i) {
    EXPECT_LT(test::max_error(k().decrypt(hoisted[i]), rotated(a, steps[i])), kFreshTol);
    if (steps[i] != 0) {
      // Hoisting changes nothing in the result: same bits as the one-off rotation.
      EXPECT_EQ(hoisted[i].data(), k().evaluator.rotate(ca, steps[i], *gk_).data());
    }
  }
  // A step without its own key cannot be hoisted.
  const std::vector<int> missing = {3};
  EXPECT_THROW(k().evaluator.rotate_hoisted(ca, missing, *gk_), InvalidArgument);
}

TEST_F(EvaluatorTest, SumSlots) {
  const auto a = test::random_values(slots(), 12);
  const auto ca = k().encrypt(a);
  cd total = 0;
  for (const auto& x : a) total += x;
  const auto all = k().decrypt(k().evaluator.sum_slots(ca, slots(), *gk_));
  for (const auto& x : all) ASSERT_LT(std::abs(x - total), 1e-4);
  const auto four = k().decrypt(k().evaluator.sum_slots(ca, 4, *gk_));
  for (size_t i = 0; i < slots(); ++i) {
    cd want = 0;
    for (size_t j = 0; j < 4; ++j) want += a[(i + j) % slots()];
    ASSERT_LT(std::abs(four[i] - want), 1e-5);
  }
  EXPECT_THROW(k().evaluator.sum_slots(ca, 3, *gk_), InvalidArgument);
}

TEST_F(EvaluatorTest, PrecisionReportTracksMeasuredError) {
  const auto a = test::random_values(slots(), 13);
  const auto ca = k().encrypt(a);
  auto r = measure_precision(*k().ctx, k().decryptor, k().encoder, ca, a);
  EXPECT_EQ(r.levels_left, k().ctx->max_level());
  ASSERT_TRUE(r.measured_error_log2.has_value());
  EXPECT_NEAR(*r.measured_error_log2, r.estimated_error_log2, 4.0);
  const auto p = k().evaluator.rescale(k().evaluator.multiply_relin(ca, ca, k().rk));
  std::vector<cd> sq(slots());
  for (size_t i = 0; i < slots(); ++i) sq[i] = a[i] * a[i];
  r = measure_precision(*k().ctx, k().decryptor, k().encoder, p, sq);
  EXPECT_EQ(r.levels_left, k().ctx->max_level() - 1);
  // The model assumes |slot| <= 1, which bounds these values (|a| <= sqrt 2): within 5 bits.
  EXPECT_NEAR(*r.measured_error_log2, r.estimated_error_log2, 5.0);
  EXPECT_FALSE(to_string(r).empty());
}

TEST_F(EvaluatorTest, ObjectsFromOtherParametersAreRefused) {
  auto p = test::small_params();
  p.coeff_bits = {55, 40, 41, 55};
  test::Keys other(HeContext::create(p));
  const auto mine = k().encrypt(test::random_values(4, 1));
  const auto theirs = other.encrypt(test::random_values(4, 1));
  EXPECT_THROW(k().evaluator.add(mine, theirs), InvalidArgument);
  EXPECT_THROW(k().decryptor.decrypt(theirs), InvalidArgument);
  EXPECT_THROW(k().evaluator.relinearize(k().evaluator.multiply(mine, mine), other.rk),
               InvalidArgument);
  EXPECT_THROW(Encryptor(k().ctx, other.pk), InvalidArgument);
}

TEST_F(EvaluatorTest, ResultsDoNotDependOnThreadCount) {
  const auto a = test::random_values(slots(), 14);
  const auto ca = k().encrypt(a);
  auto run = [&] {
    auto m = k().evaluator.rescale(k().evaluator.multiply_relin(ca, ca, k().rk));
    return k().evaluator.rotate(m, 3, *gk_).data();
  };
  k().ctx->set_threads(1);
  const auto one = run();
  k().ctx->set_threads(3);
  const auto three = run();
  k().ctx->set_threads(1);
  EXPECT_EQ(one, three);
}

// Every rotation step, on a small ring so the test stays fast.
TEST(EvaluatorAllSteps, EveryRotationStep) {
  CkksParameters p;
  p.poly_degree = 1024;
  p.coeff_bits = {50, 50};
  p.insecure_allow_for_testing_only = true;
  p.default_scale = std::ldexp(1.0, 30);
  test::Keys k(HeContext::create(p));
  const GaloisKeys gk = k.keygen.create_galois_keys();
  const size_t slots = k.ctx->slots();
  const auto a = test::random_values(slots, 15);
  const auto ca = k.encrypt(a);
  for (int step = 0; step < static_cast<int>(slots); ++step) {
    const auto r = k.evaluator.rotate(ca, step, gk);
    ASSERT_LT(test::max_error(k.decrypt(r), rotated(a, step)), 1e-3) << step;
  }
  EXPECT_LT(test::max_error(k.decrypt(k.evaluator.rotate(ca, -5, gk)), rotated(a, -5)), 1e-3);
}

// Hybrid key switching with two special primes (digits of two primes each).
TEST(EvaluatorHybrid, MultiplyAndRotateWithTwoSpecialPrimes) {
  test::Keys k(HeContext::create(test::small_params(2)));
  ASSERT_EQ(k.ctx->special_count(), 2u);
  ASSERT_EQ(k.ctx->digit_count(k.ctx->max_level()), 2u);
  const std::vector<int> steps = {1, -2};
  const GaloisKeys gk = k.keygen.create_galois_keys(steps, true);
  const size_t slots = k.ctx->slots();
  const auto a = test::random_values(slots, 16), b = test::random_values(slots, 17);
  auto ca = k.encrypt(a);
  const auto cb = k.encrypt(b);
  std::vector<cd> prod(slots);
  for (size_t i = 0; i < slots; ++i) prod[i] = a[i] * b[i];
  auto p = k.evaluator.rescale(k.evaluator.multiply_relin(ca, cb, k.rk));
  EXPECT_LT(test::max_error(k.decrypt(p), prod), kFreshTol);
  // Level 2 leaves a partial digit (one prime of two).
  p = k.evaluator.rescale(k.evaluator.multiply_relin(p, k.evaluator.mod_drop_to(cb, 2), k.rk));
  EXPECT_EQ(p.level(), 1u);
  for (size_t i = 0; i < slots; ++i) prod[i] *= b[i];
  EXPECT_LT(test::max_error(k.decrypt(p), prod), 1e-5);
  EXPECT_LT(test::max_error(k.decrypt(k.evaluator.rotate(ca, 1, gk)), rotated(a, 1)), kFreshTol);
  EXPECT_LT(test::max_error(k.decrypt(k.evaluator.rotate(p, -2, gk)), rotated(prod, -2)), 1e-5);
}

}  // namespace
}  // namespace veil::he
