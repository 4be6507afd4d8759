// veil's graph IR: an ONNX-shaped dataflow graph (nodes in topological order, named values,
// initializers holding the weights). Import and export are lossless for the supported ops, so a
// locked model written back to ONNX keeps every weight bit-for-bit.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "veil/core/tensor.hpp"

namespace veil::model {

// ONNX attribute values veil understands (INT, FLOAT, STRING, INTS, FLOATS, TENSOR).
using Attribute =
    std::variant<int64_t, float, std::string, std::vector<int64_t>, std::vector<float>, Tensor>;

struct Node {
  std::string name;
  std::string op_type;
  std::vector<std::string> inputs;   // "" marks an omitted optional input
  std::vector<std::string> outputs;  // "" marks an omitted optional output
  std::map<std::string, Attribute> attributes;

  bool has(const std::string& attr) const { return attributes.count(attr) != 0; }
  // Typed attribute access with the ONNX default when absent; throws MalformedInput (naming
  // the node) when present with another type.
  int64_t attr_int(const std::string& attr, int64_t fallback) const;
  float attr_float(const std::string& attr, float fallback) const;
  std::string attr_string(const std::string& attr, const std::string& fallback) const;
  std::vector<int64_t> attr_ints(const std::string& attr, const std::vector<int64_t>& fallback) const;
  std::vector<float> attr_floats(const std::string& attr, const std::vector<float>& fallback) const;
  const Tensor& attr_tensor(const std::string& attr) const;

  // "node 'conv1' (Conv)" — the prefix of every error about this node.
  std::string describe() const;
};

// A graph input or output: name, element type and shape (-1 for a dimension unknown until run
// time, e.g. the batch).
struct ValueInfo {
  std::string name;
  DType dtype = DType::Float32;
  Shape shape;
};

struct Graph {
  std::string name;
  std::vector<Node> nodes;                    // topological order
  std::vector<ValueInfo> inputs;              // runtime inputs only (initializers excluded)
  std::vector<ValueInfo> outputs;
  std::map<std::string, Tensor> initializers;  // weights and constant tensors
  // Shapes of intermediate values, filled by infer_shapes() (-1 for the dynamic batch).
  std::map<std::string, ValueInfo> value_info;

  const Node* producer(const std::string& value) const;  // nullptr for inputs/initializers
  std::vector<const Node*> consumers(const std::string& value) const;
  bool is_initializer(const std::string& value) const { return initializers.count(value) != 0; }
};

// Free-form facts that travel with the model in ONNX metadata_props.
// Keys veil uses: "veil.dataset", "veil.normalize.mean", "veil.normalize.std" (comma-separated
// per channel), "veil.class_names" (comma-separated), "veil.arch".
using Metadata = std::map<std::string, std::string>;

struct Model {
  Graph graph;
  Metadata metadata;
  int64_t opset = 13;
  int64_t ir_version = 8;
  std::string producer_name = "veil";
  std::string producer_version;
  std::string doc_string;
};

// Checks structural invariants (every input defined before use, unique outputs, no cycles) and
// throws MalformedInput naming the offending node.
void validate(const Graph& graph);

// Throws MalformedInput naming the first float initializer that holds a NaN or an infinity:
// such a weight makes every output NaN (or a confident wrong class where a kernel drops NaN),
// and no trained, locked or folded model veil accepts has one, so it marks a corrupted file.
void require_finite_initializers(const Graph& graph);

// Weight tensors that training and model locking touch: the first "weight" input (an
// initializer) of every Conv, Gemm and MatMul node, in node order.
struct WeightRef {
  std::string node;    // node name
  std::string op_type;
  std::string tensor;  // initializer name
};
std::vector<WeightRef> weight_tensors(const Graph& graph);

}  // namespace veil::model
