// Block ReLU on one channel plane, the rule of the float engine's BlockRelu op (Gorski & Avidan,
// arXiv 2304.10442, Sec. 3): every h x w tile (ceil tiling) keeps its values when their sum is
// >= 0 (as the three-party DReLU counts a zero sum) and becomes 0 otherwise; a NaN sum makes the
// tile NaN; the identity copies. The distortion measurement uses it so that what it measures is
// exactly what the engine will run.
#pragma once

#include <cstdint>

#include "veil/model/block_size.hpp"

namespace veil::nn {

// `y` may be `x` (in place); otherwise the two must not overlap.
void block_relu_plane(const float* x, float* y, int64_t height, int64_t width,
                      model::BlockSize block);

}  // namespace veil::nn
