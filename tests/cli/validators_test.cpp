#include "cli/validators.hpp"

#include <gtest/gtest.h>

#include <string>

namespace veil::cli {
namespace {

// "" when CLI11 would accept `s`, else the message.
std::string check(CLI::Validator v, std::string s) { return v(s); }

TEST(InRange, IntegersAcceptTheBoundsAndRefuseEverythingElse) {
  const auto v = in_range<int64_t>(1, 4096);
  for (const char* ok : {"1", "2", "4096"}) EXPECT_EQ(check(v, ok), "") << ok;
  for (const char* bad : {"0", "4097", "-1", "1.5", "1e3", "abc", "", " 2", "2 ", "nan", "0x10"})
    EXPECT_NE(check(v, bad), "") << bad;
  EXPECT_EQ(check(v, "0"), "must be an integer in [1, 4096], got '0'");
  // Unsigned: a minus sign is refused, not wrapped around.
  EXPECT_NE(check(in_range<uint64_t>(0, UINT64_MAX), "-1"), "");
  EXPECT_EQ(check(in_range<uint64_t>(0, UINT64_MAX), "18446744073709551615"), "");
  EXPECT_NE(check(in_range<uint64_t>(0, UINT64_MAX), "18446744073709551616"), "");  // overflow
}

TEST(InRange, FloatsRefuseNanAndInfinity) {
  const auto v = in_range(0.0, 0.999);
  for (const char* ok : {"0", "0.5", "0.999", "9.99e-1"}) EXPECT_EQ(check(v, ok), "") << ok;
  for (const char* bad : {"nan", "NaN", "inf", "-inf", "1", "-0.1", "0.5x", ""})
    EXPECT_NE(check(v, bad), "") << bad;
}

TEST(PositiveNumber, ExcludesZeroAndIncludesTheTop) {
  const auto v = positive_number(100);
  for (const char* ok : {"1e-9", "0.05", "100"}) EXPECT_EQ(check(v, ok), "") << ok;
  for (const char* bad : {"0", "-1", "nan", "inf", "100.5"}) EXPECT_NE(check(v, bad), "") << bad;
  EXPECT_EQ(check(v, "-1"), "must be a number in (0, 100], got '-1'");
}

TEST(ImageCount, ZeroMeansAllAndNegativesAreRefused) {
  EXPECT_EQ(check(image_count(), "0"), "");
  EXPECT_EQ(check(image_count(), "2147483648"), "");
  EXPECT_NE(check(image_count(), "-1"), "");
  EXPECT_NE(check(image_count(), "2147483649"), "");
}

}  // namespace
}  // namespace veil::cli
