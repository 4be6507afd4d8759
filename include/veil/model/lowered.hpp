// The lowered model: the graph as typed ops (kind + params) over integer value ids, built once
// after import (and after shape inference / constant folding) by lower(). Every backend builds
// its plan from it; none re-reads ONNX op types or attributes.
//
//   ONNX file -> import (validate, fold, infer shapes) -> Model -> lower() -> LoweredGraph
//             -> float engine (nn), three-party engine (mpc), ...
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "veil/model/graph.hpp"
#include "veil/model/ops.hpp"

namespace veil::model {

struct LoweredOp {
  OpKind kind;
  OpParams params;
  size_t node = 0;                   // index into the source graph's nodes
  std::string name;                  // the node's name
  std::vector<std::string> inputs;   // value names, "" for an omitted optional input
  std::vector<std::string> outputs;  // value names, "" for an omitted optional output
  std::vector<int> input_ids;        // value ids, -1 for an omitted input
  std::vector<int> output_ids;       // value ids, -1 for an omitted output

  bool has_input(size_t i) const { return i < input_ids.size() && input_ids[i] >= 0; }
  // "node 'conv1' (Conv)": the prefix of every error about this op.
  std::string describe() const;
  // The params as T; throws Error when the op holds another type (a registry bug).
  template <typename T>
  const T& as() const {
    if (const T* p = std::get_if<T>(&params)) return *p;
    bad_params();
  }

 private:
  [[noreturn]] void bad_params() const;
};

struct LoweredGraph {
  int64_t opset = 13;
  // One entry per value id: name, element type and shape (shape empty and dtype Float32 when
  // unknown; -1 for dimensions unknown until run time). Graph inputs come first (in order), then
  // initializers not shadowed by an input, then every other value in node order.
  std::vector<ValueInfo> values;
  std::vector<bool> is_initializer;
  std::vector<int> inputs;   // ids of the graph inputs
  std::vector<int> outputs;  // ids of the graph outputs
  std::vector<LoweredOp> ops;

  std::optional<int> find(const std::string& value) const;
};

// Validates every node (as check_node) and lowers its attributes to its typed params. Throws
// Unsupported naming the node for an operator veil does not know, MalformedInput / Unsupported
// for invalid attributes.
LoweredGraph lower(const Model& model);
LoweredGraph lower(const Graph& graph, int64_t opset);

// The typed params of one node (validated first).
OpParams lower_node(const Node& node, int64_t opset);
// The kind of `node`; throws Unsupported naming the node for an unknown operator.
OpKind node_kind(const Node& node);

}  // namespace veil::model
