// Private to the model module: conversions between ONNX protobuf messages and veil's IR pieces,
// shared by the importer and the exporter.
#pragma once

#include <onnx/onnx_pb.h>

#include <string>

#include "symbolic_shapes.hpp"
#include "veil/core/tensor.hpp"
#include "veil/data/tensor_proto.hpp"
#include "veil/model/graph.hpp"

namespace veil::model::onnx_proto {

inline constexpr int64_t kMaxDim = kMaxDimension;

// ONNX TensorProto.DataType name for messages ("FLOAT16", "BOOL", ...).
std::string data_type_name(int32_t data_type);

// Converts a TensorProto of one of the element types a graph holds (FLOAT, DOUBLE -> float32,
// INT64, INT32 -> int64) with the checked decoder of data/tensor_proto.hpp; throws Unsupported
// for other types. `what` names the tensor in errors.
Tensor tensor_from_proto(const onnx::TensorProto& proto, const std::string& what);

// Writes `tensor` as raw little-endian data (bit-exact).
using data::tensor_to_proto;

}  // namespace veil::model::onnx_proto
