// ONNX TensorProto files (as written by onnx.numpy_helper and the ONNX test data sets). Elements
// are either in raw_data (little-endian, densely packed) or in the typed repeated field the
// ONNX IR specification assigns to the data type (onnx/onnx.proto, message TensorProto).
#include <onnx/onnx_pb.h>

#include <climits>
#include <string>
#include <vector>

#include "elements.hpp"
#include "quote.hpp"
#include "veil/core/error.hpp"
#include "veil/core/io.hpp"
#include "veil/data/npy.hpp"

namespace veil::data {

namespace fs = std::filesystem;

namespace {

constexpr int kMaxRank = 32;
constexpr uint64_t kMaxFileBytes = uint64_t{INT_MAX};  // protobuf's own message size limit

using DT = onnx::TensorProto_DataType;

struct TypeInfo {
  detail::ElemType elem;
  const char* name;
};

bool type_info(int32_t dt, TypeInfo& out) {
  using detail::ElemKind;
  switch (dt) {
    case onnx::TensorProto_DataType_FLOAT:
      out = {{ElemKind::Float, 4}, "float"};
      return true;
    case onnx::TensorProto_DataType_DOUBLE:
      out = {{ElemKind::Float, 8}, "double"};
      return true;
    case onnx::TensorProto_DataType_FLOAT16:
      out = {{ElemKind::Float, 2}, "float16"};
      return true;
    case onnx::TensorProto_DataType_BFLOAT16:
      out = {{ElemKind::Float, 2}, "bfloat16"};
      return true;
    case onnx::TensorProto_DataType_INT8:
      out = {{ElemKind::Signed, 1}, "int8"};
      return true;
    case onnx::TensorProto_DataType_INT16:
      out = {{ElemKind::Signed, 2}, "int16"};
      return true;
    case onnx::TensorProto_DataType_INT32:
      out = {{ElemKind::Signed, 4}, "int32"};
      return true;
    case onnx::TensorProto_DataType_INT64:
      out = {{ElemKind::Signed, 8}, "int64"};
      return true;
    case onnx::TensorProto_DataType_UINT8:
      out = {{ElemKind::Unsigned, 1}, "uint8"};
      return true;
    case onnx::TensorProto_DataType_UINT16:
      out = {{ElemKind::Unsigned, 2}, "uint16"};
      return true;
    case onnx::TensorProto_DataType_UINT32:
      out = {{ElemKind::Unsigned, 4}, "uint32"};
      return true;
    case onnx::TensorProto_DataType_UINT64:
      out = {{ElemKind::Unsigned, 8}, "uint64"};
      return true;
    case onnx::TensorProto_DataType_BOOL:
      out = {{ElemKind::Bool, 1}, "bool"};
      return true;
    default:
      return false;
  }
}

// A typed value from int32_data must fit the declared narrower type.
int64_t check_narrow(int64_t v, const TypeInfo& t, const std::string& what) {
  int64_t lo = 0, hi = 0;
  switch (t.elem.kind) {
    case detail::ElemKind::Signed:
      lo = -(int64_t{1} << (8 * t.elem.bytes - 1));
      hi = (int64_t{1} << (8 * t.elem.bytes - 1)) - 1;
      break;
    case detail::ElemKind::Unsigned:
      hi = (int64_t{1} << (8 * t.elem.bytes)) - 1;
      break;
    case detail::ElemKind::Bool:
      hi = 1;
      break;
    case detail::ElemKind::Float:
      hi = 0xffff;  // float16 / bfloat16 bits
      break;
  }
  if (v < lo || v > hi)
    throw MalformedInput(what + ": value " + std::to_string(v) + " in int32_data does not fit " +
                         t.name);
  return v;
}

Tensor parse_impl(const uint8_t* bytes, size_t size, const std::string& what) {
  if (size > static_cast<size_t>(INT_MAX))
    throw MalformedInput(what + ": TensorProto larger than 2 GiB");
  onnx::TensorProto tp;
  if (!tp.ParseFromArray(bytes, static_cast<int>(size)))
    throw MalformedInput(what + ": not a valid ONNX TensorProto");
  if (tp.has_segment()) throw Unsupported(what + ": segmented TensorProto is not supported");
  if (tp.data_location() == onnx::TensorProto_DataLocation_EXTERNAL)
    throw Unsupported(what + ": TensorProto with external data is not supported");
  TypeInfo t;
  if (!type_info(tp.data_type(), t))
    throw Unsupported(
        what + ": TensorProto data type " + std::to_string(tp.data_type()) +
        (onnx::TensorProto_DataType_IsValid(tp.data_type())
             ? " (" + onnx::TensorProto_DataType_Name(static_cast<DT>(tp.data_type())) + ")"
             : std::string()) +
        " is not supported");
  if (tp.dims_size() > kMaxRank)
    throw MalformedInput(what + ": more than " + std::to_string(kMaxRank) + " dimensions");
  Shape shape(tp.dims().begin(), tp.dims().end());
  for (int64_t d : shape)
    if (d < 0) throw MalformedInput(what + ": negative dimension in " + shape_to_string(shape));
  uint64_t numel = 1;
  for (int64_t d : shape) {
    if (d != 0 && numel > static_cast<uint64_t>(INT64_MAX) / static_cast<uint64_t>(d))
      throw MalformedInput(what + ": shape " + shape_to_string(shape) + " overflows");
    numel *= static_cast<uint64_t>(d);
  }

  const bool is_float = t.elem.kind == detail::ElemKind::Float;
  const bool half = is_float && t.elem.bytes == 2;
  const bool bf16 = tp.data_type() == onnx::TensorProto_DataType_BFLOAT16;
  const int typed = tp.float_data_size() + tp.double_data_size() + tp.int32_data_size() +
                    tp.int64_data_size() + tp.uint64_data_size();
  if (tp.has_raw_data() && typed > 0)
    throw MalformedInput(what + ": TensorProto has both raw_data and a typed data field");

  std::vector<float> fv;
  std::vector<int64_t> iv;
  auto count_mismatch = [&](uint64_t have) {
    throw MalformedInput(what + ": shape " + shape_to_string(shape) + " has " +
                         std::to_string(numel) + " elements but the TensorProto holds " +
                         std::to_string(have));
  };

  if (tp.has_raw_data()) {
    const std::string& raw = tp.raw_data();
    const uint64_t item = static_cast<uint64_t>(t.elem.bytes);
    // numel was bounded above only by int64; compare in a way that cannot overflow.
    if (raw.size() % item != 0 || raw.size() / item != numel) count_mismatch(raw.size() / item);
    const auto* p = reinterpret_cast<const uint8_t*>(raw.data());
    const size_t n = static_cast<size_t>(numel);
    if (is_float) {
      fv.resize(n);
      for (size_t i = 0; i < n; ++i)
        fv[i] = bf16 ? detail::bfloat16_to_float(static_cast<uint16_t>(load_le(p + 2 * i, 2)))
                     : detail::decode_float(p + i * item, t.elem.bytes);
    } else {
      iv.resize(n);
      for (size_t i = 0; i < n; ++i) iv[i] = detail::decode_int(p + i * item, t.elem, what);
    }
  } else {
    // The typed fields are already in memory, so their sizes bound the allocation.
    switch (tp.data_type()) {
      case onnx::TensorProto_DataType_FLOAT:
        if (static_cast<uint64_t>(tp.float_data_size()) != numel)
          count_mismatch(tp.float_data_size());
        fv.assign(tp.float_data().begin(), tp.float_data().end());
        break;
      case onnx::TensorProto_DataType_DOUBLE:
        if (static_cast<uint64_t>(tp.double_data_size()) != numel)
          count_mismatch(tp.double_data_size());
        for (double v : tp.double_data()) fv.push_back(static_cast<float>(v));
        break;
      case onnx::TensorProto_DataType_INT64:
        if (static_cast<uint64_t>(tp.int64_data_size()) != numel)
          count_mismatch(tp.int64_data_size());
        iv.assign(tp.int64_data().begin(), tp.int64_data().end());
        break;
      case onnx::TensorProto_DataType_UINT32:
      case onnx::TensorProto_DataType_UINT64:
        if (static_cast<uint64_t>(tp.uint64_data_size()) != numel)
          count_mismatch(tp.uint64_data_size());
        for (uint64_t v : tp.uint64_data()) {
          uint64_t max = tp.data_type() == onnx::TensorProto_DataType_UINT32 ? UINT32_MAX
                                                                             : uint64_t{INT64_MAX};
          if (v > max)
            throw MalformedInput(what + ": value " + std::to_string(v) + " does not fit " + t.name +
                                 " in int64");
          iv.push_back(static_cast<int64_t>(v));
        }
        break;
      default:  // int32_data holds INT32, INT16, INT8, UINT16, UINT8, BOOL, FLOAT16, BFLOAT16
        if (static_cast<uint64_t>(tp.int32_data_size()) != numel)
          count_mismatch(tp.int32_data_size());
        for (int32_t v : tp.int32_data()) {
          int64_t x = check_narrow(v, t, what);
          if (half)
            fv.push_back(bf16 ? detail::bfloat16_to_float(static_cast<uint16_t>(x))
                              : detail::half_to_float(static_cast<uint16_t>(x)));
          else
            iv.push_back(x);
        }
        break;
    }
  }
  if (is_float) return Tensor::from_floats(std::move(shape), std::move(fv));
  return Tensor::from_int64(std::move(shape), std::move(iv));
}

}  // namespace

Tensor parse_tensor_proto(const uint8_t* bytes, size_t size) {
  return parse_impl(bytes, size, "TensorProto data");
}

Tensor read_tensor_proto(const fs::path& path) {
  std::vector<uint8_t> bytes = read_file(path, kMaxFileBytes);
  return parse_impl(bytes.data(), bytes.size(), detail::quoted(path));
}

}  // namespace veil::data
