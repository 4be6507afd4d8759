// Small pieces every scheme's trusted side uses.
#pragma once

#include "veil/core/tensor.hpp"
#include "veil/split/scheme.hpp"

namespace veil::split {

// The accelerator's copy of `layer` with `weight` (float) as its weight: geometry, output shape
// with weight's channel count.
OutsourcedLayer outsourced_geometry(const LinearLayer& layer, const Tensor& weight);
OutsourcedLayer outsourced_geometry(const LinearLayer& layer, const FieldTensor& weight);

// y [B, M, ...] += bias[m] (no-op when the layer has no bias).
void add_bias(const LinearLayer& layer, Tensor& y);

// Checks that a reply payload is a float tensor of `shape`; throws ProtocolError otherwise.
const Tensor& expect_tensor(const Payload& p, const Shape& shape);
const FieldTensor& expect_field(const Payload& p, const Shape& shape);

}  // namespace veil::split
