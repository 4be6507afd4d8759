#include "veil/mpc/block_relu/distortion_file.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "temp_dir.hpp"
#include "veil/core/error.hpp"

namespace veil::mpc {
namespace {

DistortionTable sample_table() {
  DistortionTable t;
  for (int i = 0; i < 32; ++i) t.model_hash[i] = static_cast<uint8_t>(i * 7 + 1);
  t.samples = 512;
  t.seed = 0x1234567890abcdefull;
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> u(0, 3);
  LayerDistortion a{"relu_1", 3, 5, 7, {{1, 1}, {2, 2}, {0, 0}, {5, 7}}, {}, true};
  for (int i = 0; i < 12; ++i) a.distortion.push_back(u(rng));
  a.distortion[0] = 0;
  LayerDistortion b{"layer2/relu", 2, 1, 1, {{1, 1}}, {0.0, 0.0}, false};
  t.layers = {a, b};
  return t;
}

void expect_equal(const DistortionTable& x, const DistortionTable& y) {
  EXPECT_EQ(x.model_hash, y.model_hash);
  EXPECT_EQ(x.samples, y.samples);
  EXPECT_EQ(x.seed, y.seed);
  ASSERT_EQ(x.layers.size(), y.layers.size());
  for (size_t i = 0; i < x.layers.size(); ++i) {
    const auto &a = x.layers[i], &b = y.layers[i];
    EXPECT_EQ(a.node, b.node);
    EXPECT_EQ(a.channels, b.channels);
    EXPECT_EQ(a.height, b.height);
    EXPECT_EQ(a.width, b.width);
    EXPECT_EQ(a.sizes, b.sizes);
    EXPECT_EQ(a.distortion, b.distortion);  // bit-exact doubles
    EXPECT_EQ(a.done, b.done);
  }
}

TEST(DistortionFile, RoundTrip) {
  const auto t = sample_table();
  const std::string bytes = serialize(t);
  EXPECT_EQ(bytes.substr(0, 4), "VDST");
  expect_equal(parse_distortion_file(bytes), t);
  EXPECT_EQ(serialize(parse_distortion_file(bytes)), bytes);
  EXPECT_EQ(t.relu_count(), 3 * 5 * 7 + 2);
}

TEST(DistortionFile, EmptyTableRoundTrips) {
  DistortionTable t;
  expect_equal(parse_distortion_file(serialize(t)), t);
  EXPECT_EQ(t.relu_count(), 0);
}

TEST(DistortionFile, FileRoundTrip) {
  testing::TempDir dir;
  const auto t = sample_table();
  write_distortion_file(dir / "d.vdist", t);
  expect_equal(read_distortion_file(dir / "d.vdist"), t);
}

TEST(DistortionFile, EveryTruncationIsRefused) {
  const std::string bytes = serialize(sample_table());
  for (size_t n = 0; n < bytes.size(); ++n)
    EXPECT_THROW(parse_distortion_file(std::string_view(bytes).substr(0, n)), MalformedInput) << n;
}

TEST(DistortionFile, TrailingBytesAreRefused) {
  EXPECT_THROW(parse_distortion_file(serialize(sample_table()) + '\0'), MalformedInput);
}

// Offsets into sample_table()'s encoding.
constexpr size_t kVersion = 4, kLayerCount = 4 + 4 + 32 + 8 + 8;
constexpr size_t kName0 = kLayerCount + 4;       // u32 length, "relu_1"
constexpr size_t kChannels0 = kName0 + 4 + 6;    // i64 C, H, W
constexpr size_t kSizeCount0 = kChannels0 + 24;  // u32
constexpr size_t kSizes0 = kSizeCount0 + 4;      // 4 x (h, w)
constexpr size_t kValues0 = kSizes0 + 4 * 16;    // 12 doubles
constexpr size_t kDone0 = kValues0 + 12 * 8;

std::string tampered(size_t at, const void* v, size_t n) {
  std::string b = serialize(sample_table());
  std::memcpy(b.data() + at, v, n);
  return b;
}
template <typename T>
std::string tampered(size_t at, T v) {
  return tampered(at, &v, sizeof v);
}

void expect_refused(const std::string& bytes, const std::string& needle) {
  try {
    parse_distortion_file(bytes);
    ADD_FAILURE() << "accepted; expected an error containing '" << needle << "'";
  } catch (const MalformedInput& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(DistortionFile, TamperedFieldsAreRefused) {
  // The layout constants above describe the encoding (a changed layout fails here first).
  ASSERT_EQ(serialize(sample_table()).size(), kDone0 + 1 + 4 + 11 + 24 + 4 + 16 + 16 + 1);
  expect_refused(tampered(0, 'X'), "magic");
  expect_refused(tampered<uint32_t>(kVersion, 2), "version");
  expect_refused(tampered<int64_t>(kLayerCount - 16, -1), "sample count");
  expect_refused(tampered<uint32_t>(kLayerCount, 4097), "layer count");
  expect_refused(tampered<uint32_t>(kLayerCount, 3), "truncated");
  expect_refused(tampered<uint32_t>(kName0, 5000), "node name");
  expect_refused(tampered<uint32_t>(kName0, 0), "");  // misaligned: some field fails
  expect_refused(tampered<int64_t>(kChannels0, 0), "channel count");
  expect_refused(tampered<int64_t>(kChannels0, int64_t{1} << 40), "channel count");
  expect_refused(tampered<int64_t>(kChannels0, 1000), "truncated");  // values not present
  expect_refused(tampered<int64_t>(kChannels0 + 8, 0), "feature map");
  expect_refused(tampered<int64_t>(kChannels0 + 16, int64_t{1} << 16), "feature map");
  expect_refused(tampered<uint32_t>(kSizeCount0, 0), "no block sizes");
  expect_refused(tampered<uint32_t>(kSizeCount0, 257), "block size count");
  expect_refused(tampered<int64_t>(kSizes0, 2), "first block size");
  expect_refused(tampered<int64_t>(kSizes0 + 16, -3), "invalid block size");
  expect_refused(tampered<int64_t>(kSizes0 + 32, 1), "invalid block size");  // {1, 0}
  expect_refused(tampered<int64_t>(kSizes0 + 16, int64_t{1} << 21), "invalid block size");
  {
    std::string b = tampered<int64_t>(kSizes0 + 16, 1);
    std::memcpy(b.data() + kSizes0 + 24, "\1\0\0\0\0\0\0\0", 8);  // {1, 1} twice
    expect_refused(b, "repeated block size");
  }
  expect_refused(tampered(kValues0 + 8, std::numeric_limits<double>::quiet_NaN()), "finite");
  expect_refused(tampered(kValues0 + 8, std::numeric_limits<double>::infinity()), "finite");
  expect_refused(tampered(kValues0 + 8, -1e-300), "finite");
  expect_refused(tampered<uint8_t>(kDone0, 2), "done flag");
  // The second layer renamed to the first's name.
  std::string b = serialize(sample_table());
  const size_t name1 = kDone0 + 1;
  b.replace(name1, 4 + 11, std::string("\6\0\0\0relu_1", 10));
  expect_refused(b, "appears twice");
}

TEST(DistortionFile, WriterRefusesBadTables) {
  auto t = sample_table();
  t.layers[0].distortion.pop_back();
  EXPECT_THROW(serialize(t), InvalidArgument);
  t = sample_table();
  t.layers[0].sizes[1] = {0, 3};
  EXPECT_THROW(serialize(t), InvalidArgument);
  t = sample_table();
  t.layers[1].node = "relu_1";
  EXPECT_THROW(serialize(t), InvalidArgument);
}

// A short in-process fuzz run: random byte changes, insertions and deletions of a valid file are
// refused with MalformedInput or parse into a table that serializes back to the same bytes.
TEST(DistortionFile, MutationsParseExactlyOrAreRefused) {
  const std::string good = serialize(sample_table());
  std::mt19937_64 rng(99);
  int accepted = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string b = good;
    for (int m = 0, n = 1 + static_cast<int>(rng() % 3); m < n; ++m) {
      const size_t at = rng() % b.size();
      switch (rng() % 4) {
        case 0:
          b[at] = static_cast<char>(rng());
          break;
        case 1:
          b[at] ^= static_cast<char>(1 << (rng() % 8));
          break;
        case 2:
          b.insert(at, 1, static_cast<char>(rng()));
          break;
        default:
          b.erase(at, 1 + rng() % 8);
          break;
      }
      if (b.empty()) b.push_back('V');
    }
    try {
      const auto t = parse_distortion_file(b);
      EXPECT_EQ(serialize(t), b);
      ++accepted;
    } catch (const MalformedInput&) {
    }
  }
  EXPECT_GT(accepted, 100);  // changed distortions and hashes are valid tables
}

// The fuzzer's checked-in seeds are valid files (so fuzzing starts from accepted inputs).
TEST(DistortionFile, FuzzSeedsParse) {
  for (const char* name : {"seed0", "seed1"}) {
    const auto t = read_distortion_file(std::filesystem::path(VEIL_SOURCE_DIR) /
                                        "fuzz/seeds/fuzz_vdist" / name);
    EXPECT_EQ(serialize(t).size(),
              std::filesystem::file_size(std::filesystem::path(VEIL_SOURCE_DIR) /
                                         "fuzz/seeds/fuzz_vdist" / name));
  }
}

}  // namespace
}  // namespace veil::mpc
