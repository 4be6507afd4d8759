#include "veil/model/block_relu_node.hpp"

#include "veil/core/error.hpp"
#include "veil/model/ops.hpp"

namespace veil::model {

std::vector<int64_t> block_relu_attribute(std::span<const BlockSize> blocks) {
  std::vector<int64_t> v;
  v.reserve(2 * blocks.size());
  for (const BlockSize& b : blocks) {
    v.push_back(b.h);
    v.push_back(b.w);
  }
  return v;
}

Node make_block_relu_node(const std::string& name, const std::string& input,
                          const std::string& output, std::span<const BlockSize> blocks) {
  if (blocks.empty() || blocks.size() > kMaxBlockReluChannels)
    throw InvalidArgument("block ReLU '" + name + "': needs 1 to " +
                          std::to_string(kMaxBlockReluChannels) + " channels, got " +
                          std::to_string(blocks.size()));
  for (size_t c = 0; c < blocks.size(); ++c)
    if (!valid_block_size(blocks[c]))
      throw InvalidArgument("block ReLU '" + name + "': channel " + std::to_string(c) +
                            " has invalid block size " + std::to_string(blocks[c].h) + "x" +
                            std::to_string(blocks[c].w));
  Node n;
  n.name = name;
  n.op_type = op_name(OpKind::BlockRelu);
  n.inputs = {input};
  n.outputs = {output};
  n.attributes["blocks"] = block_relu_attribute(blocks);
  return n;
}

}  // namespace veil::model
