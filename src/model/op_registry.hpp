// Private to the model module: the op registry. One entry per supported ONNX operator holds its
// name, its kind and its three functions: validate (structural checks at import), infer (output
// shapes and types) and lower (attributes -> typed params). op_support, shape_inference and
// lowering are thin lookups in it; adding an op means adding its entry (op_registry.cpp) and its
// three functions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "veil/model/graph.hpp"
#include "veil/model/ops.hpp"

namespace veil::model::detail {

// What shape inference knows while inferring one node.
struct InferContext {
  const Node& node;
  const std::vector<ValueInfo>& in;  // aligned with node.inputs
  const Graph& graph;                // constant inputs (initializers)
  bool check_dtypes;

  const Shape& shape(size_t i) const;
  DType dtype(size_t i) const;
  void require_float(size_t i) const;
};

// The first output and the secondary outputs (MaxPool indices, Dropout mask) of one node.
struct InferResult {
  ValueInfo out;
  std::vector<ValueInfo> extra;
};

using ValidateFn = void (*)(const Node& node, int64_t opset);
using InferFn = void (*)(const InferContext& c, InferResult& r);
using LowerFn = OpParams (*)(const Node& node, int64_t opset);

struct OpEntry {
  const char* name;
  OpKind kind;
  ValidateFn validate;
  InferFn infer;
  LowerFn lower;
  bool shape_op;  // only computes shapes/constants; fold_constants() removes it when it can
};

// nullptr for an unknown operator.
const OpEntry* find_op(const std::string& onnx_name);
const OpEntry& op_entry(OpKind kind);
const std::vector<OpEntry>& op_entries();

// The per-op functions, defined next to their peers: validate_* in op_support.cpp, infer_* in
// shape_inference.cpp, lower_* in op_lowering.cpp. Ops of one family share some of them.
void validate_conv(const Node&, int64_t);
void validate_max_pool(const Node&, int64_t);
void validate_average_pool(const Node&, int64_t);
void validate_plain_unary(const Node&, int64_t);  // one input, one output, no attributes
void validate_leaky_relu(const Node&, int64_t);
void validate_gemm(const Node&, int64_t);
void validate_plain_binary(const Node&, int64_t);  // two inputs, one output, no attributes
void validate_clip(const Node&, int64_t);
void validate_batch_norm(const Node&, int64_t);
void validate_axis_unary(const Node&, int64_t);  // Flatten, Softmax
void validate_reshape(const Node&, int64_t);
void validate_concat(const Node&, int64_t);
void validate_dropout(const Node&, int64_t);
void validate_constant(const Node&, int64_t);
void validate_pad(const Node&, int64_t);
void validate_shape(const Node&, int64_t);
void validate_gather(const Node&, int64_t);
void validate_squeeze(const Node&, int64_t);
void validate_unsqueeze(const Node&, int64_t);
void validate_cast(const Node&, int64_t);
void validate_constant_of_shape(const Node&, int64_t);
void validate_slice(const Node&, int64_t);
void validate_reduce_mean(const Node&, int64_t);

void infer_conv(const InferContext&, InferResult&);
void infer_pool(const InferContext&, InferResult&);
void infer_global_pool(const InferContext&, InferResult&);
void infer_gemm(const InferContext&, InferResult&);
void infer_matmul(const InferContext&, InferResult&);
void infer_binary(const InferContext&, InferResult&);
void infer_activation(const InferContext&, InferResult&);  // Relu, Sigmoid, Tanh, LeakyRelu, Clip
void infer_softmax(const InferContext&, InferResult&);
void infer_identity(const InferContext&, InferResult&);
void infer_dropout(const InferContext&, InferResult&);
void infer_batch_norm(const InferContext&, InferResult&);
void infer_flatten(const InferContext&, InferResult&);
void infer_reshape(const InferContext&, InferResult&);
void infer_concat(const InferContext&, InferResult&);
void infer_pad(const InferContext&, InferResult&);
void infer_constant(const InferContext&, InferResult&);
void infer_shape(const InferContext&, InferResult&);
void infer_gather(const InferContext&, InferResult&);
void infer_unsqueeze(const InferContext&, InferResult&);
void infer_squeeze(const InferContext&, InferResult&);
void infer_cast(const InferContext&, InferResult&);
void infer_constant_of_shape(const InferContext&, InferResult&);
void infer_slice(const InferContext&, InferResult&);
void infer_reduce_mean(const InferContext&, InferResult&);

OpParams lower_none(const Node&, int64_t);
OpParams lower_conv(const Node&, int64_t);
OpParams lower_max_pool(const Node&, int64_t);
OpParams lower_average_pool(const Node&, int64_t);
OpParams lower_global_average_pool(const Node&, int64_t);
OpParams lower_global_max_pool(const Node&, int64_t);
OpParams lower_leaky_relu(const Node&, int64_t);
OpParams lower_gemm(const Node&, int64_t);
OpParams lower_clip(const Node&, int64_t);
OpParams lower_batch_norm(const Node&, int64_t);
OpParams lower_flatten(const Node&, int64_t);
OpParams lower_softmax(const Node&, int64_t);
OpParams lower_reshape(const Node&, int64_t);
OpParams lower_concat(const Node&, int64_t);
OpParams lower_dropout(const Node&, int64_t);
OpParams lower_constant(const Node&, int64_t);
OpParams lower_pad(const Node&, int64_t);
OpParams lower_shape(const Node&, int64_t);
OpParams lower_gather(const Node&, int64_t);
OpParams lower_axes(const Node&, int64_t);  // Squeeze, Unsqueeze
OpParams lower_cast(const Node&, int64_t);
OpParams lower_constant_of_shape(const Node&, int64_t);
OpParams lower_slice(const Node&, int64_t);
OpParams lower_reduce_mean(const Node&, int64_t);

// Window attributes of Conv / MaxPool / AveragePool (shared by their lowerers and by the Node
// form of spatial_geometry()).
SpatialParams lower_spatial(const Node& node);

}  // namespace veil::model::detail
