// A graph node for hand-built test graphs (shared by the test modules).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "veil/model/graph.hpp"

namespace veil::testing {

inline model::Node node(std::string name, std::string op, std::vector<std::string> in,
                        std::vector<std::string> out) {
  model::Node n;
  n.name = std::move(name);
  n.op_type = std::move(op);
  n.inputs = std::move(in);
  n.outputs = std::move(out);
  return n;
}

}  // namespace veil::testing
