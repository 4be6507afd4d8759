// The op registry: the one table that maps ONNX operator names to kinds and to each op's
// validate / infer / lower functions.
#include "op_registry.hpp"

#include <unordered_map>

#include "veil/core/error.hpp"

namespace veil::model {

namespace detail {

const std::vector<OpEntry>& op_entries() {
  // clang-format off
  static const std::vector<OpEntry> entries = {
      // name                 kind                        validate                    infer                    lower                      shape op
      {"Add",                 OpKind::Add,                validate_plain_binary,      infer_binary,            lower_none,                false},
      {"AveragePool",         OpKind::AveragePool,        validate_average_pool,      infer_pool,              lower_average_pool,        false},
      {"BatchNormalization",  OpKind::BatchNormalization, validate_batch_norm,        infer_batch_norm,        lower_batch_norm,          false},
      {"BlockRelu",           OpKind::BlockRelu,          validate_block_relu,        infer_block_relu,        lower_block_relu,          false, kVeilDomain},
      {"Cast",                OpKind::Cast,               validate_cast,              infer_cast,              lower_cast,                true},
      {"Clip",                OpKind::Clip,               validate_clip,              infer_activation,        lower_clip,                false},
      {"Concat",              OpKind::Concat,             validate_concat,            infer_concat,            lower_concat,              true},
      {"Constant",            OpKind::Constant,           validate_constant,          infer_constant,          lower_constant,            true},
      {"ConstantOfShape",     OpKind::ConstantOfShape,    validate_constant_of_shape, infer_constant_of_shape, lower_constant_of_shape,   true},
      {"Conv",                OpKind::Conv,               validate_conv,              infer_conv,              lower_conv,                false},
      {"Div",                 OpKind::Div,                validate_plain_binary,      infer_binary,            lower_none,                false},
      {"Dropout",             OpKind::Dropout,            validate_dropout,           infer_dropout,           lower_dropout,             false},
      {"Flatten",             OpKind::Flatten,            validate_axis_unary,        infer_flatten,           lower_flatten,             false},
      {"Gather",              OpKind::Gather,             validate_gather,            infer_gather,            lower_gather,              true},
      {"Gemm",                OpKind::Gemm,               validate_gemm,              infer_gemm,              lower_gemm,                false},
      {"GlobalAveragePool",   OpKind::GlobalAveragePool,  validate_plain_unary,       infer_global_pool,       lower_global_average_pool, false},
      {"GlobalMaxPool",       OpKind::GlobalMaxPool,      validate_plain_unary,       infer_global_pool,       lower_global_max_pool,     false},
      {"Identity",            OpKind::Identity,           validate_plain_unary,       infer_identity,          lower_none,                true},
      {"LeakyRelu",           OpKind::LeakyRelu,          validate_leaky_relu,        infer_activation,        lower_leaky_relu,          false},
      {"MatMul",              OpKind::MatMul,             validate_plain_binary,      infer_matmul,            lower_none,                false},
      {"MaxPool",             OpKind::MaxPool,            validate_max_pool,          infer_pool,              lower_max_pool,            false},
      {"Mul",                 OpKind::Mul,                validate_plain_binary,      infer_binary,            lower_none,                false},
      {"Pad",                 OpKind::Pad,                validate_pad,               infer_pad,               lower_pad,                 false},
      {"PRelu",               OpKind::PRelu,              validate_plain_binary,      infer_prelu,             lower_none,                false},
      {"ReduceMean",          OpKind::ReduceMean,         validate_reduce_mean,       infer_reduce_mean,       lower_reduce_mean,         false},
      {"Relu",                OpKind::Relu,               validate_plain_unary,       infer_activation,        lower_none,                false},
      {"Reshape",             OpKind::Reshape,            validate_reshape,           infer_reshape,           lower_reshape,             true},
      {"Shape",               OpKind::Shape,              validate_shape,             infer_shape,             lower_shape,               true},
      {"Sigmoid",             OpKind::Sigmoid,            validate_plain_unary,       infer_activation,        lower_none,                false},
      {"Slice",               OpKind::Slice,              validate_slice,             infer_slice,             lower_slice,               true},
      {"Softmax",             OpKind::Softmax,            validate_axis_unary,        infer_softmax,           lower_softmax,             false},
      {"Squeeze",             OpKind::Squeeze,            validate_squeeze,           infer_squeeze,           lower_axes,                true},
      {"Sub",                 OpKind::Sub,                validate_plain_binary,      infer_binary,            lower_none,                false},
      {"Tanh",                OpKind::Tanh,               validate_plain_unary,       infer_activation,        lower_none,                false},
      {"Unsqueeze",           OpKind::Unsqueeze,          validate_unsqueeze,         infer_unsqueeze,         lower_axes,                true},
  };
  // clang-format on
  return entries;
}

const OpEntry* find_op(const std::string& onnx_name) {
  static const std::unordered_map<std::string, const OpEntry*> by_name = [] {
    std::unordered_map<std::string, const OpEntry*> m;
    for (const auto& e : op_entries()) m.emplace(e.name, &e);
    return m;
  }();
  auto it = by_name.find(onnx_name);
  return it == by_name.end() ? nullptr : it->second;
}

const OpEntry& op_entry(OpKind kind) {
  static const std::vector<const OpEntry*> by_kind = [] {
    std::vector<const OpEntry*> v(op_entries().size(), nullptr);
    for (const auto& e : op_entries()) {
      size_t k = static_cast<size_t>(e.kind);
      if (k >= v.size() || v[k]) throw Error("op registry: kinds are not one per entry");
      v[k] = &e;
    }
    return v;
  }();
  size_t k = static_cast<size_t>(kind);
  if (k >= by_kind.size() || !by_kind[k])
    throw Error("op registry: no entry for kind " + std::to_string(k));
  return *by_kind[k];
}

}  // namespace detail

namespace {

// One string field of every entry, indexed by kind (stable references for the callers).
std::vector<std::string> strings_by_kind(const char* detail::OpEntry::*field) {
  std::vector<std::string> v(detail::op_entries().size());
  for (const auto& e : detail::op_entries()) v.at(static_cast<size_t>(e.kind)) = e.*field;
  return v;
}

}  // namespace

const std::string& op_name(OpKind kind) {
  static const std::vector<std::string> names = strings_by_kind(&detail::OpEntry::name);
  return names.at(static_cast<size_t>(detail::op_entry(kind).kind));
}

const std::string& op_domain(OpKind kind) {
  static const std::vector<std::string> domains = strings_by_kind(&detail::OpEntry::domain);
  return domains.at(static_cast<size_t>(detail::op_entry(kind).kind));
}

std::optional<OpKind> op_kind(const std::string& onnx_name) {
  const detail::OpEntry* e = detail::find_op(onnx_name);
  if (!e) return std::nullopt;
  return e->kind;
}

const std::vector<OpKind>& all_op_kinds() {
  static const std::vector<OpKind> kinds = [] {
    std::vector<OpKind> v;
    for (const auto& e : detail::op_entries()) v.push_back(e.kind);
    return v;
  }();
  return kinds;
}

}  // namespace veil::model
