// veil mpc party | run | keygen | hash: three-party secure inference over TCP (or TLS 1.3).
#include <fmt/format.h>

#include <filesystem>
#include <iostream>
#include <memory>

#include "common.hpp"
#include "validators.hpp"
#include "veil/cli/commands.hpp"
#include "veil/core/cpu.hpp"
#include "veil/core/error.hpp"
#include "veil/core/hex.hpp"
#include "veil/core/io.hpp"
#include "veil/core/memory_budget.hpp"
#include "veil/core/output_guard.hpp"
#include "veil/core/printable.hpp"
#include "veil/data/npy.hpp"
#include "veil/mpc/kernels/ring_kernels.hpp"
#include "veil/mpc/kernels/z67.hpp"
#include "veil/mpc/local_run.hpp"
#include "veil/mpc/network/link_profile.hpp"
#include "veil/mpc/network/tls.hpp"
#include "veil/mpc/party_session.hpp"
#include "veil/mpc/protocols/private_compare.hpp"
#include "veil/mpc/public_model.hpp"

namespace veil::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// ---------------------------------------------------------------------------------------------
// mpc party

struct PartyArgs {
  std::string role;
  std::string config;
  std::string report;
  std::string output;
  std::string data;
  std::string input;
  std::string link;
  int64_t n = -1;
  int64_t batch = 0;
  int listen_fd = -1;
  int report_fd = -1;
  bool json = false;
  bool quiet = false;
};

void run_party_command(const PartyArgs& a) {
  mpc::Role role = mpc::role_from_name(a.role);
  mpc::PartyConfig cfg = mpc::load_party_config(a.config);
  {
    OutputGuard guard;
    guard.input("--config", a.config).input("the config's model", cfg.model);
    for (const auto& p : cfg.parties) guard.input("the config's key", p.key);
    guard.input("--input", a.input.empty() ? cfg.input.npy : a.input);
    guard.output("--report", a.report).output("--output", a.output).check();
  }
  if (!a.data.empty()) cfg.input.data = a.data, cfg.input.npy.clear();
  if (!a.input.empty()) cfg.input.npy = a.input;
  if (a.n >= 0) cfg.input.n = a.n;
  if (a.batch > 0) cfg.batch = a.batch;
  if (!a.link.empty()) cfg.link = mpc::parse_link_profile(a.link);
  mpc::PartyRunOptions opt;
  opt.listen_fd = a.listen_fd;
  if (!a.quiet) opt.log = [](const std::string& s) { std::cerr << printable(s) << std::endl; };
  mpc::PartyReport r = mpc::run_party(role, cfg, opt);
  json j = r.to_json();
  const std::string report = j.dump(1, ' ', false, json::error_handler_t::replace);
  if (!a.report.empty()) write_file_atomic(a.report, report);
  if (a.report_fd >= 0) write_all(a.report_fd, report, "the party report");
  if (role == mpc::Role::Client && !a.output.empty()) data::write_npy(a.output, r.logits);

  int64_t n = static_cast<int64_t>(r.predictions.size());
  int64_t correct = 0;
  for (int64_t i = 0; i < n && i < static_cast<int64_t>(r.labels.size()); ++i)
    correct += r.predictions[i] == r.labels[i];
  if (a.json) {
    json out = {{"role", a.role},       {"model_hash", r.model_hash},
                {"tls", r.tls},         {"seconds", r.run_seconds},
                {"rounds", r.rounds},   {"bytes_sent", r.run_stats.bytes_sent},
                {"link", r.link.spec()}};
    if (role == mpc::Role::Client) {
      out["images"] = n;
      out["predictions"] = r.predictions;
      if (!r.labels.empty()) out["top1"] = n ? static_cast<double>(correct) / n : 0.0;
    }
    print_json(out);
    return;
  }
  const std::string link_note =
      r.link.enabled() ? " (emulated link " + r.link.spec() + ": " + r.link.describe() + ")" : "";
  if (role != mpc::Role::Client) {
    std::cout << fmt::format("{}: done, {} batches, {} sent, {} rounds, {:.3f} s{}\n", a.role,
                             r.batches.size(), human_count(r.run_stats.bytes_sent) + "B", r.rounds,
                             r.run_seconds, link_note);
    return;
  }
  for (int64_t i = 0; i < n; ++i) {
    std::cout << "image " << i << ": class " << r.predictions[i];
    if (i < static_cast<int64_t>(r.labels.size())) std::cout << " (label " << r.labels[i] << ")";
    std::cout << "\n";
  }
  if (!r.labels.empty())
    std::cout << fmt::format("secure top-1: {:.2f} % ({}/{})\n", n ? 100.0 * correct / n : 0.0,
                             correct, n);
  std::cout << fmt::format("{} images in {:.3f} s ({:.2f} ms/image), {} rounds, {} sent{}\n", n,
                           r.run_seconds, n ? 1000 * r.run_seconds / n : 0.0, r.rounds,
                           human_count(r.run_stats.bytes_sent) + "B", link_note);
}

// ---------------------------------------------------------------------------------------------
// mpc run: options and printing; mpc/local_run.hpp runs the session.

struct RunArgs {
  RunArgs() { opt.input.n = 100; }
  mpc::LocalRunOptions opt;
  bool approx = false;
  int lsb_ignored = -1;
  int bits_ignored = -1;
  std::string link = "none";  // emulated link profile (link_profile.hpp)
  std::string fault;          // test hook: "kill:<role>:<ms>" or "stop:<role>:<ms>"
  bool json = false;
  bool quiet = false;
  bool force = false;
};

std::string self_exe() {
  std::error_code ec;
  fs::path p = fs::read_symlink("/proc/self/exe", ec);
  if (ec) throw IoError("cannot find the veil executable (/proc/self/exe)");
  return p.string();
}

void print_cost_rows(const mpc::LocalRunResult& r) {
  auto row = [&](const mpc::CostRow& c, const std::string& name) {
    std::cout << fmt::format(
        "  {:<20} {:<17} {:>10} {:>10} {:>10} {:>7.1f} {:>9.1f} {:>10}\n", name, printable(c.op),
        human_count(static_cast<double>(c.bytes_sent[0])) + "B",
        human_count(static_cast<double>(c.bytes_sent[1])) + "B",
        human_count(static_cast<double>(c.bytes_sent[2])) + "B",
        r.batches ? static_cast<double>(c.rounds) / r.batches : 0.0, 1000 * c.seconds,
        human_count(r.images ? static_cast<double>(c.drelus) / r.images : 0.0));
  };
  auto header = [](const char* title, const char* name) {
    std::cout << fmt::format("\n{}\n  {:<20} {:<17} {:>10} {:>10} {:>10} {:>7} {:>9} {:>10}\n",
                             title, name, "op", "client", "server", "helper", "rnd/b", "ms",
                             "DReLU/img");
  };
  header("by layer (bytes and ms: all batches; rounds per batch)", "node");
  for (const auto& l : r.layers) row(l, printable(l.node));  // node names come from the model
  header("by operation", "count");
  for (const auto& o : r.ops) row(o, std::to_string(o.count) + "x");
}

void print_run(const mpc::LocalRunResult& r) {
  const int64_t n = r.images;
  std::cout << fmt::format(
      "model {} (structure {}), {} images, batch {}, f = {}, DReLU s = {} k = {}{}\n",
      printable(r.model), r.model_hash.substr(0, 16), n, r.batch, r.frac_bits,
      r.drelu.num_lsb_to_ignore, r.drelu.comparison_bits_ignored, r.tls ? ", TLS 1.3" : "");
  if (!r.range_check.empty()) std::cout << printable(r.range_check) << "\n";
  std::cout << (r.link.enabled() ? fmt::format("link: {} ({}), emulated in-process\n",
                                               r.link.spec(), r.link.describe())
                                 : std::string("link: loopback, not shaped\n"));
  std::cout << fmt::format("kernels: path {}, ring GEMM {}, PrivateCompare {}, Z_67 {}\n",
                           kernel_path_name(kernel_path()), mpc::gemm_u64_kernel_name(),
                           mpc::compare_kernel_name(), mpc::z67_kernel_name());
  std::cout << fmt::format(
      "secure top-1 = plaintext top-1 on {}/{} images ({:.2f} %), max |logit diff| {:.4g}\n",
      r.agreeing_images, n, 100.0 * r.agreement(), r.max_logit_diff);
  if (auto s = r.secure_top1())
    std::cout << fmt::format("accuracy: secure {:.2f} %, plaintext {:.2f} %\n", 100.0 * *s,
                             100.0 * r.plain_top1().value_or(0));
  std::cout << fmt::format(
      "latency: {:.1f} ms/batch, {:.2f} ms/image ({:.2f} s for {} batches; setup {:.2f} s)\n",
      1000 * r.per_batch_seconds(), 1000 * r.per_image_seconds(), r.run_seconds, r.batches,
      r.setup_seconds);
  std::cout << fmt::format("rounds: {:.1f} per batch\n", r.rounds_per_batch());
  for (mpc::Role role : {mpc::Role::Client, mpc::Role::Server, mpc::Role::Helper}) {
    const mpc::PartyTotals& p = r.parties[static_cast<size_t>(role)];
    std::cout << fmt::format(
        "  {:<7} sent {:>10}B ({:>9}B/image) in {} messages; memory planned {}, peak RSS {:.0f} "
        "MB\n",
        mpc::role_name(role), human_count(static_cast<double>(p.bytes_sent)),
        human_count(n ? static_cast<double>(p.bytes_sent) / n : 0.0), p.messages_sent,
        human_bytes(p.planned_peak_bytes), p.peak_rss_mb);
  }
  print_cost_rows(r);
}

void run_local_command(RunArgs& a) {
  mpc::LocalRunOptions& o = a.opt;
  {
    // What the session writes into --keep (mpc/local_run.cpp): with --tls, fresh private keys
    // that must not replace keys already there.
    OutputGuard guard;
    guard.input("--model", o.model).input("--input", o.input.npy);
    if (!o.keep.empty()) {
      // Created if missing: a path that is, or lies under, something other than a directory is
      // refused here, before any party starts.
      const fs::path keep = o.keep;
      guard.output_dir("--keep", keep).output("--keep", keep / "parties.json");
      for (mpc::Role r : {mpc::Role::Client, mpc::Role::Server, mpc::Role::Helper}) {
        const std::string role = mpc::role_name(r);
        guard.output("--keep", keep / (role + ".log")).output("--keep", keep / (role + ".json"));
        if (o.tls) guard.secret_output("--keep", keep / (role + ".pem"), "private key");
      }
    }
    guard.check(a.force);
  }
  o.veil_exe = self_exe();
  o.link = mpc::parse_link_profile(a.link);
  const mpc::DreluParams approx = a.approx ? mpc::kReferenceApproxDrelu : mpc::DreluParams{};
  o.drelu.num_lsb_to_ignore = a.lsb_ignored >= 0 ? a.lsb_ignored : approx.num_lsb_to_ignore;
  o.drelu.comparison_bits_ignored =
      a.bits_ignored >= 0 ? a.bits_ignored : approx.comparison_bits_ignored;
  if (!a.fault.empty()) o.fault = mpc::parse_party_fault(a.fault);
  const mpc::LocalRunResult r = mpc::run_local(o);
  if (a.json)
    print_json(r.to_json());
  else
    print_run(r);
}

// ---------------------------------------------------------------------------------------------

void run_keygen(const std::string& out, bool force) {
  OutputGuard().secret_output("--out", out, "private key").check(force);
  auto id = mpc::TlsIdentity::generate();
  id->save(out);
  std::cout << id->fingerprint() << "\n";
}

void run_hash(const std::string& path, bool as_json) {
  model::Model m = mpc::load_model_for_mpc(path);
  auto h = mpc::structure_hash(m.graph);
  std::string hex = to_hex(h);
  if (as_json)
    print_json({{"model", path}, {"model_hash", hex}});
  else
    std::cout << hex << "\n";
}

}  // namespace

void add_mpc_commands(CLI::App& app) {
  auto* mpc = app.add_subcommand("mpc", "Three-party secure inference (SecureNN setting)");
  mpc->require_subcommand(1);

  auto pa = std::make_shared<PartyArgs>();
  auto* party =
      mpc->add_subcommand("party", "Run one party (client, server or helper) of a session");
  party->add_option("--role", pa->role, "client | server | helper")->required();
  party->add_option("--config", pa->config, "Session configuration (JSON)")->required();
  party->add_option("--report", pa->report, "Write this party's full report (JSON) here");
  party->add_option("--output", pa->output, "Client: write the logits to this .npy file");
  party->add_option("--data", pa->data, "Client: dataset (overrides the config)");
  party->add_option("--input", pa->input, "Client: .npy input tensor (overrides the config)");
  party->add_option("--n", pa->n, "Client: number of images, 0 = all (overrides the config)")
      ->check(image_count());
  party->add_option("--batch", pa->batch, "Client: batch size (overrides the config)")
      ->check(in_range<int64_t>(1, 4096));
  party->add_option("--link", pa->link,
                    "Emulated link for this party's sends: lan | wan | none | "
                    "rtt=<ms>,rate=<Mbit/s> (overrides the config)");
  party->add_option("--listen-fd", pa->listen_fd, "Inherited listening socket")
      ->check(in_range(0, 1 << 20))
      ->group("");
  party->add_option("--report-fd", pa->report_fd, "Inherited file for the report")
      ->check(in_range(0, 1 << 20))
      ->group("");
  party->add_flag("--json", pa->json, "Machine-readable summary on stdout");
  party->add_flag("--quiet", pa->quiet, "No progress output");
  party->callback([pa] { run_party_command(*pa); });

  auto ra = std::make_shared<RunArgs>();
  auto* run = mpc->add_subcommand(
      "run", "Run all three parties locally on loopback and compare with plaintext inference");
  run->add_option("--model", ra->opt.model, "ONNX model")->required();
  run->add_option("--data", ra->opt.input.data, "fashion-mnist or a dataset directory");
  run->add_option("--input", ra->opt.input.npy, ".npy input tensor instead of a dataset");
  run->add_option("--n", ra->opt.input.n, "Number of test images (0 = all)")->check(image_count());
  run->add_option("--offset", ra->opt.input.offset, "First test image")
      ->check(in_range<int64_t>(0, int64_t{1} << 31));
  run->add_option("--batch", ra->opt.batch,
                  "Images per secure batch (the three parties' memory plan must fit "
                  "--max-memory; a batch that does not is refused, naming the largest that does)")
      ->check(in_range<int64_t>(1, 4096));
  run->add_option("--input-range", ra->opt.input_range,
                  "LO,HI: the raw input range the overflow check assumes (default: the model's "
                  "veil.input.range, or 0,1)");
  run->add_option("--normalize", ra->opt.normalize,
                  "MEAN,STD applied to [0,1] pixels by the client before sharing (default: from "
                  "the model's metadata)");
  run->add_option("--frac-bits", ra->opt.frac_bits,
                  "Fixed-point fractional bits (default 12; a model with block ReLUs gets the "
                  "largest of 16..13 the overflow check accepts)")
      ->check(in_range(1, 30));
  run->add_flag("--approx", ra->approx, "Approximate DReLU (s = 5, k = 48 as in the reference)");
  run->add_option("--lsb-ignored", ra->lsb_ignored, "Approximate DReLU: low bits ignored (s)")
      ->check(in_range(0, 62));
  run->add_option("--bits-ignored", ra->bits_ignored,
                  "Approximate DReLU: comparison bits ignored (k)")
      ->check(in_range(0, 62));
  run->add_flag("--tls", ra->opt.tls, "TLS 1.3 with pinned keys between the parties (fresh keys)");
  run->add_option("--threads", ra->opt.threads, "Ring GEMM threads per party")
      ->check(in_range(1, 64));
  run->add_option("--io-timeout", ra->opt.io_timeout_ms,
                  "ms without any frame from a peer before a party gives up")
      ->check(in_range(100, 3600000));
  run->add_option("--link", ra->link,
                  "Emulate a link between the parties, in process: lan (1 Gbit/s, 0.5 ms RTT), "
                  "wan (100 Mbit/s, 40 ms RTT), none, or rtt=<ms>,rate=<Mbit/s>");
  run->add_option("--keep", ra->opt.keep,
                  "Keep the session's files (config, keys, logs, reports) in this directory "
                  "(by default they are never on disk)");
  run->add_option("--fault", ra->fault, "kill|stop:<role>:<ms> (testing)")->group("");
  run->add_flag("--json", ra->json, "Machine-readable report on stdout");
  run->add_flag("--quiet", ra->quiet, "No progress output");
  run->add_flag("--force", ra->force, "With --keep and --tls: replace private keys already there");
  run->callback([ra] { run_local_command(*ra); });

  auto key_out = std::make_shared<std::pair<std::string, bool>>();
  auto* keygen =
      mpc->add_subcommand("keygen", "Create a party's Ed25519 key; prints its fingerprint");
  keygen->add_option("--out", key_out->first, "Private key file (PEM, mode 0600)")->required();
  keygen->add_flag("--force", key_out->second, "Replace an existing key file");
  keygen->callback([key_out] { run_keygen(key_out->first, key_out->second); });

  auto ha = std::make_shared<std::pair<std::string, bool>>();
  auto* hash = mpc->add_subcommand("hash", "Structure hash of a model (after folding BatchNorm)");
  hash->add_option("--model", ha->first, "ONNX model")->required();
  hash->add_flag("--json", ha->second, "JSON output");
  hash->callback([ha] { run_hash(ha->first, ha->second); });
}

}  // namespace veil::cli
