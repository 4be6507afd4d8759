// The stages with each square activation's factor and constant folded into the next layer, the
// form both CKKS layouts (latency: program.hpp, throughput: batch_program.hpp) compile.
//
// p2 x^2 + p1 x + p0 = p2 * x (x + p1/p2) + p0: the product costs one level, p2 and p0 move into
// the next layer (W diag(p2), b + W p0) for free.
#pragma once

#include <string>
#include <variant>
#include <vector>

#include "veil/he/inference/affine_program.hpp"

namespace veil::he {

struct FoldedLinear {
  std::string name;
  size_t m = 0, n = 0;       // output and input sizes
  std::vector<double> w, b;  // m x n row-major, m
};

struct FoldedSquare {
  std::string name;
  std::vector<double> shift;  // x (x + shift), per element
};

using Folded = std::variant<FoldedLinear, FoldedSquare>;

// Throws Unsupported for a square whose factor is zero for some elements and not others.
std::vector<Folded> fold_stages(const std::vector<Stage>& stages);

}  // namespace veil::he
