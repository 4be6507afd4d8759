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

// The same when the next layer receives the mean over each cell of relu(s a + rest + bias) (a
// residual add, then average pooling before the classifier): a search over s (log grid around
// `guess`) and bias (over the range of -(s a + rest)); a constant per sample row (the next layer's
// mask) is allowed for. a, rest: [samples x per_cell]; next: [samples].
FilterCalibration calibrate_mean_pooled_filter(const std::vector<double>& a,
                                               const std::vector<double>& rest,
                                               const std::vector<double>& next, int64_t samples,
                                               int64_t per_cell, double guess);

// The same for filters whose outputs are summed with a residual before the ReLU (ResNet's block
// end): next = relu(sum_j s_j a_j + rest + bias) per element, where `rest` holds what the attacker
// knows exactly (the fake filters' outputs, the block's input when the shortcut is the identity,
// which its first convolution received) and the a_j are the real slots' outputs of the layers
// summed (one, or two with a projection shortcut). Per-element constants (mask errors) drop out of
// the s_j by centring each element over its active samples (those above the element's minimum);
// the bias is the median over the active samples, which the few elements whose mask estimate is
// off do not move. Every vector holds one value per sample; element in [0, elements).
struct SummedCalibration {
  std::vector<double> scales;
  double bias = 0;
  double fit = 0;
};
SummedCalibration calibrate_summed_filters(const std::vector<std::vector<double>>& a,
                                           const std::vector<double>& rest,
                                           const std::vector<double>& next,
                                           const std::vector<int64_t>& element, int64_t elements);

}  // namespace veil::split
