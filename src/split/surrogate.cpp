#include "veil/split/surrogate.hpp"

#include <cmath>
#include <random>

namespace veil::split {

namespace {

void fill(model::Graph& g, const std::string& name, float value) {
  auto it = g.initializers.find(name);
  if (it == g.initializers.end() || it->second.dtype() != DType::Float32) return;
  for (float& v : it->second.floats()) v = value;
}

}  // namespace

model::Model reinitialised(const model::Model& model, uint64_t seed) {
  model::Model m = model;
  model::Graph& g = m.graph;
  std::mt19937 rng(static_cast<std::mt19937::result_type>(seed));
  for (const model::Node& n : g.nodes) {
    const bool conv = n.op_type == "Conv", gemm = n.op_type == "Gemm";
    if (conv || gemm || n.op_type == "MatMul") {
      if (n.inputs.size() < 2) continue;
      auto it = g.initializers.find(n.inputs[1]);
      if (it == g.initializers.end() || it->second.dtype() != DType::Float32) continue;
      Tensor& w = it->second;
      const Shape& s = w.shape();
      if (s.size() < 2) continue;
      int64_t fan_in = 1;
      if (conv)
        for (size_t i = 1; i < s.size(); ++i) fan_in *= s[i];
      else
        fan_in = gemm && n.attr_int("transB", 0) ? s[1] : s[0];
      std::normal_distribution<float> dist(
          0.0f, std::sqrt(2.0f / static_cast<float>(std::max<int64_t>(fan_in, 1))));
      for (float& v : w.floats()) v = dist(rng);
      if ((conv || gemm) && n.inputs.size() > 2) fill(g, n.inputs[2], 0.0f);
    } else if (n.op_type == "BatchNormalization" && n.inputs.size() == 5) {
      fill(g, n.inputs[1], 1.0f);
      fill(g, n.inputs[2], 0.0f);
      fill(g, n.inputs[3], 0.0f);
      fill(g, n.inputs[4], 1.0f);
    }
  }
  return m;
}

}  // namespace veil::split
