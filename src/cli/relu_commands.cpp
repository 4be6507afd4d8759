// veil relu distortion (the knapsack and apply commands join the same `relu` group)
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <memory>
#include <random>

#include "common.hpp"
#include "validators.hpp"
#include "veil/cli/commands.hpp"
#include "veil/core/error.hpp"
#include "veil/core/io.hpp"
#include "veil/core/output_guard.hpp"
#include "veil/core/printable.hpp"
#include "veil/core/progress.hpp"
#include "veil/data/dataset.hpp"
#include "veil/model/onnx.hpp"
#include "veil/mpc/block_relu/distortion.hpp"
#include "veil/mpc/block_relu/distortion_file.hpp"

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

}  // namespace

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
  cmd->add_option("--batch", da->batch, "Images per engine batch (variants x samples)")
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

void add_relu_commands(CLI::App& app) {
  auto* relu = app.add_subcommand("relu", "Block ReLU: distortion, knapsack, apply");
  relu->require_subcommand(1);
  add_relu_distortion_command(*relu);
}

}  // namespace veil::cli
