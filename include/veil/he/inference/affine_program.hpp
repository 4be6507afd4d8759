// The part of a network that runs under CKKS, as math: affine maps and element-wise polynomials.
//
// A trained ONNX model is cut in two at a value (`Part`): the prefix before the cut runs in
// plaintext, the suffix after it is what the owner encrypts. The suffix is read off the lowered
// graph as an alternating list of stages:
//   - `AffineStage` y = W x + b: every maximal run of linear ops (Conv, Gemm, MatMul, Flatten,
//     Reshape, Pad, BatchNormalization, AveragePool, Add/Sub/Mul/Div by constants, ...) becomes
//     one dense matrix, measured numerically with the float engine on basis vectors and checked
//     on a random probe, so every linear op the engine runs is supported without a second
//     implementation of it;
//   - `PolyStage` y = p2 x^2 + p1 x + p0 per element: the element-wise region that starts at a
//     square `Mul(x, x)` and ends where its paths re-join (he-cnn's 0.125 x^2 + 0.5 x).
// Adjacent affine stages are merged (W2 (W1 x + b1) + b2 is one matrix: one CKKS level instead
// of two) unless `merge_linear` is off; an activation whose p2 is zero is affine and merges too.
#pragma once

#include <cstddef>
#include <string>
#include <variant>
#include <vector>

#include "veil/core/tensor.hpp"
#include "veil/model/graph.hpp"

namespace veil::he {

// Which part of the model is encrypted (the FHE paper's modes, plus the whole network).
enum class Part {
  Last,        // the last weight layer (Gemm/MatMul/Conv) and what follows it
  Classifier,  // from the first dense layer after the last convolution or pooling
  All,         // every layer, from the model input
};
Part parse_part(const std::string& name);  // "last" | "classifier" | "all"
std::string part_name(Part part);

struct AffineStage {
  std::string name;  // the nodes it covers, e.g. "fc1..fc2"
  size_t in_dim = 0, out_dim = 0;
  std::vector<double> weight;  // out_dim x in_dim, row-major
  std::vector<double> bias;    // out_dim
};

struct PolyStage {
  std::string name;
  std::vector<double> p0, p1, p2;  // per element
};

using Stage = std::variant<AffineStage, PolyStage>;

struct SplitOptions {
  bool merge_linear = true;
};

struct SplitModel {
  model::Model prefix;  // model input -> cut, run in plaintext; no nodes when cut = input
  bool prefix_empty = true;
  std::string cut;            // the value where encryption starts
  Shape cut_shape;            // its shape without the batch dimension
  std::vector<Stage> stages;  // first and last are AffineStage; never two PolyStages in a row
  std::vector<std::string> encrypted_nodes;  // node names of the suffix, in order
};

// Throws Unsupported (one line naming the node) when the suffix holds an op CKKS cannot run
// (ReLU, max-pooling, a product of two different values, ...), and InvalidArgument for a part
// the model does not have.
SplitModel split_model(const model::Model& model, Part part, const SplitOptions& options = {});

// The stages applied in double precision to one input vector (the reference the encrypted
// result is compared with).
std::vector<double> apply_stages(const std::vector<Stage>& stages, std::span<const double> x);

}  // namespace veil::he
