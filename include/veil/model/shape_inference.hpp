// Static shape inference over veil's graph IR, following the ONNX operator specs (opsets 9-17)
// for every op veil imports. Dimensions unknown until run time (the batch) are -1 in and out.
#pragma once

#include <cstdint>
#include <vector>

#include "veil/model/graph.hpp"
#include "veil/model/ops.hpp"

namespace veil::model {

// Fills graph.value_info for every node output from the graph input shapes (and the
// initializers), and completes the shapes of the graph outputs. Shapes already declared in
// value_info / outputs are checked against the inferred ones. Throws MalformedInput naming the
// node on inconsistent shapes, Unsupported for an op it does not know.
void infer_shapes(Model& model);

// Shape of the first output of `node` given the shapes of its inputs (aligned with node.inputs;
// the entry of an omitted optional input is ignored). `graph` supplies constant inputs such as
// Reshape's target shape. -1 marks unknown dimensions; an unknown dimension 0 is taken to be the
// batch, the same in every input (so Reshape [N,512,1,1] -> [0,-1] gives [N,512]).
Shape output_shape(const Node& node, const std::vector<Shape>& input_shapes, const Graph& graph);

// Shape and element type of every output of `node` (entries for omitted outputs have an empty
// name). Negative dimensions in `inputs` are symbolic: equal negative values denote the same
// unknown size and are carried through ops that copy the dimension (this is what lets the batch
// dimension be tracked through Flatten/Reshape); a result that is unknown but not a copy is -1.
std::vector<ValueInfo> infer_node(const Node& node, const std::vector<ValueInfo>& inputs,
                                  const Graph& graph);

// Resolved geometry of a Conv / MaxPool / AveragePool over the spatial dimensions of one input,
// with auto_pad turned into explicit pads (ONNX: SAME_UPPER puts the odd pad at the end,
// SAME_LOWER at the beginning) and ceil_mode applied. The engine uses it to set up kernels.
struct SpatialGeometry {
  std::vector<int64_t> kernel;
  std::vector<int64_t> strides;
  std::vector<int64_t> dilations;
  std::vector<int64_t> pads_begin;
  std::vector<int64_t> pads_end;  // as given (or resolved from auto_pad)
  // End padding under which floor rounding yields `output`: equals pads_end except with
  // ceil_mode, where the last partial window needs more (kernels like oneDNN take this as
  // padding_r; an AveragePool must still not count this extra padding in its divisor).
  std::vector<int64_t> pads_end_floor;
  std::vector<int64_t> output;  // spatial output sizes (-1 where the input size is unknown)
};
// `input` is the full input shape [N, C, D1, ...]; `kernel` the spatial kernel size (for Conv the
// trailing weight dims, for pools kernel_shape). Throws MalformedInput prefixed with `who` (the
// node's describe()). This is the only place that resolves auto_pad, pads, dilations and
// ceil_mode: shape inference and every backend call it.
SpatialGeometry spatial_geometry(const SpatialParams& params, const Shape& input,
                                 const std::vector<int64_t>& kernel, const std::string& who);
// The same for a node's attributes (lowered first).
SpatialGeometry spatial_geometry(const Node& node, const Shape& input,
                                 const std::vector<int64_t>& kernel);

// Reshape's output shape for `input` and a target with ONNX's 0 (copy the input dimension unless
// `allowzero`) and -1 (infer from the element count). Negative input dimensions are symbolic as
// in infer_node (a -1 left in the result is unknown). Throws MalformedInput prefixed with `who`
// when the target is invalid or the element counts cannot match. The only place that resolves a
// Reshape target: shape inference and every backend call it.
Shape reshape_output(const Shape& input, const std::vector<int64_t>& target, bool allowzero,
                     const std::string& who);

}  // namespace veil::model
