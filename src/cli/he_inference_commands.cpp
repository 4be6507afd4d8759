// `veil he keygen | encrypt-model | encrypt-input | infer | decrypt | eval`: homomorphic
// inference by role (docs/HE.md "Encrypted inference").
#include <fmt/format.h>

#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "common.hpp"
#include "validators.hpp"
#include "veil/cli/commands.hpp"
#include "veil/core/error.hpp"
#include "veil/data/dataset.hpp"
#include "veil/he/inference/batch_program.hpp"
#include "veil/he/inference/pipeline.hpp"

namespace veil::cli {

namespace {

he::SecurityLevel security_level(int bits) { return static_cast<he::SecurityLevel>(bits); }

struct EvalArgs {
  std::string model, data = "fashion-mnist", mode = "full", features = "encrypted";
  std::string packing = "latency";
  int64_t batch = 0;  // --packing batch: images per ciphertext, 0 = all slots
  int security = 128;
  int64_t limit = 100;
  int threads = 0;
  bool no_merge = false, json = false, quiet = false;
};

void run_eval(const EvalArgs& a) {
  if (a.batch != 0 && a.packing != "batch")
    throw InvalidArgument("--batch applies to --packing batch (latency packing holds one image "
                          "per ciphertext)");
  auto m = load_model(a.model);
  he::HeEvalOptions o;
  if (a.mode == "last") {
    o.part = he::Part::Last;
  } else if (a.mode == "classifier") {
    o.part = he::Part::Classifier;
    o.require_activation = false;
  } else if (a.mode == "classifier-square") {
    o.part = he::Part::Classifier;
    o.require_activation = true;
  } else {
    o.part = he::Part::All;
  }
  o.features_encrypted = a.features == "encrypted";
  o.security = security_level(a.security);
  o.limit = a.limit;
  o.threads = a.threads;
  o.split.merge_linear = !a.no_merge;
  o.progress = !a.quiet;
  auto data = data::load_dataset(a.data, data::Split::Test, a.limit);
  const auto r = a.packing == "batch"
                     ? he::evaluate_batched(m, data, o, static_cast<size_t>(a.batch))
                     : he::evaluate(m, data, o);
  if (a.json) {
    nlohmann::json j;
    j["mode"] = a.mode;
    j["part"] = r.part;
    j["features"] = r.features;
    j["weights"] = r.weights;
    j["packing"] = r.packing;
    j["batch"] = r.batch;
    j["security"] = r.security;
    j["poly_degree"] = r.poly_degree;
    j["coeff_bits"] = r.coeff_bits;
    j["slots"] = r.slots;
    j["depth"] = r.depth;
    j["layers"] = r.layers;
    j["encrypted_nodes"] = r.encrypted_nodes;
    j["merge_linear"] = !a.no_merge;
    j["images"] = r.images;
    j["plain_top1"] = r.plain_top1;
    j["encrypted_top1"] = r.encrypted_top1;
    j["agreement"] = r.agreement;
    j["keygen_s"] = r.keygen_s;
    j["encrypt_model_s"] = r.encrypt_model_s;
    j["encrypt_s_per_image"] = r.encrypt_s_per_image;
    j["infer_s_per_image"] = r.infer_s_per_image;
    j["decrypt_s_per_image"] = r.decrypt_s_per_image;
    j["images_per_s"] = r.images_per_s;
    j["peak_rss_mb"] = r.peak_rss_mb;
    j["encrypted_model_mb"] = r.encrypted_model_mb;
    j["eval_keys_mb"] = r.eval_keys_mb;
    j["public_key_mb"] = r.public_key_mb;
    j["input_kb_per_image"] = r.input_kb_per_image;
    j["output_kb_per_image"] = r.output_kb_per_image;
    j["levels_left"] = r.levels_left;
    j["precision_bits"] = r.precision_bits;
    j["max_abs_error"] = r.max_abs_error;
    // Batch packing counts the operations of one batch (one ciphertext per neuron).
    const char* ops_key = r.packing == "batch" ? "ops_per_batch" : "ops_per_image";
    j[ops_key] = {{"products", r.ops_per_image.products},
                  {"rotations", r.ops_per_image.rotations},
                  {"relinearizations", r.ops_per_image.relinearizations},
                  {"rescales", r.ops_per_image.rescales}};
    j["threads"] = r.threads;
    print_json(j);
    return;
  }
  fmt::print("mode {} ({} encrypted, features {}), {}-bit security: N = {}, {} levels\n", a.mode,
             r.part, r.features, r.security, r.poly_degree, r.depth);
  fmt::print("packing {} ({} images per ciphertext), weights {}\n", r.packing, r.batch, r.weights);
  for (const auto& l : r.layers) fmt::print("  {}\n", l);
  fmt::print("{} images: top-1 encrypted {:.2f} %, plaintext {:.2f} %, agreement {:.2f} %\n",
             r.images, 100 * r.encrypted_top1, 100 * r.plain_top1, 100 * r.agreement);
  fmt::print("per image: encrypt {:.4f} s, infer {:.4f} s, decrypt {:.4f} s ({:.1f} images/s, {} threads)\n",
             r.encrypt_s_per_image, r.infer_s_per_image, r.decrypt_s_per_image, r.images_per_s,
             r.threads);
  fmt::print("sizes: encrypted model {:.1f} MB, evaluation keys {:.1f} MB, input {:.0f} kB and output {:.0f} kB per image; peak RSS {:.0f} MB\n",
             r.encrypted_model_mb, r.eval_keys_mb, r.input_kb_per_image, r.output_kb_per_image,
             r.peak_rss_mb);
  fmt::print("precision: largest output error {:.2e} ({:.1f} bits), {} levels left\n",
             r.max_abs_error, r.precision_bits, r.levels_left);
}

}  // namespace

void add_he_inference_commands(CLI::App& he) {
  auto ea = std::make_shared<EvalArgs>();
  auto* eval = he.add_subcommand(
      "eval", "Encrypted inference on test images, end to end, against the plaintext model");
  eval->add_option("--model", ea->model, "ONNX model")->required();
  eval->add_option("--data", ea->data, "fashion-mnist or a dataset directory")->capture_default_str();
  eval->add_option("--mode", ea->mode, "last | classifier | classifier-square | full")
      ->check(CLI::IsMember({"last", "classifier", "classifier-square", "full"}))
      ->capture_default_str();
  eval->add_option("--features", ea->features,
                   "encrypted: the data source encrypts the encrypted part's input; plain: it "
                   "stays plaintext on the edge (encrypted weights x plaintext features)")
      ->check(CLI::IsMember({"plain", "encrypted"}))
      ->capture_default_str();
  eval->add_option("--packing", ea->packing,
                   "latency: one image per ciphertext, encrypted weights; batch: one image per "
                   "slot, plaintext weights (throughput, images/s)")
      ->check(CLI::IsMember({"latency", "batch"}))
      ->capture_default_str();
  eval->add_option("--batch", ea->batch, "--packing batch: images per batch (0 = all slots)")
      ->check(in_range<int64_t>(0, int64_t{1} << 20));
  eval->add_option("--security", ea->security, "128, 192 or 256 bits")
      ->check(CLI::IsMember({128, 192, 256}))
      ->capture_default_str();
  eval->add_option("--limit", ea->limit, "Test images (0 = all)")
      ->check(image_count())
      ->capture_default_str();
  eval->add_option("--threads", ea->threads, "Threads (0 = all hardware threads)")
      ->check(in_range(0, 256));
  eval->add_flag("--no-merge", ea->no_merge,
                 "Keep every weight layer its own encrypted layer (adjacent linear layers are "
                 "merged into one matrix by default)");
  eval->add_flag("--json", ea->json, "Machine-readable report on stdout");
  eval->add_flag("--quiet", ea->quiet, "No progress output");
  eval->callback([ea] { run_eval(*ea); });
}

}  // namespace veil::cli
