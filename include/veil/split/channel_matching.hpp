// Step 2 of the attack on ShadowNet (veil/split/attack.hpp): undo the channel permutation. The
// restored channel n of a layer reaches input channel n of the next linear layer through
// channel-wise trusted steps (ReLU, pooling, residual adds; a flatten maps it to a block of
// features), so a filter's per-image activation statistic correlates, across the recorded
// queries, with that of its channel in the next layer's input payload. ShadowNet's fixed input
// mask only adds a constant per channel, which a correlation ignores.
#pragma once

#include <cstdint>
#include <vector>

namespace veil::split {

// Pearson correlation of every column of x [images x nx] with every column of y [images x ny]
// (both row-major): [nx x ny]. A constant column correlates 0 with everything.
std::vector<double> pearson_matrix(const std::vector<double>& x, const std::vector<double>& y,
                                   int64_t images, int64_t nx, int64_t ny);

// For every column of x, the distinct column of y (n columns each) it belongs to: the
// assignment maximising the total correlation. Throws InvalidArgument on mismatched sizes.
std::vector<int64_t> match_channels(const std::vector<double>& x, const std::vector<double>& y,
                                    int64_t images, int64_t n);

// The same when the trusted part adds a residual the attacker sees (the block's input) before the
// ReLU: filter k at channel c contributes x_k + skip_c, so the score of (k, c) is the correlation
// of x_k + skip_c with y_c. skip: [samples x n], like y.
std::vector<int64_t> match_channels_with_residual(const std::vector<double>& x,
                                                  const std::vector<double>& skip,
                                                  const std::vector<double>& y, int64_t samples,
                                                  int64_t n);

}  // namespace veil::split
