// `veil he keygen | encrypt-model | encrypt-input | infer | decrypt | eval`: homomorphic
// inference by role (docs/HE.md "Encrypted inference").
#include <fmt/format.h>

#include <chrono>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "common.hpp"
#include "secret_args.hpp"
#include "validators.hpp"
#include "veil/cli/commands.hpp"
#include "veil/core/error.hpp"
#include "veil/core/hex.hpp"
#include "veil/core/io.hpp"
#include "veil/core/output_guard.hpp"
#include "veil/core/peak_rss.hpp"
#include "veil/core/printable.hpp"
#include "veil/core/progress.hpp"
#include "veil/core/temporaries.hpp"
#include "veil/data/dataset.hpp"
#include "veil/data/npy.hpp"
#include "veil/he/inference/batch_program.hpp"
#include "veil/he/inference/pipeline.hpp"
#include "veil/he/key_set.hpp"
#include "veil/model/graph.hpp"
#include "veil/nn/preprocess.hpp"

namespace veil::cli {

namespace {

namespace fs = std::filesystem;

he::SecurityLevel security_level(int bits) { return static_cast<he::SecurityLevel>(bits); }

he::SplitOptions split_options(bool no_merge) {
  he::SplitOptions s;
  s.merge_linear = !no_merge;
  return s;
}

// ---- keygen ----

struct KeygenArgs {
  std::string model, out_dir;
  std::vector<std::string> parts;
  int security = 128;
  int threads = 0;
  bool no_merge = false, force = false, json = false;
  SecretArgs secret;
};

void run_keygen(const KeygenArgs& a) {
  const fs::path dir = a.out_dir;
  OutputGuard guard;
  guard.input("--model", a.model).output_dir("--out-dir", dir);
  for (const char* f : {he::kSecretKeyFileName, he::kPublicKeyFileName, he::kEvalKeyFileName})
    guard.secret_output("--out-dir", dir / f, "HE key");
  a.secret.declare(guard, /*creates=*/true);
  guard.check(a.force);
  std::vector<he::Part> parts;
  for (const auto& p : a.parts) parts.push_back(he::parse_part(p));
  if (parts.empty()) parts = {he::Part::Last, he::Part::Classifier, he::Part::All};
  auto m = load_model(a.model);
  // Resolve an existing secret first (a wrong passphrase file fails before the work).
  std::error_code ec;
  const bool create_secret = !a.secret.secret.empty() && !fs::exists(a.secret.secret, ec);
  std::optional<KeySecret> secret;
  if (!create_secret) secret = a.secret.resolve(false);
  const auto plan = he::plan_keys(m, parts, security_level(a.security), split_options(a.no_merge));
  auto keys = he::generate_owner_keys(plan.params, plan.rotation_steps,
                                      a.threads > 0 ? a.threads : he::default_thread_count());
  std::optional<PendingTemporary> new_secret;
  if (create_secret) {
    secret = a.secret.resolve(true);
    new_secret.emplace(a.secret.secret);
  }
  he::save_key_dir(dir, keys, *secret);
  if (new_secret) new_secret->release();
  std::vector<std::string> served;
  for (auto p : plan.parts) served.push_back(he::part_name(p));
  if (a.json) {
    nlohmann::json j;
    j["out_dir"] = a.out_dir;
    j["security"] = a.security;
    j["poly_degree"] = plan.params.poly_degree;
    j["coeff_bits"] = plan.params.coeff_bits;
    j["depth"] = plan.depth;
    j["rotation_steps"] = plan.rotation_steps;
    j["parts"] = served;
    j["key_set_id"] = to_hex(keys.id);
    for (const char* f : {he::kSecretKeyFileName, he::kPublicKeyFileName, he::kEvalKeyFileName})
      j["bytes"][f] = fs::file_size(dir / f);
    print_json(j);
    return;
  }
  std::string bits;
  for (int b : plan.params.coeff_bits) bits += (bits.empty() ? "" : ",") + std::to_string(b);
  fmt::print("keys in {}: {}-bit security, N = {}, primes {{{}}}, {} levels, {} rotation keys\n",
             printable(a.out_dir), a.security, plan.params.poly_degree, bits, plan.depth,
             plan.rotation_steps.size());
  fmt::print("they serve the part(s): {}\n", fmt::join(served, ", "));
  // public.vkey is not authenticated (no one but the owner holds a secret): a data source
  // compares this id with what encrypt-input prints, out of band.
  fmt::print("key set id {}\n", to_hex(keys.id));
  fmt::print("give the untrusted machine {} and {} only; {} stays with the owner\n",
             he::kPublicKeyFileName, he::kEvalKeyFileName, he::kSecretKeyFileName);
}

// ---- encrypt-model ----

struct EncryptModelArgs {
  std::string model, part = "all", keys, out;
  int threads = 0;
  bool no_merge = false;
  SecretArgs secret;
};

void run_encrypt_model(const EncryptModelArgs& a) {
  OutputGuard guard;
  guard.input("--model", a.model).output("--out", a.out);
  a.secret.declare(guard, false);
  guard.check();
  const auto part = he::parse_part(a.part);
  auto m = load_model(a.model);
  const auto secret = a.secret.resolve(false);
  const int threads = a.threads > 0 ? a.threads : he::default_thread_count();
  auto keys = he::load_owner_keys(a.keys, secret, threads);
  auto em = he::encrypt_model(m, part, keys.ctx, keys.secret, keys.pub, keys.steps,
                              split_options(a.no_merge));
  em.key_id = keys.id;
  const auto bytes = he::serialize_model(*keys.ctx, em);
  write_file_atomic(a.out, bytes);
  fmt::print("{}: part '{}' encrypted ({} layers, {} levels), {:.1f} MB\n", printable(a.out),
             em.part, em.program.layout.layers.size(), em.program.layout.depth,
             double(bytes.size()) / (1 << 20));
}

// ---- encrypt-input ----

struct EncryptInputArgs {
  std::string keys, model, input, data, out, features = "encrypted";
  int64_t limit = 0;
  int threads = 0;
};

// Test images as the model takes them: normalised as its metadata says (as veil eval does).
Tensor dataset_inputs(const he::EncryptedModel& em, const std::string& spec, int64_t limit) {
  auto data = data::load_dataset(spec, data::Split::Test, limit);
  if (data.size() == 0) throw InvalidArgument("no test images in " + printable(spec));
  Tensor x = data.batch(0, data.size());
  model::Model meta;
  meta.metadata.insert(em.metadata.begin(), em.metadata.end());
  nn::normalization_of(meta).apply(x);
  return x;
}

void run_encrypt_input(const EncryptInputArgs& a) {
  OutputGuard().input("--model", a.model).input("--input", a.input).output("--out", a.out).check();
  if (a.input.empty() == a.data.empty())
    throw InvalidArgument("give exactly one of --input FILE or --data D");
  const int threads = a.threads > 0 ? a.threads : he::default_thread_count();
  auto keys = he::load_public_keys(a.keys, threads);  // a data source holds no other key
  // The plaintext layers and the layout; the encrypted weights are not the data source's.
  const auto em =
      he::load_model_file(a.model, *keys.ctx, &keys.id, {.prefix = true, .weights = false});
  he::FeatureExtractor fx(em);
  Tensor x = a.input.empty() ? dataset_inputs(em, a.data, a.limit) : data::read_tensor(a.input);
  int64_t per = 1;
  for (int64_t d : fx.input_shape()) per *= d;
  if (x.numel() == per) {
    Shape s = fx.input_shape();
    s.insert(s.begin(), 1);
    x.reshape(s);
  }
  if (x.rank() < 1 || x.numel() % per != 0 || x.numel() / per != x.dim(0) || x.dim(0) == 0)
    throw InvalidArgument(printable(a.input) + ": shape " + shape_to_string(x.shape()) +
                          " is not a batch of the model input " +
                          shape_to_string(fx.input_shape()));
  for (float v : x.floats())
    if (!std::isfinite(v)) throw InvalidArgument(printable(a.input) + ": a non-finite value");
  he::CiphertextBatch b;
  b.key_id = keys.id;
  b.program = he::program_id(em.program.layout);
  const int64_t images = x.dim(0);
  if (a.features == "plain") {
    b.kind = he::BatchKind::PlainInput;
    b.values = static_cast<uint32_t>(per);
    auto f = x.floats();
    b.plain.assign(f.begin(), f.end());
  } else {
    b.kind = he::BatchKind::EncryptedInput;
    b.vectors = em.program.layout.input_vectors();
    b.values = em.program.layout.input_dim;
    ProgressBar bar("encrypt", images);
    for (const auto& f : fx.run(x)) {
      for (auto& c : he::encrypt_features(em.program.layout, keys.ctx, keys.pub, f))
        b.cts.push_back(std::move(c));
      bar.update(static_cast<int64_t>(b.cts.size() / b.vectors));
    }
    bar.finish();
  }
  const auto bytes = he::serialize_batch(*keys.ctx, b);
  write_file_atomic(a.out, bytes);
  fmt::print("{}: {} image(s), {} ({:.1f} MB), key set id {}\n", printable(a.out), images,
             he::batch_kind_name(b.kind), double(bytes.size()) / (1 << 20), to_hex(keys.id));
}

// ---- infer ----

struct InferArgs {
  std::string model, input, keys, out;
  int threads = 0;
  bool json = false;
};

void run_infer(const InferArgs& a) {
  OutputGuard().input("--model", a.model).input("--input", a.input).output("--out", a.out).check();
  const int threads = a.threads > 0 ? a.threads : he::default_thread_count();
  auto keys = he::load_eval_keys(a.keys, threads);  // never the secret key
  // The plaintext layers only if the inputs are plaintext (read below, once the kind is known).
  auto em = he::load_model_file(a.model, *keys.ctx, &keys.id, {.prefix = false, .weights = true});
  const auto in = he::parse_batch(read_file(a.input, he::kMaxBatchFileBytes), *keys.ctx, &em);
  if (in.kind == he::BatchKind::PlainInput)
    em.prefix_onnx =
        he::load_model_file(a.model, *keys.ctx, &keys.id, {.prefix = true, .weights = false})
            .prefix_onnx;
  if (in.kind == he::BatchKind::EncryptedOutput)
    throw InvalidArgument(printable(a.input) + " is an encrypted output, not an input");
  he::ProgramRunner runner(keys.ctx, em.program, keys.relin, keys.galois);
  he::CiphertextBatch out;
  out.kind = he::BatchKind::EncryptedOutput;
  out.key_id = keys.id;
  out.program = in.program;
  out.values = em.program.layout.output_dim;
  const size_t images = in.images();
  ProgressBar bar("infer", static_cast<int64_t>(images));
  const auto t0 = std::chrono::steady_clock::now();
  if (in.kind == he::BatchKind::PlainInput) {
    he::FeatureExtractor fx(em);
    int64_t per = 1;
    for (int64_t d : fx.input_shape()) per *= d;
    if (in.values != per)
      throw InvalidArgument(printable(a.input) + ": " + std::to_string(in.values) +
                            " values per image, the model input has " + std::to_string(per));
    Shape s = fx.input_shape();
    s.insert(s.begin(), static_cast<int64_t>(images));
    const auto feats = fx.run(Tensor::from_floats(s, in.plain));
    for (const auto& f : feats) {
      out.cts.push_back(runner.run_plain(f));
      bar.update(static_cast<int64_t>(out.cts.size()));
    }
  } else {
    for (size_t i = 0; i < images; ++i) {
      std::vector<he::Ciphertext> x(in.cts.begin() + i * in.vectors,
                                    in.cts.begin() + (i + 1) * in.vectors);
      out.cts.push_back(runner.run(x));
      bar.update(static_cast<int64_t>(i + 1));
    }
  }
  bar.finish();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  write_file_atomic(a.out, he::serialize_batch(*keys.ctx, out));
  if (a.json) {
    nlohmann::json j;
    j["images"] = images;
    j["input"] = he::batch_kind_name(in.kind);
    j["infer_s_per_image"] = seconds / double(images);
    j["peak_rss_mb"] = peak_rss_mb();
    j["threads"] = threads;
    print_json(j);
  }
}

// ---- decrypt ----

struct DecryptArgs {
  std::string keys, input, output;
  SecretArgs secret;
};

void run_decrypt(const DecryptArgs& a) {
  OutputGuard guard;
  guard.input("--input", a.input).output("--output", a.output);
  a.secret.declare(guard, false);
  guard.check();
  const auto secret = a.secret.resolve(false);
  auto keys = he::load_owner_keys(a.keys, secret, 1);
  const auto b = he::parse_batch(read_file(a.input, he::kMaxBatchFileBytes), *keys.ctx);
  if (b.kind != he::BatchKind::EncryptedOutput)
    throw InvalidArgument(printable(a.input) + " is an " + he::batch_kind_name(b.kind) +
                          ", not an encrypted output (decrypt what `veil he infer` wrote)");
  if (b.key_id != keys.id)
    throw IntegrityError(printable(a.input) + " was encrypted under other keys");
  const size_t images = b.images();
  std::vector<float> y;
  for (const auto& c : b.cts) {
    auto v = he::decrypt_output(keys.ctx, keys.secret, c, b.values);
    for (double d : v) {
      if (!std::isfinite(d)) throw IntegrityError("a decrypted value is not finite");
      y.push_back(static_cast<float>(d));
    }
  }
  data::write_npy(a.output,
                  Tensor::from_floats({static_cast<int64_t>(images), int64_t{b.values}}, y));
  fmt::print("{}: {} image(s) x {} outputs\n", printable(a.output), images, b.values);
}

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
    throw InvalidArgument(
        "--batch applies to --packing batch (latency packing holds one image "
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
  fmt::print("packing {} ({} image{} per ciphertext), weights {}\n", r.packing, r.batch,
             r.batch == 1 ? "" : "s", r.weights);
  for (const auto& l : r.layers) fmt::print("  {}\n", l);
  fmt::print("{} images: top-1 encrypted {:.2f} %, plaintext {:.2f} %, agreement {:.2f} %\n",
             r.images, 100 * r.encrypted_top1, 100 * r.plain_top1, 100 * r.agreement);
  fmt::print(
      "per image: encrypt {:.4f} s, infer {:.4f} s, decrypt {:.4f} s ({:.1f} images/s, {} "
      "threads)\n",
      r.encrypt_s_per_image, r.infer_s_per_image, r.decrypt_s_per_image, r.images_per_s, r.threads);
  fmt::print(
      "sizes: encrypted model {:.1f} MB, evaluation keys {:.1f} MB, input {:.0f} kB and output "
      "{:.0f} kB per image; peak RSS {:.0f} MB\n",
      r.encrypted_model_mb, r.eval_keys_mb, r.input_kb_per_image, r.output_kb_per_image,
      r.peak_rss_mb);
  fmt::print("precision: largest output error {:.2e} ({:.1f} bits), {} levels left\n",
             r.max_abs_error, r.precision_bits, r.levels_left);
}

}  // namespace

void add_he_inference_commands(CLI::App& he) {
  auto ka = std::make_shared<KeygenArgs>();
  auto* kg = he.add_subcommand(
      "keygen", "Owner: CKKS keys sized for a model (secret.vkey, public.vkey, eval.vkey)");
  kg->add_option("--model", ka->model, "ONNX model the keys are for")->required();
  kg->add_option("--out-dir", ka->out_dir, "Directory for the three key files")->required();
  kg->add_option("--security", ka->security, "128, 192 or 256 bits")
      ->check(CLI::IsMember({128, 192, 256}))
      ->capture_default_str();
  kg->add_option("--part", ka->parts,
                 "Part(s) the keys must serve: last, classifier, all (default: every part the "
                 "model can run)")
      ->check(CLI::IsMember({"last", "classifier", "all"}));
  kg->add_option("--threads", ka->threads, "Threads (0 = all hardware threads)")
      ->check(in_range(0, 256));
  kg->add_flag("--no-merge", ka->no_merge, "Plan for unmerged linear layers (see he eval)");
  kg->add_flag("--force", ka->force, "Replace existing key files");
  kg->add_flag("--json", ka->json, "Machine-readable report on stdout");
  ka->secret.add(kg, /*creates=*/true);
  kg->callback([ka] { run_keygen(*ka); });

  auto ma = std::make_shared<EncryptModelArgs>();
  auto* em = he.add_subcommand("encrypt-model",
                               "Owner: encrypt a part of a model's weights under the secret key");
  em->add_option("--model", ma->model, "ONNX model")->required();
  em->add_option("--part", ma->part, "last | classifier | all")
      ->check(CLI::IsMember({"last", "classifier", "all"}))
      ->capture_default_str();
  em->add_option("--keys", ma->keys, "Owner key directory (from he keygen)")->required();
  em->add_option("--out", ma->out, "Encrypted model (.vhe)")->required();
  em->add_option("--threads", ma->threads, "Threads (0 = all hardware threads)")
      ->check(in_range(0, 256));
  em->add_flag("--no-merge", ma->no_merge, "Keep every weight layer its own encrypted layer");
  ma->secret.add(em, false);
  em->callback([ma] { run_encrypt_model(*ma); });

  auto ia = std::make_shared<EncryptInputArgs>();
  auto* ei = he.add_subcommand(
      "encrypt-input", "Data source: encrypt images for an encrypted model (public key only)");
  ei->add_option("--keys", ia->keys, "Directory holding public.vkey")->required();
  ei->add_option("--model", ia->model, "Encrypted model (.vhe)")->required();
  ei->add_option("--input", ia->input, "Model input(s), .npy or .pb, [B, ...] or one image");
  ei->add_option("--data", ia->data,
                 "Or test images: fashion-mnist or a dataset directory (normalised as the model's "
                 "metadata says)");
  ei->add_option("--limit", ia->limit, "With --data: the first N test images (0 = all)")
      ->check(image_count());
  ei->add_option("--out", ia->out, "Ciphertext file (.vct)")->required();
  ei->add_option("--features", ia->features,
                 "encrypted: run the model's plaintext layers here and encrypt their output; "
                 "plain: hand the input to the edge, which multiplies it by the encrypted weights")
      ->check(CLI::IsMember({"plain", "encrypted"}))
      ->capture_default_str();
  ei->add_option("--threads", ia->threads, "Threads (0 = all hardware threads)")
      ->check(in_range(0, 256));
  ei->callback([ia] { run_encrypt_input(*ia); });

  auto ra = std::make_shared<InferArgs>();
  auto* in = he.add_subcommand(
      "infer", "Untrusted edge: run an encrypted model on encrypted inputs (evaluation keys only)");
  in->add_option("--model", ra->model, "Encrypted model (.vhe)")->required();
  in->add_option("--input", ra->input, "Ciphertext file from he encrypt-input")->required();
  in->add_option("--keys", ra->keys, "Directory holding public.vkey and eval.vkey")->required();
  in->add_option("--out", ra->out, "Encrypted outputs (.vct)")->required();
  in->add_option("--threads", ra->threads, "Threads (0 = all hardware threads)")
      ->check(in_range(0, 256));
  in->add_flag("--json", ra->json, "Report time per image and peak memory on stdout");
  in->callback([ra] { run_infer(*ra); });

  auto da = std::make_shared<DecryptArgs>();
  auto* de = he.add_subcommand("decrypt", "Owner: decrypt encrypted outputs to .npy logits");
  de->add_option("--keys", da->keys, "Owner key directory")->required();
  de->add_option("--input", da->input, "Encrypted outputs from he infer")->required();
  de->add_option("--output", da->output, "Output .npy, [images, outputs] float32")->required();
  da->secret.add(de, false);
  de->callback([da] { run_decrypt(*da); });

  auto ea = std::make_shared<EvalArgs>();
  auto* eval = he.add_subcommand(
      "eval", "Encrypted inference on test images, end to end, against the plaintext model");
  eval->add_option("--model", ea->model, "ONNX model")->required();
  eval->add_option("--data", ea->data, "fashion-mnist or a dataset directory")
      ->capture_default_str();
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
