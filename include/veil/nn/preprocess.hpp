// The input preprocessing that travels with a model in its ONNX metadata.
#pragma once

#include "veil/data/normalization.hpp"
#include "veil/model/graph.hpp"

namespace veil::nn {

// From "veil.normalize.mean"/"veil.normalize.std"; identity (pixels in [0,1]) when absent.
data::Normalization normalization_of(const model::Model& model);
void set_normalization(model::Model& model, const data::Normalization& norm);

}  // namespace veil::nn
