// The ONNX op set veil imports, with the per-op structural checks done at import time.
#pragma once

#include <cstdint>
#include <set>
#include <string>

#include "veil/model/graph.hpp"

namespace veil::model {

// Default-domain op types veil accepts on import.
const std::set<std::string>& supported_ops();

// Ops that only compute shapes/constants and that fold_constants() removes when their inputs
// are known at import time.
const std::set<std::string>& shape_ops();

// Checks that `node` is a supported op under `opset` with a valid number of inputs and outputs
// and valid attribute types and values. Throws Unsupported ("node 'X' (Op): reason") or
// MalformedInput.
void check_node(const Node& node, int64_t opset);

// check_node for every node of the graph.
void check_supported(const Model& model);

}  // namespace veil::model
