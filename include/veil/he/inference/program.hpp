// The CKKS program of an encrypted model: slot layouts, levels, scales and rotations per layer.
//
// Layout (one image per ciphertext, LoLa-style "dense" vectors): a layer's input vector of
// length n is padded to n' = 2^ceil(log2 n) and tiled across all slots (period n'), so a
// rotation of the whole slot vector is a cyclic rotation of the vector. A linear layer y = W x + b
// (m' = padded m) is then computed with Halevi-Shoup diagonals (CRYPTO 2014, section 4):
//   tall or square (m' >= n'): y = sum_{i<n'} d_i * rot(x, i),  d_i[k] = W[k][(k+i) mod n'];
//   wide (m' < n'):  t = sum_{i<m'} d_i * rot(x, i) over length n', then y[k] = sum_j t[k + j m']
//                    by log2(n'/m') rotate-and-add steps (the "hybrid" method);
// both leave y tiled with period m', which is the next layer's input layout: no masking, no
// level spent on re-layout. The sum runs baby-step giant-step (Halevi-Shoup 2018): baby
// rotations rot(x, b), b < g, share one hoisted decomposition; the giant steps are Horner's rule
// acc = rot(acc, g) + I_j, so one Galois key (g) serves all of them; the diagonals are
// pre-rotated by -j g when they are encrypted.
// The first layer may instead use a "gather" layout (LoLa's convolution vector): the data
// source encrypts K vectors X_t[k] = x[col_t(k)] (col_t(k) = the t-th input that row k reads),
// and y = sum_t W_t * X_t costs K products and no rotation; chosen when K is small (a
// convolution reads kernel-area inputs per output).
// Square activations x (x + r) cost one ciphertext product; their factor p2 and constant p0 are
// folded into the next layer's weights and bias. Weights are encrypted at scale q_l (the prime
// the product's rescale drops), so every layer keeps the input scale.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "veil/he/context.hpp"
#include "veil/he/inference/affine_program.hpp"

namespace veil::he {

enum class LinearMethod : uint8_t { Diagonal = 1, Gather = 2 };

struct LinearLayout {
  std::string name;
  LinearMethod method = LinearMethod::Diagonal;
  uint32_t m = 0, n = 0;           // output and input sizes
  uint32_t rows = 0, cols = 0;     // m', n' (powers of two)
  uint32_t terms = 0;              // diagonals (Diagonal) or gathered vectors (Gather)
  uint32_t baby = 1;               // g (Diagonal)
  std::vector<uint8_t> present;    // per term: 1 if its weights are not all zero
  std::vector<int32_t> gather;     // Gather: terms x rows source indices, -1 = none
  std::vector<int32_t> sum_steps;  // wide Diagonal: rotate-and-add steps after the product
  uint32_t level = 0;              // level of the input
  double scale_out = 0;            // scale of the output (the bias is encrypted at it)

  uint32_t period() const { return std::max(rows, cols); }  // length of a term vector
  uint32_t giant() const { return terms / baby; }
};

struct SquareLayout {
  std::string name;
  uint32_t dim = 0, period = 0;
  std::vector<double> shift;  // x (x + shift), per element
  uint32_t level = 0;
};

using LayerLayout = std::variant<LinearLayout, SquareLayout>;

// The public structure of a compiled program: what the encrypted model file carries in the
// clear (no weight values).
struct ProgramLayout {
  std::vector<int64_t> input_shape;  // the encrypted part's input, without batch
  uint32_t input_dim = 0, output_dim = 0;
  std::vector<LayerLayout> layers;
  uint32_t depth = 0;  // levels the program consumes = the input's level
  double scale = 0;    // input scale

  const LinearLayout& first() const { return std::get<LinearLayout>(layers.front()); }
  // How many ciphertexts (or plaintext vectors) one image's input is: 1, or K for Gather.
  uint32_t input_vectors() const;
  std::vector<int> rotation_steps() const;
  uint32_t max_period() const;
};

// The secret part: the weight vectors per linear layer (tiled at encryption time).
struct LinearWeights {
  std::vector<std::vector<double>> terms;  // per term: period() values (empty if absent)
  std::vector<double> bias;                // rows values
};

struct CompiledProgram {
  ProgramLayout layout;
  std::vector<LinearWeights> weights;  // one per LinearLayout, in order
};

struct CompileOptions {
  bool allow_gather = true;  // the first layer may use the gather layout
};

// Program shape before parameters exist: depth and the largest period (for the ring size).
struct ProgramNeeds {
  uint32_t depth = 0;
  uint32_t max_period = 0;
};
ProgramNeeds program_needs(const std::vector<Stage>& stages);

// CKKS parameters for a program of `depth` levels whose vectors need `min_slots` slots, at the
// given security level (HomomorphicEncryption.org table): the smallest ring whose modulus
// budget holds q0 = scale + 14 bits (the output's integer part), `depth` primes of the largest
// scale <= 36 bits that is >= min_scale_bits, and one special prime as large as q0. Throws
// InvalidArgument if none up to N = 32768 fits. min_scale_bits 0 (the default) = 25 + depth,
// at most 28: rounding errors add up with every level, so a one-layer program is precise
// enough at 2^26 (the last layer then fits N = 4096 at 128 bits) and he-cnn's five need 2^28.
CkksParameters choose_parameters(uint32_t depth, uint32_t min_slots, SecurityLevel security,
                                 int min_scale_bits = 0);

// Lays the stages out for `ctx`, whose q primes must cover the program's depth (refused with
// InvalidArgument otherwise: a program never runs out of levels).
CompiledProgram compile_program(const std::vector<Stage>& stages,
                                const std::vector<int64_t>& input_shape, const HeContext& ctx,
                                const CompileOptions& options = {});

// The plaintext vectors of one image's input in the first layer's layout (1 tiled vector, or K
// gathered ones), each `slots` long.
std::vector<std::vector<double>> layout_input(const ProgramLayout& layout,
                                              std::span<const double> x, size_t slots);

}  // namespace veil::he
