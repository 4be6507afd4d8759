// Private to the model module: the symbolic-dimension view shared by shape inference and constant
// folding (see shape_inference.cpp).
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>

#include "veil/model/graph.hpp"

namespace veil::model {

// Largest dimension accepted from a file or produced by shape inference: far beyond any real
// tensor, small enough that sums and products of a few dimensions cannot overflow int64.
inline constexpr int64_t kMaxDimension = int64_t{1} << 40;

// Shapes of the graph inputs (unknown dimensions replaced by symbols <= -2, dimension 0 of every
// input sharing the batch symbol) and of the initializers, keyed by value name.
std::unordered_map<std::string, ValueInfo> symbolic_sources(const Graph& graph);

}  // namespace veil::model
