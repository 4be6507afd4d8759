// veil's hardened scheme: dense random mixing of real and fake output channels and input masks
// refreshed for every query (docs/SPLIT.md).
#pragma once

#include <memory>

#include "veil/split/scheme.hpp"

namespace veil::split {

std::unique_ptr<LayerScheme> make_hardened(const LinearLayer& layer, const SchemeOptions& options);

}  // namespace veil::split
