// Inference-mode BatchNormalization is an affine map per channel, y = a*x + c with
// a = scale/sqrt(var+eps) and c = B - a*mean (Ioffe & Szegedy 2015, Alg. 2), so after a
// convolution it folds into the convolution's weights (scaled by a per output channel) and bias.
#include "veil/model/fold_batch_norm.hpp"

#include <cmath>
#include <set>

#include "veil/core/error.hpp"
#include "veil/model/ops.hpp"

namespace veil::model {

namespace {

const Tensor* float_initializer(const Graph& g, const std::string& name) {
  auto it = g.initializers.find(name);
  if (it == g.initializers.end() || it->second.dtype() != DType::Float32) return nullptr;
  return &it->second;
}

bool is_graph_output(const Graph& g, const std::string& v) {
  for (const auto& o : g.outputs)
    if (o.name == v) return true;
  return false;
}

size_t use_count(const Graph& g, const std::string& v) {
  size_t n = 0;
  for (const auto& node : g.nodes)
    for (const auto& i : node.inputs)
      if (i == v) ++n;
  return n + (is_graph_output(g, v) ? 1 : 0);
}

std::string fresh_name(const Graph& g, const std::string& base) {
  std::set<std::string> used;
  for (const auto& in : g.inputs) used.insert(in.name);
  for (const auto& [n, t] : g.initializers) used.insert(n);
  for (const auto& node : g.nodes)
    for (const auto& o : node.outputs) used.insert(o);
  std::string name = base;
  for (int i = 1; used.count(name); ++i) name = base + "_" + std::to_string(i);
  return name;
}

// Tries to fold nodes[bn_index] into its producer; returns true on success.
bool fold_one(Graph& g, size_t bn_index) {
  const Node& bn = g.nodes[bn_index];
  if (op_kind(bn.op_type) != OpKind::BatchNormalization || bn.inputs.size() != 5) return false;
  for (size_t i = 1; i < bn.outputs.size(); ++i)
    if (!bn.outputs[i].empty()) return false;
  if (bn.attr_int("training_mode", 0) != 0) return false;
  const std::string& x = bn.inputs[0];
  size_t conv_index = g.nodes.size();
  for (size_t i = 0; i < bn_index; ++i)
    for (const auto& o : g.nodes[i].outputs)
      if (o == x) conv_index = i;
  if (conv_index == g.nodes.size()) return false;
  Node& conv = g.nodes[conv_index];
  if (op_kind(conv.op_type) != OpKind::Conv || conv.inputs.size() < 2 || conv.outputs.size() != 1)
    return false;
  if (use_count(g, x) != 1) return false;

  const Tensor* w = float_initializer(g, conv.inputs[1]);
  bool has_bias = conv.inputs.size() > 2 && !conv.inputs[2].empty();
  const Tensor* b = has_bias ? float_initializer(g, conv.inputs[2]) : nullptr;
  const Tensor* scale = float_initializer(g, bn.inputs[1]);
  const Tensor* shift = float_initializer(g, bn.inputs[2]);
  const Tensor* mean = float_initializer(g, bn.inputs[3]);
  const Tensor* var = float_initializer(g, bn.inputs[4]);
  if (!w || (has_bias && !b) || !scale || !shift || !mean || !var || w->rank() < 1) return false;
  const int64_t m = w->dim(0);
  for (const Tensor* p : {scale, shift, mean, var})
    if (p->numel() != m) return false;
  if (b && b->numel() != m) return false;
  if (m == 0) return false;

  const double eps = bn.attr_float("epsilon", 1e-5f);
  const int64_t block = w->numel() / m;
  Tensor new_w = *w;
  Tensor new_b = b ? *b : Tensor({m});
  auto wv = new_w.floats();
  auto bv = new_b.floats();
  for (int64_t c = 0; c < m; ++c) {
    const auto k = static_cast<size_t>(c);
    const double a = static_cast<double>(scale->floats()[k]) /
                     std::sqrt(static_cast<double>(var->floats()[k]) + eps);
    for (int64_t j = 0; j < block; ++j) {
      auto idx = static_cast<size_t>(c * block + j);
      wv[idx] = static_cast<float>(a * wv[idx]);
    }
    bv[k] = static_cast<float>(a * (static_cast<double>(bv[k]) - mean->floats()[k]) +
                               shift->floats()[k]);
  }

  // Rewrite in place unless something else reads the conv's weight or bias.
  std::string w_name = conv.inputs[1];
  if (use_count(g, w_name) > 1) w_name = fresh_name(g, conv.name + "_weight_bn");
  std::string b_name = has_bias ? conv.inputs[2] : fresh_name(g, conv.name + "_bias_bn");
  if (has_bias && use_count(g, b_name) > 1) b_name = fresh_name(g, conv.name + "_bias_bn");
  g.initializers[w_name] = std::move(new_w);
  g.initializers[b_name] = std::move(new_b);
  conv.inputs[1] = w_name;
  conv.inputs.resize(3);
  conv.inputs[2] = b_name;
  g.value_info.erase(x);
  conv.outputs[0] = bn.outputs[0];

  std::vector<std::string> params(bn.inputs.begin() + 1, bn.inputs.end());
  g.nodes.erase(g.nodes.begin() + static_cast<std::ptrdiff_t>(bn_index));
  for (const auto& p : params)
    if (use_count(g, p) == 0) g.initializers.erase(p);
  return true;
}

}  // namespace

size_t fold_batch_norm(Model& model) {
  Graph& g = model.graph;
  size_t folded = 0;
  for (size_t i = 0; i < g.nodes.size();) {
    if (fold_one(g, i)) {
      ++folded;  // nodes[i] is now the next node
    } else {
      ++i;
    }
  }
  return folded;
}

}  // namespace veil::model
