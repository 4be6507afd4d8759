#include "veil/core/default_init.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>

namespace veil {
namespace {

TEST(Bytes, GrowingDoesNotOverwriteTheStorage) {
  // The point of Bytes: resize() leaves new elements as the memory holds them (std::vector would
  // zero them). Within the capacity the old bytes are still there. Unsigned char may be read
  // while indeterminate, so this is well-defined.
  Bytes b(64, 0xab);
  const uint8_t* storage = b.data();
  b.resize(0);
  b.resize(64);
  ASSERT_EQ(b.data(), storage);
  EXPECT_TRUE(std::all_of(b.begin(), b.end(), [](uint8_t v) { return v == 0xab; }));
}

TEST(Bytes, BehavesAsAVectorOtherwise) {
  Bytes zeros(100, 0);
  EXPECT_TRUE(std::all_of(zeros.begin(), zeros.end(), [](uint8_t v) { return v == 0; }));
  const std::string text = "veil";
  Bytes copy(text.begin(), text.end());
  ASSERT_EQ(copy.size(), 4u);
  EXPECT_EQ(copy[0], 'v');
  Bytes moved = std::move(copy);
  EXPECT_EQ(moved, (Bytes{'v', 'e', 'i', 'l'}));
  moved.push_back('!');
  EXPECT_EQ(moved.back(), '!');
}

}  // namespace
}  // namespace veil
