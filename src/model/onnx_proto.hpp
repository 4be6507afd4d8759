// Private to the model module: conversions between ONNX protobuf messages and veil's IR pieces,
// shared by the importer and the exporter.
#pragma once

#include <onnx/onnx_pb.h>

#include <string>

#include "symbolic_shapes.hpp"
#include "veil/core/tensor.hpp"
#include "veil/model/graph.hpp"

namespace veil::model::onnx_proto {

inline constexpr int64_t kMaxDim = kMaxDimension;

// ONNX TensorProto.DataType name for messages ("FLOAT16", "BOOL", ...).
std::string data_type_name(int32_t data_type);

// Converts a TensorProto (FLOAT, DOUBLE -> float32, INT64, INT32 -> int64; raw_data or typed
// fields). Checks the byte size against the dims before allocating. `what` names the tensor in
// errors.
Tensor tensor_from_proto(const onnx::TensorProto& proto, const std::string& what);

// Writes `tensor` as raw little-endian data (bit-exact).
void tensor_to_proto(const Tensor& tensor, const std::string& name, onnx::TensorProto* proto);

}  // namespace veil::model::onnx_proto
