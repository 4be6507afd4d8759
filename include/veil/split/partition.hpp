// The split of a model between the trusted part and the accelerator: its offloadable linear
// layers (Conv with group 1, Gemm / MatMul with a constant 2-D weight; BatchNormalization folded
// into the convs first) and, between them, the trusted steps (everything else: activations,
// pooling, residual adds, reshapes, softmax), each run by the float engine as its own sub-model.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "veil/model/graph.hpp"
#include "veil/split/linear_layer.hpp"

namespace veil::split {

struct TrustedStep {
  model::Model sub;                  // the ops of this step as a model of their own
  std::vector<std::string> inputs;   // values it reads (graph inputs or earlier steps' outputs)
  std::vector<std::string> outputs;  // values later steps or the graph outputs read
};

struct LinearStep {
  LinearLayer layer;
  std::string input;   // the value the layer reads
  std::string output;  // the value it writes
};

struct Step {
  bool linear = false;
  size_t index = 0;  // into Partition::linear or Partition::trusted
};

struct Partition {
  std::vector<LinearStep> linear;
  std::vector<TrustedStep> trusted;
  std::vector<Step> order;            // execution order
  std::string input;                  // the graph input (one image batch)
  std::vector<std::string> outputs;   // the graph outputs
  int64_t linear_macs_per_image = 0;  // offloaded
  int64_t other_macs_per_image = 0;   // linear work that stays trusted (grouped convs, ...)
};

// Folds BN, then partitions. Throws Unsupported naming the node for a graph it cannot split
// (more than one input, a dynamic spatial shape).
Partition partition(const model::Model& model);

}  // namespace veil::split
