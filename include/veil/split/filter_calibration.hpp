// Step 3 of the attack on ShadowNet (veil/split/attack.hpp): the exact scale and the bias of a
// restored filter, from what the next layer received. Pairing gives the filter only on the line
// t W'_a + W'_b; the trusted part restores y = s W'_a x + W'_b x + b and passes relu(y), max-
// or average-pooled, to the next layer (plus that layer's fixed mask, which the attack estimates
// and removes first). Fitting that relation across the recorded queries pins s and b.
#pragma once

#include <cstdint>
#include <vector>

namespace veil::split {

struct FilterCalibration {
  double scale = 0;
  double bias = 0;
  double fit = 0;  // R^2 of the next layer's input explained (1 = exact; low: keep the estimate)
};

// a, b: [images x cells x per_cell] the two outsourced channels' outputs on unmasked inputs,
// grouped by the cell of the next layer's grid each position is pooled into; next:
// [images x cells] what the next layer received for this channel (mask removed). Searches s on a
// log grid around `guess` (x / 3 .. x 3), models next = relu(pool(s a + b) + bias) with pool the
// max or the mean over the cell (whichever fits), and returns the best.
FilterCalibration calibrate_filter(const std::vector<double>& a, const std::vector<double>& b,
                                   const std::vector<double>& next, int64_t images, int64_t cells,
                                   int64_t per_cell, double guess);

// The same for a filter whose output is added to a residual before the ReLU (ResNet's second
// convolution of a block): next = relu(s a + b + bias + skip) per element, with `skip` what the
// attacker saw of the residual (the block's input, sent to its first convolution). Per-element
// constants (mask errors) drop out of s by centring each element over its active samples (those
// above the element's minimum); the bias is the median over the active samples, which the few
// elements whose mask estimate is off do not move. a, b, skip, next, element: one value per
// sample; element in [0, elements).
FilterCalibration calibrate_residual_filter(const std::vector<double>& a,
                                            const std::vector<double>& b,
                                            const std::vector<double>& skip,
                                            const std::vector<double>& next,
                                            const std::vector<int64_t>& element, int64_t elements);

}  // namespace veil::split
