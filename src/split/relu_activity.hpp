// Which samples of a ReLU output were active: those above their element's minimum over all
// images (an inactive ReLU gives exactly the element's fixed mask, the smallest value it takes).
// Shared by the attack's activation pairing and calibration.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "veil/core/error.hpp"

namespace veil::split {

inline std::vector<char> above_element_minimum(const std::vector<double>& values,
                                               const std::vector<int64_t>& element,
                                               int64_t elements, const std::string& who) {
  const size_t n = values.size();
  if (element.size() != n || elements < 1) throw InvalidArgument(who + ": sizes do not match");
  std::vector<double> lo(elements, std::numeric_limits<double>::infinity()), hi(elements, -lo[0]);
  for (size_t i = 0; i < n; ++i) {
    const int64_t e = element[i];
    if (e < 0 || e >= elements) throw InvalidArgument(who + ": element out of range");
    lo[e] = std::min(lo[e], values[i]), hi[e] = std::max(hi[e], values[i]);
  }
  std::vector<char> active(n);
  for (size_t i = 0; i < n; ++i) {
    const int64_t e = element[i];
    active[i] = values[i] > lo[e] + 1e-6 * std::max(hi[e] - lo[e], 1e-12);
  }
  return active;
}

}  // namespace veil::split
