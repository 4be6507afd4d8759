#include "veil/split/partition.hpp"

#include <set>

#include "veil/core/error.hpp"
#include "veil/model/fold_batch_norm.hpp"
#include "veil/model/lowered.hpp"
#include "veil/model/shape_inference.hpp"

namespace veil::split {
namespace {

using model::LoweredOp;
using model::OpKind;

// The per-image shape of a value (batch dimension dropped); every dimension must be known.
Shape image_shape(const model::LoweredGraph& g, int id, const LoweredOp& op) {
  const Shape& s = g.values.at(static_cast<size_t>(id)).shape;
  if (s.size() < 2) throw Unsupported("split: " + op.describe() + ": input shape unknown");
  Shape out(s.begin() + 1, s.end());
  for (int64_t d : out)
    if (d <= 0) throw Unsupported("split: " + op.describe() + ": dynamic input shape");
  return out;
}

const Tensor* initializer(const model::Graph& g, const LoweredOp& op, size_t i) {
  if (!op.has_input(i)) return nullptr;
  auto it = g.initializers.find(op.inputs[i]);
  return it == g.initializers.end() ? nullptr : &it->second;
}

// Dense weight [M, C] from a Gemm (alpha folded; transA must be 0) or a MatMul [C, M].
Tensor dense_weight(const Tensor& b, bool trans_b, float alpha) {
  const int64_t r = b.shape()[0], c = b.shape()[1];
  Tensor w(trans_b ? Shape{r, c} : Shape{c, r});
  const float* src = b.data();
  float* dst = w.data();
  for (int64_t i = 0; i < r; ++i)
    for (int64_t j = 0; j < c; ++j)
      (trans_b ? dst[i * c + j] : dst[j * r + i]) = alpha * src[i * c + j];
  return w;
}

// The op as an offloadable layer, or nullopt when it must stay in the trusted part.
std::optional<LinearLayer> as_linear(const model::Graph& graph, const model::LoweredGraph& g,
                                     const LoweredOp& op) {
  if (op.kind == OpKind::Conv) {
    const auto& p = op.as<model::ConvParams>();
    const Tensor* w = initializer(graph, op, 0 + 1);
    const Tensor* b = op.has_input(2) ? initializer(graph, op, 2) : nullptr;
    if (p.group != 1 || w == nullptr || w->shape().size() != 4 || (op.has_input(2) && !b))
      return std::nullopt;
    LinearLayer l;
    l.kind = LinearKind::Conv;
    l.weight = *w;
    if (b != nullptr) l.bias = *b;
    l.input_shape = image_shape(g, op.input_ids[0], op);
    if (l.input_shape.size() != 3) return std::nullopt;
    Shape full{1};
    full.insert(full.end(), l.input_shape.begin(), l.input_shape.end());
    auto geo =
        model::spatial_geometry(p.spatial, full, {w->shape()[2], w->shape()[3]}, op.describe());
    l.conv.strides = geo.strides;
    l.conv.dilations = geo.dilations;
    l.conv.pads = {geo.pads_begin[0], geo.pads_begin[1], geo.pads_end[0], geo.pads_end[1]};
    l.output_shape = {w->shape()[0], geo.output[0], geo.output[1]};
    return l;
  }
  if (op.kind == OpKind::Gemm || op.kind == OpKind::MatMul) {
    const Tensor* b = initializer(graph, op, 1);
    if (b == nullptr || b->shape().size() != 2) return std::nullopt;
    Shape in = image_shape(g, op.input_ids[0], op);
    if (in.size() != 1) return std::nullopt;
    LinearLayer l;
    l.kind = LinearKind::Dense;
    if (op.kind == OpKind::Gemm) {
      const auto& p = op.as<model::GemmParams>();
      if (p.trans_a) return std::nullopt;
      l.weight = dense_weight(*b, p.trans_b, p.alpha);
      if (op.has_input(2)) {
        const Tensor* c = initializer(graph, op, 2);
        const int64_t m = l.weight.shape()[0];
        if (c == nullptr || c->numel() != m) return std::nullopt;  // broadcast forms stay trusted
        l.bias = Tensor({m});
        for (int64_t i = 0; i < m; ++i) l.bias.data()[i] = p.beta * c->data()[i];
      }
    } else {
      l.weight = dense_weight(*b, false, 1.0f);
    }
    if (l.weight.shape()[1] != in[0]) return std::nullopt;
    l.input_shape = in;
    l.output_shape = {l.weight.shape()[0]};
    return l;
  }
  return std::nullopt;
}

// Multiply-accumulates per image of a linear op that stays trusted (grouped conv, ...).
int64_t kept_macs(const model::Graph& graph, const model::LoweredGraph& g, const LoweredOp& op) {
  if (op.kind != OpKind::Conv && op.kind != OpKind::Gemm && op.kind != OpKind::MatMul) return 0;
  const Tensor* w = initializer(graph, op, 1);
  if (w == nullptr || op.output_ids.empty() || op.output_ids[0] < 0) return 0;
  const Shape& out = g.values.at(static_cast<size_t>(op.output_ids[0])).shape;
  int64_t per_output = 1, outputs = 1;
  for (size_t i = 1; i < out.size(); ++i) outputs *= std::max<int64_t>(out[i], 0);
  if (op.kind == OpKind::Conv)
    for (size_t i = 1; i < w->shape().size(); ++i) per_output *= w->shape()[i];
  else
    per_output = w->shape()[op.kind == OpKind::Gemm && op.as<model::GemmParams>().trans_b ? 1 : 0];
  return outputs * per_output;
}

}  // namespace

Partition partition(const model::Model& original) {
  model::Model m = original;
  model::fold_batch_norm(m);
  model::infer_shapes(m);  // every offloaded layer needs its input's shape
  const model::Graph& graph = m.graph;
  if (graph.inputs.size() != 1)
    throw Unsupported("split: the model must have exactly one input (it has " +
                      std::to_string(graph.inputs.size()) + ")");
  model::LoweredGraph g = model::lower(m);

  Partition part;
  part.input = graph.inputs[0].name;
  for (const auto& o : graph.outputs) part.outputs.push_back(o.name);

  // Maximal runs of consecutive non-offloadable ops become trusted steps.
  std::vector<size_t> run;
  auto value_info = [&](const std::string& name) {
    auto it = graph.value_info.find(name);
    if (it != graph.value_info.end()) return it->second;
    for (const auto& v : graph.inputs)
      if (v.name == name) return v;
    for (const auto& v : graph.outputs)
      if (v.name == name) return v;
    throw Unsupported("split: the shape of '" + name + "' is unknown");
  };
  auto flush = [&](size_t next_op) {
    if (run.empty()) return;
    TrustedStep step;
    step.sub.opset = m.opset;
    step.sub.ir_version = m.ir_version;
    step.sub.graph.name = "trusted" + std::to_string(part.trusted.size());
    std::set<std::string> produced, inputs;
    for (size_t i : run) {
      const model::Node& n = graph.nodes[g.ops[i].node];
      for (const auto& in : n.inputs) {
        if (in.empty() || produced.count(in)) continue;
        if (graph.is_initializer(in))
          step.sub.graph.initializers[in] = graph.initializers.at(in);
        else if (inputs.insert(in).second)
          step.inputs.push_back(in);
      }
      for (const auto& out : n.outputs)
        if (!out.empty()) produced.insert(out);
      step.sub.graph.nodes.push_back(n);
    }
    // Outputs: values read after this run or returned by the graph.
    std::set<std::string> needed(part.outputs.begin(), part.outputs.end());
    for (size_t i = next_op; i < g.ops.size(); ++i)
      for (const auto& in : g.ops[i].inputs) needed.insert(in);
    for (size_t i : run)
      for (const auto& out : graph.nodes[g.ops[i].node].outputs)
        if (!out.empty() && needed.count(out)) step.outputs.push_back(out);
    for (const auto& in : step.inputs) step.sub.graph.inputs.push_back(value_info(in));
    for (const auto& out : step.outputs) step.sub.graph.outputs.push_back(value_info(out));
    for (const auto& v : produced)
      if (auto it = graph.value_info.find(v); it != graph.value_info.end())
        step.sub.graph.value_info[v] = it->second;
    part.order.push_back({false, part.trusted.size()});
    part.trusted.push_back(std::move(step));
    run.clear();
  };

  for (size_t i = 0; i < g.ops.size(); ++i) {
    const LoweredOp& op = g.ops[i];
    std::optional<LinearLayer> layer = as_linear(graph, g, op);
    if (!layer) {
      part.other_macs_per_image += kept_macs(graph, g, op);
      run.push_back(i);
      continue;
    }
    flush(i);
    layer->index = part.linear.size();
    layer->name = op.name;
    part.linear_macs_per_image += layer->macs_per_image();
    part.order.push_back({true, part.linear.size()});
    part.linear.push_back({std::move(*layer), op.inputs[0], op.outputs[0]});
  }
  flush(g.ops.size());
  return part;
}

}  // namespace veil::split
