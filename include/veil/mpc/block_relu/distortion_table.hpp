// Measured distortion of block ReLU choices (Gorski & Avidan, arXiv 2304.10442, Sec. 4.1): for
// every ReLU layer, every channel and every candidate block size, the mean squared difference
// of the network's logits when only that channel's ReLU becomes that block ReLU, against the
// clean network, over `samples` training images. The knapsack (knapsack.hpp) picks one size per
// channel from it. Stored as a `.vdist` file (distortion_file.hpp).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "veil/model/block_size.hpp"

namespace veil::mpc {

struct LayerDistortion {
  std::string node;  // the Relu node's name in the model
  int64_t channels = 0;
  int64_t height = 0;  // the ReLU's feature map (NCHW input of the node)
  int64_t width = 0;
  // Candidate sizes, the same for every channel of the layer; the first is {1, 1} (the ReLU
  // itself, distortion 0) so every channel can keep its ReLU.
  std::vector<model::BlockSize> sizes;
  // distortion[c * sizes.size() + s]: channel c with sizes[s]. Finite and >= 0.
  std::vector<double> distortion;
  // Set once the layer's row is measured; a resumed run skips finished layers.
  bool done = false;
};

struct DistortionTable {
  // SHA-256 of the model's public structure and weights: a table measured on another model is
  // refused.
  std::array<uint8_t, 32> model_hash{};
  int64_t samples = 0;  // images the mean is over
  uint64_t seed = 0;    // which images (data order, not secret)
  std::vector<LayerDistortion> layers;

  // Number of ReLUs per image of the layers in the table (sum of C * H * W): the budget's base.
  int64_t relu_count() const;
};

}  // namespace veil::mpc
