// Building a BlockRelu node (OpKind::BlockRelu, domain ai.veil): how `veil relu apply` and the
// tests put block ReLUs into a graph. One node carries the whole per-channel spec in its INTS
// attribute `blocks` (h0, w0, h1, w1, ...); docs/MPC.md ("Block ReLU") says why veil uses its own
// domain rather than a subgraph of standard ops.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "veil/model/block_size.hpp"
#include "veil/model/graph.hpp"

namespace veil::model {

// The attribute value of `blocks`: h, w per channel.
std::vector<int64_t> block_relu_attribute(std::span<const BlockSize> blocks);

// A BlockRelu node reading `input` (NCHW, one block size per channel) and writing `output`.
// Throws InvalidArgument for an empty spec, too many channels or an invalid block size.
Node make_block_relu_node(const std::string& name, const std::string& input,
                          const std::string& output, std::span<const BlockSize> blocks);

}  // namespace veil::model
