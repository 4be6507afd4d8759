#include "veil/mpc/block_relu/apply.hpp"

#include <algorithm>
#include <map>

#include "veil/core/error.hpp"
#include "veil/model/block_relu_node.hpp"
#include "veil/model/ops.hpp"

namespace veil::mpc {
namespace {

// The shape of `value`: a graph input's or an inferred intermediate's, empty when unknown.
Shape shape_of(const model::Graph& g, const std::string& value) {
  if (auto it = g.value_info.find(value); it != g.value_info.end()) return it->second.shape;
  for (const auto& in : g.inputs)
    if (in.name == value) return in.shape;
  return {};
}

std::string shape_text(const Shape& s) {
  std::string t = "[";
  for (size_t i = 0; i < s.size(); ++i) t += (i ? ", " : "") + std::to_string(s[i]);
  return t + "]";
}

bool is_block_relu(const model::Node& n) {
  return n.op_type == model::op_name(model::OpKind::BlockRelu);
}

void check_relu(const model::Graph& g, const model::Node& n, size_t pairs) {
  if (n.op_type != "Relu" && !is_block_relu(n))
    throw InvalidArgument("block ReLU spec: " + n.describe() + " is not a Relu or BlockRelu");
  if (n.inputs.size() != 1 || n.outputs.size() != 1)
    throw InvalidArgument("block ReLU spec: " + n.describe() +
                          " does not have one input and one output");
  const Shape s = shape_of(g, n.inputs[0]);
  if (s.size() != 4)
    throw InvalidArgument(
        "block ReLU spec: " + n.describe() + " reads " +
        (s.empty() ? std::string("a value of unknown shape") : "shape " + shape_text(s)) +
        ", not NCHW");
  if (s[1] != static_cast<int64_t>(pairs))
    throw InvalidArgument("block ReLU spec: " + n.describe() + " has " + std::to_string(s[1]) +
                          " channels, the spec gives " + std::to_string(pairs) + " block sizes");
}

void check_max_pool(const model::Node& n) {
  if (n.outputs.size() > 1 && !n.outputs[1].empty())
    throw InvalidArgument(n.describe() + ": its indices output has no AveragePool counterpart");
  const auto dil = n.attr_ints("dilations", {});
  if (std::any_of(dil.begin(), dil.end(), [](int64_t d) { return d != 1; }))
    throw InvalidArgument(n.describe() + ": dilations have no AveragePool counterpart");
}

}  // namespace

BlockReluApplyReport apply_block_relu_spec(model::Model& model, const BlockReluSpec& spec,
                                           bool maxpool_to_avgpool) {
  model::Graph& g = model.graph;
  std::map<std::string, model::Node*> by_name;
  for (auto& n : g.nodes)
    if (!n.name.empty()) by_name.emplace(n.name, &n);
  // Check everything first: a refused spec leaves the model as it was.
  for (const auto& [name, sizes] : spec.layers) {
    auto it = by_name.find(name);
    if (it == by_name.end())
      throw InvalidArgument("block ReLU spec: the model has no node named '" + name + "'");
    check_relu(g, *it->second, sizes.size());
  }
  if (maxpool_to_avgpool)
    for (const auto& n : g.nodes)
      if (n.op_type == "MaxPool") check_max_pool(n);

  BlockReluApplyReport r;
  for (const auto& [name, sizes] : spec.layers) {
    model::Node& n = *by_name.at(name);
    if (std::all_of(sizes.begin(), sizes.end(), [](model::BlockSize s) {
          return s == model::BlockSize{1, 1};
        })) {
      // The same function as a Relu, which every ONNX tool runs: a BlockRelu goes back to one.
      if (is_block_relu(n)) {  // same name, input and output (check_relu)
        n.op_type = "Relu";
        n.attributes.clear();
      }
      ++r.kept_relus;
      continue;
    }
    n = model::make_block_relu_node(n.name, n.inputs.at(0), n.outputs.at(0), sizes);
    ++r.block_relus;
  }
  if (maxpool_to_avgpool) {
    for (auto& n : g.nodes) {
      if (n.op_type != "MaxPool") continue;
      n.op_type = "AveragePool";
      n.attributes.erase("dilations");
      n.attributes.erase("storage_order");
      n.outputs.resize(1);
      ++r.avgpools;
    }
  }
  return r;
}

}  // namespace veil::mpc
