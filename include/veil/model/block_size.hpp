// The block of a block ReLU (Gorski & Avidan, "Securing Neural Networks with Knapsack
// Optimization", arXiv 2304.10442, Sec. 3): the h x w tiles of one channel's feature map share
// one sign, that of the tile's sum (the last tile row/column may be partial: ceil padding with
// zeros, which leaves the sign of the sum unchanged). {1, 1} is the ordinary ReLU; {0, 0} is
// the identity (the channel spends no DReLU).
#pragma once

#include <compare>
#include <cstdint>

namespace veil::model {

struct BlockSize {
  int64_t h = 1, w = 1;

  bool identity() const { return h == 0; }
  bool operator==(const BlockSize&) const = default;
  auto operator<=>(const BlockSize&) const = default;
};

// Tiles (= DReLUs) a block size spends on one H x W map: 0 for the identity.
inline int64_t block_count(BlockSize b, int64_t height, int64_t width) {
  if (b.identity()) return 0;
  return ((height + b.h - 1) / b.h) * ((width + b.w - 1) / b.w);
}

// {0, 0}, or both sides in [1, 2^20]. Sides larger than the map are allowed (one tile).
inline bool valid_block_size(BlockSize b) {
  constexpr int64_t kMax = int64_t{1} << 20;
  return (b.h == 0 && b.w == 0) || (b.h >= 1 && b.w >= 1 && b.h <= kMax && b.w <= kMax);
}

}  // namespace veil::model
