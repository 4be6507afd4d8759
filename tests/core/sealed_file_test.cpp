#include "veil/core/sealed_file.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <vector>

#include "veil/core/error.hpp"
#include "veil/core/random.hpp"

namespace veil {
namespace {

constexpr SealedFormat kFormatA{
    {'T', 'E', 'S', 'T', 'S', 'E', 'A', 'L'}, 3, "veil.test.a", "test file"};

KeySecret random_secret() {
  std::array<uint8_t, 32> b{};
  secure_random_bytes(b);
  return KeySecret::from_bytes(b);
}

std::vector<uint8_t> sample_payload() {
  std::vector<uint8_t> p(100);
  for (size_t i = 0; i < p.size(); ++i) p[i] = static_cast<uint8_t>(i * 31 + 5);
  return p;
}

std::array<uint8_t, 32> sample_fingerprint() {
  std::array<uint8_t, 32> fp{};
  for (size_t i = 0; i < fp.size(); ++i) fp[i] = static_cast<uint8_t>(0xa0 + i);
  return fp;
}

TEST(SealedFile, RoundTripKeepsPayloadAndFingerprint) {
  const KeySecret s = random_secret();
  const auto payload = sample_payload();
  const auto fp = sample_fingerprint();
  const auto file = seal_payload(payload, s, kFormatA, fp);
  ASSERT_EQ(file.size(), kSealedHeaderSize + payload.size() + kSealedTagSize);
  SealedHeader h;
  const SecretBytes plain = open_payload(file, s, kFormatA, &h);
  EXPECT_EQ(std::vector<uint8_t>(plain.span().begin(), plain.span().end()), payload);
  EXPECT_EQ(h.fingerprint, fp);
  EXPECT_EQ(h.version, 3);
  EXPECT_EQ(h.payload_size, payload.size());
  // The payload is not in clear anywhere in the file.
  EXPECT_EQ(std::search(file.begin(), file.end(), payload.begin(), payload.begin() + 16),
            file.end());
  // An empty payload seals too.
  const auto empty = seal_payload({}, s, kFormatA, fp);
  EXPECT_EQ(open_payload(empty, s, kFormatA).size(), 0u);
}

TEST(SealedFile, PassphraseRoundTripAndWrongPassphrase) {
  const ScryptParams cheap{10, 8, 1};
  const auto file = seal_payload(sample_payload(), KeySecret::from_passphrase("right", cheap),
                                 kFormatA, sample_fingerprint());
  EXPECT_EQ(parse_sealed_header(file, kFormatA).kdf, KeySecret::Kind::Passphrase);
  EXPECT_EQ(open_payload(file, KeySecret::from_passphrase("right", cheap), kFormatA).size(), 100u);
  EXPECT_THROW(open_payload(file, KeySecret::from_passphrase("wrong", cheap), kFormatA),
               IntegrityError);
  // A secret of the other kind is refused before any derivation.
  EXPECT_THROW(open_payload(file, random_secret(), kFormatA), IntegrityError);
}

TEST(SealedFile, WrongSecretEveryFlipAndEveryTruncationAreIntegrityErrors) {
  const KeySecret s = random_secret();
  const auto file = seal_payload(sample_payload(), s, kFormatA, sample_fingerprint());
  EXPECT_THROW(open_payload(file, random_secret(), kFormatA), IntegrityError);
  for (size_t i = 0; i < file.size(); ++i) {
    auto bad = file;
    bad[i] ^= 0x01;
    EXPECT_THROW(open_payload(bad, s, kFormatA), IntegrityError) << "byte " << i;
  }
  for (size_t n = 0; n < file.size(); ++n)
    EXPECT_THROW(open_payload(std::span(file).first(n), s, kFormatA), IntegrityError) << n;
  auto longer = file;
  longer.push_back(0);
  EXPECT_THROW(open_payload(longer, s, kFormatA), IntegrityError);
}

TEST(SealedFile, FormatsAreSeparated) {
  const KeySecret s = random_secret();
  const auto file = seal_payload(sample_payload(), s, kFormatA, sample_fingerprint());
  // Another magic, another version, or the same header under another HKDF info string.
  SealedFormat other_magic = kFormatA;
  other_magic.magic[7] = 'X';
  SealedFormat other_version = kFormatA;
  other_version.version = 4;
  SealedFormat other_info = kFormatA;
  other_info.kdf_info = "veil.test.b";
  EXPECT_THROW(open_payload(file, s, other_magic), IntegrityError);
  EXPECT_THROW(open_payload(file, s, other_version), IntegrityError);
  EXPECT_THROW(open_payload(file, s, other_info), IntegrityError);
}

TEST(SealedFile, TamperedScryptParametersAreRefusedBeforeDerivation) {
  const auto file =
      seal_payload(sample_payload(), KeySecret::from_passphrase("pw", ScryptParams{10, 8, 1}),
                   kFormatA, sample_fingerprint());
  auto huge = file;
  huge[11] = 30;  // log2 N = 30: gigabytes of scrypt memory
  EXPECT_THROW(parse_sealed_header(huge, kFormatA), IntegrityError);
}

TEST(SealedFile, SecretBytesMoveLeavesSourceEmpty) {
  SecretBytes a(8);
  a.data()[0] = 7;
  SecretBytes b = std::move(a);
  EXPECT_EQ(b.size(), 8u);
  EXPECT_EQ(b.data()[0], 7);
  SecretBytes c(2);
  c = std::move(b);
  EXPECT_EQ(c.size(), 8u);
}

}  // namespace
}  // namespace veil
