// ONNX TensorProto: tensor files (as written by onnx.numpy_helper and the ONNX test data sets)
// and the initializers and tensor attributes of ONNX models. Elements are either in raw_data
// (little-endian, densely packed) or in the typed repeated field the ONNX IR specification
// assigns to the data type (onnx/onnx.proto, message TensorProto).
#include "veil/data/tensor_proto.hpp"

#include <onnx/onnx_pb.h>

#include <climits>
#include <string>
#include <vector>

#include "elements.hpp"
#include "quote.hpp"
#include "veil/core/byte_io.hpp"
#include "veil/core/error.hpp"
#include "veil/core/io.hpp"

namespace veil::data {

namespace fs = std::filesystem;

namespace {

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

[[noreturn]] void fail(const std::string& what, const std::string& message) {
  throw MalformedInput(what + ": " + message);
}

// Refuses what veil does not read (external or segmented data, other data types).
TypeInfo checked_type(const onnx::TensorProto& tp, const std::string& what) {
  if (tp.data_location() == onnx::TensorProto_DataLocation_EXTERNAL || tp.external_data_size() > 0)
    throw Unsupported(what +
                      " stores its data in an external file, which veil does not read; "
                      "save the model with all tensors embedded");
  if (tp.has_segment()) throw Unsupported(what + " is segmented, which veil does not support");
  TypeInfo t;
  if (!type_info(tp.data_type(), t))
    throw Unsupported(
        what + ": TensorProto data type " + std::to_string(tp.data_type()) +
        (onnx::TensorProto_DataType_IsValid(tp.data_type())
             ? " (" + onnx::TensorProto_DataType_Name(static_cast<DT>(tp.data_type())) + ")"
             : std::string()) +
        " is not supported");
  return t;
}

// The dims, each in [0, kMaxTensorProtoElements] and with a product of the non-zero ones that
// stays within it too (so the count of an empty tensor cannot overflow either).
Shape checked_shape(const onnx::TensorProto& tp, const std::string& what, uint64_t& numel) {
  if (tp.dims_size() > kMaxTensorProtoRank)
    fail(what, "more than " + std::to_string(kMaxTensorProtoRank) + " dimensions");
  Shape shape(tp.dims().begin(), tp.dims().end());
  const auto max = static_cast<uint64_t>(kMaxTensorProtoElements);
  uint64_t nonzero = 1;
  bool zero = false;
  for (int64_t d : shape) {
    if (d < 0 || d > kMaxTensorProtoElements)
      fail(what, "invalid dimension " + std::to_string(d) + " in " + shape_to_string(shape));
    if (d == 0) {
      zero = true;
    } else {
      if (static_cast<uint64_t>(d) > max / nonzero)
        fail(what, "shape " + shape_to_string(shape) + " is too large");
      nonzero *= static_cast<uint64_t>(d);
    }
  }
  numel = zero ? 0 : nonzero;
  return shape;
}

struct Elements {
  std::vector<float> floats;
  std::vector<int64_t> ints;
};

void decode_raw(const std::string& raw, const TypeInfo& t, bool bf16, size_t n,
                const std::string& what, Elements& out) {
  const auto* p = reinterpret_cast<const uint8_t*>(raw.data());
  const size_t item = static_cast<size_t>(t.elem.bytes);
  if (t.elem.kind == detail::ElemKind::Float) {
    out.floats.resize(n);
    for (size_t i = 0; i < n; ++i)
      out.floats[i] = bf16 ? detail::bfloat16_to_float(load_le<uint16_t>(p + 2 * i))
                           : detail::decode_float(p + i * item, t.elem.bytes);
  } else {
    out.ints.resize(n);
    for (size_t i = 0; i < n; ++i) out.ints[i] = detail::decode_int(p + i * item, t.elem, what);
  }
}

// The typed repeated field of the data type (already in memory, so its size bounds the
// allocation; its length was checked against the dims).
void decode_typed(const onnx::TensorProto& tp, const TypeInfo& t, bool bf16,
                  const std::string& what, Elements& out) {
  switch (tp.data_type()) {
    case onnx::TensorProto_DataType_FLOAT:
      out.floats.assign(tp.float_data().begin(), tp.float_data().end());
      return;
    case onnx::TensorProto_DataType_DOUBLE:
      for (double v : tp.double_data()) out.floats.push_back(static_cast<float>(v));
      return;
    case onnx::TensorProto_DataType_INT64:
      out.ints.assign(tp.int64_data().begin(), tp.int64_data().end());
      return;
    case onnx::TensorProto_DataType_UINT32:
    case onnx::TensorProto_DataType_UINT64: {
      const uint64_t max = tp.data_type() == onnx::TensorProto_DataType_UINT32
                               ? UINT32_MAX
                               : static_cast<uint64_t>(INT64_MAX);
      for (uint64_t v : tp.uint64_data()) {
        if (v > max)
          fail(what, "value " + std::to_string(v) + " does not fit " + t.name + " in int64");
        out.ints.push_back(static_cast<int64_t>(v));
      }
      return;
    }
    default:  // int32_data holds INT32, INT16, INT8, UINT16, UINT8, BOOL, FLOAT16, BFLOAT16
      for (int32_t v : tp.int32_data()) {
        const int64_t x = check_narrow(v, t, what);
        if (t.elem.kind == detail::ElemKind::Float)
          out.floats.push_back(bf16 ? detail::bfloat16_to_float(static_cast<uint16_t>(x))
                                    : detail::half_to_float(static_cast<uint16_t>(x)));
        else
          out.ints.push_back(x);
      }
      return;
  }
}

// Number of values in the typed field that the data type uses.
uint64_t typed_count(const onnx::TensorProto& tp) {
  switch (tp.data_type()) {
    case onnx::TensorProto_DataType_FLOAT:
      return static_cast<uint64_t>(tp.float_data_size());
    case onnx::TensorProto_DataType_DOUBLE:
      return static_cast<uint64_t>(tp.double_data_size());
    case onnx::TensorProto_DataType_INT64:
      return static_cast<uint64_t>(tp.int64_data_size());
    case onnx::TensorProto_DataType_UINT32:
    case onnx::TensorProto_DataType_UINT64:
      return static_cast<uint64_t>(tp.uint64_data_size());
    default:
      return static_cast<uint64_t>(tp.int32_data_size());
  }
}

Tensor parse_impl(const uint8_t* bytes, size_t size, const std::string& what) {
  if (size > static_cast<size_t>(INT_MAX))
    throw MalformedInput(what + ": TensorProto larger than 2 GiB");
  onnx::TensorProto tp;
  if (!tp.ParseFromArray(bytes, static_cast<int>(size)))
    throw MalformedInput(what + ": not a valid ONNX TensorProto");
  return tensor_from_proto(tp, what);
}

}  // namespace

Tensor tensor_from_proto(const onnx::TensorProto& tp, const std::string& what) {
  const TypeInfo t = checked_type(tp, what);
  uint64_t numel = 0;
  Shape shape = checked_shape(tp, what, numel);
  const bool bf16 = tp.data_type() == onnx::TensorProto_DataType_BFLOAT16;
  const int typed = tp.float_data_size() + tp.double_data_size() + tp.int32_data_size() +
                    tp.int64_data_size() + tp.uint64_data_size();
  if (tp.has_raw_data() && typed > 0) fail(what, "has both raw_data and typed data");
  Elements e;
  if (tp.has_raw_data()) {
    const uint64_t bytes = numel * static_cast<uint64_t>(t.elem.bytes);  // <= 2^43
    if (tp.raw_data().size() != bytes)
      fail(what, "shape " + shape_to_string(shape) + " needs " + std::to_string(bytes) +
                     " bytes of raw_data, got " + std::to_string(tp.raw_data().size()));
    decode_raw(tp.raw_data(), t, bf16, static_cast<size_t>(numel), what, e);
  } else {
    if (typed_count(tp) != numel)
      fail(what, "shape " + shape_to_string(shape) + " needs " + std::to_string(numel) +
                     " values, got " + std::to_string(typed_count(tp)));
    decode_typed(tp, t, bf16, what, e);
  }
  if (t.elem.kind == detail::ElemKind::Float)
    return Tensor::from_floats(std::move(shape), std::move(e.floats));
  return Tensor::from_int64(std::move(shape), std::move(e.ints));
}

void tensor_to_proto(const Tensor& tensor, const std::string& name, onnx::TensorProto* proto) {
  proto->Clear();
  if (!name.empty()) proto->set_name(name);
  for (int64_t d : tensor.shape()) proto->add_dims(d);
  ByteWriter raw;
  if (tensor.dtype() == DType::Float32) {
    proto->set_data_type(onnx::TensorProto_DataType_FLOAT);
    raw.array(tensor.floats());
  } else {
    proto->set_data_type(onnx::TensorProto_DataType_INT64);
    raw.array(tensor.int64s());
  }
  proto->set_raw_data(raw.out().data(), raw.size());
}

Tensor parse_tensor_proto(const uint8_t* bytes, size_t size) {
  return parse_impl(bytes, size, "TensorProto data");
}

Tensor read_tensor_proto(const fs::path& path) {
  return detail::parse_file(path, kMaxFileBytes, parse_impl);
}

}  // namespace veil::data
