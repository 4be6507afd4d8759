#include "onnx_proto.hpp"

#include "veil/core/error.hpp"

namespace veil::model::onnx_proto {

std::string data_type_name(int32_t data_type) {
  if (onnx::TensorProto_DataType_IsValid(data_type))
    return onnx::TensorProto_DataType_Name(static_cast<onnx::TensorProto_DataType>(data_type));
  return "data type " + std::to_string(data_type);
}

Tensor tensor_from_proto(const onnx::TensorProto& proto, const std::string& what) {
  // The graph holds float32 and int64 tensors; narrower weight types are refused rather than
  // widened, so an imported model computes what its file says.
  switch (proto.data_type()) {
    case onnx::TensorProto::FLOAT:
    case onnx::TensorProto::DOUBLE:
    case onnx::TensorProto::INT64:
    case onnx::TensorProto::INT32:
      return data::tensor_from_proto(proto, what);
    default:
      throw Unsupported(what + " has element type " + data_type_name(proto.data_type()) +
                        ", which veil does not support (float, double, int32, int64 only)");
  }
}

}  // namespace veil::model::onnx_proto
