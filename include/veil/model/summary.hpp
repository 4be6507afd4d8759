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
  int64_t relus = 0;   // ReLU evaluations per image (Relu, BlockRelu, Clip, LeakyRelu, MaxPool
                       // comparisons excluded)
  // Elements of Relu and BlockRelu layers per image: the DReLUs of the all-ReLU network, the
  // base a block-ReLU budget is a fraction of.
  int64_t relu_count = 0;
  // DReLUs per image in three-party inference, as mpc's protocols spend them: Relu one per
  // element; BlockRelu one per tile (model::block_count per channel; none for identity
  // channels); MaxPool, a tournament, (in-bounds window elements - 1) per output element.
  int64_t drelus = 0;
};

struct ModelSummary {
  std::vector<LayerSummary> layers;
  Shape input_shape;
  int64_t params = 0;
  int64_t macs = 0;
  int64_t relus = 0;
  int64_t relu_count = 0;
  int64_t drelus = 0;
};

// Runs shape inference (batch 1) on a copy of the model and tallies each node.
ModelSummary summarize(const Model& model);

}  // namespace veil::model
