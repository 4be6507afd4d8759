// veil relu knapsack | apply: block ReLU (Gorski & Avidan, arXiv 2304.10442) — choosing a block
// size per channel from measured distortions, and rewriting a model's ReLUs accordingly.
// Each sub-command is a run_<name> function with its argument struct, registered in
// add_relu_commands below (a new one, such as `relu distortion`, adds a block there).
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <memory>
#include <thread>

#include "common.hpp"
#include "validators.hpp"
#include "veil/cli/commands.hpp"
#include "veil/core/error.hpp"
#include "veil/core/io.hpp"
#include "veil/core/output_guard.hpp"
#include "veil/core/progress.hpp"
#include "veil/he/inference/pipeline.hpp"
#include "veil/model/onnx.hpp"
#include "veil/mpc/block_relu/apply.hpp"
#include "veil/mpc/block_relu/block_choice.hpp"
#include "veil/mpc/block_relu/distortion_file.hpp"
#include "veil/mpc/block_relu/synthetic_table.hpp"

namespace veil::cli {
namespace {

using nlohmann::json;

std::string size_name(model::BlockSize s) {
  return s.identity() ? "identity" : fmt::format("{}x{}", s.h, s.w);
}

// ---------------------------------------------------------------------------------------------
// relu knapsack

struct KnapsackArgs {
  std::string distortion;
  int64_t synthetic = 0;
  uint64_t seed = 1;
  double budget = 0.06;
  std::string out;
  bool uniform = false;
  bool json = false;
  bool quiet = false;
};

void run_knapsack(const KnapsackArgs& a) {
  if (a.distortion.empty() == (a.synthetic == 0))
    throw InvalidArgument("give exactly one of --distortion and --synthetic");
  OutputGuard().input("--distortion", a.distortion).output("--out", a.out).check();
  const auto t0 = std::chrono::steady_clock::now();
  const mpc::DistortionTable table = a.distortion.empty()
                                         ? mpc::synthetic_resnet50_table(a.synthetic, a.seed)
                                         : mpc::read_distortion_file(a.distortion);
  for (const auto& l : table.layers)
    if (!l.done)
      throw InvalidArgument("layer '" + l.node +
                            "' of the distortion table is not measured yet (resume `veil relu "
                            "distortion` first)");
  const int64_t budget = mpc::drelu_budget(table, a.budget);
  mpc::BlockChoice c;
  if (a.uniform) {
    c = mpc::choose_uniform_block_size(table, budget);
  } else {
    mpc::KnapsackSettings s;
    s.threads = static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, 8u));
    std::unique_ptr<ProgressBar> bar;
    if (!a.quiet && !a.json) bar = std::make_unique<ProgressBar>("knapsack", 1000);
    if (bar) s.progress = [&](double f) { bar->update(static_cast<int64_t>(1000 * f)); };
    c = mpc::choose_block_sizes(table, budget, s);
    if (bar) bar->finish();
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!a.out.empty()) write_file_atomic(a.out, mpc::to_json(c.spec));

  int64_t channels = 0;
  for (const auto& l : table.layers) channels += l.channels;
  const auto per_size = mpc::channels_per_size(c.spec);
  const int64_t relus = table.relu_count();
  if (a.json) {
    json sizes = json::object();
    for (const auto& [s, n] : per_size) sizes[size_name(s)] = n;
    print_json({{"method", a.uniform ? "uniform" : "knapsack"},
                {"layers", table.layers.size()},
                {"channels", channels},
                {"relu_count", relus},
                {"budget_ratio", a.budget},
                {"budget", c.budget},
                {"cost", c.cost},
                {"drelu_ratio", relus ? static_cast<double>(c.cost) / relus : 0.0},
                {"distortion", c.distortion},
                {"channels_per_size", sizes},
                {"seconds", seconds},
                {"peak_rss_mb", he::peak_rss_mb()}});
    return;
  }
  std::cout << fmt::format(
      "{}: {} layers, {} channels, {} ReLUs\n"
      "budget {} DReLUs ({:g} %), used {} ({:.3f} %), total distortion {:.6g}\n",
      a.uniform ? "uniform" : "knapsack", table.layers.size(), channels, relus, c.budget,
      100 * a.budget, c.cost, relus ? 100.0 * c.cost / relus : 0.0, c.distortion);
  std::cout << "channels per block size:";
  for (const auto& [s, n] : per_size) std::cout << " " << size_name(s) << ":" << n;
  std::cout << fmt::format("\n{:.2f} s, peak RSS {:.0f} MB\n", seconds, he::peak_rss_mb());
}

// ---------------------------------------------------------------------------------------------
// relu apply

struct ApplyArgs {
  std::string model;
  std::string spec;
  std::string out;
  bool avgpool = false;
  bool json = false;
};

void run_apply(const ApplyArgs& a) {
  OutputGuard().input("--model", a.model).input("--spec", a.spec).output("--out", a.out).check();
  model::Model m = load_model(a.model);
  const mpc::BlockReluSpec spec =
      mpc::parse_block_relu_spec(read_text_file(a.spec, uint64_t{256} << 20));
  const auto r = mpc::apply_block_relu_spec(m, spec, a.avgpool);
  model::save_onnx(m, a.out);
  if (a.json) {
    print_json({{"block_relus", r.block_relus},
                {"kept_relus", r.kept_relus},
                {"avgpools", r.avgpools},
                {"out", a.out}});
    return;
  }
  std::cout << fmt::format("{}: {} Relu nodes became BlockRelu, {} kept their ReLU", a.out,
                           r.block_relus, r.kept_relus);
  if (a.avgpool) std::cout << fmt::format(", {} MaxPool nodes became AveragePool", r.avgpools);
  std::cout << "\n";
}

}  // namespace

void add_relu_commands(CLI::App& app) {
  auto* relu = app.add_subcommand(
      "relu", "Block ReLU: choose a block size per channel and rewrite a model's ReLUs");
  relu->require_subcommand(1);

  auto ka = std::make_shared<KnapsackArgs>();
  auto* knap = relu->add_subcommand(
      "knapsack", "Pick the block sizes of least distortion within a DReLU budget (exact)");
  knap->add_option("--distortion", ka->distortion, ".vdist file from `veil relu distortion`");
  knap->add_option("--synthetic", ka->synthetic,
                   "Instead: a random table of ResNet-50's ReLU shapes with ~N channels "
                   "(22720 = the real net), for benchmarking")
      ->check(in_range<int64_t>(49, int64_t{1} << 20));
  knap->add_option("--seed", ka->seed, "Seed of --synthetic")
      ->check(in_range<uint64_t>(0, UINT64_MAX));
  knap->add_option("--budget", ka->budget,
                   "DReLUs allowed, as a fraction of the table's ReLU count (default 0.06)")
      ->check(in_range(0.0, 1.0));
  knap->add_option("--out", ka->out, "Output block ReLU spec (JSON) for `veil relu apply`");
  knap->add_flag("--uniform", ka->uniform,
                 "Baseline: one block size for every channel (the best that fits)");
  knap->add_flag("--json", ka->json, "Machine-readable report on stdout");
  knap->add_flag("--quiet", ka->quiet, "No progress output");
  knap->callback([ka] { run_knapsack(*ka); });

  auto aa = std::make_shared<ApplyArgs>();
  auto* apply = relu->add_subcommand(
      "apply", "Replace the spec's Relu nodes by block ReLUs (veil's BlockRelu op)");
  apply->add_option("--model", aa->model, "ONNX model")->required();
  apply->add_option("--spec", aa->spec, "Block ReLU spec from `veil relu knapsack --out`")
      ->required();
  apply->add_option("--out", aa->out, "Output ONNX model")->required();
  apply->add_flag("--avgpool", aa->avgpool,
                  "Also replace every MaxPool by an AveragePool of the same geometry");
  apply->add_flag("--json", aa->json, "Machine-readable report on stdout");
  apply->callback([aa] { run_apply(*aa); });
}

}  // namespace veil::cli
