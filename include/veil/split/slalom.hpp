// Slalom (Tramer & Boneh, ICLR 2019): inputs quantised to Z_P and blinded with one-time pads whose
// products are precomputed offline; weights in the clear; Freivalds' check.
#pragma once

#include <memory>

#include "veil/split/scheme.hpp"

namespace veil::split {

std::unique_ptr<LayerScheme> make_slalom(const LinearLayer& layer, const SchemeOptions& options);

}  // namespace veil::split
