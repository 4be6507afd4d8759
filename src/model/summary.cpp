#include "veil/model/summary.hpp"

#include <set>

#include "veil/model/lowered.hpp"
#include "veil/model/shape_inference.hpp"

namespace veil::model {

ModelSummary summarize(const Model& model) {
  Model m = model;
  for (auto& in : m.graph.inputs)
    for (auto& d : in.shape)
      if (d < 0) d = 1;
  infer_shapes(m);
  auto shape_of = [&](const std::string& v) -> Shape {
    if (auto it = m.graph.value_info.find(v); it != m.graph.value_info.end())
      return it->second.shape;
    if (auto it = m.graph.initializers.find(v); it != m.graph.initializers.end())
      return it->second.shape();
    for (const auto& in : m.graph.inputs)
      if (in.name == v) return in.shape;
    return {};
  };
  ModelSummary s;
  if (!m.graph.inputs.empty()) s.input_shape = m.graph.inputs[0].shape;
  std::set<std::string> counted;
  for (const auto& n : m.graph.nodes) {
    LayerSummary l;
    l.name = n.name;
    l.op_type = n.op_type;
    if (!n.outputs.empty()) l.output_shape = shape_of(n.outputs[0]);
    for (const auto& in : n.inputs) {
      auto it = m.graph.initializers.find(in);
      if (it == m.graph.initializers.end() || it->second.dtype() != DType::Float32) continue;
      if (counted.insert(in).second) l.params += it->second.numel();
    }
    int64_t out_numel = 1;
    for (int64_t d : l.output_shape) out_numel *= d < 0 ? 1 : d;
    const auto kind = op_kind(n.op_type);
    if (kind == OpKind::Conv && n.inputs.size() >= 2) {
      Shape w = shape_of(n.inputs[1]);
      int64_t per_out = 1;
      for (size_t i = 1; i < w.size(); ++i) per_out *= w[i];  // Cin/groups * kh * kw
      l.macs = out_numel * per_out;
    } else if ((kind == OpKind::Gemm || kind == OpKind::MatMul) && n.inputs.size() >= 2) {
      Shape a = shape_of(n.inputs[0]);
      int64_t k = a.empty() ? 0 : a.back();
      if (kind == OpKind::Gemm && std::get<GemmParams>(lower_node(n, m.opset)).trans_a &&
          a.size() == 2)
        k = a[0];
      l.macs = out_numel * k;
    } else if (kind == OpKind::Relu || kind == OpKind::Clip || kind == OpKind::LeakyRelu ||
               kind == OpKind::PRelu) {
      l.relus = out_numel;
    }
    s.params += l.params;
    s.macs += l.macs;
    s.relus += l.relus;
    s.layers.push_back(std::move(l));
  }
  return s;
}

}  // namespace veil::model
