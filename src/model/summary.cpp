#include "veil/model/summary.hpp"

#include <set>

#include "veil/model/lowered.hpp"
#include "veil/model/shape_inference.hpp"

namespace veil::model {

namespace {

// One DReLU per tile of every gated channel of an [1, C, H, W] map.
int64_t block_drelus(const BlockReluParams& p, const Shape& out) {
  if (out.size() != 4) return 0;
  int64_t total = 0;
  for (const BlockSize& b : p.blocks) total += block_count(b, out[2], out[3]);
  return total;
}

// MaxPool as mpc runs it (protocols/maxpool.cpp): per output element a tournament over the
// window's in-bounds elements, one comparison (DReLU) per element but the winner.
int64_t max_pool_comparisons(const Node& n, int64_t opset, const Shape& in) {
  if (in.size() < 3) return 0;
  for (int64_t d : in)
    if (d < 0) return 0;
  const auto kernel = std::get<PoolParams>(lower_node(n, opset)).spatial.kernel_shape;
  const SpatialGeometry g = spatial_geometry(n, in, kernel);
  // In-bounds taps of each output position, per spatial axis; the window's count is the product.
  int64_t total = 1;
  for (size_t a = 0; a < kernel.size(); ++a) {
    int64_t sum = 0;
    for (int64_t o = 0; o < g.output[a]; ++o) {
      const int64_t start = o * g.strides[a] - g.pads_begin[a];
      int64_t taps = 0;
      for (int64_t k = 0; k < kernel[a]; ++k) {
        const int64_t pos = start + k * g.dilations[a];
        taps += pos >= 0 && pos < in[a + 2];
      }
      sum += taps;
    }
    total *= sum;
  }
  int64_t outputs = 1;
  for (int64_t o : g.output) outputs *= o;
  return in[1] * (total - outputs);
}

}  // namespace

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
      if (kind == OpKind::Relu) l.relu_count = l.drelus = out_numel;
    } else if (kind == OpKind::BlockRelu) {
      l.relus = l.relu_count = out_numel;
      l.drelus = block_drelus(std::get<BlockReluParams>(lower_node(n, m.opset)), l.output_shape);
    } else if (kind == OpKind::MaxPool && !n.inputs.empty()) {
      l.drelus = max_pool_comparisons(n, m.opset, shape_of(n.inputs[0]));
    }
    s.params += l.params;
    s.macs += l.macs;
    s.relus += l.relus;
    s.relu_count += l.relu_count;
    s.drelus += l.drelus;
    s.layers.push_back(std::move(l));
  }
  return s;
}

}  // namespace veil::model
