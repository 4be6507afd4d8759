#include <gtest/gtest.h>

#include <array>
#include <cctype>
#include <string>

#include "veil/core/error.hpp"
#include "veil/core/hex.hpp"
#include "veil/mpc/public_model.hpp"

namespace veil::mpc {
namespace {

TEST(HashHex, RoundTripsWithOrWithoutPrefixInEitherCase) {
  std::array<uint8_t, 32> h{};
  for (size_t i = 0; i < h.size(); ++i) h[i] = static_cast<uint8_t>(37 * i + 5);
  const std::string hex = veil::to_hex(h);
  ASSERT_EQ(hex.size(), 64u);
  EXPECT_EQ(hex.substr(0, 6), "052a4f");  // 5, 42, 79: lower case, two digits per byte
  EXPECT_EQ(hash_from_hex(hex), h);
  EXPECT_EQ(hash_from_hex("sha256:" + hex), h);
  std::string upper = hex;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_EQ(hash_from_hex(upper), h);
}

TEST(HashHex, RefusesWrongLengthOrDigits) {
  const std::string ok(64, 'a');
  EXPECT_NO_THROW(hash_from_hex(ok));
  EXPECT_THROW(hash_from_hex(ok.substr(1)), InvalidArgument);
  EXPECT_THROW(hash_from_hex(ok + "a"), InvalidArgument);
  EXPECT_THROW(hash_from_hex(std::string(63, 'a') + "g"), InvalidArgument);
  EXPECT_THROW(hash_from_hex("SHA256:" + ok), InvalidArgument);  // the prefix is lower case
  EXPECT_THROW(hash_from_hex(""), InvalidArgument);
}

}  // namespace
}  // namespace veil::mpc
