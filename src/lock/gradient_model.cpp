#include "veil/lock/gradient_model.hpp"

#include <cmath>

#include "veil/core/error.hpp"
#include "veil/model/lowered.hpp"

namespace veil::lock {

namespace {

using model::OpKind;

// Rank of a value when known: from inferred shapes, a graph input, or what produces it.
int64_t value_rank(const model::Graph& g, const std::string& value) {
  if (auto it = g.value_info.find(value); it != g.value_info.end() && !it->second.shape.empty())
    return static_cast<int64_t>(it->second.shape.size());
  for (const auto& in : g.inputs)
    if (in.name == value && !in.shape.empty()) return static_cast<int64_t>(in.shape.size());
  if (const model::Node* p = g.producer(value)) {
    const auto k = model::op_kind(p->op_type);
    if (k == OpKind::Gemm || k == OpKind::Flatten) return 2;
    if (k == OpKind::Conv || k == OpKind::MaxPool || k == OpKind::AveragePool) return 4;
    if (!p->inputs.empty()) return value_rank(g, p->inputs[0]);
  }
  return 4;
}

std::string fresh_name(const model::Graph& g, const std::string& base) {
  std::string name = base;
  for (int i = 1; g.initializers.count(name) || g.producer(name); ++i)
    name = base + "_" + std::to_string(i);
  return name;
}

}  // namespace

model::Model gradient_model(const model::Model& model) {
  model::Model out = model;
  model::Graph& g = out.graph;
  std::vector<model::Node> nodes;
  std::map<std::string, std::string> rename;  // bypassed Dropout outputs -> their inputs
  auto resolve = [&](std::string v) {
    for (auto it = rename.find(v); it != rename.end(); it = rename.find(v)) v = it->second;
    return v;
  };
  for (model::Node n : model.graph.nodes) {
    for (auto& in : n.inputs)
      if (!in.empty()) in = resolve(in);
    const auto kind = model::op_kind(n.op_type);
    if (kind == OpKind::Dropout && !n.outputs.empty()) {
      bool is_graph_output = false;
      for (const auto& o : g.outputs) is_graph_output |= o.name == n.outputs[0];
      if (!is_graph_output) {
        rename[n.outputs[0]] = n.inputs.at(0);
        continue;
      }
      n.op_type = model::op_name(OpKind::Identity);
      n.inputs.resize(1);
      n.outputs.resize(1);
      n.attributes.clear();
    }
    if (kind == OpKind::BatchNormalization) {
      if (n.inputs.size() < 5) throw MalformedInput(n.describe() + ": needs 5 inputs");
      auto get = [&](size_t i) -> const Tensor& {
        auto it = model.graph.initializers.find(n.inputs[i]);
        if (it == model.graph.initializers.end() || it->second.dtype() != DType::Float32)
          throw Unsupported(n.describe() + ": key generation needs constant BN parameters");
        return it->second;
      };
      auto scale = get(1).floats(), bias = get(2).floats(), mean = get(3).floats(),
           var = get(4).floats();
      size_t c = scale.size();
      if (bias.size() != c || mean.size() != c || var.size() != c)
        throw MalformedInput(n.describe() + ": parameter sizes differ");
      const double eps =
          std::get<model::BatchNormParams>(model::lower_node(n, model.opset)).epsilon;
      Shape shape{static_cast<int64_t>(c)};
      int64_t rank = value_rank(model.graph, n.inputs[0]);
      for (int64_t i = 2; i < rank; ++i) shape.push_back(1);
      Tensor a(shape), b(shape);
      for (size_t i = 0; i < c; ++i) {
        double s = scale[i] / std::sqrt(static_cast<double>(var[i]) + eps);
        a.floats()[i] = static_cast<float>(s);
        b.floats()[i] = static_cast<float>(bias[i] - mean[i] * s);
      }
      std::string base = n.name.empty() ? n.outputs.at(0) : n.name;
      std::string an = fresh_name(g, base + "_eval_scale");
      g.initializers[an] = std::move(a);
      std::string bn = fresh_name(g, base + "_eval_shift");
      g.initializers[bn] = std::move(b);
      std::string mid = fresh_name(g, base + "_eval_scaled");
      model::Node mul{
          base + "_eval_mul", model::op_name(OpKind::Mul), {n.inputs[0], an}, {mid}, {}};
      model::Node add{
          base + "_eval_add", model::op_name(OpKind::Add), {mid, bn}, {n.outputs.at(0)}, {}};
      nodes.push_back(std::move(mul));
      nodes.push_back(std::move(add));
      continue;
    }
    nodes.push_back(std::move(n));
  }
  g.nodes = std::move(nodes);
  return out;
}

}  // namespace veil::lock
