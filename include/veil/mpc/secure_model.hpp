// Secure inference of a model::Graph with the three-party protocols. All three parties build a
// SecureModel from the same graph structure; only the server's copy needs real weights (the
// others' initializers are used for their shapes alone and may hold anything).
//
// The plan is built from the lowered graph (veil/model/lowered.hpp). Supported ops: Conv
// (stride, padding or auto_pad, dilation, groups, bias), Gemm (alpha = beta = 1, transA = 0, any
// transB, bias), MatMul, Relu, BlockRelu (block_relu with the node's per-channel blocks; the
// block spec is an attribute, so structure_hash covers it), LeakyRelu, PRelu (a constant slope
// per channel or a scalar), Clip (constant bounds), MaxPool and AveragePool (2-D, no dilation),
// GlobalAveragePool, Add (two activations), Concat (activations, any axis), Flatten, Reshape
// (constant shape), Identity/Dropout. BatchNormalization must be folded into the convolutions
// beforehand.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "veil/core/tensor.hpp"
#include "veil/model/graph.hpp"
#include "veil/model/lowered.hpp"
#include "veil/mpc/party.hpp"
#include "veil/mpc/protocols/nonlinear.hpp"

namespace veil::mpc {

class EncodedWeights;  // secure_model.cpp

struct SecureModelOptions {
  int threads = 1;  // ring GEMM threads per party
};

// SHA-256 of the graph's public structure: node names, ops, edges, attributes, input shapes and
// initializer shapes (never initializer values). Goes into SessionParams::model_hash.
std::array<uint8_t, 32> structure_hash(const model::Graph& graph);

// What one party spent on one node of one run (or, summed, of many).
struct LayerCost {
  std::string node;  // node name; "(input)" and "(output)" for sharing and revealing
  std::string op;    // op type; "Share" / "Reveal" for the two pseudo-nodes
  uint64_t bytes_sent = 0;
  uint64_t messages_sent = 0;
  uint32_t rounds = 0;  // advance of this party's round clock
  double seconds = 0;   // wall time at this party
  uint64_t drelus = 0;  // DReLU evaluations (the same at every party)
};

class SecureModel {
 public:
  // Lowers the graph and builds the plan. Throws Unsupported naming the op and the first node
  // it cannot run ("node 'x' (Softmax): not supported by three-party inference").
  SecureModel(const model::Graph& graph, SecureModelOptions options = {});

  // Client: `input` is the image batch (float, the graph's first input). Server and helper:
  // a tensor of the same shape (values ignored). Returns the first graph output at the client
  // (float logits), an empty tensor elsewhere.
  // With `trace`, appends one LayerCost per node (plus input sharing and output reveal).
  Tensor run(Party& p, const Tensor& input, std::vector<LayerCost>* trace = nullptr) const;

  const model::Graph& graph() const { return graph_; }
  const model::LoweredGraph& lowered() const { return lowered_; }
  const SecureModelOptions& options() const { return options_; }

 private:
  // Attribute defaults that depend on the opset do not matter for the ops above.
  static constexpr int64_t kSecureOpset = 13;

  const model::Graph& graph_;
  SecureModelOptions options_;
  model::LoweredGraph lowered_;
  std::vector<size_t> last_reader_;  // model::last_readers: when run() frees each value
  // The server's fixed-point weights, kept from one run to the next (a batch-1 run would
  // otherwise encode every weight again for every image); shared by copies of the model.
  std::shared_ptr<EncodedWeights> encoded_;
};

}  // namespace veil::mpc
