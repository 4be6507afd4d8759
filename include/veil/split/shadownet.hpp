// ShadowNet (Sun et al., S&P 2023): fake filters, random scales, a channel permutation; a fixed
// input mask per layer after the first.
#pragma once

#include <memory>

#include "veil/split/scheme.hpp"

namespace veil::split {

std::unique_ptr<LayerScheme> make_shadownet(const LinearLayer& layer, const SchemeOptions& options);

}  // namespace veil::split
