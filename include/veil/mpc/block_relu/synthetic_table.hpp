// A random distortion table with ResNet-50/ImageNet's ReLU layers, for benchmarking the knapsack
// at the paper's scale (`veil relu knapsack --synthetic CHANNELS`) without measuring anything.
#pragma once

#include <cstdint>

#include "veil/mpc/block_relu/distortion_table.hpp"

namespace veil::mpc {

// ResNet-50's 49 ReLU layers at 224 x 224 (stem 64 @ 112x112; bottlenecks of widths 64/256 @
// 56, 128/512 @ 28, 256/1024 @ 14, 512/2048 @ 7, the stride in each stage's first 3x3 conv):
// 22,720 channels and 9,608,704 ReLUs. Channel counts are scaled to sum to about `channels`
// (each layer keeps at least one). Candidate sizes per layer: {1,1} first, every h x w with h, w
// in 1..6, 7x7, 8x8, 12x12, 16x16 and the whole map (those fitting the map), and the identity.
// Distortions grow with the pixels per block, times a random per-channel scale and noise.
// `channels` lies in [49, 2^20] (InvalidArgument otherwise): the table stays below 400 MB.
DistortionTable synthetic_resnet50_table(int64_t channels, uint64_t seed);

}  // namespace veil::mpc
