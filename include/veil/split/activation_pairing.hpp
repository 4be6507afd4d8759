// Pairing from activations, for layers whose weights are too short to show ShadowNet's pairing
// (a first convolution over one input channel has 9 weights per filter: 20 slots in 9 dimensions
// correlate with anything). When the next layer receives relu(y_n) + mask element by element, the
// active samples satisfy next = s_n Y'_a + Y'_b + constant per element: of all pairs of outsourced
// channels, the true one explains the centred next-layer channel exactly, with coefficients s_n
// and 1.
#pragma once

#include <cstdint>
#include <vector>

namespace veil::split {

struct ChannelSource {
  int64_t real = -1;  // the slot with coefficient s_n
  int64_t fake = -1;  // the slot with coefficient ~1
  double scale = 0;
  double fit = 0;  // R^2 of the centred regression
};

// outputs: [samples x slots] the outsourced channels; target: [samples] one channel of what the
// next layer received; element: [samples] which element (position) each sample is, in
// [0, elements). Samples at their element's minimum (the ReLU's zeros) are left out, and both
// sides are centred per element over the rest, which removes masks and biases. Throws
// InvalidArgument on mismatched sizes.
ChannelSource explain_channel(const std::vector<double>& outputs, const std::vector<double>& target,
                              const std::vector<int64_t>& element, int64_t slots, int64_t elements);

}  // namespace veil::split
