// A block ReLU specification: one block size per channel for each ReLU layer that changes,
// the output of `veil relu knapsack` and the input of `veil relu apply`. JSON:
//   {"format": "veil-block-relu-spec", "version": 1,
//    "layers": {"<Relu node name>": [[h, w], ...one pair per channel...], ...}}
// {0, 0} is the identity, {1, 1} the ordinary ReLU. Layers not named keep their ReLU.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "veil/model/block_size.hpp"

namespace veil::mpc {

struct BlockReluSpec {
  std::map<std::string, std::vector<model::BlockSize>> layers;
};

std::string to_json(const BlockReluSpec& spec);
// Checked parser for an untrusted file: format and version, at most 2^16 layers and 2^20
// channels per layer, every size valid (model::valid_block_size). Throws MalformedInput.
BlockReluSpec parse_block_relu_spec(std::string_view json);

}  // namespace veil::mpc
