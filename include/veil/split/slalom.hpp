// Slalom (Tramer & Boneh, ICLR 2019): inputs quantised to Z_P and blinded with one-time pads whose
// products are precomputed offline; weights in the clear; Freivalds' check.
#pragma once

#include <memory>

#include "veil/split/scheme.hpp"

namespace veil::split {

// The accelerator gets the quantised weights in the clear: Slalom hides the data, not the model.
std::unique_ptr<LayerScheme> make_slalom(const LinearLayer& layer, const SchemeOptions& options);

// One-time pads (one per image) of a Slalom layer: each is used by exactly one encode.
struct SlalomPads {
  int64_t precomputed = 0;  // made offline by precompute()
  int64_t used = 0;         // consumed by encode()
  int64_t on_the_fly = 0;   // made by encode() because the pool ran out (online cost)
  int64_t pooled = 0;       // ready, not used yet
};
// Throws InvalidArgument when `scheme` is not a Slalom scheme.
SlalomPads slalom_pads(const LayerScheme& scheme);

}  // namespace veil::split
