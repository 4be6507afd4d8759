// Tensors in NumPy .npy files (format 1.0/2.0, little-endian float32/float64/int64/int32/uint8,
// C order), and read_tensor for either .npy or ONNX TensorProto .pb files (tensor_proto.hpp).
#pragma once

#include <filesystem>

#include "veil/core/tensor.hpp"
#include "veil/data/tensor_proto.hpp"

namespace veil::data {

// Float types are read as float32; integer types as int64. Throws MalformedInput on anything
// else (Fortran order, big-endian, object arrays, truncated data), checked before allocating.
Tensor read_npy(const std::filesystem::path& path);
Tensor parse_npy(const uint8_t* bytes, size_t size);
void write_npy(const std::filesystem::path& path, const Tensor& tensor);  // atomic

// Dispatches on the extension: .npy or .pb.
Tensor read_tensor(const std::filesystem::path& path);

}  // namespace veil::data
