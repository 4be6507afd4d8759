// Folding inference-mode BatchNormalization into the preceding convolution.
#pragma once

#include <cstddef>

#include "veil/model/graph.hpp"

namespace veil::model {

// For every BatchNormalization (inference mode, one output) whose input is the output of a Conv
// that has no other consumer and is not a graph output, with the conv weights and every BN
// parameter held in initializers: rescales the conv weights and bias so that
//   conv'(x) = scale * (conv(x) - mean) / sqrt(var + eps) + bias
// and removes the BN node (the conv then writes the BN's output). Conv weights that other nodes
// share are copied, not modified in place. Returns the number of BN nodes folded; value_info of
// the removed values is dropped.
size_t fold_batch_norm(Model& model);

}  // namespace veil::model
