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

using ValidateSignature = void(const Node& node, int64_t opset);
using InferSignature = void(const InferContext& c, InferResult& r);
using LowerSignature = OpParams(const Node& node, int64_t opset);

struct OpEntry {
  const char* name;
  OpKind kind;
  ValidateSignature* validate;
  InferSignature* infer;
  LowerSignature* lower;
  bool shape_op;  // only computes shapes/constants; fold_constants() removes it when it can
  const char* domain = "";  // "" = the default ONNX domain; kVeilDomain for veil's own ops
};

// nullptr for an unknown operator.
const OpEntry* find_op(const std::string& onnx_name);
const OpEntry& op_entry(OpKind kind);
const std::vector<OpEntry>& op_entries();

// The per-op functions, defined next to their peers: validate_* in op_support.cpp, infer_* in
// shape_inference.cpp, lower_* in op_lowering.cpp. Ops of one family share some of them.
// validate_plain_unary: one input, one output, no attributes; validate_plain_binary: two;
// validate_axis_unary: Flatten, Softmax.
ValidateSignature validate_conv, validate_max_pool, validate_average_pool, validate_plain_unary,
    validate_leaky_relu, validate_gemm, validate_plain_binary, validate_clip, validate_batch_norm,
    validate_axis_unary, validate_reshape, validate_concat, validate_dropout, validate_constant,
    validate_pad, validate_shape, validate_gather, validate_squeeze, validate_unsqueeze,
    validate_cast, validate_constant_of_shape, validate_slice, validate_reduce_mean,
    validate_block_relu;

// infer_activation: Relu, Sigmoid, Tanh, LeakyRelu, Clip. infer_prelu: X's shape, the slope
// broadcasting to it unidirectionally.
InferSignature infer_conv, infer_pool, infer_global_pool, infer_gemm, infer_matmul, infer_binary,
    infer_activation, infer_prelu, infer_softmax, infer_identity, infer_dropout, infer_batch_norm,
    infer_flatten, infer_reshape, infer_concat, infer_pad, infer_constant, infer_shape,
    infer_gather, infer_unsqueeze, infer_squeeze, infer_cast, infer_constant_of_shape, infer_slice,
    infer_reduce_mean, infer_block_relu;

// lower_none: ops without attributes; lower_axes: Squeeze, Unsqueeze.
LowerSignature lower_none, lower_conv, lower_max_pool, lower_average_pool,
    lower_global_average_pool, lower_global_max_pool, lower_leaky_relu, lower_gemm, lower_clip,
    lower_batch_norm, lower_flatten, lower_softmax, lower_reshape, lower_concat, lower_dropout,
    lower_constant, lower_pad, lower_shape, lower_gather, lower_axes, lower_cast,
    lower_constant_of_shape, lower_slice, lower_reduce_mean, lower_block_relu;

// Window attributes of Conv / MaxPool / AveragePool (shared by their lowerers and by the Node
// form of spatial_geometry()).
SpatialParams lower_spatial(const Node& node);

}  // namespace veil::model::detail
