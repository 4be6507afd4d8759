// Choosing a block size per channel from a distortion table (`veil relu knapsack`): the
// knapsack (knapsack.hpp) over every channel of every layer, with cost = the size's number of
// blocks (DReLUs) and value = its measured distortion, or the uniform baseline that gives every
// channel the same size (Gorski & Avidan, arXiv 2304.10442, Sec. 4.2 and 5).
#pragma once

#include <cstdint>
#include <map>

#include "veil/mpc/block_relu/distortion_table.hpp"
#include "veil/mpc/block_relu/knapsack.hpp"
#include "veil/mpc/block_relu/spec.hpp"

namespace veil::mpc {

struct BlockChoice {
  BlockReluSpec spec;     // every layer of the table, one size per channel
  int64_t budget = 0;     // DReLUs allowed
  int64_t cost = 0;       // DReLUs the choice spends
  double distortion = 0;  // summed distortion of the choice (layer, then channel order);
                          // NaN for a uniform size the table did not measure
};

// floor(ratio * table.relu_count()); ratio must lie in [0, 1].
int64_t drelu_budget(const DistortionTable& table, double ratio);

// The least-distortion choice with cost <= budget. Throws InvalidArgument when even the
// cheapest sizes exceed the budget.
BlockChoice choose_block_sizes(const DistortionTable& table, int64_t budget,
                               const KnapsackSettings& settings = {});

// The uniform baseline: one block size h x w for every channel of every layer (clamped to a
// smaller map: min(h, H) x min(w, W)), any near-square sides (|h - w| <= 1) up to the largest
// map side, the identity excluded. The size that spends the most DReLUs within the budget; ties: a
// size every layer's table measured, with the least summed distortion, then the squarer, then the
// smaller h. `distortion` is NaN when some layer's table lacks the size. Throws InvalidArgument
// when none fits.
BlockChoice choose_uniform_block_size(const DistortionTable& table, int64_t budget);

// How many channels of the spec use each size.
std::map<model::BlockSize, int64_t> channels_per_size(const BlockReluSpec& spec);

}  // namespace veil::mpc
