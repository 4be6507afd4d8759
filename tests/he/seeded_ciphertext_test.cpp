#include "veil/he/seeded_ciphertext.hpp"

#include <gtest/gtest.h>

#include <vector>

#include "he_test_util.hpp"

namespace veil::he {
namespace {

TEST(SeededCiphertext, ExpandsToTheSameCiphertextBitForBit) {
  auto ctx = HeContext::create(test::small_params());
  KeyGenerator kg(ctx);
  CkksEncoder enc(ctx);
  const std::vector<double> v = {0.25, -1.5, 3.0};
  for (size_t level : {ctx->max_level(), size_t{1}}) {
    const Ciphertext ct =
        Encryptor(ctx, kg.secret_key())
            .encrypt_symmetric(enc.encode(v, ctx->parameters().default_scale, level));
    const SeededCiphertext s(*ctx, ct);
    EXPECT_EQ(s.bytes() * 2, ct.data().size() * sizeof(uint64_t));
    Ciphertext out;
    s.expand(*ctx, out);
    EXPECT_EQ(out.level(), ct.level());
    EXPECT_EQ(out.scale(), ct.scale());
    ASSERT_EQ(out.data().size(), ct.data().size());
    EXPECT_TRUE(std::equal(out.data().begin(), out.data().end(), ct.data().begin()));
    s.expand(*ctx, out);  // reusing the storage
    EXPECT_TRUE(std::equal(out.data().begin(), out.data().end(), ct.data().begin()));
  }
}

TEST(SeededCiphertext, RefusesWhatIsNotAFreshSymmetricEncryption) {
  auto ctx = HeContext::create(test::small_params());
  KeyGenerator kg(ctx);
  CkksEncoder enc(ctx);
  const std::vector<double> v = {1.0};
  const Plaintext pt = enc.encode(v);
  EXPECT_THROW(SeededCiphertext(*ctx, Encryptor(ctx, kg.create_public_key()).encrypt(pt)),
               InvalidArgument);
  Ciphertext ct = Encryptor(ctx, kg.secret_key()).encrypt_symmetric(pt);
  ct.limb(1, 0)[3] ^= 1;  // c_1 no longer the seed's expansion
  EXPECT_THROW(SeededCiphertext(*ctx, ct), InvalidArgument);
}

}  // namespace
}  // namespace veil::he
