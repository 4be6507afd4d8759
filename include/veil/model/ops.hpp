// The typed ops of veil's IR: one OpKind per supported ONNX operator and, for the operators with
// attributes, a parameter struct holding them with the ONNX defaults applied. The op registry
// (src/model/op_registry.cpp) is the only place that maps ONNX operator names to kinds and
// attributes to these structs; backends dispatch on OpKind / the params variant and never read
// op-type strings or attribute maps (see veil/model/lowered.hpp).
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "veil/core/tensor.hpp"
#include "veil/model/block_size.hpp"

namespace veil::model {

enum class OpKind {
  Add,
  AveragePool,
  BatchNormalization,
  BlockRelu,  // domain ai.veil
  Cast,
  Clip,
  Concat,
  Constant,
  ConstantOfShape,
  Conv,
  Div,
  Dropout,
  Flatten,
  Gather,
  Gemm,
  GlobalAveragePool,
  GlobalMaxPool,
  Identity,
  LeakyRelu,
  MatMul,
  MaxPool,
  Mul,
  Pad,
  PRelu,
  ReduceMean,
  Relu,
  Reshape,
  Shape,
  Sigmoid,
  Slice,
  Softmax,
  Squeeze,
  Sub,
  Tanh,
  Unsqueeze,
};

// The ONNX operator name of `kind` (for messages, export and structure hashes).
const std::string& op_name(OpKind kind);
// The kind of an ONNX operator name; nullopt for operators veil does not support.
std::optional<OpKind> op_kind(const std::string& onnx_name);
// Every kind, in OpKind order.
const std::vector<OpKind>& all_op_kinds();

// The operator domain of veil's own ops (BlockRelu); models using one import it at version 1.
inline constexpr const char* kVeilDomain = "ai.veil";
inline constexpr int64_t kVeilDomainVersion = 1;
// The ONNX domain of `kind`: "" for the default domain, kVeilDomain for veil's own ops.
const std::string& op_domain(OpKind kind);

enum class AutoPad { NotSet, SameUpper, SameLower, Valid };

// The window attributes shared by Conv, MaxPool and AveragePool, as given in the model (empty
// vectors where the attribute is absent; spatial_geometry() applies the defaults once the rank
// is known).
struct SpatialParams {
  std::vector<int64_t> kernel_shape;
  std::vector<int64_t> strides;
  std::vector<int64_t> dilations;
  std::vector<int64_t> pads;  // [begin..., end...]
  AutoPad auto_pad = AutoPad::NotSet;
  bool ceil_mode = false;  // pools only
};

struct ConvParams {
  SpatialParams spatial;
  int64_t group = 1;
};

// MaxPool / AveragePool (spatial set) and GlobalAveragePool / GlobalMaxPool (global).
struct PoolParams {
  bool max = false;
  bool global = false;
  SpatialParams spatial;
  bool count_include_pad = false;
  int64_t storage_order = 0;
};

struct GemmParams {
  float alpha = 1.0f;
  float beta = 1.0f;
  bool trans_a = false;
  bool trans_b = false;
};

struct ReshapeParams {
  bool allowzero = false;
};

struct FlattenParams {
  int64_t axis = 1;
};

struct SoftmaxParams {
  int64_t axis = -1;
  // Before opset 13 the input is coerced to 2-D at `axis` (default 1).
  bool coerce_2d = false;
};

// Bounds given as attributes (before opset 11); from opset 11 they are inputs 1 and 2.
struct ClipParams {
  float min = -std::numeric_limits<float>::infinity();
  float max = std::numeric_limits<float>::infinity();
};

struct LeakyReluParams {
  float alpha = 0.01f;
};

struct BatchNormParams {
  float epsilon = 1e-5f;
  float momentum = 0.9f;
};

struct ConcatParams {
  int64_t axis = 0;
};

enum class PadMode { Constant, Reflect, Edge };

struct PadParams {
  PadMode mode = PadMode::Constant;
  // Before opset 11, pads and value are attributes; later they are inputs 1 and 2.
  bool attributes = false;
  std::vector<int64_t> pads;
  float value = 0.0f;
};

// Slice before opset 10 (attributes); later starts/ends/axes/steps are inputs.
struct SliceParams {
  bool attributes = false;
  std::vector<int64_t> starts, ends, axes;
};

struct CastParams {
  int64_t to = 1;  // ONNX TensorProto.DataType
  DType dtype = DType::Float32;
};

struct GatherParams {
  int64_t axis = 0;
};

struct ShapeParams {
  int64_t start = 0;
  std::optional<int64_t> end;
};

// Squeeze / Unsqueeze: axes from the attribute (before opset 13) or input 1.
struct AxesParams {
  bool attribute = false;
  std::vector<int64_t> axes;
};

struct ReduceMeanParams {
  std::vector<int64_t> axes;  // empty: every axis
  bool keepdims = true;
};

struct DropoutParams {
  float ratio = 0.5f;
};

struct ConstantParams {
  Tensor value;
};

struct ConstantOfShapeParams {
  Tensor value;  // one element; float 0 when absent
};

// Block ReLU (veil/model/block_size.hpp): one block size per channel of its NCHW input, stored
// in ONNX as the INTS attribute `blocks` = h0, w0, h1, w1, ...
struct BlockReluParams {
  std::vector<BlockSize> blocks;
};
inline constexpr size_t kMaxBlockReluChannels = size_t{1} << 20;

// Ops without attributes (Add, Relu, MatMul, Identity, ...).
struct NoParams {};

using OpParams =
    std::variant<NoParams, ConvParams, PoolParams, GemmParams, ReshapeParams, FlattenParams,
                 SoftmaxParams, ClipParams, LeakyReluParams, BatchNormParams, ConcatParams,
                 PadParams, SliceParams, CastParams, GatherParams, ShapeParams, AxesParams,
                 ReduceMeanParams, DropoutParams, ConstantParams, ConstantOfShapeParams,
                 BlockReluParams>;

}  // namespace veil::model
