// veil train | eval | infer | info | plot
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>

#include "common.hpp"
#include "validators.hpp"
#include "veil/cli/commands.hpp"
#include "veil/core/error.hpp"
#include "veil/core/hex.hpp"
#include "veil/core/io.hpp"
#include "veil/core/output_guard.hpp"
#include "veil/core/printable.hpp"
#include "veil/core/sha256.hpp"
#include "veil/core/svg_plot.hpp"
#include "veil/data/dataset.hpp"
#include "veil/data/npy.hpp"
#include "veil/lock/sweep.hpp"
#include "veil/model/onnx.hpp"
#include "veil/model/summary.hpp"
#include "veil/model/zoo.hpp"
#include "veil/nn/checkpoint.hpp"
#include "veil/nn/executor.hpp"
#include "veil/nn/preprocess.hpp"
#include "veil/nn/threads.hpp"
#include "veil/nn/trainer.hpp"

namespace veil::cli {

namespace {

struct TrainArgs {
  std::string arch = "lenet5";
  std::string init;                   // fine-tune this ONNX model instead of building --arch
  std::string teacher;                // distil from this model's logits
  std::string normalize;              // with --init: MEAN,STD for a model without veil's metadata
  std::string classifier_activation;  // keras-cifar10 only
  std::string data = "fashion-mnist";
  std::string out;
  int epochs = 10;
  int64_t batch = 64;
  float lr = -1;  // per-architecture default
  double distill_alpha = 0.9;
  double distill_temperature = 4;
  std::vector<std::string> distill_features;  // "stages" or value names
  double distill_beta = 1000;
  float momentum = 0.9f;
  float weight_decay = 5e-4f;
  std::string schedule = "cosine";
  int64_t crop_pad = -1;  // per-architecture default
  int flip = -1;
  uint64_t seed = 1;
  int64_t limit = 0;
  int64_t test_limit = 0;
  std::string checkpoint;        // write the run's state here (and --resume from it)
  int64_t checkpoint_every = 0;  // steps; 0: after every epoch only
  bool resume = false;
  int64_t stop_after_steps = 0;  // hidden: simulates a killed run in the tests
  bool json = false;
  bool quiet = false;
};

std::string file_sha256(const std::string& path) {
  return to_hex(sha256(read_file(path, model::kMaxOnnxBytes)));
}

// What makes a run the run it is: every option that changes its weights, and digests of the
// inputs (the data by content, so a moved dataset still matches). A checkpoint carries it and
// --resume compares it line by line. Not compared: `threads` (the kernels' summation order, so a
// continued run is bit-identical to an uninterrupted one at the same count only; a change is
// allowed and named). Not in it: --out, --quiet, --json.
std::string run_record(const TrainArgs& a, const nn::TrainOptions& o, const data::Dataset& train,
                       const data::Dataset& test) {
  std::string r = "format=veil train 1\n";
  r += a.init.empty() ? "arch=" + a.arch + "\n" : "init_sha256=" + file_sha256(a.init) + "\n";
  if (!a.teacher.empty()) r += "teacher_sha256=" + file_sha256(a.teacher) + "\n";
  if (!a.classifier_activation.empty())
    r += "classifier_activation=" + a.classifier_activation + "\n";
  const auto images = train.images.floats();
  r += "train_images=" + std::to_string(train.size()) + "\n";
  r += "train_images_sha256=" +
       to_hex(sha256({reinterpret_cast<const uint8_t*>(images.data()), images.size_bytes()})) +
       "\n";
  r += "train_labels_sha256=" +
       to_hex(sha256({reinterpret_cast<const uint8_t*>(train.labels.data()),
                      train.labels.size() * sizeof(int32_t)})) +
       "\n";
  r += "test_images=" + std::to_string(test.size()) + "\n";
  r += fmt::format("normalization={},{}\n", o.normalization.mean, o.normalization.std);
  r += fmt::format("epochs={}\nbatch={}\nlr={}\nschedule={}\nmomentum={}\nweight_decay={}\n",
                   o.epochs, o.batch_size, o.lr, a.schedule, o.sgd.momentum, o.sgd.weight_decay);
  r += fmt::format("crop_pad={}\nflip={}\nseed={}\n", o.crop_pad, o.flip ? 1 : 0, o.seed);
  if (o.distill.teacher) {
    r += fmt::format("distill_alpha={}\ndistill_temperature={}\n", o.distill.alpha,
                     o.distill.temperature);
    r += fmt::format("distill_teacher_normalization={},{}\n", o.distill.normalization.mean,
                     o.distill.normalization.std);
    if (!o.distill.features.empty())
      r += fmt::format("distill_features={}\ndistill_beta={}\n", fmt::join(o.distill.features, ","),
                       o.distill.feature_beta);
  }
  return r;
}

// The model `veil train` starts from: a fresh --arch, or (--init) any model veil runs, block
// ReLUs and metadata (normalisation, class names, ...) kept. Returns the name the defaults below
// go by: the architecture, from the model's "veil.arch" with --init ("" when unknown).
std::string initial_model(const TrainArgs& a, const data::Dataset& train_set, model::Model& m,
                          data::Normalization& norm) {
  if (a.init.empty()) {
    const auto& s = train_set.images.shape();
    model::ArchSpec spec{s[1], s[2], s[3], train_set.num_classes, a.seed};
    m = model::build_arch(a.arch, spec, a.classifier_activation);
    norm = data::Normalization::fit(train_set);
  } else {
    m = load_model(a.init);
    // The preprocessing the model was trained with, not one refitted on this data: fine-tuning
    // must see the inputs the weights expect.
    norm = input_normalization(m, a.normalize);
  }
  nn::set_normalization(m, norm);
  if (!m.metadata.count("veil.dataset")) m.metadata["veil.dataset"] = a.data;
  if (!train_set.class_names.empty() && (a.init.empty() || !m.metadata.count("veil.class_names"))) {
    std::string names;
    for (size_t i = 0; i < train_set.class_names.size(); ++i)
      names += (i ? "," : "") + train_set.class_names[i];
    m.metadata["veil.class_names"] = names;
  }
  if (a.init.empty()) return a.arch;
  auto it = m.metadata.find("veil.arch");
  return it == m.metadata.end() ? std::string() : it->second;
}

void run_train(const TrainArgs& a) {
  if (a.out.empty()) throw InvalidArgument("--out is required");
  if (!a.classifier_activation.empty() && !model::takes_classifier_activation(a.arch))
    throw CLI::ValidationError("--classifier-activation",
                               "applies to keras-cifar10 only, not --arch " + a.arch);
  if (!a.normalize.empty() && a.init.empty())
    throw CLI::ValidationError("--normalize", "applies with --init only");
  OutputGuard guard;
  guard.input("--data", a.data);
  if (!a.init.empty()) guard.input("--init", a.init);
  if (!a.teacher.empty()) guard.input("--teacher", a.teacher);
  guard.output("--out", a.out).output("--checkpoint", a.checkpoint).check();
  if (!a.checkpoint.empty()) {
    const bool exists = std::filesystem::exists(a.checkpoint);
    if (exists && !a.resume)
      throw InvalidArgument("--checkpoint '" + printable(a.checkpoint) +
                            "' exists: give --resume to continue that run, or remove it");
    if (!exists && a.resume)
      throw InvalidArgument("--resume: there is no checkpoint at '" + printable(a.checkpoint) +
                            "'");
  }
  auto train_set = data::load_dataset(a.data, data::Split::Train, a.limit);
  auto test_set = data::load_dataset(a.data, data::Split::Test, a.test_limit);
  model::Model m;
  data::Normalization normalization;
  const std::string arch = initial_model(a, train_set, m, normalization);
  const bool fine_tune = !a.init.empty();

  nn::TrainOptions o;
  o.epochs = a.epochs;
  o.batch_size = a.batch;
  const bool deep = arch == "resnet20" || arch == "resnet18" || arch == "vgg-small";
  // keras-cifar10 at 0.05 diverges in its first epoch on Fashion-MNIST when the classifier has
  // no ReLU (square or none: fc1 and fc2 then compose into one large linear map); 0.01 trains
  // all three variants (docs/HE.md). Fine-tuning (--init) starts from trained weights: 0.01.
  const float default_lr = arch == "keras-cifar10" || fine_tune ? 0.01f : (deep ? 0.1f : 0.05f);
  o.lr = a.lr > 0 ? a.lr : default_lr;  // --lr's validator refuses <= 0, NaN, Inf
  o.sgd.momentum = a.momentum;
  o.sgd.weight_decay = a.weight_decay;
  if (a.schedule == "cosine")
    o.schedule = nn::LrSchedule::Cosine;
  else if (a.schedule == "step")
    o.schedule = nn::LrSchedule::Step, o.step_epochs = std::max(1, a.epochs / 3);
  else if (a.schedule == "constant")
    o.schedule = nn::LrSchedule::Constant;
  else
    throw InvalidArgument("--schedule must be cosine, step or constant");
  o.crop_pad = a.crop_pad >= 0 ? a.crop_pad : (deep ? 2 : 0);
  o.flip = a.flip >= 0 ? a.flip != 0 : deep;
  o.seed = a.seed;
  o.progress = !a.quiet;
  o.normalization = normalization;
  model::Model teacher;
  if (!a.teacher.empty()) {
    teacher = load_model(a.teacher);
    o.distill.teacher = &teacher;
    o.distill.normalization = input_normalization(teacher, a.normalize);
    o.distill.alpha = a.distill_alpha;
    o.distill.temperature = a.distill_temperature;
    o.distill.features = a.distill_features == std::vector<std::string>{"stages"}
                             ? nn::stage_outputs(m)
                             : a.distill_features;
    if (!a.distill_features.empty() && o.distill.features.empty())
      throw InvalidArgument("--distill-features stages: the model has no rank-4 Relu or BlockRelu");
    o.distill.feature_beta = a.distill_beta;
  }

  std::optional<nn::Checkpoint> resumed;
  std::string run;
  std::string threads_changed;  // set when --resume runs at another thread count
  const int64_t steps = (train_set.size() + o.batch_size - 1) / o.batch_size;
  int64_t start_step = 0;  // of the whole run
  bool stopped = false;
  struct {
    int epoch = 0;
    int64_t step = 0;
  } last_state;  // of the last checkpoint
  if (!a.checkpoint.empty()) {
    const std::string threads = std::to_string(nn::num_threads());
    run = run_record(a, o, train_set, test_set) + "threads=" + threads + "\n";
    if (a.resume) {
      resumed = nn::read_checkpoint(a.checkpoint);
      if (auto diff = nn::run_differences(resumed->run, run, {"threads"}); !diff.empty())
        throw InvalidArgument(fmt::format("--resume: '{}' is the checkpoint of another run ({})",
                                          printable(a.checkpoint), fmt::join(diff, "; ")));
      // Checkpoints written before the count was recorded have no such line: nothing to say.
      if (auto saved = nn::run_value(resumed->run, "threads"); saved && *saved != threads) {
        threads_changed = "--threads " + printable(*saved) + " in the checkpoint, " + threads +
                          " now: the weights will differ in the last bits from an uninterrupted "
                          "run's (another summation order), the training is the same";
        if (!a.quiet) fmt::print(stderr, "note: {}\n", threads_changed);
      }
      nn::restore_weights(m, resumed->weights);
      o.resume = &resumed->state;
      start_step = resumed->state.epoch * steps + resumed->state.step;
      if (!a.quiet)
        fmt::print(stderr, "resuming from {}: epoch {}/{}, step {}/{}\n", printable(a.checkpoint),
                   std::min(resumed->state.epoch + 1, a.epochs), a.epochs, resumed->state.step,
                   steps);
    }
    o.checkpoint_every = a.checkpoint_every;
    o.on_checkpoint = [&](const nn::TrainState& st) {
      nn::write_checkpoint(a.checkpoint, {run, st, nn::float_initializers(m)});
      last_state.epoch = st.epoch;
      last_state.step = st.step;
      stopped = a.stop_after_steps > 0 &&
                st.epoch * steps + st.step - start_step >= a.stop_after_steps &&
                st.epoch < a.epochs;
      return !stopped;
    };
  }

  auto t0 = std::chrono::steady_clock::now();
  auto history = nn::train(m, train_set, &test_set, o, [&](const nn::EpochStats& e) {
    // On stderr with --json too: the JSON (stdout) arrives only at the end, and a long run's
    // log would otherwise hold no test accuracy until then.
    if (!a.quiet)
      fmt::print(stderr,
                 "epoch {:>3}  lr {:.4f}  loss {:.4f}  train {:.2f}%  test top-1 {:.2f}%  top-5 "
                 "{:.2f}%  {:.0f} img/s\n",
                 e.epoch, e.lr, e.train_loss, 100 * e.train_top1, 100 * e.test_top1,
                 100 * e.test_top5, e.images_per_s);
  });
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (stopped) {
    // --out is only ever the finished model; the checkpoint holds the rest.
    if (a.json)
      print_json({{"stopped", true},
                  {"checkpoint", a.checkpoint},
                  {"epochs_done", last_state.epoch},
                  {"step", last_state.step},
                  {"steps_per_epoch", steps},
                  {"epochs", a.epochs},
                  {"seconds", secs}});
    else
      fmt::print(
          "stopped after {} of {} epochs and {} of {} steps of the next; the same command "
          "with --resume continues the run from {}\n",
          last_state.epoch, a.epochs, last_state.step, steps, printable(a.checkpoint));
    return;
  }
  model::save_onnx(m, a.out);
  const auto& last = history.back();
  if (a.json) {
    nlohmann::json j;
    j["arch"] = arch;
    if (fine_tune) j["init"] = a.init;
    if (!a.teacher.empty()) {
      j["distill"] = {{"teacher", a.teacher},
                      {"alpha", a.distill_alpha},
                      {"temperature", a.distill_temperature}};
      if (!o.distill.features.empty()) {
        j["distill"]["features"] = o.distill.features;
        j["distill"]["feature_beta"] = a.distill_beta;
      }
    }
    j["data"] = a.data;
    j["out"] = a.out;
    if (resumed)
      j["resumed"] = {{"checkpoint", a.checkpoint},
                      {"epoch", resumed->state.epoch},
                      {"step", resumed->state.step}};
    if (!threads_changed.empty()) j["resumed"]["threads_changed"] = threads_changed;
    j["train_images"] = train_set.size();
    j["test_images"] = test_set.size();
    j["seconds"] = secs;
    j["test_top1"] = last.test_top1;
    j["test_top5"] = last.test_top5;
    for (const auto& e : history)
      j["epochs"].push_back({{"epoch", e.epoch},
                             {"lr", e.lr},
                             {"train_loss", e.train_loss},
                             {"train_top1", e.train_top1},
                             {"test_top1", e.test_top1},
                             {"test_top5", e.test_top5},
                             {"seconds", e.seconds},
                             {"images_per_s", e.images_per_s}});
    print_json(j);
  } else {
    fmt::print(
        "{} {} on {} ({} images, {} epochs, {:.1f} s): test top-1 {:.2f}%, top-5 {:.2f}% -> "
        "{}\n",
        fine_tune ? "fine-tuned" : "trained", printable(fine_tune ? a.init : a.arch),
        printable(a.data), train_set.size(), a.epochs, secs, 100 * last.test_top1,
        100 * last.test_top5, printable(a.out));
  }
}

struct EvalArgs {
  std::string model;
  std::string data = "fashion-mnist";
  int64_t limit = 0;
  int64_t batch = 256;
  std::string normalize;
  bool json = false;
  bool quiet = false;
};

void run_eval(const EvalArgs& a) {
  if (a.limit < 0) throw InvalidArgument("--limit must not be negative");
  auto m = load_model(a.model);
  auto set = data::load_dataset(a.data, data::Split::Test, a.limit);
  nn::EvalOptions o;
  o.batch_size = a.batch;
  o.normalization = input_normalization(m, a.normalize);
  o.progress = !a.quiet && !a.json;
  auto r = nn::evaluate(m, set, o);
  if (a.json) {
    print_json({{"model", a.model},
                {"data", a.data},
                {"images", r.count},
                {"top1", r.top1},
                {"top5", r.top5},
                {"non_finite", r.non_finite},
                {"seconds", r.seconds},
                {"images_per_s", r.images_per_s}});
  } else {
    // Images whose logits hold NaN or inf have no class: they count as misses and are named.
    const std::string non_finite =
        r.non_finite ? fmt::format("  {} with non-finite logits (counted as misses)", r.non_finite)
                     : "";
    fmt::print("{} on {} ({} images): top-1 {:.2f}%  top-5 {:.2f}%{}  ({:.0f} images/s)\n",
               printable(a.model), printable(a.data), r.count, 100 * r.top1, 100 * r.top5,
               non_finite, r.images_per_s);
  }
}

struct InferArgs {
  std::string model;
  std::vector<std::string> inputs;
  std::vector<std::string> outputs;
};

void run_infer(const InferArgs& a) {
  {
    OutputGuard guard;
    guard.input("--model", a.model);
    for (const auto& p : a.inputs) guard.input("--input", p);
    for (const auto& p : a.outputs) guard.output("--output", p);
    guard.check();
  }
  auto m = load_model(a.model);
  if (a.inputs.size() != m.graph.inputs.size())
    throw InvalidArgument(fmt::format("the model has {} inputs but {} --input files were given",
                                      m.graph.inputs.size(), a.inputs.size()));
  if (a.outputs.empty() || a.outputs.size() > m.graph.outputs.size())
    throw InvalidArgument(fmt::format("give one --output per model output (the model has {})",
                                      m.graph.outputs.size()));
  std::vector<Tensor> xs;
  for (size_t i = 0; i < a.inputs.size(); ++i) {
    Tensor t = data::read_tensor(a.inputs[i]);
    const auto& want = m.graph.inputs[i].shape;
    bool ok = want.empty() || want.size() == t.shape().size();
    for (size_t d = 0; ok && d < want.size(); ++d) ok = want[d] < 0 || want[d] == t.shape()[d];
    if (!ok)
      throw InvalidArgument(fmt::format("input '{}' has shape {} but the model's input '{}' is {}",
                                        a.inputs[i], shape_to_string(t.shape()),
                                        m.graph.inputs[i].name, shape_to_string(want)));
    xs.push_back(std::move(t));
  }
  nn::Executor exec(m);
  auto ys = exec.forward(xs);
  for (size_t i = 0; i < a.outputs.size(); ++i) {
    data::write_npy(a.outputs[i], ys[i]);
    // NaN / inf are written as computed (PyTorch gives the same); say so, since an arg-max
    // over such logits means nothing.
    if (ys[i].dtype() != DType::Float32) continue;
    const auto v = ys[i].floats();
    const auto bad = std::count_if(v.begin(), v.end(), [](float z) { return !std::isfinite(z); });
    if (bad)
      fmt::print(stderr, "veil: warning: {} holds {} non-finite values (NaN or inf)\n",
                 a.outputs[i], bad);
  }
}

struct InfoArgs {
  std::string model;
  bool json = false;
};

void run_info(const InfoArgs& a) {
  auto m = load_model(a.model);
  auto s = model::summarize(m);
  if (a.json) {
    nlohmann::json j;
    j["model"] = a.model;
    j["opset"] = m.opset;
    j["input_shape"] = s.input_shape;
    j["params"] = s.params;
    j["macs"] = s.macs;
    j["relus"] = s.relus;
    j["relu_count"] = s.relu_count;
    j["drelu_per_image"] = s.drelus;
    j["metadata"] = m.metadata;
    for (const auto& l : s.layers)
      j["layers"].push_back({{"name", l.name},
                             {"op", l.op_type},
                             {"output_shape", l.output_shape},
                             {"params", l.params},
                             {"macs", l.macs},
                             {"relus", l.relus},
                             {"relu_count", l.relu_count},
                             {"drelu_per_image", l.drelus}});
    print_json(j);
    return;
  }
  // Names, op types and metadata come from the file: printable() keeps them on their line.
  fmt::print("{}  (opset {}, input {})\n", printable(a.model), m.opset,
             shape_to_string(s.input_shape));
  fmt::print("{:<28} {:<20} {:<18} {:>10} {:>12} {:>8} {:>8}\n", "layer", "op", "output", "params",
             "MACs", "ReLUs", "DReLUs");
  for (const auto& l : s.layers)
    fmt::print("{:<28} {:<20} {:<18} {:>10} {:>12} {:>8} {:>8}\n", printable(l.name.substr(0, 28)),
               printable(l.op_type), shape_to_string(l.output_shape), l.params, l.macs, l.relus,
               l.drelus);
  // Exact DReLU counts: a block-ReLU budget is a ratio of the two.
  fmt::print(
      "total: {} parameters, {} MACs, {} ReLUs per image; three-party: {} DReLUs per image "
      "(ReLU layers: {} elements)\n",
      human_count(s.params), human_count(s.macs), human_count(s.relus), s.drelus, s.relu_count);
  for (const auto& [k, v] : m.metadata) fmt::print("  {} = {}\n", printable(k), printable(v));
}

struct PlotArgs {
  std::vector<std::string> series;  // LABEL=FILE, FILE from `veil train --json`
  std::string csv;                  // or a numeric table: x, then one column per series
  std::string out;
  std::string title;  // default: "<y label> per <x label>"
  std::string x_label, y_label = "test top-1 (%)";
  double y_min = 0, y_max = 100;
  bool log_x = false;
};

// One curve per `veil train --json` summary: test top-1 (%) against the epoch, as the FHE paper's
// Figures 4-5 compare activations.
void run_plot(const PlotArgs& a) {
  if (a.series.empty() == a.csv.empty())
    throw CLI::ValidationError("--series", "give either --series LABEL=FILE... or --csv FILE");
  if (!(a.y_min < a.y_max)) throw CLI::ValidationError("--y-min", "must be below --y-max");
  if (!a.csv.empty()) {
    OutputGuard().input("--csv", a.csv).output("--out", a.out).check();
    std::string x_name;
    auto series = plot_series_from_csv(read_text_file(a.csv, 16 << 20), &x_name);
    if (a.log_x)
      for (const auto& s : series)
        for (double x : s.x)
          if (!(x > 0)) throw InvalidArgument(printable(a.csv) + ": --log-x needs every x above 0");
    const std::string x_label = a.x_label.empty() ? x_name : a.x_label;
    const std::string title = a.title.empty() ? a.y_label + " per " + x_label : a.title;
    write_file_atomic(a.out,
                      line_plot_svg(title, x_label, a.y_label, series, a.y_min, a.y_max, a.log_x));
    return;
  }
  OutputGuard guard;
  std::vector<std::pair<std::string, std::string>> files;
  for (const auto& s : a.series) {
    const auto eq = s.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == s.size())
      throw CLI::ValidationError("--series", "expects LABEL=FILE, got '" + s + "'");
    files.emplace_back(s.substr(0, eq), s.substr(eq + 1));
    guard.input("--series", files.back().second);
  }
  guard.output("--out", a.out).check();
  std::vector<PlotSeries> series;
  for (const auto& [label, path] : files) {
    const auto j = nlohmann::json::parse(read_text_file(path, 16 << 20), nullptr, false);
    const auto where = printable(path);
    if (j.is_discarded() || !j.is_object() || !j.contains("epochs") || !j["epochs"].is_array())
      throw MalformedInput(where + ": not the JSON summary of `veil train --json`");
    PlotSeries curve{label, {}, {}};
    for (const auto& e : j["epochs"]) {
      if (!e.is_object() || !e.contains("epoch") || !e["epoch"].is_number() ||
          !e.contains("test_top1") || !e["test_top1"].is_number())
        throw MalformedInput(where + ": an epoch without a number 'epoch' and 'test_top1'");
      curve.x.push_back(e["epoch"].get<double>());
      curve.y.push_back(100 * e["test_top1"].get<double>());
    }
    series.push_back(std::move(curve));
  }
  write_file_atomic(a.out, line_plot_svg(a.title.empty() ? "test top-1 per epoch" : a.title,
                                         a.x_label.empty() ? "epoch" : a.x_label, a.y_label, series,
                                         a.y_min, a.y_max, a.log_x));
}

}  // namespace

void add_core_commands(CLI::App& app) {
  auto ta = std::make_shared<TrainArgs>();
  auto* train = app.add_subcommand(
      "train", "Train a built-in architecture, or fine-tune an ONNX model, and export it to ONNX");
  auto* arch = train
                   ->add_option("--arch", ta->arch,
                                "lenet5 | mlp | vgg-small | resnet20 | resnet18 | he-cnn | "
                                "keras-cifar10")
                   ->check(CLI::IsMember(model::arch_names()));
  auto* init = train->add_option(
      "--init", ta->init,
      "Fine-tune this ONNX model (any model veil runs, block ReLUs included) instead of --arch; "
      "its metadata (normalisation, class names) is kept. Default --lr 0.01");
  init->excludes(arch);
  train
      ->add_option("--normalize", ta->normalize,
                   "With --init, for a model without veil's metadata: input normalisation "
                   "MEAN,STD (as veil eval), stored in the output")
      ->excludes(arch);
  train
      ->add_option("--classifier-activation", ta->classifier_activation,
                   "keras-cifar10's hidden classifier activation: relu (default) | square | none")
      ->check(CLI::IsMember({"relu", "square", "none"}))
      ->excludes(init);
  train->add_option("--data", ta->data, "fashion-mnist or a dataset directory");
  auto* teacher = train->add_option(
      "--teacher", ta->teacher,
      "Knowledge distillation: also match this model's softened logits (e.g. the full-ReLU model "
      "while fine-tuning its block-ReLU version). It sees the same augmented images through its "
      "own normalisation");
  train
      ->add_option("--distill-alpha", ta->distill_alpha,
                   "With --teacher: weight of the teacher's soft targets against the labels")
      ->check(in_range(0.0, 1.0))
      ->needs(teacher);
  train
      ->add_option("--distill-temperature", ta->distill_temperature,
                   "With --teacher: softmax temperature of the soft targets")
      ->check(positive_number(100))
      ->needs(teacher);
  auto* features =
      train
          ->add_option(
              "--distill-features", ta->distill_features,
              "With --teacher: also match the teacher's feature maps at these values by "
              "attention transfer (Zagoruyko & Komodakis 2017): `stages` (the last Relu or "
              "BlockRelu output of every spatial size) or value names, comma-separated, that "
              "both models compute")
          ->delimiter(',')
          ->needs(teacher);
  train
      ->add_option("--distill-beta", ta->distill_beta,
                   "With --distill-features: weight of the attention-transfer term (the paper's "
                   "beta)")
      ->check(in_range(0.0, 1e6))
      ->needs(features);
  train->add_option("--epochs", ta->epochs, "Epochs")->check(in_range(1, 100000));
  train->add_option("--batch", ta->batch, "Batch size")->check(in_range<int64_t>(1, 65536));
  train
      ->add_option("--lr", ta->lr,
                   "Initial learning rate (default 0.05; 0.1 for resnet20, resnet18 and vgg-small, "
                   "0.01 for keras-cifar10 and for --init)")
      ->check(positive_number(100));
  train->add_option("--momentum", ta->momentum, "SGD momentum")->check(in_range(0.0, 0.999));
  train->add_option("--weight-decay", ta->weight_decay, "L2 weight decay")
      ->check(in_range(0.0, 1.0));
  train->add_option("--schedule", ta->schedule, "cosine | step | constant");
  train->add_option("--crop-pad", ta->crop_pad, "Random-crop padding in pixels (0 = off)")
      ->check(in_range<int64_t>(0, 64));
  train->add_option("--flip", ta->flip, "Random horizontal flip (1 = on, 0 = off)")
      ->check(in_range(0, 1));
  train->add_option("--seed", ta->seed, "Seed for initialisation, shuffling and augmentation")
      ->check(in_range<uint64_t>(0, UINT64_MAX));
  train->add_option("--limit", ta->limit, "Use only the first N training images (0 = all)")
      ->check(image_count());
  train->add_option("--test-limit", ta->test_limit, "Use only the first N test images (0 = all)")
      ->check(image_count());
  train->add_option("--out", ta->out, "Output ONNX file")->required();
  auto* checkpoint = train->add_option(
      "--checkpoint", ta->checkpoint,
      "Keep the run's state in this file (after every epoch, and every --checkpoint-every "
      "steps): weights, momentum, sample order and generator. A stopped run continues with the "
      "same command and --resume, and ends with the weights an uninterrupted run would have (at "
      "the same --threads; another count is allowed and noted)");
  train
      ->add_option("--checkpoint-every", ta->checkpoint_every,
                   "With --checkpoint: also write it every this many steps (0 = after every "
                   "epoch only)")
      ->check(in_range<int64_t>(0, int64_t{1} << 40))
      ->needs(checkpoint);
  train
      ->add_flag("--resume", ta->resume,
                 "Continue the run in --checkpoint (refused when an option, the data or an input "
                 "model differs from that run's)")
      ->needs(checkpoint);
  train->add_option("--stop-after-steps", ta->stop_after_steps)
      ->check(in_range<int64_t>(0, int64_t{1} << 40))
      ->needs(checkpoint)
      ->group("");  // hidden: simulates a killed run in the tests
  train->add_flag("--json", ta->json, "Machine-readable summary on stdout");
  train->add_flag("--quiet", ta->quiet, "No progress output");
  train->callback([ta] { run_train(*ta); });

  auto pa = std::make_shared<PlotArgs>();
  auto* plot = app.add_subcommand(
      "plot", "SVG line chart: test top-1 per epoch from `veil train --json`, or a CSV table");
  plot->add_option("--series", pa->series,
                   "LABEL=FILE (a `veil train --json` summary), one per curve");
  plot->add_option("--csv", pa->csv, "A CSV table: x, then one column per curve (header = labels)");
  plot->add_option("--out", pa->out, "Output SVG")->required();
  plot->add_option("--title", pa->title, "Chart title");
  plot->add_option("--x-label", pa->x_label,
                   "x axis label (default: epoch, or the CSV's x column)");
  plot->add_option("--y-label", pa->y_label, "y axis label");
  plot->add_flag("--log-x", pa->log_x, "Logarithmic x axis");
  plot->add_option("--y-min", pa->y_min, "Lower end of the top-1 axis (%)")
      ->check(in_range(0.0, 100.0));
  plot->add_option("--y-max", pa->y_max, "Upper end of the top-1 axis (%)")
      ->check(in_range(0.0, 100.0));
  plot->callback([pa] { run_plot(*pa); });

  auto ea = std::make_shared<EvalArgs>();
  auto* eval = app.add_subcommand("eval", "Top-1 / top-5 accuracy of a model on a test set");
  eval->add_option("--model", ea->model, "ONNX model")->required();
  eval->add_option("--data", ea->data, "fashion-mnist or a dataset directory");
  eval->add_option("--limit", ea->limit, "Evaluate only the first N test images (0 = all)")
      ->check(image_count());
  eval->add_option("--batch", ea->batch, "Batch size")->check(in_range<int64_t>(1, 65536));
  eval->add_option("--normalize", ea->normalize,
                   "MEAN,STD applied to [0,1] pixels (default: from the model's metadata)");
  eval->add_flag("--json", ea->json, "Machine-readable result on stdout");
  eval->add_flag("--quiet", ea->quiet, "No progress output");
  eval->callback([ea] { run_eval(*ea); });

  auto ia = std::make_shared<InferArgs>();
  auto* infer = app.add_subcommand("infer", "Run a model on tensors from .npy or .pb files");
  infer->add_option("--model", ia->model, "ONNX model")->required();
  infer
      ->add_option("--input", ia->inputs,
                   "Input tensor (.npy or ONNX TensorProto .pb), in graph order")
      ->required();
  infer->add_option("--output", ia->outputs, "Output .npy file, one per graph output")->required();
  infer->callback([ia] { run_infer(*ia); });

  auto fa = std::make_shared<InfoArgs>();
  auto* info = app.add_subcommand(
      "info", "Layers, shapes, parameters, MACs, ReLU and three-party DReLU counts");
  info->add_option("--model", fa->model, "ONNX model")->required();
  info->add_flag("--json", fa->json, "Machine-readable report on stdout");
  info->callback([fa] { run_info(*fa); });
}

}  // namespace veil::cli
