// `veil relu apply`: puts a block ReLU spec (spec.hpp) into a model. Each Relu node the spec
// names becomes a BlockRelu node of veil's domain (op_type "BlockRelu", INTS attribute `blocks` =
// h0, w0, h1, w1, ... one pair per channel; see docs/MPC.md, "Block ReLU"), keeping its name,
// input and output. Optionally every MaxPool becomes an AveragePool of the same geometry, as the
// paper does for ResNet-50 (Gorski & Avidan, arXiv 2304.10442, Sec. 5): an average costs no
// comparison in three-party inference.
#pragma once

#include <cstdint>

#include "veil/model/graph.hpp"
#include "veil/mpc/block_relu/spec.hpp"

namespace veil::mpc {

struct BlockReluApplyReport {
  int64_t block_relus = 0;  // Relu (or BlockRelu) nodes given the spec's block sizes
  int64_t kept_relus = 0;   // named layers whose every channel is {1, 1}: a plain Relu
  int64_t avgpools = 0;     // MaxPool nodes replaced
};

// Rewrites model.graph in place. A BlockRelu node the spec names gets the spec's sizes instead of
// its own (a plain Relu when they are all {1, 1}): a block model fine-tuned at one budget can be
// cut to a smaller one, which starts from weights that already work with coarse blocks.
// Every named node must exist, be a Relu or BlockRelu and read an NCHW value
// of known shape with C equal to the spec's pair count; otherwise throws InvalidArgument naming
// the node, before changing anything. With `maxpool_to_avgpool`, a MaxPool with a second output
// (indices) or dilations other than 1 is refused the same way.
BlockReluApplyReport apply_block_relu_spec(model::Model& model, const BlockReluSpec& spec,
                                           bool maxpool_to_avgpool);

}  // namespace veil::mpc
