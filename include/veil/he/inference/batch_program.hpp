// Throughput layout: batch-axis packing with plaintext weights (CryptoNets, Gilad-Bachrach et al.,
// ICML 2016; nGraph-HE2, Boemer et al., WAHC 2019).
//
// Slot i of every ciphertext holds image i (up to N/2 images per batch) and there is one
// ciphertext per neuron, so a layer's weights are the same for every slot: a weight is a
// constant polynomial, and in NTT form multiplying by it multiplies every residue of limb i by
// [round(w q_l)]_{q_i}. A linear layer out_j = sum_k w_jk ct_k + b_j is then, per RNS limb and
// ciphertext component, one modular product of the (sparse) residue matrix and the inputs'
// coefficient arrays (kernels::sparse_matmul, lazy reduction), instead of one multiply_const
// per term. No rotation is needed, hence no Galois keys.
//
// Levels: a linear layer at level l multiplies by weights at scale q_l (its bias rides along as
// one more weight, against an encryption of 1) and rescales once: the input scale comes back
// exactly. A square x (x + p1/p2) (p2 and p0 folded into the next layer, folded_stages.hpp) is
// rescaled right away but left at size 3: relinearisation is linear, so it runs after the next
// linear layer, on that layer's outputs (100 relinearisations instead of 845 for he-cnn's fc1).
// Rescaling the squares after fc1 too (nGraph-HE2's lazy rescaling) was measured slower here:
// fc1's product then runs on one more limb (1.72 s vs 1.18 s CPU per batch at N = 8192), more
// than the 845 rescales it saves. The depth is the latency layout's: one level per folded op.
//
// The weights are plaintext in this mode: the edge holds the model, only the data is encrypted.
#pragma once

#include <span>
#include <variant>
#include <vector>

#include "veil/data/dataset.hpp"
#include "veil/he/ciphertext.hpp"
#include "veil/he/context.hpp"
#include "veil/he/inference/affine_program.hpp"
#include "veil/he/inference/pipeline.hpp"
#include "veil/he/inference/runtime.hpp"
#include "veil/he/keys.hpp"
#include "veil/model/graph.hpp"

namespace veil::he {

// A linear layer's nonzero weights by row (compressed sparse rows).
struct SparseRows {
  size_t rows = 0, cols = 0;
  std::vector<uint32_t> start;  // rows + 1 offsets into col and value
  std::vector<uint32_t> col;
  std::vector<double> value;

  static SparseRows from_dense(std::span<const double> w, size_t rows, size_t cols);
  size_t nonzeros() const { return col.size(); }
};

struct BatchLinear {
  std::string name;
  SparseRows weights;
  std::vector<double> bias;
  uint32_t level = 0;  // of the input
};

struct BatchSquare {
  std::string name;
  std::vector<double> shift;  // x (x + shift)
  uint32_t level = 0;
};

// x (x + c) for a size-2 ciphertext, as the size-3 tensor (a0 t0, a1 (a0 + t0), a1^2) with
// t0 = a0 + [c scale], the same residues as Evaluator::multiply(x, add_const(x, c)) without the
// intermediate ciphertext. Scale x.scale^2, level unchanged.
Ciphertext square_shifted(const HeContext& ctx, const Ciphertext& x, double c);

using BatchLayer = std::variant<BatchLinear, BatchSquare>;

struct BatchProgram {
  std::vector<BatchLayer> layers;
  uint32_t input_dim = 0, output_dim = 0;
  uint32_t depth = 0;
};

// Parameters for batch packing: choose_parameters for the stages' depth with no slot
// constraint (the smallest ring whose modulus holds the depth at a scale of at least 2^28).
CkksParameters choose_batch_parameters(const std::vector<Stage>& stages, SecurityLevel security);

// Refused with InvalidArgument if ctx has fewer levels than the program's depth.
BatchProgram compile_batch_program(const std::vector<Stage>& stages, const HeContext& ctx);

// The plaintext-weight linear map on ciphertexts of equal level, size and scale, without
// rescale: out_j = sum_k [round(w_jk weight_scale)] x_k (+ b_j if `bias` is given) at scale
// x.scale * weight_scale.
std::vector<Ciphertext> multiply_plain_weights(const HeContext& ctx, const SparseRows& w,
                                               double weight_scale,
                                               const std::vector<Ciphertext>& x,
                                               std::span<const double> bias = {});

// Data source: one ciphertext per feature, slot i = images[i][feature] (public key only).
std::vector<Ciphertext> encrypt_batch(const BatchProgram& program, const ContextPtr& ctx,
                                      const PublicKey& pub,
                                      const std::vector<std::vector<double>>& images);

class BatchRunner {
 public:
  // Relinearisation key only: batch packing never rotates.
  BatchRunner(ContextPtr ctx, const BatchProgram& program, const RelinKeys& relin);
  // Consumes the input (each layer's inputs are freed once the layer is done). stats counts
  // the batch's operations (products = weight terms x ciphertext components).
  std::vector<Ciphertext> run(std::vector<Ciphertext> input, RunStats* stats = nullptr) const;

 private:
  std::vector<Ciphertext> linear(const BatchLinear& l, const std::vector<Ciphertext>& x,
                                 RunStats& stats) const;
  std::vector<Ciphertext> square(const BatchSquare& s, const std::vector<Ciphertext>& x,
                                 RunStats& stats) const;

  ContextPtr ctx_;
  const BatchProgram& program_;
  const RelinKeys& relin_;
};

// Owner: the outputs of `count` images, out[i][j] = slot i of output ciphertext j.
std::vector<std::vector<double>> decrypt_batch(const ContextPtr& ctx, const SecretKey& secret,
                                               const std::vector<Ciphertext>& outputs,
                                               size_t count);

// `veil he eval --packing batch`: evaluate() with batch packing, `batch` images per ciphertext
// (0 = all slots; more than the slots is refused). images_per_s = images / inference seconds;
// the per-image times are the batches' times divided by their images.
HeEvalReport evaluate_batched(const model::Model& model, const data::Dataset& data,
                              const HeEvalOptions& options, size_t batch);

}  // namespace veil::he
