// The .vdist file: a DistortionTable on disk, written by `veil relu distortion` after every
// finished layer (so a killed run resumes) and read by `veil relu knapsack`.
#pragma once

#include <string>
#include <string_view>

#include "veil/mpc/block_relu/distortion_table.hpp"

namespace veil::mpc {

std::string serialize(const DistortionTable& t);
// Checked parser for an untrusted file; throws MalformedInput.
DistortionTable parse_distortion_file(std::string_view bytes);

}  // namespace veil::mpc
