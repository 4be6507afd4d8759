#include "veil/core/byte_io.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "veil/core/error.hpp"

namespace veil {
namespace {

using ::testing::HasSubstr;

TEST(ByteIo, WriterLaysOutLittleEndian) {
  ByteWriter w;
  w.u8(0x01);
  w.u16(0x0302);
  w.u32(0x07060504);
  w.u64(0x0f0e0d0c0b0a0908ull);
  w.f32(1.0f);  // 0x3f800000
  w.i64(-2);    // two's complement
  w.uint(0xabcdef, 3);
  const std::vector<uint8_t> want = {1,    2,    3,    4,    5,    6,    7,    8,    9,    10,
                                     11,   12,   13,   14,   15,   0,    0,    0x80, 0x3f, 0xfe,
                                     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xef, 0xcd, 0xab};
  EXPECT_EQ(w.out(), want);
}

TEST(ByteIo, RoundTripsEveryWidth) {
  ByteWriter w;
  w.u8(200);
  w.u16(65000);
  w.u32(4000000000u);
  w.u64(std::numeric_limits<uint64_t>::max() - 5);
  w.i64(std::numeric_limits<int64_t>::min());
  w.f32(-3.25f);
  w.f64(std::nextafter(1.0, 2.0));
  w.str("name");
  const std::vector<uint64_t> words = {1, 2, uint64_t{1} << 63};
  w.array<uint64_t>(words);
  std::vector<uint8_t> bytes = w.take();

  ByteReader r(bytes, "test object");
  EXPECT_EQ(r.u8(), 200);
  EXPECT_EQ(r.u16(), 65000);
  EXPECT_EQ(r.u32(), 4000000000u);
  EXPECT_EQ(r.u64(), std::numeric_limits<uint64_t>::max() - 5);
  EXPECT_EQ(r.i64(), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(r.f32(), -3.25f);
  EXPECT_EQ(r.f64(), std::nextafter(1.0, 2.0));
  EXPECT_EQ(r.str(4, "name"), "name");
  auto raw = r.bytes(24, "words");
  for (size_t i = 0; i < words.size(); ++i)
    EXPECT_EQ(load_le<uint64_t>(raw.data() + 8 * i), words[i]);
  EXPECT_EQ(r.remaining(), 0u);
  r.expect_end();
}

TEST(ByteIo, ReadingPastTheEndThrowsWithContextAndField) {
  const std::vector<uint8_t> bytes = {1, 2, 3};
  ByteReader r(bytes, "key file");
  EXPECT_EQ(r.u16("version"), 0x0201);
  try {
    r.u32("payload size");
    FAIL() << "read past the end";
  } catch (const MalformedInput& e) {
    EXPECT_THAT(e.what(), HasSubstr("key file"));
    EXPECT_THAT(e.what(), HasSubstr("payload size"));
  }
  // A failed read consumes nothing.
  EXPECT_EQ(r.remaining(), 1u);
  EXPECT_THROW(r.need(2), MalformedInput);
  EXPECT_THROW(r.expect_end(), MalformedInput);
  EXPECT_EQ(r.u8(), 3);
  EXPECT_THROW(r.u8(), MalformedInput);
  r.expect_end();
}

TEST(ByteIo, CountsAreBoundedByMaxAndByTheBytesLeft) {
  ByteWriter w;
  w.u32(5);
  w.bytes(std::vector<uint8_t>(10, 0));
  auto bytes = w.take();
  {
    ByteReader r(bytes, "t");
    EXPECT_THROW(r.count(4, "items"), MalformedInput);  // above max
  }
  {
    ByteReader r(bytes, "t");
    EXPECT_EQ(r.count(5, "items", 2), 5u);  // 5 items of 2 bytes fit in 10
  }
  {
    ByteReader r(bytes, "t");
    EXPECT_THROW(r.count(5, "items", 3), MalformedInput);  // 15 bytes needed, 10 left
  }
  ByteWriter w64;
  w64.u64(uint64_t{1} << 40);
  auto b64 = w64.take();
  ByteReader r(b64, "t");
  EXPECT_THROW(r.count64(uint64_t{1} << 39, "entries"), MalformedInput);
}

TEST(ByteIo, StringLengthIsBoundedBeforeReading) {
  ByteWriter w;
  w.str("abcdef");
  auto bytes = w.take();
  ByteReader r(bytes, "t");
  EXPECT_THROW(r.str(5, "name"), MalformedInput);
  // A length that claims more than is present is refused as truncated.
  bytes.pop_back();
  ByteReader r2(bytes, "t");
  EXPECT_THROW(r2.str(100, "name"), MalformedInput);
}

TEST(ByteIo, VariableWidthAndBigEndianLoads) {
  const uint8_t b[] = {0x12, 0x34, 0x56, 0x78, 0x9a};
  EXPECT_EQ(load_le(b, 1), 0x12u);
  EXPECT_EQ(load_le(b, 2), 0x3412u);
  EXPECT_EQ(load_le(b, 5), 0x9a78563412ull);
  EXPECT_EQ(load_be32(b), 0x12345678u);
  EXPECT_EQ(load_le<int16_t>(b + 3), static_cast<int16_t>(0x9a78));
}

}  // namespace
}  // namespace veil
