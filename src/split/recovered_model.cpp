#include "veil/split/recovered_model.hpp"

#include "veil/core/error.hpp"

namespace veil::split {

namespace {

model::Node& node_of(model::Model& m, const std::string& name) {
  for (auto& n : m.graph.nodes)
    if (n.name == name) return n;
  throw InvalidArgument("the model has no node '" + name + "'");
}

Tensor& initializer(model::Model& m, const model::Node& n, size_t i) {
  if (n.inputs.size() <= i)
    throw InvalidArgument(n.describe() + ": input " + std::to_string(i) + " missing");
  auto it = m.graph.initializers.find(n.inputs[i]);
  if (it == m.graph.initializers.end())
    throw InvalidArgument(n.describe() + ": input " + std::to_string(i) + " is not an initializer");
  return it->second;
}

// Dense [M, C] <-> the node's layout ([C, M] for MatMul and Gemm without transB).
bool stored_transposed(const model::Node& n) {
  return n.op_type == "MatMul" || (n.op_type == "Gemm" && n.attr_int("transB", 0) == 0);
}

Tensor transposed(const Tensor& w) {
  const int64_t r = w.shape()[0], c = w.shape()[1];
  Tensor t({c, r});
  for (int64_t i = 0; i < r; ++i)
    for (int64_t j = 0; j < c; ++j) t.data()[j * r + i] = w.data()[i * c + j];
  return t;
}

}  // namespace

void set_linear_weights(model::Model& model, const LinearLayer& layer, const Tensor& weight,
                        const Tensor& bias) {
  model::Node& n = node_of(model, layer.name);
  Tensor& w = initializer(model, n, 1);
  const int64_t m = weight.shape().at(0);
  if (bias.numel() != m) throw InvalidArgument(n.describe() + ": bias size does not match");
  if (n.op_type == "Conv") {
    if (w.shape() != weight.shape()) throw InvalidArgument(n.describe() + ": weight shape differs");
    w = weight;
    if (n.inputs.size() < 3 || n.inputs[2].empty()) {
      n.inputs.resize(3);
      n.inputs[2] = n.name + ".recovered_bias";
    }
    model.graph.initializers[n.inputs[2]] = bias;
    return;
  }
  if (n.op_type != "Gemm" && n.op_type != "MatMul")
    throw InvalidArgument(n.describe() + ": not a linear layer");
  Tensor stored = stored_transposed(n) ? transposed(weight) : weight;
  if (w.shape() != stored.shape()) throw InvalidArgument(n.describe() + ": weight shape differs");
  if (n.op_type == "Gemm") {
    const float alpha = n.attr_float("alpha", 1.0f), beta = n.attr_float("beta", 1.0f);
    for (float& v : stored.floats()) v /= alpha;
    w = stored;
    if (n.inputs.size() < 3 || n.inputs[2].empty()) {
      n.inputs.resize(3);
      n.inputs[2] = n.name + ".recovered_bias";
    }
    Tensor b = bias;
    for (float& v : b.floats()) v = beta != 0 ? v / beta : 0.0f;
    model.graph.initializers[n.inputs[2]] = b;
    return;
  }
  w = stored;  // MatMul: no bias input to carry one
}

}  // namespace veil::split
