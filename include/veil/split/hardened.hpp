// veil's hardened scheme: dense random mixing of real and fake output channels and input masks
// refreshed for every query (docs/SPLIT.md).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "veil/split/scheme.hpp"

namespace veil::split {

std::unique_ptr<LayerScheme> make_hardened(const LinearLayer& layer, const SchemeOptions& options);

// The state of a scheme made by make_hardened (tests, and scoring attacks).
struct HardenedState {
  int64_t slots = 0;         // M
  std::vector<float> unmix;  // rows 0..N-1 of Q^-1, [N, M] row-major: y_n = sum_m unmix Y'_m
  int64_t pooled = 0;        // precomputed masks not used yet
  int64_t drawn_online = 0;  // masks encode had to draw because the pool had none of its batch
};

// Throws InvalidArgument for another scheme.
HardenedState hardened_state(const LayerScheme& scheme);

}  // namespace veil::split
