// veil lock keygen | encrypt | decrypt | eval | sweep | run | attack {outlier,
// finetune}
//
// Flow (docs/LOCK.md): `keygen` reads the plaintext model M and writes the key
// K (positions, signs, original and locked bits) bound to the fingerprint of
// the locked model it describes; `encrypt` checks M against K and writes the
// locked model L; `decrypt` checks L against K and writes R, bit-identical to
// M. K is AES-256-GCM encrypted under --secret or --passphrase-file.
#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <filesystem>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <set>
#include <sstream>

#include "common.hpp"
#include "secret_args.hpp"
#include "validators.hpp"
#include "veil/cli/commands.hpp"
#include "veil/core/error.hpp"
#include "veil/core/hex.hpp"
#include "veil/core/io.hpp"
#include "veil/core/output_guard.hpp"
#include "veil/core/printable.hpp"
#include "veil/core/progress.hpp"
#include "veil/core/temporaries.hpp"
#include "veil/data/dataset.hpp"
#include "veil/lock/attack.hpp"
#include "veil/lock/evaluate.hpp"
#include "veil/lock/keyfile.hpp"
#include "veil/lock/keygen.hpp"
#include "veil/lock/scheduler.hpp"
#include "veil/lock/sweep.hpp"
#include "veil/model/onnx.hpp"
#include "veil/nn/executor.hpp"
#include "veil/nn/trainer.hpp"

namespace veil::cli {

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Encrypt, decrypt and the attacks read a model, a key and its secret and write a model.
void check_model_output(const std::string& model, const std::string& key, const SecretArgs& secret,
                        const std::string& out) {
  OutputGuard guard;
  guard.input("--model", model).input("--key", key).output("--out", out);
  secret.declare(guard, false);
  guard.check();
}

std::string pct(double v) { return fmt::format("{:.2f}", 100 * v); }

json layers_json(const lock::LockKey& key) {
  json arr = json::array();
  for (const auto& l : key.layers)
    arr.push_back({{"tensor", l.tensor},
                   {"node", l.node},
                   {"weights", l.numel},
                   {"encrypted", l.entries.size()}});
  return arr;
}

int64_t total_weights(const model::Graph& g) {
  int64_t n = 0;
  std::set<std::string> seen;
  for (const auto& ref : model::weight_tensors(g))
    if (seen.insert(ref.tensor).second) n += g.initializers.at(ref.tensor).numel();
  return n;
}

// ---- keygen
// -----------------------------------------------------------------------------

struct KeygenArgs {
  std::string model, data = "fashion-mnist", key, mode = "sfge";
  std::string intensity_mode = "absolute", objective = "ce", preset = lock::kDefaultPreset;
  lock::KeygenOptions opts;
  SecretArgs secret;
  bool json = false;
  bool force = false;
  CLI::App* cmd = nullptr;
};

// "sfge" / "i-SFGE" plus the non-reference options, for reports.
std::string method_name(const lock::KeyParams& p) {
  std::string s = std::string(p.incremental ? "i-" : "") +
                  (p.mode == lock::LockMode::Sfge ? "SFGE" : "SFGE-stealthy");
  if (p.objective == lock::Objective::Collapse) s += fmt::format(" collapse->{}", p.target_class);
  if (p.incremental && p.per_round != 1) s += fmt::format(" {}/round", p.per_round);
  return s;
}

std::string intensity_text(const lock::KeyParams& p) {
  if (p.mode != lock::LockMode::Sfge) return "in-distribution";
  return p.intensity_mode == lock::IntensityMode::Relative
             ? fmt::format("{:g} x max|w|", p.intensity)
             : fmt::format("{:g}", p.intensity);
}

void run_keygen(const KeygenArgs& a) {
  {
    // The key is the only way back from the locked model: replacing one needs --force.
    OutputGuard guard;
    guard.input("--model", a.model).secret_output("--key", a.key, "lock key");
    a.secret.declare(guard, /*creates=*/true);
    guard.check(a.force);
  }
  lock::KeygenOptions o = a.opts;
  o.mode = lock::parse_lock_mode(a.mode);
  o.intensity_mode = lock::parse_intensity_mode(a.intensity_mode);
  o.objective = lock::parse_objective(a.objective);
  {
    // The preset supplies every option the command line did not give explicitly (CLI11's
    // count() is the number of times an option was given, 0 for a default).
    lock::KeygenOptions p = o;
    lock::apply_preset(p, a.preset);
    auto given = [&](const char* name) { return a.cmd && a.cmd->count(name) > 0; };
    if (!given("--num")) o.num = p.num;
    if (!given("--intensity")) o.intensity = p.intensity;
    if (!given("--max-percent")) o.max_percent = p.max_percent;
    if (!given("--incremental")) o.incremental = p.incremental;
    if (!given("--mode")) o.mode = p.mode;
    if (!given("--intensity-mode")) o.intensity_mode = p.intensity_mode;
    if (!given("--objective")) o.objective = p.objective;
    if (!given("--target-class")) o.target_class = p.target_class;
    if (!given("--per-round")) o.per_round = p.per_round;
  }
  o.dataset = a.data;
  lock::validate_options(o);
  // Resolve the secret first (a wrong passphrase file should fail before minutes of work), but
  // create a missing secret file only once the key is ready, so a failed keygen leaves nothing.
  std::error_code ec;
  const bool create_secret =
      !a.secret.secret.empty() && !std::filesystem::exists(a.secret.secret, ec);
  std::optional<lock::KeySecret> secret;
  if (!create_secret)
    secret = a.secret.resolve(/*create=*/false);
  else if (!a.secret.passphrase_file.empty())
    throw InvalidArgument("give exactly one of --secret S or --passphrase-file P");
  model::Model m = load_model(a.model);
  auto samples = data::load_dataset(a.data, data::Split::Train, o.samples);
  if (!a.json)
    std::cerr << fmt::format(
        "keygen: {} on {} training images (preset {}: {}{}, num {}, intensity {}, "
        "max-percent {}, objective {}{})\n",
        a.model, samples.size(), a.preset, o.incremental ? "i-" : "",
        o.mode == lock::LockMode::Sfge ? "SFGE" : "SFGE stealthy", o.num,
        o.mode != lock::LockMode::Sfge ? std::string("in-distribution")
        : o.intensity_mode == lock::IntensityMode::Relative
            ? fmt::format("{} x max|w|", o.intensity)
            : fmt::format("{}", o.intensity),
        o.max_percent, lock::to_string(o.objective),
        o.incremental && o.per_round != 1 ? fmt::format(", {} per round", o.per_round) : "");
  std::unique_ptr<ProgressBar> rounds;  // a live bar on a terminal, one line in a log
  if (!a.json && o.incremental)
    o.on_round = [&rounds](int64_t r, int64_t n) {
      if (!rounds) rounds = std::make_unique<ProgressBar>("  i-SFGE rounds", n);
      rounds->update(r + 1);
    };
  lock::LockKey key = lock::generate_key(m, samples, o);
  if (rounds) rounds->finish();
  // A new secret is worth nothing without the key it protects: until the key is saved, a
  // failure or a fatal signal removes it (a secret that existed before is never removed).
  std::optional<PendingTemporary> new_secret;
  if (create_secret) {
    secret = a.secret.resolve(/*create=*/true);
    new_secret.emplace(a.secret.secret);
  }
  try {
    lock::save_key_file(a.key, key, *secret);
  } catch (...) {
    if (create_secret) std::filesystem::remove(a.secret.secret, ec);
    throw;
  }
  new_secret.reset();
  // A layer the key does not touch is readable as it is: say so even in --json mode (stderr).
  auto unlocked = lock::unlocked_layers(m.graph, key);
  auto unlocked_json = json::array();
  for (const auto& u : unlocked) {
    std::cerr << fmt::format("warning: layer {} (node {}, {} weights) gets no locked weight ({})\n",
                             printable(u.tensor), printable(u.node), u.numel,
                             u.budget == 0
                                 ? fmt::format("budget min(floor({} x max-percent {}), num {}) = 0",
                                               u.numel, key.params.max_percent, key.params.num)
                                 : "no position with a nonzero gradient");
    unlocked_json.push_back(
        {{"tensor", u.tensor}, {"node", u.node}, {"weights", u.numel}, {"budget", u.budget}});
  }
  if (a.json) {
    print_json({{"key", a.key},
                {"model", a.model},
                {"layers", layers_json(key)},
                {"unlocked_layers", unlocked_json},
                {"encrypted_weights", key.total_entries()},
                {"keygen_seconds", key.params.keygen_seconds},
                {"locked_fingerprint", to_hex(key.locked_fingerprint)}});
    return;
  }
  for (const auto& l : key.layers)
    std::cout << fmt::format("  {:<28} {:>9} weights  {:>3} encrypted\n", printable(l.tensor),
                             l.numel, l.entries.size());
  std::cout << fmt::format(
      "wrote {}: {} encrypted weights in {} layers, {:.2f} s; bound to the "
      "locked model {}…\n",
      a.key, key.total_entries(), key.layers.size(), key.params.keygen_seconds,
      to_hex(key.locked_fingerprint).substr(0, 16));
}

// ---- encrypt / decrypt
// ------------------------------------------------------------------

struct ApplyArgs {
  std::string model, key, out;
  SecretArgs secret;
};

void run_encrypt(const ApplyArgs& a, bool decrypt) {
  check_model_output(a.model, a.key, a.secret, a.out);
  lock::KeySecret secret = a.secret.resolve(false);
  lock::LockKey key = lock::load_key_file(a.key, secret);
  model::Model m = load_model(a.model);
  if (decrypt)
    lock::decrypt_model(m, key);
  else
    lock::encrypt_model(m, key);
  model::save_onnx(m, a.out);
  // Both directions checked the result's fingerprint against the key before writing.
  std::cout << fmt::format(
      "{} {} weights in {} layers; wrote {} (fingerprint {}… = the key's {} model{})\n",
      decrypt ? "restored" : "encrypted", key.total_entries(), key.layers.size(), a.out,
      to_hex(decrypt ? key.plain_fingerprint : key.locked_fingerprint).substr(0, 16),
      decrypt ? "plaintext" : "locked", decrypt ? ": every weight bit-exact" : "");
}

// ---- eval
// -------------------------------------------------------------------------------

struct EvalArgs {
  std::string model, key, data = "fashion-mnist";
  int64_t limit = 0;
  SecretArgs secret;
  bool json = false;
};

void run_eval(const EvalArgs& a) {
  lock::KeySecret secret = a.secret.resolve(false);
  lock::LockKey key = lock::load_key_file(a.key, secret);
  model::Model m = load_model(a.model);
  // Accept either side of the key: the plaintext model or the locked one.
  lock::Fingerprint fp = lock::fingerprint(m.graph);
  model::Model plain = m, locked = m;
  if (fp == key.plain_fingerprint) {
    lock::encrypt_model(locked, key);
  } else if (fp == key.locked_fingerprint) {
    lock::decrypt_model(plain, key);
  } else {
    throw IntegrityError("the key belongs to another model: '" + a.model +
                         "' is neither the plaintext nor the locked model it is bound to");
  }
  model::Model restored = locked;
  lock::decrypt_model(restored,
                      key);  // verifies the bit-exact fingerprint of the result
  bool bit_exact = lock::fingerprint(restored.graph) == key.plain_fingerprint;
  auto test = data::load_dataset(a.data, data::Split::Test, a.limit);
  lock::Accuracy base = lock::evaluate(plain, test);
  lock::Accuracy enc = lock::evaluate(locked, test);
  lock::Accuracy res = lock::evaluate(restored, test);
  int64_t weights = total_weights(plain.graph);
  double fraction = weights ? static_cast<double>(key.total_entries()) / weights : 0;
  if (a.json) {
    print_json({{"model", a.model},
                {"dataset", a.data},
                {"images", test.size()},
                {"mode", lock::to_string(key.params.mode)},
                {"incremental", key.params.incremental},
                {"num", key.params.num},
                {"intensity", key.params.intensity},
                {"intensity_mode", lock::to_string(key.params.intensity_mode)},
                {"objective", lock::to_string(key.params.objective)},
                {"target_class", key.params.target_class},
                {"per_round", key.params.per_round},
                {"max_percent", key.params.max_percent},
                {"layers", layers_json(key)},
                {"baseline_top1", 100 * base.top1},
                {"baseline_top5", 100 * base.top5},
                {"encrypted_top1", 100 * enc.top1},
                {"encrypted_top5", 100 * enc.top5},
                {"restored_top1", 100 * res.top1},
                {"restored_top5", 100 * res.top5},
                {"restored_bit_exact", bit_exact},
                {"encrypted_weights", key.total_entries()},
                {"total_weights", weights},
                {"encrypted_fraction", fraction},
                {"keygen_seconds", key.params.keygen_seconds}});
    return;
  }
  std::string per_layer;
  for (const auto& l : key.layers)
    per_layer += (per_layer.empty() ? "" : "/") + std::to_string(l.entries.size());
  std::cout << "| model | dataset | method | enc/layer | intensity | baseline "
               "top-1/5 | "
               "encrypted top-1/5 | restored top-1/5 | encrypted weights | keygen |\n"
               "|---|---|---|---|---|---|---|---|---|---|\n";
  std::cout << fmt::format(
      "| {} | {} | {} | {} | {} | {} / {} | {} / {} | {} / {}{} | {} of {} "
      "({:.2e}) | "
      "{:.2f} s |\n",
      printable(a.model), printable(a.data), method_name(key.params), per_layer,
      intensity_text(key.params), pct(base.top1), pct(base.top5), pct(enc.top1), pct(enc.top5),
      pct(res.top1), pct(res.top5), bit_exact ? " (bit-exact)" : " (NOT bit-exact)",
      key.total_entries(), weights, fraction, key.params.keygen_seconds);
}

// ---- sweep
// ------------------------------------------------------------------------------

struct SweepArgs {
  std::string model, data = "fashion-mnist", csv, plot, mode = "sfge";
  std::string intensity_mode = "absolute", objective = "ce";
  int64_t per_round = 1;
  std::vector<int64_t> nums{0, 5, 10, 15, 20, 25, 30};
  std::vector<float> intensities{0.1f, 0.2f};
  double max_percent = 0.001;
  int64_t samples = 1000, limit = 0;
  bool json = false;
};

void run_sweep_cmd(const SweepArgs& a) {
  OutputGuard().input("--model", a.model).output("--csv", a.csv).output("--plot", a.plot).check();
  lock::SweepOptions o;
  o.nums = a.nums;
  o.intensities = a.intensities;
  o.base.max_percent = a.max_percent;
  o.base.samples = a.samples;
  o.base.mode = lock::parse_lock_mode(a.mode);
  o.base.intensity_mode = lock::parse_intensity_mode(a.intensity_mode);
  o.base.objective = lock::parse_objective(a.objective);
  o.base.per_round = a.per_round;
  o.base.dataset = a.data;
  for (float e : a.intensities) {
    lock::KeygenOptions check = o.base;
    check.intensity = e;
    check.num = *std::max_element(a.nums.begin(), a.nums.end());
    lock::validate_options(check);
  }
  for (int64_t n : a.nums)
    if (n < 0) throw InvalidArgument("--num must be >= 0, got " + std::to_string(n));
  if (!a.json) o.log = [](const std::string& s) { std::cerr << "sweep: " << printable(s) << "\n"; };
  model::Model m = load_model(a.model);
  auto samples = data::load_dataset(a.data, data::Split::Train, a.samples);
  auto test = data::load_dataset(a.data, data::Split::Test, a.limit);
  auto points = lock::run_sweep(m, samples, test, o);
  if (!a.csv.empty()) write_file_atomic(a.csv, lock::sweep_csv(points));
  if (!a.plot.empty())
    write_file_atomic(a.plot, lock::sweep_svg(points, fmt::format("{} on {}: top-1 vs encrypted "
                                                                  "weights per layer",
                                                                  a.model, a.data)));
  if (a.json) {
    json arr = json::array();
    for (const auto& p : points)
      arr.push_back({{"method", p.method},
                     {"intensity", p.intensity},
                     {"num", p.num},
                     {"encrypted_weights", p.encrypted},
                     {"top1", 100 * p.top1},
                     {"top5", 100 * p.top5}});
    print_json(arr);
    return;
  }
  std::cout << lock::sweep_csv(points);
}

// ---- run (runtime encryption scheduling)
// -------------------------------------------------

struct RunArgs {
  std::string model, key, data = "fashion-mnist";
  int64_t limit = 1000, batch = 1;
  SecretArgs secret;
  bool json = false;
};

bool same_bits(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
  auto x = a.floats(), y = b.floats();
  for (size_t i = 0; i < x.size(); ++i)
    if (std::bit_cast<uint32_t>(x[i]) != std::bit_cast<uint32_t>(y[i])) return false;
  return true;
}

void run_res(const RunArgs& a) {
  if (a.batch < 1) throw InvalidArgument("--batch must be >= 1");
  lock::KeySecret secret = a.secret.resolve(false);
  lock::LockKey key = lock::load_key_file(a.key, secret);
  model::Model locked = load_model(a.model);
  model::Model plain = locked;
  lock::decrypt_model(plain,
                      key);  // the reference outputs; also checks L belongs to K
  auto test = data::load_dataset(a.data, data::Split::Test, a.limit);

  nn::Executor plain_exec(plain);
  nn::Executor res_exec(locked);
  lock::RuntimeScheduler sched(locked, key);
  sched.attach(res_exec);

  int64_t inferences = 0, top1 = 0, top5 = 0;
  double plain_s = 0, res_s = 0;
  bool identical = true;
  for (int64_t b = 0; b < test.size(); b += a.batch) {
    int64_t n = std::min(a.batch, test.size() - b);
    Tensor x = lock::prepare_input(plain, test.batch(b, n));
    auto t0 = Clock::now();
    auto want = plain_exec.forward({x});
    plain_s += seconds_since(t0);
    t0 = Clock::now();
    auto got = res_exec.forward({x});
    res_s += seconds_since(t0);
    if (sched.plaintext_layers() != 0) throw Error("internal: a layer stayed in plaintext");
    for (size_t i = 0; i < want.size(); ++i) identical = identical && same_bits(want[i], got[i]);
    Tensor logits = got.at(0);
    if (logits.rank() != 2) logits.reshape({n, logits.numel() / n});
    nn::count_hits(logits, std::span<const int32_t>(test.labels).subspan(b, n), top1, top5);
    ++inferences;
  }
  bool relocked = lock::fingerprint(locked.graph) == key.locked_fingerprint;
  const auto& st = sched.stats();
  double overhead = plain_s > 0 ? res_s / plain_s - 1 : 0;
  if (a.json) {
    print_json({{"model", a.model},
                {"images", test.size()},
                {"batch", a.batch},
                {"inferences", inferences},
                {"outputs_identical", identical},
                {"weights_relocked", relocked},
                {"max_plaintext_layers", st.max_plaintext_layers},
                {"weight_writes_per_inference", inferences ? st.weight_writes / inferences : 0},
                {"plain_ms_per_inference", inferences ? 1e3 * plain_s / inferences : 0},
                {"res_ms_per_inference", inferences ? 1e3 * res_s / inferences : 0},
                {"overhead", overhead},
                {"top1", test.size() ? 100.0 * top1 / test.size() : 0},
                {"top5", test.size() ? 100.0 * top5 / test.size() : 0}});
  } else {
    std::cout << fmt::format(
        "RES on {}: {} inferences of batch {}; outputs {} "
        "the unlocked model's; weights {} "
        "re-encrypted after the run\n"
        "  at most {} layer(s) in plaintext at a time; {} "
        "weight writes per inference\n"
        "  plain {:.3f} ms, RES {:.3f} ms per inference "
        "(overhead {:+.1f} %); top-1 {:.2f} %\n",
        a.model, inferences, a.batch, identical ? "bit-identical to" : "DIFFER from",
        relocked ? "all" : "NOT", st.max_plaintext_layers,
        inferences ? st.weight_writes / inferences : 0, inferences ? 1e3 * plain_s / inferences : 0,
        inferences ? 1e3 * res_s / inferences : 0, 100 * overhead,
        test.size() ? 100.0 * top1 / test.size() : 0);
  }
  if (!identical) throw IntegrityError("RES outputs differ from the unlocked model's outputs");
  if (!relocked) throw IntegrityError("weights were not all re-encrypted after RES");
}

// ---- attacks
// ----------------------------------------------------------------------------

struct AttackArgs {
  std::string model, key, data = "fashion-mnist", out;
  int64_t limit = 0;
  int64_t suspects = 20;
  double z_threshold = 0;
  double fraction = 0.01;
  lock::FinetuneOptions ft;
  SecretArgs secret;
  bool json = false;
};

// What every attack does around its own step: it gets the locked model (all the attacker has)
// and, optionally, the key — only to score the attack and to report the plaintext accuracy it
// tries to recover —, runs on a copy, and reports top-1 before and after; --out saves the copy.
struct AttackRun {
  std::optional<lock::LockKey> key;
  lock::Accuracy before, after;
  std::optional<lock::Accuracy> base;  // the plaintext model's, when the key was given

  void add_json(json& j) const {
    j["locked_top1"] = 100 * before.top1;
    j["attacked_top1"] = 100 * after.top1;
    j["attacked_top5"] = 100 * after.top5;
    if (base) j["baseline_top1"] = 100 * base->top1;
  }
  std::string accuracy_text() const {
    return fmt::format("  top-1 locked {} % -> after attack {} %{}\n", pct(before.top1),
                       pct(after.top1),
                       base ? fmt::format(" (plaintext {} %)", pct(base->top1)) : "");
  }
};

AttackRun run_attack(const AttackArgs& a,
                     const std::function<void(model::Model&, const lock::LockKey*)>& attack) {
  check_model_output(a.model, a.key, a.secret, a.out);
  AttackRun run;
  model::Model locked = load_model(a.model);
  std::optional<model::Model> plain;
  if (!a.key.empty()) {
    run.key = lock::load_key_file(a.key, a.secret.resolve(false));
    plain = locked;
    lock::decrypt_model(*plain, *run.key);
  }
  auto test = data::load_dataset(a.data, data::Split::Test, a.limit);
  run.before = lock::evaluate(locked, test);
  model::Model attacked = locked;
  attack(attacked, run.key ? &*run.key : nullptr);
  run.after = lock::evaluate(attacked, test);
  if (plain) run.base = lock::evaluate(*plain, test);
  if (!a.out.empty()) model::save_onnx(attacked, a.out);
  return run;
}

void run_outlier(const AttackArgs& a) {
  lock::OutlierAttackResult r;
  AttackRun run = run_attack(a, [&](model::Model& attacked, const lock::LockKey* key) {
    lock::OutlierAttackOptions o;
    o.suspects_per_layer = a.suspects;
    o.z_threshold = a.z_threshold;
    r = lock::outlier_attack(attacked.graph, o, key);
  });
  if (a.json) {
    json j{{"attack", "outlier"}, {"model", a.model}, {"suspects", r.suspects}};
    run.add_json(j);
    if (run.key) {
      j["encrypted_weights"] = r.encrypted;
      j["hits"] = r.hits;
      j["precision"] = r.precision;
      j["recall"] = r.recall;
      j["chance_precision"] = r.chance_precision;
      const double lost = run.base->top1 - run.before.top1;
      j["recovered_fraction"] = lost > 0 ? (run.after.top1 - run.before.top1) / lost : 0;
    }
    json layers = json::array();
    for (const auto& l : r.layers)
      layers.push_back({{"tensor", l.tensor},
                        {"weights", l.numel},
                        {"encrypted", l.encrypted},
                        {"suspects", l.suspects},
                        {"hits", l.hits},
                        {"max_z", l.max_z}});
    j["layers"] = layers;
    print_json(j);
    return;
  }
  std::cout << fmt::format(
                   "outlier attack on {}: reset {} suspects (robust z-score) to the layer median\n",
                   a.model, r.suspects)
            << run.accuracy_text();
  if (run.key)
    std::cout << fmt::format(
        "  found {} of {} encrypted weights: precision {:.4f} (chance "
        "{:.6f}), recall {:.4f}\n",
        r.hits, r.encrypted, r.precision, r.chance_precision, r.recall);
}

void run_finetune(const AttackArgs& a) {
  if (!(a.fraction > 0 && a.fraction <= 1)) throw InvalidArgument("--fraction must be in (0, 1]");
  int64_t count = 0;
  double loss = 0, secs = 0;
  AttackRun run = run_attack(a, [&](model::Model& attacked, const lock::LockKey*) {
    auto train_full = data::load_dataset(a.data, data::Split::Train);
    count = std::max<int64_t>(1, static_cast<int64_t>(a.fraction * train_full.size()));
    // The attacker's data: the last `fraction` of the training split (key generation used the
    // first --samples images).
    data::Dataset train;
    train.name = train_full.name;
    train.num_classes = train_full.num_classes;
    int64_t first = train_full.size() - count;
    train.images = train_full.batch(first, count);
    train.labels.assign(train_full.labels.begin() + first, train_full.labels.end());
    auto t0 = Clock::now();
    loss = lock::finetune(attacked, train, a.ft);
    secs = seconds_since(t0);
  });
  if (a.json) {
    json j{{"attack", "finetune"},  {"model", a.model},         {"train_images", count},
           {"epochs", a.ft.epochs}, {"lr", a.ft.learning_rate}, {"final_loss", loss},
           {"seconds", secs}};
    run.add_json(j);
    print_json(j);
    return;
  }
  std::cout << fmt::format(
                   "fine-tuning attack on {}: {} training images, {} epochs, lr {:g} ({:.1f} s)\n",
                   a.model, count, a.ft.epochs, a.ft.learning_rate, secs)
            << run.accuracy_text();
}

}  // namespace

void add_lock_commands(CLI::App& app) {
  auto* lock = app.add_subcommand("lock", "Model locking: SFGE / i-SFGE keys, encryption, RES");
  lock->require_subcommand(1);

  auto ka = std::make_shared<KeygenArgs>();
  auto* keygen = lock->add_subcommand("keygen", "Generate a locking key for a plaintext model");
  keygen->add_option("--model", ka->model, "Plaintext ONNX model")->required();
  keygen->add_option("--data", ka->data, "Dataset whose TRAINING split supplies the samples");
  keygen->add_option("--key", ka->key, "Output key file (.vkey)")->required();
  keygen
      ->add_option("--num", ka->opts.num,
                   "Encrypted weights per layer (stealthy/strong 30, reference 20)")
      ->check(in_range<int64_t>(0, int64_t{1} << 31));
  keygen
      ->add_option("--intensity", ka->opts.intensity,
                   "Perturbation step (strong 1.0 x max|w|, reference 0.2)")
      ->check(positive_number(1e6));
  keygen
      ->add_option("--max-percent", ka->opts.max_percent,
                   "Cap per layer as a fraction of its weights (stealthy/strong 0.2, "
                   "reference 0.001)")
      ->check(positive_number(1));
  keygen->add_option("--samples", ka->opts.samples, "Training images for the gradients (1000)")
      ->check(in_range<int64_t>(1, int64_t{1} << 31));
  keygen->add_flag("--incremental", ka->opts.incremental,
                   "i-SFGE: positions chosen round by round (stealthy/strong: on; "
                   "--incremental=false turns it off)");
  keygen->add_option("--mode", ka->mode,
                     "sfge (reference, strong) | stealthy (in-distribution values)");
  keygen->add_option("--batch", ka->opts.batch, "Batch size for the gradient passes")
      ->check(in_range<int64_t>(1, 65536));
  keygen
      ->add_option("--band-low", ka->opts.band_low,
                   "Stealthy: lower quantile of the target band (default 0.75)")
      ->check(in_range(0.5, 1.0));
  keygen
      ->add_option("--band-high", ka->opts.band_high,
                   "Stealthy: upper quantile of the target band (default 0.99)")
      ->check(in_range(0.5, 1.0));
  keygen->add_option("--intensity-mode", ka->intensity_mode,
                     "absolute (reference: step = intensity) | relative (strong: step = "
                     "intensity x max|w| of the layer)");
  keygen->add_option("--objective", ka->objective,
                     "ce (reference: raise the loss on the true labels) | collapse (stealthy, "
                     "strong: push every input to one class)");
  keygen
      ->add_option("--target-class", ka->opts.target_class,
                   "Collapse: the target class (default -1: the class the model leans to)")
      ->check(in_range<int32_t>(-1, 1 << 20));
  keygen
      ->add_option("--per-round", ka->opts.per_round,
                   "i-SFGE: positions per layer per round (stealthy/strong 3, reference 1)")
      ->check(in_range<int64_t>(1, 1 << 20));
  keygen->add_option("--preset", ka->preset,
                     "stealthy (the default: i-SFGE, collapse, num 30, max-percent 0.2, 3 per "
                     "round, in-distribution values; locks to chance) | strong (the same in sfge "
                     "mode, relative intensity 1.0) | reference (the paper's knobs: SFGE, num "
                     "20, intensity 0.2, max-percent 0.001); explicit options override it");
  ka->cmd = keygen;
  ka->secret.add(keygen, true);
  keygen->add_flag("--json", ka->json, "Machine-readable summary on stdout");
  keygen->add_flag("--force", ka->force, "Replace an existing key file");
  keygen->callback([ka] { run_keygen(*ka); });

  for (bool decrypt : {false, true}) {
    auto aa = std::make_shared<ApplyArgs>();
    auto* cmd = lock->add_subcommand(
        decrypt ? "decrypt" : "encrypt",
        decrypt ? "Restore a locked model bit-for-bit" : "Lock a plaintext model with its key");
    cmd->add_option("--model", aa->model, decrypt ? "Locked ONNX model" : "Plaintext ONNX model")
        ->required();
    cmd->add_option("--key", aa->key, "Key file (.vkey)")->required();
    cmd->add_option("--out", aa->out, "Output ONNX model")->required();
    aa->secret.add(cmd, false);
    cmd->callback([aa, decrypt] { run_encrypt(*aa, decrypt); });
  }

  auto ea = std::make_shared<EvalArgs>();
  auto* eval = lock->add_subcommand("eval", "Accuracy before, under and after locking");
  eval->add_option("--model", ea->model, "Plaintext or locked ONNX model")->required();
  eval->add_option("--key", ea->key, "Key file (.vkey)")->required();
  eval->add_option("--data", ea->data, "Dataset (its test split is evaluated)");
  eval->add_option("--limit", ea->limit, "Evaluate only the first N test images (0 = all)")
      ->check(image_count());
  ea->secret.add(eval, false);
  eval->add_flag("--json", ea->json, "Machine-readable row on stdout");
  eval->callback([ea] { run_eval(*ea); });

  auto sa = std::make_shared<SweepArgs>();
  auto* sweep = lock->add_subcommand(
      "sweep",
      "Top-1 vs encrypted weights per layer, for the paper's SFGE / i-SFGE knobs (its defaults "
      "are the reference preset's, not keygen's default)");
  sweep->add_option("--model", sa->model, "Plaintext ONNX model")->required();
  sweep->add_option("--data", sa->data, "Dataset");
  sweep->add_option("--csv", sa->csv, "Output CSV");
  sweep->add_option("--plot", sa->plot, "Output SVG line plot");
  sweep->add_option("--nums", sa->nums, "Values of num (default 0 5 10 15 20 25 30)")
      ->check(in_range<int64_t>(0, int64_t{1} << 31));
  sweep->add_option("--intensities", sa->intensities, "Intensities (default 0.1 0.2)")
      ->check(positive_number(1e6));
  sweep->add_option("--max-percent", sa->max_percent, "Cap per layer (default 0.001)")
      ->check(positive_number(1));
  sweep->add_option("--samples", sa->samples, "Training images for the gradients (1000)")
      ->check(in_range<int64_t>(1, int64_t{1} << 31));
  sweep->add_option("--mode", sa->mode, "sfge | stealthy");
  sweep->add_option("--intensity-mode", sa->intensity_mode, "absolute | relative (see keygen)");
  sweep->add_option("--objective", sa->objective, "ce | collapse (see keygen)");
  sweep->add_option("--per-round", sa->per_round, "i-SFGE positions per layer per round")
      ->check(in_range<int64_t>(1, 1 << 20));
  sweep->add_option("--limit", sa->limit, "Evaluate only the first N test images (0 = all)")
      ->check(image_count());
  sweep->add_flag("--json", sa->json, "Machine-readable points on stdout");
  sweep->callback([sa] { run_sweep_cmd(*sa); });

  auto ra = std::make_shared<RunArgs>();
  auto* run = lock->add_subcommand("run", "Inference with runtime encryption scheduling (RES)");
  run->add_option("--model", ra->model, "Locked ONNX model")->required();
  run->add_option("--key", ra->key, "Key file (.vkey)")->required();
  run->add_option("--data", ra->data, "Dataset (test split)");
  run->add_option("--limit", ra->limit, "Test images to run (default 1000, 0 = all)")
      ->check(image_count());
  run->add_option("--batch", ra->batch, "Images per inference (default 1)")
      ->check(in_range<int64_t>(1, 65536));
  ra->secret.add(run, false);
  run->add_flag("--json", ra->json, "Machine-readable summary on stdout");
  run->callback([ra] { run_res(*ra); });

  auto* attack = lock->add_subcommand("attack", "Attacks on a locked model");
  attack->require_subcommand(1);
  for (bool ft : {false, true}) {
    auto aa = std::make_shared<AttackArgs>();
    auto* cmd = attack->add_subcommand(
        ft ? "finetune" : "outlier",
        ft ? "Fine-tune the locked model on a small share of the training data"
           : "Find encrypted weights as distribution outliers and reset them "
             "to the median");
    cmd->add_option("--model", aa->model, "Locked ONNX model (all the attacker has)")->required();
    cmd->add_option("--key", aa->key, "Key file: only to score the attack (optional)");
    cmd->add_option("--data", aa->data, "Dataset");
    cmd->add_option("--limit", aa->limit, "Evaluate only the first N test images (0 = all)")
        ->check(image_count());
    cmd->add_option("--out", aa->out, "Write the attacked model here");
    if (ft) {
      cmd->add_option("--fraction", aa->fraction, "Share of the training split (default 0.01)")
          ->check(positive_number(1));
      cmd->add_option("--epochs", aa->ft.epochs, "Epochs (default 3)")
          ->check(in_range<int64_t>(1, 100000));
      cmd->add_option("--lr", aa->ft.learning_rate, "Learning rate (default 0.01)")
          ->check(positive_number(100));
      cmd->add_option("--batch", aa->ft.batch, "Batch size (default 32)")
          ->check(in_range<int64_t>(1, 65536));
    } else {
      cmd->add_option("--suspects", aa->suspects, "Suspects reset per layer (default 20)")
          ->check(in_range<int64_t>(1, int64_t{1} << 31));
      cmd->add_option("--z-threshold", aa->z_threshold,
                      "Instead: reset every weight with robust z-score above this")
          ->check(positive_number(1e6));
    }
    aa->secret.add(cmd, false);
    cmd->add_flag("--json", aa->json, "Machine-readable result on stdout");
    cmd->callback([aa, ft] { ft ? run_finetune(*aa) : run_outlier(*aa); });
  }
}

}  // namespace veil::cli
