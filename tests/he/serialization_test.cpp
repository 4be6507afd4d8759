#include <gtest/gtest.h>

#include "he_test_util.hpp"
#include "veil/core/error.hpp"

namespace veil::he {
namespace {

using test::cd;

class SerializationTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { keys_ = new test::Keys(HeContext::create(test::small_params())); }
  static void TearDownTestSuite() { delete keys_; }
  static test::Keys* keys_;
  test::Keys& k() { return *keys_; }
};
test::Keys* SerializationTest::keys_ = nullptr;

TEST_F(SerializationTest, ParametersRoundTrip) {
  const auto bytes = serialize_parameters(*k().ctx);
  // Test-only parameters need the same flag to be loaded back.
  EXPECT_THROW(load_context(bytes), InvalidArgument);
  const auto ctx = load_context(bytes, true);
  EXPECT_EQ(ctx->hash(), k().ctx->hash());
  EXPECT_EQ(ctx->prime_values(), k().ctx->prime_values());
  // Secure parameters load without the flag.
  CkksParameters p;
  p.poly_degree = 8192;
  const auto secure = HeContext::create(p);
  EXPECT_EQ(load_context(serialize_parameters(*secure))->hash(), secure->hash());
}

TEST_F(SerializationTest, TamperedParametersAreRefused) {
  auto bytes = serialize_parameters(*k().ctx);
  auto t = bytes;
  t[t.size() - 1] ^= 1;  // a prime changes: no longer prime / hash mismatch
  EXPECT_THROW(load_context(t, true), Error);
  t = bytes;
  t[20] ^= 1;  // hash
  EXPECT_THROW(load_context(t, true), IntegrityError);
  t = bytes;
  t[0] = 'X';
  EXPECT_THROW(load_context(t, true), MalformedInput);
  t = bytes;
  t.pop_back();
  EXPECT_THROW(load_context(t, true), MalformedInput);
}

TEST_F(SerializationTest, CiphertextRoundTripAndCompression) {
  const auto v = test::random_values(k().ctx->slots(), 1);
  const auto pub = k().encrypt(v);
  const auto pub_bytes = serialize(*k().ctx, pub);
  const auto pub_back = load_ciphertext(*k().ctx, pub_bytes);
  EXPECT_EQ(pub_back.data(), pub.data());
  EXPECT_EQ(pub_back.scale(), pub.scale());
  EXPECT_EQ(pub_back.level(), pub.level());

  Encryptor sym(k().ctx, k().keygen.secret_key());
  const auto s = sym.encrypt_symmetric(
      k().encoder.encode(v, k().ctx->parameters().default_scale, k().ctx->max_level()));
  const auto s_bytes = serialize(*k().ctx, s);
  // The seeded half is replaced by 16 bytes: roughly half the size.
  EXPECT_LT(s_bytes.size(), pub_bytes.size() / 2 + 100);
  const auto s_back = load_ciphertext(*k().ctx, s_bytes);
  EXPECT_EQ(s_back.data(), s.data());
  EXPECT_LT(test::max_error(k().decrypt(s_back), v), 1e-6);
  // After an operation the seed no longer describes c_1: stored in full, still correct.
  const auto sum = k().evaluator.add(s, s);
  const auto sum_back = load_ciphertext(*k().ctx, serialize(*k().ctx, sum));
  EXPECT_EQ(sum_back.data(), sum.data());
  // A 3-component ciphertext also round-trips.
  const auto c3 = k().evaluator.multiply(pub, pub);
  EXPECT_EQ(load_ciphertext(*k().ctx, serialize(*k().ctx, c3)).data(), c3.data());
}

TEST_F(SerializationTest, TamperedCiphertextsAreRefused) {
  const auto ct = k().encrypt(test::random_values(8, 2));
  const auto bytes = serialize(*k().ctx, ct);
  // A coefficient at or above its modulus.
  auto t = bytes;
  for (int i = 0; i < 8; ++i) t[t.size() - 8 + i] = 0xff;
  EXPECT_THROW(load_ciphertext(*k().ctx, t), MalformedInput);
  // Truncated, extended.
  t = bytes;
  t.resize(t.size() - 1);
  EXPECT_THROW(load_ciphertext(*k().ctx, t), MalformedInput);
  t = bytes;
  t.push_back(0);
  EXPECT_THROW(load_ciphertext(*k().ctx, t), MalformedInput);
  // Version, kind, level, size, scale fields.
  t = bytes;
  t[8] = 2;
  EXPECT_THROW(load_ciphertext(*k().ctx, t), MalformedInput);
  t = bytes;
  t[10] = static_cast<uint8_t>(ObjectKind::kPlaintext);
  EXPECT_THROW(load_ciphertext(*k().ctx, t), MalformedInput);
  t = bytes;
  t[48] = 9;  // size
  EXPECT_THROW(load_ciphertext(*k().ctx, t), MalformedInput);
  t = bytes;
  t[52] = 0xff;  // level (low byte)
  EXPECT_THROW(load_ciphertext(*k().ctx, t), MalformedInput);
  t = bytes;
  for (int i = 0; i < 8; ++i) t[56 + i] = 0xff;  // scale = NaN
  EXPECT_THROW(load_ciphertext(*k().ctx, t), MalformedInput);
  // A huge level claim must fail before any allocation.
  t = bytes;
  t[55] = 0x7f;
  t.resize(200);
  EXPECT_THROW(load_ciphertext(*k().ctx, t), MalformedInput);
  // Every prefix fails cleanly.
  for (size_t len = 0; len < 100; ++len)
    EXPECT_THROW(load_ciphertext(*k().ctx, std::span(bytes.data(), len)), Error);
}

TEST_F(SerializationTest, ObjectsFromOtherParametersAreRefused) {
  auto p = test::small_params();
  p.coeff_bits = {55, 40, 41, 55};
  test::Keys other(HeContext::create(p));
  const auto ct = other.encrypt(test::random_values(8, 3));
  EXPECT_THROW(load_ciphertext(*k().ctx, serialize(*other.ctx, ct)), IntegrityError);
  EXPECT_THROW(load_relin_keys(*k().ctx, serialize(*other.ctx, other.rk)), IntegrityError);
  EXPECT_THROW(load_public_key(*k().ctx, serialize(*other.ctx, other.pk)), IntegrityError);
  EXPECT_THROW(load_secret_key(*k().ctx, serialize(*other.ctx, other.keygen.secret_key())),
               IntegrityError);
}

TEST_F(SerializationTest, KeysRoundTripAndStillWork) {
  const auto& ctx = *k().ctx;
  const SecretKey sk = load_secret_key(ctx, serialize(ctx, k().keygen.secret_key()));
  EXPECT_EQ(sk.data(), k().keygen.secret_key().data());
  const PublicKey pk = load_public_key(ctx, serialize(ctx, k().pk));
  EXPECT_EQ(pk.a(), k().pk.a());
  EXPECT_EQ(pk.b(), k().pk.b());
  const RelinKeys rk = load_relin_keys(ctx, serialize(ctx, k().rk));
  for (size_t j = 0; j < rk.key().digits(); ++j) {
    EXPECT_EQ(rk.key().a(j), k().rk.key().a(j));
    EXPECT_EQ(rk.key().b(j), k().rk.key().b(j));
  }
  const std::vector<int> steps = {1, -1};
  const GaloisKeys gk = k().keygen.create_galois_keys(steps, false);
  const auto gk_bytes = serialize(ctx, gk);
  const GaloisKeys gk2 = load_galois_keys(ctx, gk_bytes);
  EXPECT_EQ(gk2.keys().size(), 2u);
  const auto v = test::random_values(ctx.slots(), 4);
  const auto ct = k().encrypt(v);
  EXPECT_EQ(k().evaluator.rotate(ct, 1, gk2).data(), k().evaluator.rotate(ct, 1, gk).data());
  // Tampered key material.
  auto t = gk_bytes;
  t[52] = 2;  // Galois element made even
  EXPECT_THROW(load_galois_keys(ctx, t), MalformedInput);
  t = gk_bytes;
  t[48] = 0xff;  // absurd key count
  t[49] = 0xff;
  EXPECT_THROW(load_galois_keys(ctx, t), MalformedInput);
  auto sk_bytes = serialize(ctx, k().keygen.secret_key());
  sk_bytes[100] ^= 0x01;  // a residue changes: no longer the same ternary secret everywhere
  EXPECT_THROW(load_secret_key(ctx, sk_bytes), MalformedInput);
}

TEST_F(SerializationTest, PlaintextRoundTrip) {
  const auto pt = k().encoder.encode(test::random_values(8, 5), 1e9, 1);
  const auto back = load_plaintext(*k().ctx, serialize(*k().ctx, pt));
  EXPECT_EQ(back.data(), pt.data());
  EXPECT_EQ(back.level(), 1u);
}

}  // namespace
}  // namespace veil::he
