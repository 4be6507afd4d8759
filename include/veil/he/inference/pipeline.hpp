// The roles of homomorphic inference as functions, used by the `veil he` commands and by the
// one-shot `veil he eval` (which runs the same calls in one process, keeping the key separation:
// the edge's calls only ever see the evaluation keys).
//
//   owner:        plan_keys -> keys; encrypt_model (secret key: the weights are the owner's IP)
//   data source:  FeatureExtractor (plaintext prefix) + encrypt_features (public key)
//   edge:         ProgramRunner (relinearization + Galois keys only)
//   owner:        decrypt_output (secret key)
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "veil/core/tensor.hpp"
#include "veil/data/dataset.hpp"
#include "veil/he/inference/affine_program.hpp"
#include "veil/he/inference/model_file.hpp"
#include "veil/model/graph.hpp"

namespace veil::he {

// What keys for `model` must hold: parameters for the deepest of `parts` (those the model can
// run; parts it cannot run are skipped, at least one must work) and every rotation they use.
struct KeyPlan {
  CkksParameters params;
  std::vector<int> rotation_steps;
  std::vector<Part> parts;  // the parts these keys serve
  uint32_t depth = 0;
};
KeyPlan plan_keys(const model::Model& model, const std::vector<Part>& parts, SecurityLevel security,
                  const SplitOptions& split = {}, int min_scale_bits = 0);

// The owner's step: split, compile for `ctx`, encrypt the weights under the secret key. The
// rotations the program needs must be among `available_steps` (the eval keys).
EncryptedModel encrypt_model(const model::Model& model, Part part, const ContextPtr& ctx,
                             const SecretKey& secret, const PublicKey& pub,
                             const std::vector<int>& available_steps,
                             const SplitOptions& split = {}, const CompileOptions& compile = {});

// The plaintext layers before the encrypted part (none for part `all`).
class FeatureExtractor {
 public:
  explicit FeatureExtractor(const EncryptedModel& model);
  ~FeatureExtractor();
  // Model inputs [B, ...] (already normalised) -> B feature vectors of the encrypted part.
  std::vector<std::vector<double>> run(const Tensor& inputs);
  const Shape& input_shape() const { return input_shape_; }  // without batch

 private:
  std::unique_ptr<model::Model> prefix_;
  std::vector<int64_t> features_shape_;
  Shape input_shape_;
  uint32_t feature_dim_ = 0;
};

struct HeEvalOptions {
  Part part = Part::All;
  bool features_encrypted = true;
  SecurityLevel security = SecurityLevel::k128;
  int64_t limit = 0;  // 0 = all images
  int threads = 0;    // 0 = all hardware threads
  SplitOptions split;
  bool progress = true;
  // Required activation in the encrypted part: nullopt = any, false = none, true = a square.
  std::optional<bool> require_activation;
};

struct HeEvalReport {
  std::string part, features;
  // "encrypted" (latency packing: the owner's weights are encrypted) or "plain" (batch packing:
  // the edge holds the model in the clear, only the data is encrypted).
  std::string weights = "encrypted";
  std::string packing = "latency";  // or "batch"
  size_t batch = 1;                 // images per ciphertext
  int security = 128;
  size_t poly_degree = 0;
  std::vector<int> coeff_bits;
  size_t slots = 0;
  uint32_t depth = 0;
  std::vector<std::string> layers;  // "fc1: diagonal 512x1600, 16 terms" ...
  std::vector<std::string> encrypted_nodes;
  int64_t images = 0;
  double plain_top1 = 0, encrypted_top1 = 0, agreement = 0;
  double keygen_s = 0, encrypt_model_s = 0;
  double encrypt_s_per_image = 0, infer_s_per_image = 0, decrypt_s_per_image = 0;
  double images_per_s = 0;
  double peak_rss_mb = 0;
  double encrypted_model_mb = 0, eval_keys_mb = 0, public_key_mb = 0;
  double input_kb_per_image = 0, output_kb_per_image = 0;
  size_t levels_left = 0;
  double precision_bits = 0;  // -log2 of the largest |encrypted - plaintext| output error
  double max_abs_error = 0;
  RunStats ops_per_image;  // batch packing: per batch of `batch` images
  int threads = 1;
};

// InvalidArgument if the split's encrypted part has (or lacks) the activation options require.
void check_required_activation(const SplitModel& split, const HeEvalOptions& options);

HeEvalReport evaluate(const model::Model& model, const data::Dataset& data,
                      const HeEvalOptions& options);

}  // namespace veil::he
