// ONNX TensorProto (onnx/onnx.proto, message TensorProto): the one checked decoder behind
// `veil infer --input x.pb` and the initializers and tensor attributes of an ONNX model.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "veil/core/tensor.hpp"

namespace onnx {
class TensorProto;
}

namespace veil::data {

inline constexpr int kMaxTensorProtoRank = 32;
// Bound on each dimension and on the element count (the product of the non-zero dimensions),
// checked before anything is allocated.
inline constexpr int64_t kMaxTensorProtoElements = int64_t{1} << 40;

// Elements come from raw_data (little-endian, densely packed) or from the typed field the ONNX
// IR assigns to the data type, never both, and their count must match the dims. Float types
// (float, double, float16, bfloat16) become float32; integer and bool types become int64.
// Throws MalformedInput for malformed messages and Unsupported for external or segmented data
// and other data types; `what` names the tensor in the message.
Tensor tensor_from_proto(const onnx::TensorProto& proto, const std::string& what);

// Writes `tensor` as raw little-endian data (bit-exact); `name` may be empty.
void tensor_to_proto(const Tensor& tensor, const std::string& name, onnx::TensorProto* proto);

// A serialized TensorProto (bytes in memory, or a .pb file).
Tensor parse_tensor_proto(const uint8_t* bytes, size_t size);
Tensor read_tensor_proto(const std::filesystem::path& path);

}  // namespace veil::data
