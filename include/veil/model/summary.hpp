// What `veil info` reports: per-layer shapes, parameters, multiply-accumulates and ReLU counts.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "veil/model/graph.hpp"

namespace veil::model {

struct LayerSummary {
  std::string name;
  std::string op_type;
  Shape output_shape;  // batch dimension as 1
  int64_t params = 0;  // elements of the initializers this node reads (weights, biases, BN)
  int64_t macs = 0;    // multiply-accumulates per image
  int64_t relus = 0;   // ReLU evaluations per image (Relu, Clip, LeakyRelu, MaxPool comparisons excluded)
};

struct ModelSummary {
  std::vector<LayerSummary> layers;
  Shape input_shape;
  int64_t params = 0;
  int64_t macs = 0;
  int64_t relus = 0;
};

// Runs shape inference (batch 1) on a copy of the model and tallies each node.
ModelSummary summarize(const Model& model);

}  // namespace veil::model
