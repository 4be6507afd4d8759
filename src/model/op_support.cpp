#include "veil/model/op_support.hpp"

#include <algorithm>
#include <variant>

#include "op_registry.hpp"
#include "veil/core/error.hpp"

namespace veil::model {

namespace detail {

namespace {

[[noreturn]] void unsupported(const Node& node, const std::string& reason) {
  throw Unsupported(node.describe() + ": " + reason);
}

[[noreturn]] void malformed(const Node& node, const std::string& reason) {
  throw MalformedInput(node.describe() + ": " + reason);
}

void expect_inputs(const Node& node, size_t min, size_t max) {
  size_t n = node.inputs.size();
  if (n < min || n > max)
    malformed(node, "expects " +
                        (min == max ? std::to_string(min)
                                    : std::to_string(min) + ".." + std::to_string(max)) +
                        " inputs, got " + std::to_string(n));
  for (size_t i = 0; i < min; ++i)
    if (node.inputs[i].empty())
      malformed(node, "required input " + std::to_string(i) + " is empty");
}

// Outputs beyond `supported` are optional outputs veil does not compute (MaxPool indices,
// BatchNormalization training statistics, ...): they must be omitted.
void expect_outputs(const Node& node, size_t max_defined, size_t supported) {
  if (node.outputs.empty() || node.outputs[0].empty()) malformed(node, "has no output");
  if (node.outputs.size() > max_defined)
    malformed(node, "has " + std::to_string(node.outputs.size()) + " outputs, at most " +
                        std::to_string(max_defined) + " are defined");
  for (size_t i = supported; i < node.outputs.size(); ++i)
    if (!node.outputs[i].empty())
      unsupported(node, "optional output " + std::to_string(i) + " ('" + node.outputs[i] +
                            "') is not supported");
}

void allow_attrs(const Node& node, std::initializer_list<const char*> names) {
  for (const auto& kv : node.attributes) {
    const std::string& key = kv.first;  // not a structured binding: clang 14 cannot capture one
    bool known = std::any_of(names.begin(), names.end(), [&](const char* n) { return key == n; });
    if (!known) unsupported(node, "attribute '" + key + "' is not supported");
  }
}

void check_positive_ints(const Node& node, const char* attr) {
  for (int64_t v : node.attr_ints(attr, {}))
    if (v < 1 || v > (int64_t{1} << 31))
      malformed(node,
                std::string("attribute '") + attr + "' has invalid value " + std::to_string(v));
}

void check_pads(const Node& node) {
  auto pads = node.attr_ints("pads", {});
  if (pads.size() % 2 != 0) malformed(node, "attribute 'pads' has an odd number of values");
  for (int64_t v : pads)
    if (v < 0 || v > (int64_t{1} << 31))
      malformed(node, "attribute 'pads' has invalid value " + std::to_string(v));
}

void check_auto_pad(const Node& node) {
  std::string ap = node.attr_string("auto_pad", "NOTSET");
  if (ap != "NOTSET" && ap != "SAME_UPPER" && ap != "SAME_LOWER" && ap != "VALID")
    malformed(node, "attribute 'auto_pad' has invalid value '" + ap + "'");
  if (ap != "NOTSET" && node.has("pads"))
    malformed(node, "attributes 'auto_pad' and 'pads' cannot be used together");
}

void check_bool_attr(const Node& node, const char* attr) {
  int64_t v = node.attr_int(attr, 0);
  if (v != 0 && v != 1)
    malformed(node,
              std::string("attribute '") + attr + "' must be 0 or 1, got " + std::to_string(v));
}

// Ops with one output whose attributes became inputs at opset `since`: before it they take one
// input and `legacy_attrs`, from it [min_inputs, max_inputs] inputs and no attributes. Returns
// whether the node has the legacy form.
bool legacy_form(const Node& node, int64_t opset, int64_t since,
                 std::initializer_list<const char*> legacy_attrs, size_t min_inputs,
                 size_t max_inputs) {
  const bool legacy = opset < since;
  if (legacy) {
    expect_inputs(node, 1, 1);
    allow_attrs(node, legacy_attrs);
  } else {
    expect_inputs(node, min_inputs, max_inputs);
    allow_attrs(node, {});
  }
  expect_outputs(node, 1, 1);
  return legacy;
}

void check_spatial_common(const Node& node) {
  check_auto_pad(node);
  check_positive_ints(node, "strides");
  check_positive_ints(node, "dilations");
  check_positive_ints(node, "kernel_shape");
  check_pads(node);
}

// ONNX TensorProto.DataType values Cast may target (veil keeps float and integer values).
bool castable_type(int64_t to) { return to == 1 || to == 6 || to == 7 || to == 11; }

}  // namespace

void validate_conv(const Node& node, int64_t) {
  expect_inputs(node, 2, 3);
  expect_outputs(node, 1, 1);
  allow_attrs(node, {"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"});
  check_spatial_common(node);
  int64_t group = node.attr_int("group", 1);
  if (group < 1 || group > (int64_t{1} << 31))
    malformed(node, "attribute 'group' must be positive, got " + std::to_string(group));
}

namespace {

void validate_pool_common(const Node& node, int64_t opset) {
  expect_inputs(node, 1, 1);
  if (!node.has("kernel_shape")) malformed(node, "missing required attribute 'kernel_shape'");
  if (opset < 10 && (node.has("ceil_mode") || node.has("dilations")))
    malformed(node, "attributes 'ceil_mode' and 'dilations' need opset 10");
  check_spatial_common(node);
  check_bool_attr(node, "ceil_mode");
  check_bool_attr(node, "count_include_pad");
  check_bool_attr(node, "storage_order");
}

}  // namespace

void validate_max_pool(const Node& node, int64_t opset) {
  expect_outputs(node, 2, 1);
  allow_attrs(node, {"auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "storage_order",
                     "strides"});
  validate_pool_common(node, opset);
}

void validate_average_pool(const Node& node, int64_t opset) {
  expect_outputs(node, 1, 1);
  allow_attrs(node,
              {"auto_pad", "ceil_mode", "count_include_pad", "kernel_shape", "pads", "strides"});
  validate_pool_common(node, opset);
}

void validate_plain_unary(const Node& node, int64_t) {
  expect_inputs(node, 1, 1);
  expect_outputs(node, 1, 1);
  allow_attrs(node, {});
}

void validate_leaky_relu(const Node& node, int64_t) {
  expect_inputs(node, 1, 1);
  expect_outputs(node, 1, 1);
  allow_attrs(node, {"alpha"});
  node.attr_float("alpha", 0.01f);
}

void validate_gemm(const Node& node, int64_t opset) {
  expect_inputs(node, opset < 11 ? 3 : 2, 3);
  expect_outputs(node, 1, 1);
  allow_attrs(node, {"alpha", "beta", "transA", "transB"});
  node.attr_float("alpha", 1.0f);
  node.attr_float("beta", 1.0f);
  check_bool_attr(node, "transA");
  check_bool_attr(node, "transB");
}

void validate_plain_binary(const Node& node, int64_t) {
  expect_inputs(node, 2, 2);
  expect_outputs(node, 1, 1);
  allow_attrs(node, {});
}

void validate_clip(const Node& node, int64_t opset) {
  if (legacy_form(node, opset, 11, {"min", "max"}, 1, 3)) {
    node.attr_float("min", 0.0f);
    node.attr_float("max", 0.0f);
  }
}

void validate_batch_norm(const Node& node, int64_t) {
  expect_inputs(node, 5, 5);
  expect_outputs(node, 5, 1);
  allow_attrs(node, {"epsilon", "momentum", "training_mode", "spatial"});
  float eps = node.attr_float("epsilon", 1e-5f);
  if (!(eps >= 0.0f)) malformed(node, "attribute 'epsilon' must be non-negative");
  node.attr_float("momentum", 0.9f);
  if (node.attr_int("training_mode", 0) != 0)
    unsupported(node, "training_mode=1 is not supported (export the model in eval mode)");
  if (node.attr_int("spatial", 1) != 1) unsupported(node, "spatial=0 is not supported");
}

void validate_axis_unary(const Node& node, int64_t) {
  expect_inputs(node, 1, 1);
  expect_outputs(node, 1, 1);
  allow_attrs(node, {"axis"});
  node.attr_int("axis", 1);
}

void validate_reshape(const Node& node, int64_t) {
  expect_inputs(node, 2, 2);
  expect_outputs(node, 1, 1);
  allow_attrs(node, {"allowzero"});
  check_bool_attr(node, "allowzero");
}

void validate_concat(const Node& node, int64_t) {
  if (node.inputs.empty()) malformed(node, "expects at least one input");
  expect_inputs(node, node.inputs.size(), node.inputs.size());
  expect_outputs(node, 1, 1);
  allow_attrs(node, {"axis"});
  if (!node.has("axis")) malformed(node, "missing required attribute 'axis'");
  node.attr_int("axis", 0);
}

void validate_dropout(const Node& node, int64_t opset) {
  if (opset < 12) {
    expect_inputs(node, 1, 1);
  } else {
    expect_inputs(node, 1, 3);
    if (node.inputs.size() == 3 && !node.inputs[2].empty())
      unsupported(node, "input 'training_mode' is not supported");
  }
  // The mask output is accepted here; import drops it when nothing reads it.
  expect_outputs(node, 2, 2);
  allow_attrs(node, {"ratio", "seed"});
  float ratio = node.attr_float("ratio", 0.5f);
  if (!(ratio >= 0.0f && ratio < 1.0f)) malformed(node, "attribute 'ratio' must be in [0, 1)");
}

void validate_constant(const Node& node, int64_t) {
  expect_inputs(node, 0, 0);
  expect_outputs(node, 1, 1);
  allow_attrs(node, {"value", "value_float", "value_floats", "value_int", "value_ints"});
  if (node.attributes.size() != 1)
    malformed(node, "needs exactly one of value, value_float(s), value_int(s)");
}

void validate_pad(const Node& node, int64_t opset) {
  std::string mode = node.attr_string("mode", "constant");
  if (mode != "constant" && mode != "reflect" && mode != "edge")
    malformed(node, "attribute 'mode' has invalid value '" + mode + "'");
  if (opset < 11) {
    expect_inputs(node, 1, 1);
    allow_attrs(node, {"mode", "pads", "value"});
    if (!node.has("pads")) malformed(node, "missing required attribute 'pads'");
    if (node.attr_ints("pads", {}).size() % 2 != 0)
      malformed(node, "attribute 'pads' has an odd number of values");
    node.attr_float("value", 0.0f);
  } else {
    expect_inputs(node, 2, 3);
    allow_attrs(node, {"mode"});
  }
  expect_outputs(node, 1, 1);
}

void validate_shape(const Node& node, int64_t opset) {
  expect_inputs(node, 1, 1);
  expect_outputs(node, 1, 1);
  allow_attrs(node, {"start", "end"});
  if (opset < 15 && (node.has("start") || node.has("end")))
    malformed(node, "attributes 'start' and 'end' need opset 15");
  node.attr_int("start", 0);
  node.attr_int("end", 0);
}

void validate_gather(const Node& node, int64_t) {
  expect_inputs(node, 2, 2);
  expect_outputs(node, 1, 1);
  allow_attrs(node, {"axis"});
  node.attr_int("axis", 0);
}

namespace {

void validate_axes_op(const Node& node, int64_t opset, bool axes_required) {
  if (legacy_form(node, opset, 13, {"axes"}, axes_required ? 2 : 1, 2)) {
    if (axes_required && !node.has("axes")) malformed(node, "missing required attribute 'axes'");
    node.attr_ints("axes", {});
  }
}

}  // namespace

void validate_squeeze(const Node& node, int64_t opset) { validate_axes_op(node, opset, false); }
void validate_unsqueeze(const Node& node, int64_t opset) { validate_axes_op(node, opset, true); }

void validate_cast(const Node& node, int64_t) {
  expect_inputs(node, 1, 1);
  expect_outputs(node, 1, 1);
  allow_attrs(node, {"to", "saturate"});
  if (!node.has("to")) malformed(node, "missing required attribute 'to'");
  int64_t to = node.attr_int("to", 0);
  if (!castable_type(to))
    unsupported(node, "cast to ONNX data type " + std::to_string(to) +
                          " is not supported (only float, double, int32, int64)");
}

void validate_constant_of_shape(const Node& node, int64_t) {
  expect_inputs(node, 1, 1);
  expect_outputs(node, 1, 1);
  allow_attrs(node, {"value"});
  if (node.has("value") && node.attr_tensor("value").numel() != 1)
    malformed(node, "attribute 'value' must hold exactly one element");
}

void validate_slice(const Node& node, int64_t opset) {
  if (legacy_form(node, opset, 10, {"starts", "ends", "axes"}, 3, 5) &&
      (!node.has("starts") || !node.has("ends")))
    malformed(node, "missing required attributes 'starts'/'ends'");
}

void validate_reduce_mean(const Node& node, int64_t) {
  expect_inputs(node, 1, 1);
  expect_outputs(node, 1, 1);
  allow_attrs(node, {"axes", "keepdims"});
  node.attr_ints("axes", {});
  check_bool_attr(node, "keepdims");
}

void validate_block_relu(const Node& node, int64_t) {
  expect_inputs(node, 1, 1);
  expect_outputs(node, 1, 1);
  allow_attrs(node, {"blocks"});
  if (!node.has("blocks")) malformed(node, "missing required attribute 'blocks'");
  const auto blocks = node.attr_ints("blocks", {});
  if (blocks.empty() || blocks.size() % 2 != 0)
    malformed(node, "attribute 'blocks' must hold h, w per channel (a non-empty even count), got " +
                        std::to_string(blocks.size()) + " values");
  if (blocks.size() / 2 > kMaxBlockReluChannels)
    malformed(node, "attribute 'blocks' has more than " + std::to_string(kMaxBlockReluChannels) +
                        " channels");
  for (size_t c = 0; c < blocks.size() / 2; ++c)
    if (!valid_block_size({blocks[2 * c], blocks[2 * c + 1]}))
      malformed(node, "channel " + std::to_string(c) + " has invalid block size " +
                          std::to_string(blocks[2 * c]) + "x" + std::to_string(blocks[2 * c + 1]) +
                          " ({0, 0} or both sides in [1, 2^20])");
}

}  // namespace detail

const std::set<std::string>& supported_ops() {
  static const std::set<std::string> ops = [] {
    std::set<std::string> s;
    for (const auto& e : detail::op_entries()) s.insert(e.name);
    return s;
  }();
  return ops;
}

const std::set<std::string>& shape_ops() {
  static const std::set<std::string> ops = [] {
    std::set<std::string> s;
    for (const auto& e : detail::op_entries())
      if (e.shape_op) s.insert(e.name);
    return s;
  }();
  return ops;
}

void check_node(const Node& node, int64_t opset) {
  const detail::OpEntry* op = detail::find_op(node.op_type);
  if (!op) detail::unsupported(node, "operator is not supported by veil");
  for (const auto& i : node.inputs)
    if (i.size() > 4096) detail::malformed(node, "input name is too long");
  op->validate(node, opset);
}

void check_supported(const Model& model) {
  for (const auto& node : model.graph.nodes) check_node(node, model.opset);
}

}  // namespace veil::model
