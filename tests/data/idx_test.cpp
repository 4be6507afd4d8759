#include "veil/data/idx.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "data_test_util.hpp"
#include "veil/core/error.hpp"

namespace veil::data {
namespace {

using ::testing::HasSubstr;
using namespace veil::data::test_util;

// Reference decoding: pixel bytes in file order scaled by 1/255.
void expect_images(const Tensor& t, uint32_t n, uint32_t h, uint32_t w,
                   const std::vector<uint8_t>& pixels) {
  ASSERT_EQ(t.shape(), (Shape{n, 1, h, w}));
  auto v = t.floats();
  ASSERT_EQ(v.size(), size_t{n} * h * w);
  for (size_t i = 0; i < v.size(); ++i) ASSERT_FLOAT_EQ(v[i], pixels[i] / 255.0f) << i;
}

std::vector<int32_t> as_labels(const std::vector<uint8_t>& b) { return {b.begin(), b.end()}; }

TEST(Idx, RawFileRoundTrip) {
  TempDir dir;
  auto pixels = pattern(7 * 5 * 4, 1);
  auto labels = pattern(7, 2, 10);
  write_bytes(dir / "img", idx_images(7, 5, 4, pixels));
  write_bytes(dir / "lab", idx_labels(7, labels));
  expect_images(read_idx_images(dir / "img"), 7, 5, 4, pixels);
  EXPECT_EQ(read_idx_labels(dir / "lab", 10), as_labels(labels));
}

TEST(Idx, GzipFileRoundTrip) {
  TempDir dir;
  auto pixels = pattern(9 * 6 * 3, 3);
  auto labels = pattern(9, 4, 10);
  write_bytes(dir / "img.gz", gzip(idx_images(9, 6, 3, pixels)));
  write_bytes(dir / "lab.gz", gzip(idx_labels(9, labels)));
  expect_images(read_idx_images(dir / "img.gz"), 9, 6, 3, pixels);
  EXPECT_EQ(read_idx_labels(dir / "lab.gz", 10), as_labels(labels));
}

TEST(Idx, InMemoryRawAndGzip) {
  auto pixels = pattern(4 * 2 * 2, 5);
  auto raw = idx_images(4, 2, 2, pixels);
  auto gz = gzip(raw);
  expect_images(parse_idx_images(raw.data(), raw.size()), 4, 2, 2, pixels);
  expect_images(parse_idx_images(gz.data(), gz.size()), 4, 2, 2, pixels);
  auto labels = pattern(4, 6, 3);
  auto lraw = idx_labels(4, labels);
  auto lgz = gzip(lraw);
  EXPECT_EQ(parse_idx_labels(lraw.data(), lraw.size(), 3), as_labels(labels));
  EXPECT_EQ(parse_idx_labels(lgz.data(), lgz.size(), 3), as_labels(labels));
}

TEST(Idx, ConcatenatedGzipMembers) {
  auto pixels = pattern(3 * 4 * 4, 7);
  auto raw = idx_images(3, 4, 4, pixels);
  std::vector<uint8_t> first(raw.begin(), raw.begin() + 20), second(raw.begin() + 20, raw.end());
  auto gz = gzip(first);
  auto gz2 = gzip(second);
  gz.insert(gz.end(), gz2.begin(), gz2.end());
  expect_images(parse_idx_images(gz.data(), gz.size()), 3, 4, 4, pixels);
  // Garbage after the last member is rejected.
  gz.push_back(0);
  EXPECT_THROW(parse_idx_images(gz.data(), gz.size()), MalformedInput);
}

TEST(Idx, LimitKeepsPrefix) {
  TempDir dir;
  auto pixels = pattern(10 * 3 * 3, 8);
  write_bytes(dir / "img.gz", gzip(idx_images(10, 3, 3, pixels)));
  std::vector<uint8_t> first4(pixels.begin(), pixels.begin() + 4 * 9);
  expect_images(read_idx_images(dir / "img.gz", 4), 4, 3, 3, first4);
  expect_images(read_idx_images(dir / "img.gz", 100), 10, 3, 3, pixels);
  EXPECT_THROW(read_idx_images(dir / "img.gz", -1), InvalidArgument);
}

TEST(Idx, LimitDoesNotReadPastWhatIsNeeded) {
  // The data after the kept prefix is cut off: a limited read must still succeed because it
  // never looks there, while a full read reports the truncation.
  auto pixels = pattern(10 * 3 * 3, 9);
  auto raw = idx_images(10, 3, 3, pixels);
  raw.erase(raw.end() - 20, raw.end());
  EXPECT_EQ(parse_idx_images(raw.data(), raw.size(), 5).dim(0), 5);
  EXPECT_THROW(parse_idx_images(raw.data(), raw.size()), MalformedInput);
}

TEST(Idx, TruncatedRejected) {
  TempDir dir;
  auto raw = idx_images(5, 4, 4, pattern(80, 10));
  for (size_t cut : {size_t{0}, size_t{3}, size_t{10}, size_t{16}, raw.size() - 1}) {
    std::vector<uint8_t> t(raw.begin(), raw.begin() + static_cast<long>(cut));
    EXPECT_THROW(parse_idx_images(t.data(), t.size()), MalformedInput) << cut;
  }
  auto gz = gzip(raw);
  for (size_t cut : {size_t{5}, gz.size() / 2, gz.size() - 4, gz.size() - 1}) {
    std::vector<uint8_t> t(gz.begin(), gz.begin() + static_cast<long>(cut));
    EXPECT_THROW(parse_idx_images(t.data(), t.size()), MalformedInput) << cut;
    write_bytes(dir / "cut.gz", t);
    EXPECT_THROW(read_idx_images(dir / "cut.gz"), MalformedInput) << cut;
  }
  std::vector<uint8_t> short_raw(raw.begin(), raw.end() - 1);
  write_bytes(dir / "short", short_raw);
  try {
    read_idx_images(dir / "short");
    FAIL() << "truncated file accepted";
  } catch (const MalformedInput& e) {
    EXPECT_THAT(e.what(), HasSubstr((dir / "short").string()));
    EXPECT_THAT(e.what(), HasSubstr("truncated"));
  }
}

TEST(Idx, CorruptGzipRejected) {
  auto gz = gzip(idx_images(2, 2, 2, pattern(8, 11)));
  auto bad_crc = gz;
  bad_crc[bad_crc.size() - 6] ^= 0xff;  // inside the CRC-32 trailer
  EXPECT_THROW(parse_idx_images(bad_crc.data(), bad_crc.size()), MalformedInput);
  auto bad_body = gz;
  bad_body[12] ^= 0x55;
  EXPECT_THROW(parse_idx_images(bad_body.data(), bad_body.size()), MalformedInput);
}

TEST(Idx, TrailingDataRejected) {
  auto raw = idx_images(2, 2, 2, pattern(8, 12));
  raw.push_back(0);
  EXPECT_THROW(parse_idx_images(raw.data(), raw.size()), MalformedInput);
  auto lab = idx_labels(2, {1, 2});
  lab.push_back(3);
  EXPECT_THROW(parse_idx_labels(lab.data(), lab.size(), 10), MalformedInput);
}

TEST(Idx, BadMagicRejected) {
  auto lab = idx_labels(2, {1, 2});
  auto img = idx_images(1, 2, 2, {1, 2, 3, 4});
  try {
    parse_idx_images(lab.data(), lab.size());
    FAIL();
  } catch (const MalformedInput& e) {
    EXPECT_THAT(e.what(), HasSubstr("magic"));
  }
  EXPECT_THROW(parse_idx_labels(img.data(), img.size(), 10), MalformedInput);
  auto wrong = img;
  wrong[2] = 0x0d;  // float element type
  EXPECT_THROW(parse_idx_images(wrong.data(), wrong.size()), MalformedInput);
  wrong = img;
  wrong[3] = 0x04;  // four dimensions
  EXPECT_THROW(parse_idx_images(wrong.data(), wrong.size()), MalformedInput);
}

TEST(Idx, HugeDimensionsRejectedBeforeAllocating) {
  // Only a header: if the bounds were not checked first these would try to allocate
  // terabytes or wait for data that is not there.
  for (auto [n, h, w] : {std::tuple{0xffffffffu, 28u, 28u}, std::tuple{10u, 5000u, 5u},
                         std::tuple{10u, 5u, 0x80000000u}, std::tuple{10'000'000u, 4096u, 4096u},
                         std::tuple{5u, 0u, 5u}}) {
    auto hdr = idx_images(n, h, w, {});
    EXPECT_THROW(parse_idx_images(hdr.data(), hdr.size()), MalformedInput) << n << " " << h;
  }
  auto lab = idx_labels(0xffffffffu, {});
  EXPECT_THROW(parse_idx_labels(lab.data(), lab.size(), 10), MalformedInput);
}

TEST(Idx, LabelOutOfRangeRejected) {
  auto lab = idx_labels(3, {0, 9, 10});
  try {
    parse_idx_labels(lab.data(), lab.size(), 10);
    FAIL();
  } catch (const MalformedInput& e) {
    EXPECT_THAT(e.what(), HasSubstr("label 10"));
  }
  EXPECT_EQ(parse_idx_labels(lab.data(), lab.size(), 11), (std::vector<int32_t>{0, 9, 10}));
  EXPECT_THROW(parse_idx_labels(lab.data(), lab.size(), 0), InvalidArgument);
}

TEST(Idx, EmptyFilesAreValid) {
  auto img = idx_images(0, 28, 28, {});
  EXPECT_EQ(parse_idx_images(img.data(), img.size()).shape(), (Shape{0, 1, 28, 28}));
  auto lab = idx_labels(0, {});
  EXPECT_TRUE(parse_idx_labels(lab.data(), lab.size(), 10).empty());
}

TEST(Idx, MissingFileIsIoErrorNamingIt) {
  TempDir dir;
  try {
    read_idx_images(dir / "nope.gz");
    FAIL();
  } catch (const IoError& e) {
    EXPECT_THAT(e.what(), HasSubstr("nope.gz"));
  }
}

TEST(Idx, EveryTruncationOfASmallFileIsRejectedCleanly) {
  auto raw = idx_images(2, 3, 3, pattern(18, 13));
  auto gz = gzip(raw);
  for (const auto& full : {raw, gz})
    for (size_t cut = 0; cut < full.size(); ++cut)
      EXPECT_THROW(parse_idx_images(full.data(), cut), MalformedInput) << cut;
}

}  // namespace
}  // namespace veil::data
