// veil split attack: model stealing from what the accelerator saw.
#include <fmt/format.h>

#include <algorithm>
#include <memory>

#include "common.hpp"
#include "validators.hpp"
#include "veil/cli/commands.hpp"
#include "veil/core/error.hpp"
#include "veil/core/printable.hpp"
#include "veil/data/dataset.hpp"
#include "veil/nn/preprocess.hpp"
#include "veil/split/accelerator.hpp"
#include "veil/split/attack.hpp"
#include "veil/split/pipeline.hpp"
#include "veil/split/transcript.hpp"
#include "veil/split/transcript_file.hpp"

namespace veil::cli {

namespace {

struct AttackArgs {
  std::string model;
  std::string data = "fashion-mnist";
  std::string scheme = "shadownet";
  std::string transcript;
  bool scheme_given = false;  // --scheme on the command line (checked against a transcript's)
  int64_t queries = 256;
  int64_t batch = 64;
  int64_t limit = 0;
  split::AttackOptions options;
  bool json = false;
  bool quiet = false;
};

// The accelerator's view of `queries` training images the attacker does not hold, recorded from
// an in-process run of the victim under `scheme` (the trusted part and the accelerator in one
// process: the view is the same bytes the remote accelerator would receive).
split::Transcript record_view(const model::Model& victim, const data::Dataset& train,
                              const AttackArgs& a) {
  const auto held = split::attacker_images(train.size(), a.options);
  std::vector<char> taken(static_cast<size_t>(train.size()), 0);
  for (int64_t i : held) taken[static_cast<size_t>(i)] = 1;
  std::vector<int64_t> queries;
  for (int64_t i = train.size() - 1; i >= 0 && static_cast<int64_t>(queries.size()) < a.queries;
       --i)
    if (!taken[static_cast<size_t>(i)]) queries.push_back(i);
  if (queries.empty()) throw InvalidArgument("no training images left for the victim's queries");
  split::Transcript view;
  split::AcceleratorOptions ao;
  ao.threads = std::max(1, a.options.threads);
  ao.record = &view;
  auto accelerator = split::make_local_accelerator(ao);
  split::PipelineOptions po;
  po.scheme = split::parse_scheme(a.scheme);
  po.threads = std::max(1, a.options.threads);
  split::Pipeline pipeline(victim, po, *accelerator);
  const auto norm = nn::normalization_of(victim);
  for (size_t b = 0; b < queries.size(); b += static_cast<size_t>(a.batch)) {
    const size_t e = std::min(queries.size(), b + static_cast<size_t>(a.batch));
    Tensor x = train.batch(std::vector<int64_t>(queries.begin() + b, queries.begin() + e));
    norm.apply(x);
    pipeline.infer(x);
  }
  if (view.scheme.empty()) view.scheme = a.scheme;
  return view;
}

nlohmann::json to_json(const split::AttackReport& r) {
  nlohmann::json j;
  j["scheme"] = r.scheme;
  j["fidelity"] = r.fidelity;
  j["accuracy"] = r.accuracy;
  j["chosen"] = r.chosen;
  j["victim_accuracy"] = r.victim_accuracy;
  j["surrogate_fidelity"] = r.surrogate_fidelity;
  j["surrogate_accuracy"] = r.surrogate_accuracy;
  if (r.recovered_fidelity >= 0) {
    j["recovered_fidelity"] = r.recovered_fidelity;
    j["recovered_accuracy"] = r.recovered_accuracy;
  }
  j["attacker_images"] = r.attacker_images;
  j["transcript_images"] = r.transcript_images;
  j["test_images"] = r.test_images;
  j["seconds"] = r.seconds;
  auto& layers = j["layers"] = nlohmann::json::array();
  for (const auto& l : r.layers)
    layers.push_back({{"name", l.name},
                      {"filters", l.filters},
                      {"slots", l.slots},
                      {"confidence", l.confidence},
                      {"recovery", l.recovery},
                      {"unpermuted", l.unpermuted},
                      {"paired", l.paired},
                      {"matched", l.matched},
                      {"weight_cosine", l.weight_cosine}});
  return j;
}

void print_report(const split::AttackReport& r) {
  fmt::print(
      "attack on {}: fidelity {:.2f}%, accuracy {:.2f}% ({} model; victim accuracy {:.2f}%)\n",
      printable(r.scheme), 100 * r.fidelity, 100 * r.accuracy, r.chosen, 100 * r.victim_accuracy);
  fmt::print("  surrogate (from scratch on {} images): fidelity {:.2f}%, accuracy {:.2f}%\n",
             r.attacker_images, 100 * r.surrogate_fidelity, 100 * r.surrogate_accuracy);
  if (r.recovered_fidelity >= 0)
    fmt::print("  recovered model: fidelity {:.2f}%, accuracy {:.2f}%\n",
               100 * r.recovered_fidelity, 100 * r.recovered_accuracy);
  fmt::print("  view: {} query images; scored on {} test images; {:.1f} s\n", r.transcript_images,
             r.test_images, r.seconds);
  fmt::print("  {:<12} {:>7} {:>6} {:>10} {:>9} {:>7} {:>8} {:>7}\n", "layer", "filters", "slots",
             "confidence", "recovery", "paired", "matched", "cosine");
  for (const auto& l : r.layers)
    fmt::print("  {:<12} {:>7} {:>6} {:>10.1f} {:>9} {:>6.1f}% {:>7.1f}% {:>7.3f}\n",
               printable(l.name), l.filters, l.slots, l.confidence, l.recovery, 100 * l.paired,
               100 * l.matched, l.weight_cosine);
}

void run_attack(AttackArgs& a) {
  const model::Model victim = load_model(a.model);
  const auto train = data::load_dataset(a.data, data::Split::Train, a.limit);
  const auto test = data::load_dataset(a.data, data::Split::Test);
  if (!a.quiet && !a.json)
    a.options.progress = [](const std::string& line) { fmt::print(stderr, "{}\n", line); };
  split::Transcript view;
  if (!a.transcript.empty()) {
    // The view an accelerator recorded (`split serve --role accelerator --transcript` or
    // `split run --transcript`): the attack then uses exactly what crossed the channel.
    view = split::read_transcript(a.transcript);
    if (a.scheme_given && view.scheme != a.scheme)
      throw InvalidArgument("--transcript " + a.transcript + " was recorded under " + view.scheme +
                            ", not " + a.scheme);
  } else {
    if (!a.quiet && !a.json)
      fmt::print(stderr, "recording the accelerator's view of {} queries under {}\n", a.queries,
                 a.scheme);
    view = record_view(victim, train, a);
  }
  const auto report = split::steal_model(victim, view, train, test, a.options);
  if (a.json)
    print_json(to_json(report));
  else
    print_report(report);
}

}  // namespace

void add_split_attack_command(CLI::App& split) {
  auto a = std::make_shared<AttackArgs>();
  auto* cmd = split.add_subcommand(
      "attack",
      "Steal the model from the accelerator's view (ShadowNet: pair, un-permute, "
      "calibrate), against a surrogate trained from scratch on the attacker's data");
  cmd->add_option("--model", a->model, "The victim (ONNX)")->required();
  cmd->add_option("--data", a->data, "fashion-mnist or a dataset directory");
  cmd->add_option("--scheme", a->scheme, "plain | shadownet | slalom | darknight | hardened")
      ->check(CLI::IsMember({"plain", "shadownet", "slalom", "darknight", "hardened"}));
  cmd->add_option("--queries", a->queries,
                  "Training images the victim answers while the view is recorded (not the "
                  "attacker's)")
      ->check(in_range<int64_t>(1, 1 << 20));
  cmd->add_option("--batch", a->batch, "Images per query")->check(in_range<int64_t>(1, 4096));
  cmd->add_option("--data-fraction", a->options.data_fraction,
                  "Fraction of the labelled training set the attacker holds")
      ->check(positive_number(1));
  cmd->add_option("--epochs", a->options.surrogate_epochs, "Epochs for the from-scratch surrogate")
      ->check(in_range(0, 1000));
  cmd->add_option("--finetune-epochs", a->options.finetune_epochs,
                  "Epochs for fine-tuning the recovered model")
      ->check(in_range(0, 1000));
  cmd->add_option("--test-limit", a->options.test_limit, "Test images scored (0 = all)")
      ->check(image_count());
  cmd->add_option("--limit", a->limit, "Training images loaded (0 = all)")->check(image_count());
  cmd->add_option("--threads", a->options.threads, "Kernel threads")->check(in_range(1, 256));
  cmd->add_option("--seed", a->options.seed, "Which images the attacker holds, its training");
  cmd->add_option("--transcript", a->transcript,
                  "Attack a recorded view (.vtrs from `split run|serve --transcript`) instead of "
                  "recording one in process");
  cmd->add_flag("--json", a->json, "Machine-readable report on stdout");
  cmd->add_flag("--quiet", a->quiet, "No progress output");
  cmd->callback([a, cmd] {
    a->scheme_given = cmd->count("--scheme") > 0;
    run_attack(*a);
  });
}

}  // namespace veil::cli
