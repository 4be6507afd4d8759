#include "veil/core/hex.hpp"

#include <gtest/gtest.h>

#include <array>
#include <vector>

#include "veil/core/error.hpp"

namespace veil {
namespace {

TEST(Hex, EncodesLowerCase) {
  const std::vector<uint8_t> b = {0x00, 0x0f, 0xa5, 0xff};
  EXPECT_EQ(to_hex(b), "000fa5ff");
  EXPECT_EQ(to_hex(std::span<const uint8_t>()), "");
}

TEST(Hex, DecodesEitherCaseAndRoundTrips) {
  std::array<uint8_t, 4> out{};
  ASSERT_TRUE(from_hex("000FA5ff", out));
  EXPECT_EQ(out, (std::array<uint8_t, 4>{0x00, 0x0f, 0xa5, 0xff}));
  std::vector<uint8_t> all(256);
  for (int i = 0; i < 256; ++i) all[i] = static_cast<uint8_t>(i);
  EXPECT_EQ(from_hex(to_hex(all), "bytes"), all);
}

TEST(Hex, RefusesWrongLengthAndNonDigits) {
  std::array<uint8_t, 2> out{};
  EXPECT_FALSE(from_hex("abc", out));
  EXPECT_FALSE(from_hex("abcdef", out));
  EXPECT_FALSE(from_hex("abcg", out));
  EXPECT_FALSE(from_hex("ab c", out));
  EXPECT_THROW(from_hex("abc", "hash"), InvalidArgument);
  EXPECT_THROW(from_hex("zz", "hash"), InvalidArgument);
}

}  // namespace
}  // namespace veil
