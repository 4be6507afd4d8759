// The attacker's from-scratch model (veil/split/attack.hpp): the victim's architecture, which the
// attacker knows because it runs the layers, with none of the victim's weights.
#pragma once

#include <cstdint>

#include "veil/model/graph.hpp"

namespace veil::split {

// A copy of `model` with every Conv / Gemm / MatMul weight drawn afresh (He / Kaiming normal,
// He et al., ICCV 2015, fan-in from the weight's shape and the node's transposes), their biases
// zero and every BatchNormalization reset (scale 1, bias 0, mean 0, variance 1). Other
// initializers (shapes, constants) are architecture and are kept. `seed` drives std::mt19937:
// nothing here is secret.
model::Model reinitialised(const model::Model& model, uint64_t seed);

}  // namespace veil::split
