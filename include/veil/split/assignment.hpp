// The linear assignment problem (Hungarian method, Kuhn 1955 with Munkres' potentials): the
// attack un-permutes channels by giving every restored filter the distinct channel it matches
// best.
#pragma once

#include <cstdint>
#include <vector>

namespace veil::split {

// score is rows x cols, row-major, rows <= cols. Returns for every row a distinct column such
// that the total score is maximal. O(rows^2 cols). Throws InvalidArgument when rows > cols, the
// size does not match or a score is not finite.
std::vector<int64_t> max_score_assignment(const std::vector<double>& score, int64_t rows,
                                          int64_t cols);

}  // namespace veil::split
