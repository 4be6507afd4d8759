// Lowering: each node's attributes to its typed params (the registry's lower_* functions), and
// the whole graph to typed ops over integer value ids.
#include <unordered_map>

#include "op_registry.hpp"
#include "veil/core/error.hpp"
#include "veil/model/lowered.hpp"
#include "veil/model/op_support.hpp"

namespace veil::model {

namespace detail {

namespace {

AutoPad auto_pad_of(const Node& node) {
  static const std::unordered_map<std::string, AutoPad> modes = {{"NOTSET", AutoPad::NotSet},
                                                                 {"SAME_UPPER", AutoPad::SameUpper},
                                                                 {"SAME_LOWER", AutoPad::SameLower},
                                                                 {"VALID", AutoPad::Valid}};
  const std::string ap = node.attr_string("auto_pad", "NOTSET");
  auto it = modes.find(ap);
  if (it == modes.end())
    throw MalformedInput(node.describe() + ": attribute 'auto_pad' has invalid value '" + ap + "'");
  return it->second;
}

PoolParams pool_params(const Node& node, bool max) {
  PoolParams p;
  p.max = max;
  p.spatial = lower_spatial(node);
  p.count_include_pad = node.attr_int("count_include_pad", 0) != 0;
  p.storage_order = node.attr_int("storage_order", 0);
  return p;
}

}  // namespace

SpatialParams lower_spatial(const Node& node) {
  SpatialParams p;
  p.kernel_shape = node.attr_ints("kernel_shape", {});
  p.strides = node.attr_ints("strides", {});
  p.dilations = node.attr_ints("dilations", {});
  p.pads = node.attr_ints("pads", {});
  p.auto_pad = auto_pad_of(node);
  p.ceil_mode = node.attr_int("ceil_mode", 0) != 0;
  return p;
}

OpParams lower_none(const Node&, int64_t) { return NoParams{}; }

OpParams lower_conv(const Node& node, int64_t) {
  ConvParams p;
  p.spatial = lower_spatial(node);
  p.group = node.attr_int("group", 1);
  return p;
}

OpParams lower_max_pool(const Node& node, int64_t) { return pool_params(node, true); }
OpParams lower_average_pool(const Node& node, int64_t) { return pool_params(node, false); }

OpParams lower_global_average_pool(const Node&, int64_t) {
  PoolParams p;
  p.global = true;
  return p;
}

OpParams lower_global_max_pool(const Node&, int64_t) {
  PoolParams p;
  p.global = true;
  p.max = true;
  return p;
}

OpParams lower_leaky_relu(const Node& node, int64_t) {
  return LeakyReluParams{node.attr_float("alpha", 0.01f)};
}

OpParams lower_block_relu(const Node& node, int64_t) {
  const auto v = node.attr_ints("blocks", {});
  BlockReluParams p;
  p.blocks.reserve(v.size() / 2);
  for (size_t c = 0; c + 1 < v.size(); c += 2) p.blocks.push_back({v[c], v[c + 1]});
  return p;
}

OpParams lower_gemm(const Node& node, int64_t) {
  GemmParams p;
  p.alpha = node.attr_float("alpha", 1.0f);
  p.beta = node.attr_float("beta", 1.0f);
  p.trans_a = node.attr_int("transA", 0) != 0;
  p.trans_b = node.attr_int("transB", 0) != 0;
  return p;
}

OpParams lower_clip(const Node& node, int64_t) {
  ClipParams p;
  p.min = node.attr_float("min", p.min);
  p.max = node.attr_float("max", p.max);
  return p;
}

OpParams lower_batch_norm(const Node& node, int64_t) {
  BatchNormParams p;
  p.epsilon = node.attr_float("epsilon", p.epsilon);
  p.momentum = node.attr_float("momentum", p.momentum);
  return p;
}

OpParams lower_flatten(const Node& node, int64_t) {
  return FlattenParams{node.attr_int("axis", 1)};
}

OpParams lower_softmax(const Node& node, int64_t opset) {
  SoftmaxParams p;
  p.coerce_2d = opset < 13;
  p.axis = node.attr_int("axis", p.coerce_2d ? 1 : -1);
  return p;
}

OpParams lower_reshape(const Node& node, int64_t) {
  return ReshapeParams{node.attr_int("allowzero", 0) != 0};
}

OpParams lower_concat(const Node& node, int64_t) { return ConcatParams{node.attr_int("axis", 0)}; }

OpParams lower_dropout(const Node& node, int64_t) {
  return DropoutParams{node.attr_float("ratio", 0.5f)};
}

OpParams lower_constant(const Node& node, int64_t) {
  ConstantParams p;
  if (node.has("value")) {
    p.value = node.attr_tensor("value");
  } else if (node.has("value_float")) {
    p.value = Tensor::scalar(node.attr_float("value_float", 0));
  } else if (node.has("value_floats")) {
    auto v = node.attr_floats("value_floats", {});
    const int64_t n = static_cast<int64_t>(v.size());
    p.value = Tensor::from_floats({n}, std::move(v));
  } else if (node.has("value_int")) {
    p.value = Tensor::from_int64({}, {node.attr_int("value_int", 0)});
  } else if (node.has("value_ints")) {
    auto v = node.attr_ints("value_ints", {});
    const int64_t n = static_cast<int64_t>(v.size());
    p.value = Tensor::from_int64({n}, std::move(v));
  } else {
    throw Unsupported(node.describe() +
                      ": only value, value_float(s) and value_int(s) constants are supported");
  }
  return p;
}

OpParams lower_pad(const Node& node, int64_t opset) {
  PadParams p;
  static const std::unordered_map<std::string, PadMode> modes = {
      {"constant", PadMode::Constant}, {"reflect", PadMode::Reflect}, {"edge", PadMode::Edge}};
  const std::string mode = node.attr_string("mode", "constant");
  auto it = modes.find(mode);
  if (it == modes.end())
    throw Unsupported(node.describe() + ": mode '" + mode + "' is not supported");
  p.mode = it->second;
  p.attributes = opset < 11;
  p.pads = node.attr_ints("pads", {});
  p.value = node.attr_float("value", 0.0f);
  return p;
}

OpParams lower_shape(const Node& node, int64_t) {
  ShapeParams p;
  p.start = node.attr_int("start", 0);
  if (node.has("end")) p.end = node.attr_int("end", 0);
  return p;
}

OpParams lower_gather(const Node& node, int64_t) { return GatherParams{node.attr_int("axis", 0)}; }

OpParams lower_axes(const Node& node, int64_t) {
  AxesParams p;
  p.attribute = node.has("axes");
  p.axes = node.attr_ints("axes", {});
  return p;
}

OpParams lower_cast(const Node& node, int64_t) {
  CastParams p;
  p.to = node.attr_int("to", 0);
  switch (p.to) {
    case 1:   // FLOAT
    case 11:  // DOUBLE
      p.dtype = DType::Float32;
      break;
    case 6:  // INT32
    case 7:  // INT64
      p.dtype = DType::Int64;
      break;
    default:
      throw Unsupported(node.describe() + ": cast to ONNX data type " + std::to_string(p.to) +
                        " is not supported");
  }
  return p;
}

OpParams lower_constant_of_shape(const Node& node, int64_t) {
  ConstantOfShapeParams p;
  p.value = node.has("value") ? node.attr_tensor("value") : Tensor::from_floats({1}, {0.0f});
  return p;
}

OpParams lower_slice(const Node& node, int64_t) {
  SliceParams p;
  p.attributes = node.has("starts");
  p.starts = node.attr_ints("starts", {});
  p.ends = node.attr_ints("ends", {});
  p.axes = node.attr_ints("axes", {});
  return p;
}

OpParams lower_reduce_mean(const Node& node, int64_t) {
  ReduceMeanParams p;
  p.axes = node.attr_ints("axes", {});
  p.keepdims = node.attr_int("keepdims", 1) != 0;
  return p;
}

}  // namespace detail

// ---- the lowered graph ------------------------------------------------------------------------

std::string LoweredOp::describe() const {
  return "node '" + (name.empty() ? std::string("<unnamed>") : name) + "' (" + op_name(kind) + ")";
}

void LoweredOp::bad_params() const {
  throw Error(describe() + ": params of another op type (op registry bug)");
}

std::optional<int> LoweredGraph::find(const std::string& value) const {
  for (size_t i = 0; i < values.size(); ++i)
    if (values[i].name == value) return static_cast<int>(i);
  return std::nullopt;
}

OpKind node_kind(const Node& node) {
  const detail::OpEntry* e = detail::find_op(node.op_type);
  if (!e) throw Unsupported(node.describe() + ": operator is not supported by veil");
  return e->kind;
}

OpParams lower_node(const Node& node, int64_t opset) {
  const detail::OpEntry& e = detail::op_entry(node_kind(node));
  check_node(node, opset);
  return e.lower(node, opset);
}

LoweredGraph lower(const Model& model) { return lower(model.graph, model.opset); }

LoweredGraph lower(const Graph& graph, int64_t opset) {
  require_finite_initializers(graph);
  LoweredGraph lg;
  lg.opset = opset;
  std::unordered_map<std::string, int> ids;
  auto add_value = [&](const ValueInfo& vi, bool initializer) {
    auto [it, inserted] = ids.emplace(vi.name, static_cast<int>(lg.values.size()));
    if (inserted) {
      lg.values.push_back(vi);
      lg.is_initializer.push_back(initializer);
    }
    return it->second;
  };
  auto id_of = [&](const std::string& name) {
    if (name.empty()) return -1;
    auto it = graph.value_info.find(name);
    return add_value(
        it != graph.value_info.end() ? it->second : ValueInfo{name, DType::Float32, {}}, false);
  };
  for (const auto& in : graph.inputs) lg.inputs.push_back(add_value(in, false));
  for (const auto& [name, t] : graph.initializers) add_value({name, t.dtype(), t.shape()}, true);
  for (size_t n = 0; n < graph.nodes.size(); ++n) {
    const Node& node = graph.nodes[n];
    LoweredOp op;
    op.kind = node_kind(node);
    op.params = lower_node(node, opset);
    op.node = n;
    op.name = node.name;
    op.inputs = node.inputs;
    op.outputs = node.outputs;
    for (const auto& i : node.inputs) op.input_ids.push_back(id_of(i));
    for (const auto& o : node.outputs) op.output_ids.push_back(id_of(o));
    lg.ops.push_back(std::move(op));
  }
  for (const auto& out : graph.outputs) {
    const int id = id_of(out.name);
    if (!out.shape.empty() && lg.values[static_cast<size_t>(id)].shape.empty())
      lg.values[static_cast<size_t>(id)] = out;
    lg.outputs.push_back(id);
  }
  return lg;
}

}  // namespace veil::model
