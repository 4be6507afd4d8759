// No protection: the accelerator gets the weights and the inputs as they are. The baseline for
// cost, and the ground truth the other schemes' outputs are compared with.
#pragma once

#include <memory>

#include "veil/split/scheme.hpp"

namespace veil::split {

std::unique_ptr<LayerScheme> make_plain(const LinearLayer& layer, const SchemeOptions& options);

}  // namespace veil::split
