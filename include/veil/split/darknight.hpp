// DarkNight (Hashemi et al., MICRO 2021): a batch and a noise vector mixed over Z_P by a secret
// invertible matrix; a redundant coded query checks integrity.
#pragma once

#include <memory>

#include "veil/split/scheme.hpp"

namespace veil::split {

std::unique_ptr<LayerScheme> make_darknight(const LinearLayer& layer, const SchemeOptions& options);

}  // namespace veil::split
