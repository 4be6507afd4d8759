#include "veil/data/npy.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>

#include "data_test_util.hpp"
#include "veil/core/error.hpp"
#include "veil/core/io.hpp"

namespace veil::data {
namespace {

using ::testing::HasSubstr;
using namespace veil::data::test_util;

// Builds a .npy file by hand: magic, version, little-endian header length, padded header.
std::vector<uint8_t> npy_bytes(const std::string& dict, const std::vector<uint8_t>& data,
                               int major = 1) {
  std::string header = dict;
  size_t prefix = major == 1 ? 10 : 12;
  while ((prefix + header.size() + 1) % 64) header += ' ';
  header += '\n';
  std::vector<uint8_t> out = {0x93, 'N', 'U', 'M', 'P', 'Y', static_cast<uint8_t>(major), 0};
  for (size_t i = 0; i < prefix - 8; ++i)
    out.push_back(static_cast<uint8_t>(header.size() >> (8 * i)));
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

template <typename T>
std::vector<uint8_t> le_bytes(const std::vector<T>& values) {
  std::vector<uint8_t> out;
  for (T v : values) {
    uint64_t bits;
    if constexpr (std::is_floating_point_v<T>) {
      if constexpr (sizeof(T) == 4)
        bits = std::bit_cast<uint32_t>(v);
      else
        bits = std::bit_cast<uint64_t>(v);
    } else {
      bits = static_cast<uint64_t>(static_cast<std::make_unsigned_t<T>>(v));
    }
    for (size_t i = 0; i < sizeof(T); ++i) out.push_back(static_cast<uint8_t>(bits >> (8 * i)));
  }
  return out;
}

std::string dict(const std::string& descr, const std::string& shape, bool fortran = false) {
  return "{'descr': '" + descr + "', 'fortran_order': " + (fortran ? "True" : "False") +
         ", 'shape': " + shape + ", }";
}

Tensor parse(const std::vector<uint8_t>& b) { return parse_npy(b.data(), b.size()); }

TEST(Npy, WriteThenReadFloat32AndInt64) {
  TempDir dir;
  std::vector<float> fv(2 * 3 * 4);
  for (size_t i = 0; i < fv.size(); ++i) fv[i] = std::sin(static_cast<float>(i)) * 1e3f;
  fv[5] = -0.0f;
  fv[6] = std::numeric_limits<float>::infinity();
  Tensor f = Tensor::from_floats({2, 3, 4}, fv);
  write_npy(dir / "f.npy", f);
  EXPECT_EQ(read_npy(dir / "f.npy"), f);
  EXPECT_EQ(read_tensor(dir / "f.npy"), f);

  Tensor i = Tensor::from_int64({5}, {0, -1, INT64_MAX, INT64_MIN, 42});
  write_npy(dir / "i.npy", i);
  EXPECT_EQ(read_npy(dir / "i.npy"), i);

  for (const Shape& s : {Shape{}, Shape{0}, Shape{3, 0, 2}, Shape{1, 1, 1, 1, 1}}) {
    Tensor t(s);
    if (t.numel()) t.floats()[0] = 7.5f;
    write_npy(dir / "s.npy", t);
    EXPECT_EQ(read_npy(dir / "s.npy"), t) << shape_to_string(s);
  }
}

TEST(Npy, WrittenFileIsFormat10LittleEndianAligned) {
  TempDir dir;
  write_npy(dir / "x.npy", Tensor::from_floats({3}, {1, 2, 3}));
  auto bytes = read_file(dir / "x.npy", 1 << 20);
  ASSERT_GE(bytes.size(), 10u);
  EXPECT_EQ(std::memcmp(bytes.data(), "\x93NUMPY\x01\x00", 8), 0);
  size_t hlen = bytes[8] | (bytes[9] << 8);
  EXPECT_EQ((10 + hlen) % 64, 0u);
  std::string header(bytes.begin() + 10, bytes.begin() + 10 + static_cast<long>(hlen));
  EXPECT_THAT(header, HasSubstr("'descr': '<f4'"));
  EXPECT_THAT(header, HasSubstr("'shape': (3,)"));
  EXPECT_EQ(header.back(), '\n');
  std::vector<uint8_t> data(bytes.begin() + 10 + static_cast<long>(hlen), bytes.end());
  EXPECT_EQ(data, le_bytes<float>({1, 2, 3}));
}

TEST(Npy, HandMadeFloat64Int32Uint8) {
  std::vector<double> d = {1.5, -2.25, 1e-3, 3e38, 0};
  Tensor t = parse(npy_bytes(dict("<f8", "(5,)"), le_bytes(d)));
  ASSERT_EQ(t.dtype(), DType::Float32);
  ASSERT_EQ(t.shape(), (Shape{5}));
  for (size_t k = 0; k < d.size(); ++k) EXPECT_EQ(t.floats()[k], static_cast<float>(d[k]));

  std::vector<int32_t> iv = {-5, 7, INT32_MIN, INT32_MAX, 0, 1};
  t = parse(npy_bytes(dict("<i4", "(2, 3)"), le_bytes(iv)));
  ASSERT_EQ(t.dtype(), DType::Int64);
  ASSERT_EQ(t.shape(), (Shape{2, 3}));
  for (size_t k = 0; k < iv.size(); ++k) EXPECT_EQ(t.int64s()[k], iv[k]);

  std::vector<uint8_t> u = {0, 255, 128, 1};
  t = parse(npy_bytes(dict("|u1", "(2, 2)"), u));
  ASSERT_EQ(t.dtype(), DType::Int64);
  for (size_t k = 0; k < u.size(); ++k) EXPECT_EQ(t.int64s()[k], u[k]);

  std::vector<int16_t> s = {-300, 300};
  t = parse(npy_bytes(dict("<i2", "(2,)"), le_bytes(s)));
  EXPECT_EQ(t.int64s()[0], -300);
  EXPECT_EQ(t.int64s()[1], 300);

  t = parse(npy_bytes(dict("|b1", "(3,)"), {1, 0, 1}));
  EXPECT_EQ(t.to_int64s(), (std::vector<int64_t>{1, 0, 1}));
  EXPECT_THROW(parse(npy_bytes(dict("|b1", "(1,)"), {2})), MalformedInput);
}

TEST(Npy, Float16ByIeeeDefinition) {
  // binary16 bit patterns and their values by the IEEE 754 definition.
  std::vector<uint16_t> bits = {0x3c00, 0xc000, 0x3800, 0x0001, 0x7c00, 0x7bff};
  std::vector<float> want = {
      1.0f, -2.0f, 0.5f, std::ldexp(1.0f, -24), std::numeric_limits<float>::infinity(), 65504.0f};
  Tensor t = parse(npy_bytes(dict("<f2", "(6,)"), le_bytes(bits)));
  for (size_t k = 0; k < bits.size(); ++k) EXPECT_EQ(t.floats()[k], want[k]) << k;
  EXPECT_TRUE(
      std::isnan(parse(npy_bytes(dict("<f2", "(1,)"), le_bytes<uint16_t>({0x7e00}))).floats()[0]));
}

TEST(Npy, Versions20And30AndSpellings) {
  std::vector<float> v = {1, 2};
  for (int major : {2, 3})
    EXPECT_EQ(parse(npy_bytes(dict("<f4", "(2,)"), le_bytes(v), major)).to_floats(), v);
  // Key order, double quotes, no trailing comma, Python 2 long suffix.
  EXPECT_EQ(parse(npy_bytes("{\"shape\": (2L,), \"fortran_order\": False, \"descr\": \"<f4\"}",
                            le_bytes(v)))
                .to_floats(),
            v);
  Tensor scalar = parse(npy_bytes(dict("<f4", "()"), le_bytes<float>({3.5f})));
  EXPECT_EQ(scalar.rank(), 0);
  EXPECT_EQ(scalar.floats()[0], 3.5f);
}

TEST(Npy, FortranOrderRejected) {
  try {
    parse(npy_bytes(dict("<f4", "(2, 2)", true), le_bytes<float>({1, 2, 3, 4})));
    FAIL();
  } catch (const MalformedInput& e) {
    EXPECT_THAT(e.what(), HasSubstr("Fortran"));
  }
}

TEST(Npy, BigEndianRejected) {
  for (const char* d : {">f4", ">i8", ">f8", ">i4"}) {
    try {
      parse(npy_bytes(dict(d, "(1,)"), std::vector<uint8_t>(d[2] == '4' ? 4 : 8, 0)));
      FAIL() << d;
    } catch (const MalformedInput& e) {
      EXPECT_THAT(e.what(), HasSubstr("big-endian")) << d;
    }
  }
}

TEST(Npy, TruncatedAndTrailingRejected) {
  auto good = npy_bytes(dict("<f4", "(3, 2)"), le_bytes<float>({1, 2, 3, 4, 5, 6}));
  for (size_t cut = 0; cut < good.size(); ++cut)
    EXPECT_THROW(parse_npy(good.data(), cut), MalformedInput) << cut;
  auto more = good;
  more.push_back(0);
  EXPECT_THROW(parse(more), MalformedInput);
  TempDir dir;
  std::vector<uint8_t> cut(good.begin(), good.end() - 4);
  write_bytes(dir / "cut.npy", cut);
  try {
    read_npy(dir / "cut.npy");
    FAIL();
  } catch (const MalformedInput& e) {
    EXPECT_THAT(e.what(), HasSubstr("cut.npy"));
    EXPECT_THAT(e.what(), HasSubstr("truncated"));
  }
}

TEST(Npy, ShapeOverflowRejected) {
  for (const char* shape :
       {"(9223372036854775807, 9223372036854775807)", "(4294967296, 4294967296, 4)",
        "(99999999999999999999,)", "(1000000000000,)", "(2305843009213693952,)"}) {
    EXPECT_THROW(parse(npy_bytes(dict("<f8", shape), le_bytes<double>({1}))), MalformedInput)
        << shape;
  }
  // A zero dimension makes any other size fine, with no data.
  EXPECT_EQ(parse(npy_bytes(dict("<f4", "(0, 9223372036854775807)"), {})).numel(), 0);
}

TEST(Npy, MalformedHeadersRejected) {
  std::vector<uint8_t> four = le_bytes<float>({1});
  for (const std::string& d :
       {std::string("{'descr': '<f4', 'fortran_order': False}"),  // no shape
        std::string("{'descr': '<f4', 'shape': (1,)}"),           // no order
        std::string("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}"),
        std::string("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}"),
        std::string("{'descr': '|O', 'fortran_order': False, 'shape': (1,)}"),
        std::string("{'descr': '<c8', 'fortran_order': False, 'shape': (1,)}"),
        std::string("{'descr': '<U1', 'fortran_order': False, 'shape': (1,)}"),
        std::string("{'descr': '=f4', 'fortran_order': False, 'shape': (1,)}"),
        std::string("{'descr': '<f4', 'fortran_order': 0, 'shape': (1,)}"),
        std::string("{'descr': '<f4', 'fortran_order': False, 'shape': (1)}"),
        std::string("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}"),
        std::string("{'descr': '<f4', 'fortran_order': False, 'shape': [1]}"),
        std::string("{'descr': '<f4', 'fortran_order': False, 'shape': (1,),} x"),
        std::string("{'descr': '<f4' 'fortran_order': False, 'shape': (1,)}"),
        std::string("{'descr': '<f4', 'fortran_order': False, 'shape': (1,,)}"),
        std::string("{'descr': '<f\\x34', 'fortran_order': False, 'shape': (1,)}"),
        std::string("{'descr': '<f4', 'fortran_order': False, 'shape': (1,)"), std::string("")}) {
    EXPECT_THROW(parse(npy_bytes(d, four)), MalformedInput) << d;
  }
  auto good = npy_bytes(dict("<f4", "(1,)"), four);
  auto bad = good;
  bad[1] = 'X';
  EXPECT_THROW(parse(bad), MalformedInput);
  bad = good;
  bad[6] = 4;  // version 4.0
  EXPECT_THROW(parse(bad), MalformedInput);
  bad = good;
  bad[9] = 0xff;  // header length past the end
  EXPECT_THROW(parse(bad), MalformedInput);
}

TEST(Npy, ReadTensorDispatchesOnExtension) {
  TempDir dir;
  write_npy(dir / "a.npy", Tensor::from_floats({1}, {1}));
  fs::copy_file(dir / "a.npy", dir / "a.bin");
  EXPECT_THROW(read_tensor(dir / "a.bin"), InvalidArgument);
  EXPECT_THROW(read_npy(dir / "missing.npy"), IoError);
}

}  // namespace
}  // namespace veil::data
