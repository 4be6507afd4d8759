#include "veil/data/tensor_proto.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <bit>
#include <filesystem>

#include "data_test_util.hpp"
#include "veil/core/error.hpp"
#include "veil/data/npy.hpp"

namespace veil::data {
namespace {

using namespace veil::data::test_util;

Tensor parse(const onnx::TensorProto& tp) {
  std::string s = tp.SerializeAsString();
  return parse_tensor_proto(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

std::string le_floats(const std::vector<float>& v) {
  std::string out;
  for (float f : v) {
    uint32_t b = std::bit_cast<uint32_t>(f);
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>(b >> (8 * i)));
  }
  return out;
}

TEST(TensorProto, FloatData) {
  onnx::TensorProto tp;
  tp.set_data_type(onnx::TensorProto_DataType_FLOAT);
  tp.add_dims(2);
  tp.add_dims(3);
  std::vector<float> v = {1.5f, -2, 0, 3.25f, 1e-20f, 7};
  for (float f : v) tp.add_float_data(f);
  Tensor t = parse(tp);
  EXPECT_EQ(t, Tensor::from_floats({2, 3}, v));
}

TEST(TensorProto, RawDataFloatInt64Uint8Int32) {
  onnx::TensorProto tp;
  tp.set_data_type(onnx::TensorProto_DataType_FLOAT);
  tp.add_dims(4);
  std::vector<float> v = {0.5f, -1, 2, 1e9f};
  tp.set_raw_data(le_floats(v));
  EXPECT_EQ(parse(tp), Tensor::from_floats({4}, v));

  onnx::TensorProto i64;
  i64.set_data_type(onnx::TensorProto_DataType_INT64);
  i64.add_dims(2);
  std::string raw;
  for (int64_t x : {int64_t{-3}, int64_t{1} << 40})
    for (int i = 0; i < 8; ++i)
      raw.push_back(static_cast<char>(static_cast<uint64_t>(x) >> (8 * i)));
  i64.set_raw_data(raw);
  EXPECT_EQ(parse(i64), Tensor::from_int64({2}, {-3, int64_t{1} << 40}));

  onnx::TensorProto u8;
  u8.set_data_type(onnx::TensorProto_DataType_UINT8);
  u8.add_dims(3);
  u8.set_raw_data(std::string("\x00\xff\x10", 3));
  EXPECT_EQ(parse(u8), Tensor::from_int64({3}, {0, 255, 16}));

  onnx::TensorProto i32;
  i32.set_data_type(onnx::TensorProto_DataType_INT32);
  i32.add_dims(1);
  i32.set_raw_data(std::string("\xfe\xff\xff\xff", 4));
  EXPECT_EQ(parse(i32), Tensor::from_int64({1}, {-2}));
}

TEST(TensorProto, TypedIntegerAndDoubleFields) {
  onnx::TensorProto tp;
  tp.set_data_type(onnx::TensorProto_DataType_INT64);
  for (int64_t x : {5, -6}) tp.add_int64_data(x);
  tp.add_dims(2);
  EXPECT_EQ(parse(tp), Tensor::from_int64({2}, {5, -6}));

  onnx::TensorProto d;
  d.set_data_type(onnx::TensorProto_DataType_DOUBLE);
  d.add_double_data(0.25);
  EXPECT_EQ(parse(d), Tensor::from_floats({}, {0.25f}));  // no dims: a scalar

  onnx::TensorProto u8;
  u8.set_data_type(onnx::TensorProto_DataType_UINT8);
  u8.add_dims(2);
  u8.add_int32_data(200);
  u8.add_int32_data(256);  // does not fit uint8
  EXPECT_THROW(parse(u8), MalformedInput);
}

TEST(TensorProto, InvalidRejected) {
  onnx::TensorProto tp;
  tp.set_data_type(onnx::TensorProto_DataType_FLOAT);
  tp.add_dims(3);
  tp.add_float_data(1);
  EXPECT_THROW(parse(tp), MalformedInput);  // 1 value for 3 elements
  tp.set_raw_data(le_floats({1, 2, 3}));
  EXPECT_THROW(parse(tp), MalformedInput);  // raw and typed data
  tp.clear_float_data();
  EXPECT_NO_THROW(parse(tp));
  tp.set_raw_data(le_floats({1, 2}));
  EXPECT_THROW(parse(tp), MalformedInput);  // short raw data
  tp.set_raw_data(le_floats({1, 2, 3}) + "x");
  EXPECT_THROW(parse(tp), MalformedInput);

  onnx::TensorProto neg;
  neg.set_data_type(onnx::TensorProto_DataType_FLOAT);
  neg.add_dims(-1);
  EXPECT_THROW(parse(neg), MalformedInput);

  onnx::TensorProto big;
  big.set_data_type(onnx::TensorProto_DataType_FLOAT);
  big.add_dims(int64_t{1} << 62);
  big.add_dims(8);
  EXPECT_THROW(parse(big), MalformedInput);
  big.clear_dims();
  big.add_dims(int64_t{1} << 40);
  big.set_raw_data("abcd");
  EXPECT_THROW(parse(big), MalformedInput);

  onnx::TensorProto str;
  str.set_data_type(onnx::TensorProto_DataType_STRING);
  str.add_string_data("x");
  EXPECT_THROW(parse(str), Unsupported);

  onnx::TensorProto ext;
  ext.set_data_type(onnx::TensorProto_DataType_FLOAT);
  ext.set_data_location(onnx::TensorProto_DataLocation_EXTERNAL);
  EXPECT_THROW(parse(ext), Unsupported);

  std::vector<uint8_t> junk = {0xff, 0xff, 0xff, 0xff, 0x0f};
  EXPECT_THROW(parse_tensor_proto(junk.data(), junk.size()), MalformedInput);
}

TEST(TensorProto, ReadFromFile) {
  TempDir dir;
  onnx::TensorProto tp;
  tp.set_data_type(onnx::TensorProto_DataType_FLOAT);
  tp.add_dims(1);
  tp.add_dims(2);
  tp.set_raw_data(le_floats({4, 5}));
  std::string s = tp.SerializeAsString();
  write_bytes(dir / "input_0.pb", {s.begin(), s.end()});
  EXPECT_EQ(read_tensor(dir / "input_0.pb"), Tensor::from_floats({1, 2}, {4, 5}));
  EXPECT_EQ(read_tensor_proto(dir / "input_0.pb"), Tensor::from_floats({1, 2}, {4, 5}));
}

// Every seed of the fuzz corpus decodes, and tensor_to_proto writes it back bit for bit (the
// fuzz target's round-trip property, checked on each build).
TEST(TensorProto, FuzzSeedsDecodeAndRoundTrip) {
  const std::filesystem::path dir =
      std::filesystem::path(VEIL_SOURCE_DIR) / "fuzz" / "seeds" / "fuzz_tensor_proto";
  size_t seeds = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    SCOPED_TRACE(entry.path().string());
    const Tensor t = read_tensor_proto(entry.path());
    onnx::TensorProto tp;
    tensor_to_proto(t, "x", &tp);
    EXPECT_EQ(tp.name(), "x");
    const Tensor again = parse(tp);
    EXPECT_EQ(again, t);
    EXPECT_EQ(again.dtype(), t.dtype());
    ++seeds;
  }
  EXPECT_GE(seeds, 10u);
}

TEST(TensorProto, RankAndElementBounds) {
  onnx::TensorProto tp;
  tp.set_data_type(onnx::TensorProto_DataType_FLOAT);
  for (int i = 0; i < kMaxTensorProtoRank; ++i) tp.add_dims(1);
  tp.add_float_data(2);
  EXPECT_EQ(parse(tp).numel(), 1);
  tp.add_dims(1);  // one dimension too many
  EXPECT_THROW(parse(tp), MalformedInput);

  onnx::TensorProto wide;  // 2^21 * 2^20 elements: over the bound even though each dim is not
  wide.set_data_type(onnx::TensorProto_DataType_FLOAT);
  wide.add_dims(int64_t{1} << 21);
  wide.add_dims(int64_t{1} << 20);
  EXPECT_THROW(parse(wide), MalformedInput);
  wide.add_dims(0);  // an empty tensor is still refused: the product of the others is too large
  EXPECT_THROW(parse(wide), MalformedInput);
}

}  // namespace
}  // namespace veil::data
