// Constant folding of shape-computation subgraphs.
//
// Exporters (notably older torch.onnx) compute reshape targets at run time:
//   Shape(x) -> Gather(0) -> Unsqueeze -> Concat([., -1]) -> Reshape(x, .)
// With the graph input shapes known at import time these subgraphs are constant, or constant up
// to the dynamic batch size, which Reshape can express as 0 ("copy this dimension") or -1. This
// pass evaluates them so that the engine only sees the compute ops.
#pragma once

#include <cstddef>

#include "veil/model/graph.hpp"

namespace veil::model {

// Evaluates Constant, Shape, Gather, Unsqueeze, Squeeze, Concat, Cast, Reshape, Slice,
// ConstantOfShape, Identity and integer Add/Sub/Mul/Div nodes whose inputs are constant
// (including Shape of a value whose shape is fully known) into initializers, rewrites a Reshape
// whose target depends only on the batch size into a constant target, and removes the
// shape-computation nodes and initializers that are then unused. Returns the number of nodes
// removed. Throws MalformedInput naming the node on inconsistent constants.
size_t fold_constants(Model& model);

}  // namespace veil::model
