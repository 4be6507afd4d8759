#include "veil/model/graph.hpp"

#include <algorithm>
#include <cmath>
#include <set>

#include "veil/core/error.hpp"
#include "veil/model/ops.hpp"

namespace veil::model {

namespace {

template <typename T>
const T* get_attr(const Node& node, const std::string& attr, const char* type_name) {
  auto it = node.attributes.find(attr);
  if (it == node.attributes.end()) return nullptr;
  if (const T* v = std::get_if<T>(&it->second)) return v;
  throw MalformedInput(node.describe() + ": attribute '" + attr + "' is not of type " + type_name);
}

}  // namespace

int64_t Node::attr_int(const std::string& attr, int64_t fallback) const {
  const auto* v = get_attr<int64_t>(*this, attr, "INT");
  return v ? *v : fallback;
}

float Node::attr_float(const std::string& attr, float fallback) const {
  auto it = attributes.find(attr);
  // Some exporters write integral floats (e.g. alpha=1) as INT; accept them.
  if (it != attributes.end())
    if (const auto* i = std::get_if<int64_t>(&it->second)) return static_cast<float>(*i);
  const auto* v = get_attr<float>(*this, attr, "FLOAT");
  return v ? *v : fallback;
}

std::string Node::attr_string(const std::string& attr, const std::string& fallback) const {
  const auto* v = get_attr<std::string>(*this, attr, "STRING");
  return v ? *v : fallback;
}

std::vector<int64_t> Node::attr_ints(const std::string& attr,
                                     const std::vector<int64_t>& fallback) const {
  const auto* v = get_attr<std::vector<int64_t>>(*this, attr, "INTS");
  return v ? *v : fallback;
}

std::vector<float> Node::attr_floats(const std::string& attr,
                                     const std::vector<float>& fallback) const {
  const auto* v = get_attr<std::vector<float>>(*this, attr, "FLOATS");
  return v ? *v : fallback;
}

const Tensor& Node::attr_tensor(const std::string& attr) const {
  const auto* v = get_attr<Tensor>(*this, attr, "TENSOR");
  if (!v) throw MalformedInput(describe() + ": missing attribute '" + attr + "'");
  return *v;
}

std::string Node::describe() const {
  return "node '" + (name.empty() ? std::string("<unnamed>") : name) + "' (" + op_type + ")";
}

const Node* Graph::producer(const std::string& value) const {
  for (const auto& n : nodes)
    for (const auto& o : n.outputs)
      if (o == value) return &n;
  return nullptr;
}

std::vector<const Node*> Graph::consumers(const std::string& value) const {
  std::vector<const Node*> out;
  for (const auto& n : nodes)
    for (const auto& i : n.inputs)
      if (i == value) {
        out.push_back(&n);
        break;
      }
  return out;
}

void validate(const Graph& graph) {
  std::set<std::string> defined;
  for (const auto& in : graph.inputs) {
    if (in.name.empty()) throw MalformedInput("graph has an input without a name");
    if (!defined.insert(in.name).second)
      throw MalformedInput("graph input '" + in.name + "' is defined twice");
  }
  for (const auto& [name, t] : graph.initializers) defined.insert(name);
  for (const auto& node : graph.nodes) {
    for (const auto& i : node.inputs)
      if (!i.empty() && !defined.count(i))
        throw MalformedInput(node.describe() + ": input '" + i +
                             "' is not produced by any earlier node, input or initializer");
    for (const auto& o : node.outputs)
      if (!o.empty() && !defined.insert(o).second)
        throw MalformedInput(node.describe() + ": output '" + o + "' is defined twice");
  }
  for (const auto& out : graph.outputs)
    if (!defined.count(out.name))
      throw MalformedInput("graph output '" + out.name + "' is never produced");
}

void require_finite_initializers(const Graph& graph) {
  for (const auto& [name, t] : graph.initializers) {
    if (t.dtype() != DType::Float32) continue;
    const auto v = t.floats();
    const auto bad = std::find_if(v.begin(), v.end(), [](float x) { return !std::isfinite(x); });
    if (bad != v.end())
      throw MalformedInput("initializer '" + name + "' holds " +
                           (std::isnan(*bad) ? "NaN"
                            : *bad > 0       ? "+inf"
                                             : "-inf") +
                           " at index " + std::to_string(bad - v.begin()) +
                           " (weights must be finite)");
  }
}

std::vector<WeightRef> weight_tensors(const Graph& graph) {
  std::vector<WeightRef> refs;
  for (const auto& n : graph.nodes) {
    const auto kind = op_kind(n.op_type);
    if (kind != OpKind::Conv && kind != OpKind::Gemm && kind != OpKind::MatMul) continue;
    if (n.inputs.size() < 2) continue;
    const std::string& w = n.inputs[1];
    auto it = graph.initializers.find(w);
    if (it == graph.initializers.end() || it->second.dtype() != DType::Float32) continue;
    refs.push_back({n.name, n.op_type, w});
  }
  return refs;
}

}  // namespace veil::model
