// Writing an offloaded layer's weights back into a model: the attack assembles the victim's graph
// (BN folded, as the partition sees it) with the filters it recovered.
#pragma once

#include "veil/core/tensor.hpp"
#include "veil/model/graph.hpp"
#include "veil/split/linear_layer.hpp"

namespace veil::split {

// Sets the weight of the node named layer.name (a Conv, Gemm or MatMul of `model`, BN already
// folded) to `weight` in LinearLayer's convention (Conv [M, C, kH, kW], dense [M, C] for
// y = x W^T + b), undoing the node's transposes and alpha, and its bias to `bias` ([M]; a MatMul
// has none). Throws InvalidArgument when the node is missing or the shapes do not fit.
void set_linear_weights(model::Model& model, const LinearLayer& layer, const Tensor& weight,
                        const Tensor& bias);

}  // namespace veil::split
