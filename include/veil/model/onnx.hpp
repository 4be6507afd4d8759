// ONNX import and export for veil's graph IR.
//
// Import is a hardened parser: the file size is bounded, every tensor's byte size is checked
// against its dims before anything is allocated, the graph is validated (defined-before-use, no
// cycles, unique outputs) and every node is checked against the supported op set. Shape-only
// subgraphs (Shape/Gather/Unsqueeze/Concat/... on values known at import time) are folded to
// constants and shapes are inferred, so the returned graph is ready for the engine.
//
// Export writes every initializer as little-endian raw_data, so a load -> save -> load round trip
// gives the same graph and bit-identical weights (NaN payloads and -0.0 included).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

#include "veil/model/graph.hpp"

namespace veil::model {

// Largest ONNX file veil reads (protobuf cannot parse messages of 2 GiB or more).
inline constexpr uint64_t kMaxOnnxBytes = (uint64_t{2} << 30) - 1;
// ONNX default-domain opsets veil understands.
inline constexpr int64_t kMinOpset = 9;
inline constexpr int64_t kMaxOpset = 17;

// Reads and imports an ONNX file. Throws IoError (unreadable), MalformedInput (does not parse or
// is inconsistent) or Unsupported (an op, dtype, opset or feature veil does not handle), always
// naming the file and, where there is one, the node.
Model load_onnx(const std::filesystem::path& path);

// Same for bytes already in memory; `source_name` prefixes error messages.
Model parse_onnx(const uint8_t* data, size_t size, const std::string& source_name);

// Serializes `model` as an ONNX ModelProto (initializers as raw_data, dynamic dims as dim_param
// "N"). Throws InvalidArgument if the model cannot be represented.
std::string serialize_onnx(const Model& model);

// serialize_onnx + veil::write_file_atomic.
void save_onnx(const Model& model, const std::filesystem::path& path);

}  // namespace veil::model
