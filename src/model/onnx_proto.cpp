#include "onnx_proto.hpp"

#include "veil/core/byte_io.hpp"
#include "veil/core/error.hpp"

namespace veil::model::onnx_proto {

namespace {

// Element `i` of little-endian raw data.
template <typename T>
T raw_element(const std::string& raw, size_t i) {
  return load_le<T>(reinterpret_cast<const uint8_t*>(raw.data()) + i * sizeof(T));
}

}  // namespace

std::string data_type_name(int32_t data_type) {
  if (onnx::TensorProto_DataType_IsValid(data_type))
    return onnx::TensorProto_DataType_Name(static_cast<onnx::TensorProto_DataType>(data_type));
  return "data type " + std::to_string(data_type);
}

Tensor tensor_from_proto(const onnx::TensorProto& proto, const std::string& what) {
  if (proto.data_location() == onnx::TensorProto::EXTERNAL || proto.external_data_size() > 0)
    throw Unsupported(what +
                      " stores its data in an external file, which veil does not read; "
                      "save the model with all tensors embedded");
  if (proto.has_segment()) throw Unsupported(what + " is segmented, which veil does not support");
  Shape shape;
  int64_t numel = 1;
  if (proto.dims_size() > 64) throw MalformedInput(what + " has more than 64 dimensions");
  for (int64_t d : proto.dims()) {
    if (d < 0 || d > kMaxDim)
      throw MalformedInput(what + " has invalid dimension " + std::to_string(d));
    shape.push_back(d);
  }
  // The product of the non-zero dims must fit (Tensor checks it too) even when numel is 0.
  int64_t nonzero = 1;
  bool has_zero = false;
  for (int64_t d : shape) {
    if (d == 0)
      has_zero = true;
    else if (__builtin_mul_overflow(nonzero, d, &nonzero) || nonzero > (int64_t{1} << 40))
      throw MalformedInput(what + " of shape " + shape_to_string(shape) + " is too large");
  }
  numel = has_zero ? 0 : nonzero;

  const int32_t type = proto.data_type();
  size_t elem_size;
  size_t typed_count;
  switch (type) {
    case onnx::TensorProto::FLOAT:
      elem_size = 4;
      typed_count = static_cast<size_t>(proto.float_data_size());
      break;
    case onnx::TensorProto::DOUBLE:
      elem_size = 8;
      typed_count = static_cast<size_t>(proto.double_data_size());
      break;
    case onnx::TensorProto::INT64:
      elem_size = 8;
      typed_count = static_cast<size_t>(proto.int64_data_size());
      break;
    case onnx::TensorProto::INT32:
      elem_size = 4;
      typed_count = static_cast<size_t>(proto.int32_data_size());
      break;
    default:
      throw Unsupported(what + " has element type " + data_type_name(type) +
                        ", which veil does not support (float, double, int32, int64 only)");
  }
  const size_t n = static_cast<size_t>(numel);
  const bool raw = proto.has_raw_data();
  if (raw && typed_count != 0) throw MalformedInput(what + " has both raw_data and typed data");
  if (raw) {
    // numel is bounded above, so this cannot overflow.
    if (proto.raw_data().size() != n * elem_size)
      throw MalformedInput(what + " of shape " + shape_to_string(shape) + " needs " +
                           std::to_string(n * elem_size) + " bytes of raw_data, got " +
                           std::to_string(proto.raw_data().size()));
  } else if (typed_count != n) {
    throw MalformedInput(what + " of shape " + shape_to_string(shape) + " needs " +
                         std::to_string(n) + " values, got " + std::to_string(typed_count));
  }

  const std::string& bytes = proto.raw_data();
  if (type == onnx::TensorProto::FLOAT || type == onnx::TensorProto::DOUBLE) {
    std::vector<float> v(n);
    for (size_t i = 0; i < n; ++i) {
      if (type == onnx::TensorProto::FLOAT)
        v[i] = raw ? raw_element<float>(bytes, i) : proto.float_data(static_cast<int>(i));
      else
        v[i] = static_cast<float>(raw ? raw_element<double>(bytes, i)
                                      : proto.double_data(static_cast<int>(i)));
    }
    return Tensor::from_floats(std::move(shape), std::move(v));
  }
  std::vector<int64_t> v(n);
  for (size_t i = 0; i < n; ++i) {
    if (type == onnx::TensorProto::INT64)
      v[i] = raw ? raw_element<int64_t>(bytes, i) : proto.int64_data(static_cast<int>(i));
    else
      v[i] = raw ? raw_element<int32_t>(bytes, i) : proto.int32_data(static_cast<int>(i));
  }
  return Tensor::from_int64(std::move(shape), std::move(v));
}

void tensor_to_proto(const Tensor& tensor, const std::string& name, onnx::TensorProto* proto) {
  proto->Clear();
  if (!name.empty()) proto->set_name(name);
  for (int64_t d : tensor.shape()) proto->add_dims(d);
  ByteWriter w;
  if (tensor.dtype() == DType::Float32) {
    proto->set_data_type(onnx::TensorProto::FLOAT);
    w.array(tensor.floats());
  } else {
    proto->set_data_type(onnx::TensorProto::INT64);
    w.array(tensor.int64s());
  }
  proto->set_raw_data(w.out().data(), w.size());
}

}  // namespace veil::model::onnx_proto
