// veil relu distortion | knapsack | apply: block ReLU (Gorski & Avidan, arXiv 2304.10442) —
// measuring the distortion of every block size per channel, choosing a block size per channel
// from it, and rewriting a model's ReLUs accordingly. Each sub-command is a run_<name> function
// with its argument struct, registered in add_relu_commands below.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <memory>
#include <random>
#include <thread>

#include "common.hpp"
#include "validators.hpp"
#include "veil/cli/commands.hpp"
#include "veil/core/error.hpp"
#include "veil/core/io.hpp"
#include "veil/core/output_guard.hpp"
#include "veil/core/peak_rss.hpp"
#include "veil/core/printable.hpp"
#include "veil/core/progress.hpp"
#include "veil/data/dataset.hpp"
#include "veil/model/onnx.hpp"
#include "veil/mpc/block_relu/apply.hpp"
#include "veil/mpc/block_relu/block_choice.hpp"
#include "veil/mpc/block_relu/distortion.hpp"
#include "veil/mpc/block_relu/distortion_file.hpp"
#include "veil/mpc/block_relu/synthetic_table.hpp"

namespace veil::cli {
namespace {

struct DistortionArgs {
  std::string model;
  std::string data = "fashion-mnist";
  int64_t samples = 512;
  uint64_t seed = 1;
  std::string out;
  std::string sizes = "small";
  int64_t batch = 512;
  std::string normalize;
  bool resume = false;
  bool json = false;
  bool quiet = false;
  int64_t stop_after_layers = 0;  // hidden: simulates a killed run in the tests
};

// `count` distinct training images, chosen by `seed` (a partial Fisher-Yates shuffle, whose
// draws do not depend on the standard library's distributions).
std::vector<int64_t> choose_samples(int64_t size, int64_t count, uint64_t seed) {
  if (count > size)
    throw InvalidArgument(fmt::format("--samples {} exceeds the {} training images", count, size));
  std::vector<int64_t> idx(static_cast<size_t>(size));
  for (int64_t i = 0; i < size; ++i) idx[i] = i;
  std::mt19937_64 rng(seed);
  for (int64_t i = 0; i < count; ++i)
    std::swap(idx[i], idx[i + static_cast<int64_t>(rng() % static_cast<uint64_t>(size - i))]);
  idx.resize(static_cast<size_t>(count));
  return idx;
}

void run_distortion(const DistortionArgs& a) {
  OutputGuard().input("--model", a.model).input("--data", a.data).output("--out", a.out).check();
  const bool exists = std::filesystem::exists(a.out);
  if (exists && !a.resume)
    throw InvalidArgument("--out '" + printable(a.out) +
                          "' exists: give --resume to continue that run, or remove it");
  const auto bytes = read_file(a.model, model::kMaxOnnxBytes);
  const model::Model m = model::parse_onnx(bytes.data(), bytes.size(), a.model);
  const auto set = a.sizes == "full" ? mpc::CandidateSizes::Full : mpc::CandidateSizes::Small;

  mpc::DistortionTable table = mpc::plan_distortion(m, set);
  table.model_hash = mpc::distortion_model_hash(bytes);
  table.samples = a.samples;
  table.seed = a.seed;
  int64_t resumed_layers = 0;
  if (exists) {
    auto old = mpc::parse_distortion_file(read_text_file(a.out, uint64_t{1} << 30));
    mpc::require_same_plan(old, table);
    table = std::move(old);
    for (const auto& l : table.layers) resumed_layers += l.done;
  }

  const auto train = data::load_dataset(a.data, data::Split::Train);
  Tensor images = train.batch(choose_samples(train.size(), a.samples, a.seed));
  input_normalization(m, a.normalize).apply(images);

  int64_t total = 0, channels = 0;
  for (const auto& l : table.layers) {
    total += l.channels * static_cast<int64_t>(l.sizes.size() - 1);
    channels += l.channels;
  }
  const int64_t already = total - mpc::pending_variants(table);
  ProgressBar bar("distortion", total);
  bar.set_quiet(a.quiet || a.json || bar.quiet());
  bar.update(already);

  mpc::DistortionOptions o;
  o.batch_images = a.batch;
  o.stop_after_layers = a.stop_after_layers;
  o.progress = [&](int64_t done, int64_t) { bar.update(already + done); };
  o.layer_finished = [&](const mpc::DistortionTable& t) {
    write_file_atomic(a.out, mpc::serialize(t));
  };
  const auto t0 = std::chrono::steady_clock::now();
  mpc::measure_distortion(m, images, table, o);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  bar.finish();

  const int64_t measured = total - already - mpc::pending_variants(table);
  int64_t finished = 0;
  for (const auto& l : table.layers) finished += l.done;
  const bool complete = finished == static_cast<int64_t>(table.layers.size());
  if (a.json) {
    print_json({{"out", a.out},
                {"layers", table.layers.size()},
                {"layers_done", finished},
                {"layers_resumed", resumed_layers},
                {"channels", channels},
                {"variants", total},
                {"variants_measured", measured},
                {"samples", a.samples},
                {"seconds", secs},
                {"variants_per_s", secs > 0 ? measured / secs : 0.0},
                {"complete", complete}});
  } else {
    fmt::print(
        "{} ReLU layers, {} channels, {} variants on {} samples ({} measured in {:.1f} s, "
        "{:.1f}/s){} -> {}\n",
        table.layers.size(), channels, total, a.samples, measured, secs,
        secs > 0 ? measured / secs : 0.0,
        complete ? ""
                 : fmt::format(", stopped after {} of {} layers", finished, table.layers.size()),
        printable(a.out));
  }
}

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
                {"distortion", std::isnan(c.distortion) ? json(nullptr) : json(c.distortion)},
                {"channels_per_size", sizes},
                {"seconds", seconds},
                {"peak_rss_mb", peak_rss_mb()}});
    return;
  }
  std::cout << fmt::format(
      "{}: {} layers, {} channels, {} ReLUs\n"
      "budget {} DReLUs ({:g} %), used {} ({:.3f} %), total distortion {}\n",
      a.uniform ? "uniform" : "knapsack", table.layers.size(), channels, relus, c.budget,
      100 * a.budget, c.cost, relus ? 100.0 * c.cost / relus : 0.0,
      std::isnan(c.distortion) ? std::string("not measured (a size outside the table)")
                               : fmt::format("{:.6g}", c.distortion));
  std::cout << "channels per block size:";
  for (const auto& [s, n] : per_size) std::cout << " " << size_name(s) << ":" << n;
  std::cout << fmt::format("\n{:.2f} s, peak RSS {:.0f} MB\n", seconds, peak_rss_mb());
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
  std::cout << fmt::format("{}: {} layers became BlockRelu, {} are a plain ReLU", a.out,
                           r.block_relus, r.kept_relus);
  if (a.avgpool) std::cout << fmt::format(", {} MaxPool nodes became AveragePool", r.avgpools);
  std::cout << "\n";
}

void add_relu_distortion_command(CLI::App& relu) {
  auto da = std::make_shared<DistortionArgs>();
  auto* cmd = relu.add_subcommand(
      "distortion",
      "Logit MSE of every ReLU layer x channel x block size (a .vdist table); give the engine "
      "more cores with `veil --threads N relu distortion ...`");
  cmd->add_option("--model", da->model, "ONNX model")->required();
  cmd->add_option("--data", da->data, "fashion-mnist or a dataset directory (training split)");
  cmd->add_option("--samples", da->samples, "Training images the mean is over")
      ->check(in_range<int64_t>(1, int64_t{1} << 20));
  cmd->add_option("--seed", da->seed, "Which training images")
      ->check(in_range<uint64_t>(0, UINT64_MAX));
  cmd->add_option("--sizes", da->sizes, "Candidate block sizes: small (default) | full")
      ->check(CLI::IsMember({"small", "full"}));
  cmd->add_option("--batch", da->batch,
                  "Images per engine batch (variants x samples; no more than a layer's variants)")
      ->check(in_range<int64_t>(1, int64_t{1} << 20));
  cmd->add_option("--normalize", da->normalize,
                  "MEAN,STD applied to [0,1] pixels (default: from the model's metadata)");
  cmd->add_option("--out", da->out, "Output .vdist file (rewritten after every layer)")->required();
  cmd->add_flag("--resume", da->resume,
                "Continue the run that wrote --out (same model, samples, seed and sizes)");
  cmd->add_flag("--json", da->json, "Machine-readable summary on stdout");
  cmd->add_flag("--quiet", da->quiet, "No progress output");
  cmd->add_option("--stop-after-layers", da->stop_after_layers)
      ->group("")  // test-only: stops as a killed run would, after K finished layers
      ->check(in_range<int64_t>(0, int64_t{1} << 20));
  cmd->callback([da] { run_distortion(*da); });
}

}  // namespace

void add_relu_commands(CLI::App& app) {
  auto* relu = app.add_subcommand(
      "relu", "Block ReLU: measure distortion, choose a block size per channel, rewrite ReLUs");
  relu->require_subcommand(1);
  add_relu_distortion_command(*relu);

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
                 "Baseline: one near-square block size for every channel (the one spending most "
                 "of the budget)");
  knap->add_flag("--json", ka->json, "Machine-readable report on stdout");
  knap->add_flag("--quiet", ka->quiet, "No progress output");
  knap->callback([ka] { run_knapsack(*ka); });

  auto aa = std::make_shared<ApplyArgs>();
  auto* apply = relu->add_subcommand(
      "apply",
      "Replace the spec's Relu nodes by block ReLUs (veil's BlockRelu op); a BlockRelu the spec "
      "names gets the spec's sizes (cut a fine-tuned block model to a smaller budget)");
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
