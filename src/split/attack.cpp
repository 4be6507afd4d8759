#include "veil/split/attack.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <optional>
#include <random>

#include "attack_view.hpp"
#include "veil/core/error.hpp"
#include "veil/model/fold_batch_norm.hpp"
#include "veil/nn/executor.hpp"
#include "veil/nn/preprocess.hpp"
#include "veil/nn/threads.hpp"
#include "veil/nn/trainer.hpp"
#include "veil/split/assignment.hpp"
#include "veil/split/channel_matching.hpp"
#include "veil/split/filter_pairing.hpp"
#include "veil/split/partition.hpp"
#include "veil/split/recovered_model.hpp"
#include "veil/split/surrogate.hpp"

namespace veil::split {

using namespace attack_detail;

namespace {

// Layers whose own pairing is weaker than kPairingThreshold still count as paired when another
// layer of the model shows the structure beyond any doubt: one scheme protects every layer, and
// the smallest layers (6 filters of 25 weights) cannot show it on their own.
constexpr double kModelEvidence = 8.0;
// Agreement of a candidate's logits with the view that only an exact recovery reaches.
constexpr double kExactAgreement = 0.99;

data::Dataset subset(const data::Dataset& d, const std::vector<int64_t>& idx) {
  data::Dataset s;
  s.name = d.name;
  s.images = d.batch(idx);
  s.labels = d.batch_labels(idx);
  s.num_classes = d.num_classes;
  s.class_names = d.class_names;
  return s;
}

// Raw outputs [n, classes] of `m` on the first n images of `set`.
std::vector<float> outputs(model::Model& m, const data::Dataset& set, int64_t n,
                           const data::Normalization& norm, int threads, int64_t& classes) {
  nn::ExecutorOptions eo;
  eo.threads = threads;
  nn::Executor exec(m, eo);
  std::vector<float> out;
  classes = 0;
  for (int64_t b = 0; b < n; b += 256) {
    Tensor x = set.batch(b, std::min<int64_t>(256, n - b));
    norm.apply(x);
    Tensor y = exec.forward({x})[0];
    classes = y.numel() / x.dim(0);
    const auto f = y.floats();
    out.insert(out.end(), f.begin(), f.end());
  }
  return out;
}

std::vector<int32_t> predictions(model::Model& m, const data::Dataset& set, int64_t n,
                                 const data::Normalization& norm, int threads) {
  int64_t classes = 0;
  const auto out = outputs(m, set, n, norm, threads, classes);
  std::vector<int32_t> p(n);
  for (int64_t i = 0; i < n; ++i) {
    const float* row = out.data() + i * classes;
    p[i] = static_cast<int32_t>(std::max_element(row, row + classes) - row);
  }
  return p;
}

double agreement(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  int64_t same = 0;
  for (size_t i = 0; i < a.size(); ++i) same += a[i] == b[i];
  return a.empty() ? 0 : static_cast<double>(same) / static_cast<double>(a.size());
}

void train_on(model::Model& m, const data::Dataset& data, int epochs, float lr,
              const data::Normalization& norm, uint64_t seed, const AttackOptions& o,
              const std::string& what, const std::vector<std::string>& trainable = {}) {
  if (epochs <= 0) return;
  nn::TrainOptions t;
  t.epochs = epochs;
  t.batch_size = 32;
  t.lr = lr;
  t.normalization = norm;
  t.seed = seed;
  t.progress = false;
  t.trainable = trainable;
  nn::train(m, data, nullptr, t, [&](const nn::EpochStats& e) {
    if (o.progress)
      o.progress(fmt::format("{}: epoch {}/{}  loss {:.4f}  train {:.1f}%", what, e.epoch, epochs,
                             e.train_loss, 100 * e.train_top1));
  });
}

// The recovered filters of a layer, placed at their channels, as the layer's weight tensor.
Tensor placed_weight(const LinearLayer& layer, const Recovery& r, int64_t dim) {
  Tensor w(layer.weight.shape());
  for (size_t k = 0; k < r.channel.size(); ++k)
    for (int64_t j = 0; j < dim; ++j)
      w.data()[r.channel[k] * dim + j] = static_cast<float>(r.filters[k * dim + j]);
  return w;
}

double cosine(const double* a, const float* b, int64_t n) {
  double ab = 0, aa = 0, bb = 0;
  for (int64_t i = 0; i < n; ++i) ab += a[i] * b[i], aa += a[i] * a[i], bb += double(b[i]) * b[i];
  return aa > 0 && bb > 0 ? ab / std::sqrt(aa * bb) : 0;
}

// Whether w lies in span(a, b) (relative residual below 5 %).
bool in_span(const double* a, const double* b, const float* w, int64_t n) {
  double aa = 0, ab = 0, bb = 0, aw = 0, bw = 0, ww = 0;
  for (int64_t i = 0; i < n; ++i) {
    aa += a[i] * a[i], ab += a[i] * b[i], bb += b[i] * b[i];
    aw += a[i] * w[i], bw += b[i] * w[i], ww += double(w[i]) * w[i];
  }
  const double det = aa * bb - ab * ab;
  if (ww <= 0 || det <= 0) return false;
  const double x = (aw * bb - bw * ab) / det, y = (bw * aa - aw * ab) / det;
  return (ww - (x * aw + y * bw)) / ww < 0.05 * 0.05;
}

// Evaluation only: how much of the victim's layer (folded weights) was recovered.
void score_layer(const LinearLayer& truth, const Recovery& r, int64_t n, int64_t dim,
                 LayerRecovery& out) {
  if (r.kind == "none") return;
  const float* w = truth.weight.data();
  double cos_sum = 0;
  int64_t paired = 0, matched = 0;
  std::vector<double> placed(n * dim, 0);
  for (size_t k = 0; k < r.channel.size(); ++k)
    std::copy(r.filters.begin() + k * dim, r.filters.begin() + (k + 1) * dim,
              placed.begin() + r.channel[k] * dim);
  for (int64_t c = 0; c < n; ++c) {
    const double cs = cosine(placed.data() + c * dim, w + c * dim, dim);
    cos_sum += cs;
    if (r.kind == "clear") {
      paired += cs > 0.99, matched += cs > 0.99;
      continue;
    }
    bool any = false;
    for (size_t k = 0; k < r.pairing.pairs.size(); ++k) {
      const auto& p = r.pairing.pairs[k];
      const bool spans =
          in_span(r.rows.data() + p.real * dim, r.rows.data() + p.fake * dim, w + c * dim, dim);
      any = any || spans;
      if (spans && r.channel[k] == c) ++matched;
    }
    paired += any;
  }
  out.weight_cosine = cos_sum / static_cast<double>(n);
  out.paired = static_cast<double>(paired) / static_cast<double>(n);
  out.matched = static_cast<double>(matched) / static_cast<double>(n);
}

}  // namespace

std::vector<int64_t> attacker_images(int64_t train_size, const AttackOptions& options) {
  if (!(options.data_fraction > 0 && options.data_fraction <= 1))
    throw InvalidArgument("the attacker's data fraction must be in (0, 1]");
  std::vector<int64_t> idx(train_size);
  std::iota(idx.begin(), idx.end(), 0);
  std::shuffle(idx.begin(), idx.end(), std::mt19937_64(options.seed));
  const auto n = std::min<int64_t>(
      train_size, std::max<int64_t>(20, std::llround(options.data_fraction * train_size)));
  idx.resize(n);
  return idx;
}

AttackReport steal_model(const model::Model& victim, const Transcript& view,
                         const data::Dataset& train, const data::Dataset& test,
                         const AttackOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  if (o.threads > 0) nn::set_num_threads(o.threads);
  auto say = [&](const std::string& s) {
    if (o.progress) o.progress(s);
  };
  AttackReport report;
  report.scheme = view.scheme;
  for (const auto& q : view.queries)  // every query batch passes the first layer once
    if (q.layer == 0 && !q.inputs.empty())
      report.transcript_images += std::holds_alternative<Tensor>(q.inputs[0])
                                      ? std::get<Tensor>(q.inputs[0]).dim(0)
                                      : std::get<FieldTensor>(q.inputs[0]).shape.at(0);

  // What the attacker knows: the architecture (shapes and which layer feeds which; the weights
  // the partition also carries are read below only to score the result).
  const Partition part = partition(victim);
  if (view.layers.size() != part.linear.size())
    throw InvalidArgument(fmt::format("the transcript holds {} layers, the model offloads {}",
                                      view.layers.size(), part.linear.size()));
  const data::Normalization norm = nn::normalization_of(victim);

  // The attacker's labelled images: most to train on, some held out to choose a model.
  auto idx = attacker_images(train.size(), o);
  report.attacker_images = static_cast<int64_t>(idx.size());
  const auto held_n = std::clamp<int64_t>(std::llround(o.held_out * double(idx.size())), 1,
                                          static_cast<int64_t>(idx.size()) - 1);
  const data::Dataset held = subset(train, std::vector<int64_t>(idx.end() - held_n, idx.end()));
  const data::Dataset fit = subset(train, std::vector<int64_t>(idx.begin(), idx.end() - held_n));

  // 1. The floor: the architecture trained from scratch on the attacker's images.
  model::Model surrogate = reinitialised(victim, o.seed);
  train_on(surrogate, fit, o.surrogate_epochs, 0.05f, norm, o.seed, o, "surrogate");

  // 2. Per layer, from the weights alone.
  std::vector<Recovery> rec(part.linear.size());
  double strongest = 0;
  for (size_t l = 0; l < part.linear.size(); ++l) {
    const LinearLayer& layer = part.linear[l].layer;
    const OutsourcedLayer& seen = view.layers[l];
    const Values w = values_of(seen.weight);
    const int64_t n = layer.out_channels(), dim = layer.weight.numel() / n;
    if (w.shape.empty() || static_cast<int64_t>(w.v.size()) % dim != 0)
      throw InvalidArgument("transcript layer " + std::to_string(l) + " does not fit the model");
    const int64_t slots = static_cast<int64_t>(w.v.size()) / dim;
    Recovery& r = rec[l];
    r.rows = w.v;
    r.field = std::holds_alternative<FieldTensor>(seen.weight);
    LayerRecovery lr;
    lr.name = layer.name, lr.filters = n, lr.slots = slots;
    if (slots == n) {  // Plain / Slalom / DarkNight: the weights are in the clear
      r.kind = "clear";
      r.filters = w.v;
      r.channel.resize(n);
      std::iota(r.channel.begin(), r.channel.end(), 0);
      r.unpermuted = true;
    } else if (slots > n) {
      r.pairing = pair_filters(w.v, slots, dim, n, o.seed + l);
      lr.confidence = r.pairing.confidence;
      strongest = std::max(strongest, r.pairing.confidence);
    }
    report.layers.push_back(lr);
  }
  for (size_t l = 0; l < rec.size(); ++l) {
    Recovery& r = rec[l];
    if (r.kind == "clear" || report.layers[l].slots <= report.layers[l].filters) continue;
    if (!r.pairing.claimed && strongest < kModelEvidence) continue;
    r.kind = "paired";
    const int64_t dim = part.linear[l].layer.weight.numel() / report.layers[l].filters;
    r.filters = estimate_filters(r.rows, dim, r.pairing);
    r.channel.resize(r.pairing.pairs.size());
    std::iota(r.channel.begin(), r.channel.end(), 0);
  }
  for (size_t l = 0; l < rec.size(); ++l) {
    report.layers[l].recovery = rec[l].kind;
    say(fmt::format("layer {} ({}): {} of {} slots real, pairing confidence {:.1f}: {}", l,
                    report.layers[l].name, report.layers[l].filters, report.layers[l].slots,
                    report.layers[l].confidence, rec[l].kind));
  }

  // 3. Un-permute each paired layer by the next layer's input, across the recorded queries, then
  // calibrate (a projection shortcut needs its partner's channels: all are matched first).
  std::optional<size_t> output_layer;
  std::vector<std::optional<size_t>> nexts(rec.size());
  for (size_t l = 0; l < rec.size(); ++l) {
    const auto next = nexts[l] = next_linear(part, l);
    if (!next) output_layer = l;  // the last one wins: it writes the logits
    Recovery& r = rec[l];
    if (r.kind != "paired" || !next) continue;
    const int64_t n = report.layers[l].filters;
    const auto grid = next_grid(part.linear[l].layer, part.linear[*next].layer, n);
    const bool weak = report.layers[l].confidence < kPairingThreshold;
    if (weak && pair_by_activations(view, part, l, *next, r)) {
      r.unpermuted = true;
      say(fmt::format("layer {} ({}): paired and matched from the activations", l,
                      report.layers[l].name));
      continue;
    }
    // An identity shortcut is in the view (the block's input): its contribution joins the filter's.
    const auto residual = known_residual(part, l, *next);
    std::optional<size_t> skip_layer;
    const Recovery* partner = nullptr;  // a projection partner already matched
    if (residual && !residual->is_output) skip_layer = residual->layer;
    if (residual && residual->is_output && residual->layer < l && rec[residual->layer].unpermuted &&
        rec[residual->layer].kind == "paired" &&
        part.linear[residual->layer].layer.output_shape == part.linear[l].layer.output_shape)
      skip_layer = residual->layer, partner = &rec[residual->layer];
    std::vector<double> x, y, skip;
    const int64_t images =
        activation_samples(view, l, *next, r, n, grid, x, y, skip_layer, skip, partner);
    if (images < 2) continue;
    const int64_t samples = images * grid.first * grid.second;
    r.channel = skip_layer ? match_channels_with_residual(x, skip, y, samples, n)
                           : match_channels(x, y, samples, n);
    r.unpermuted = true;
  }
  for (size_t l = 0; l < rec.size(); ++l) {
    if (rec[l].kind != "paired" || !rec[l].unpermuted || !nexts[l]) continue;
    const int64_t n = report.layers[l].filters;
    calibrate_layer(view, part, l, *nexts[l],
                    next_grid(part.linear[l].layer, part.linear[*nexts[l]].layer, n), rec);
  }
  for (size_t l = 0; l < rec.size(); ++l)
    if (rec[l].kind == "paired")
      say(fmt::format("layer {} ({}): {}, {} of {} filters calibrated", l, report.layers[l].name,
                      rec[l].unpermuted                    ? "channels matched"
                      : output_layer && l == *output_layer ? "output layer, order from the labels"
                                                           : "channel order unknown",
                      rec[l].calibrated, report.layers[l].filters));

  // 4. Assemble: the surrogate (BN folded, as the partition sees the model) with every recovered
  // layer written in, with the calibrated biases (zero where calibration did not fit: biases are
  // never outsourced).
  std::optional<model::Model> recovered;
  if (std::any_of(rec.begin(), rec.end(), [](auto& r) { return r.kind != "none"; })) {
    recovered = surrogate;
    model::fold_batch_norm(*recovered);
    model::Model surrogate_folded = *recovered;
    auto write = [&](size_t l) {
      const LinearLayer& layer = part.linear[l].layer;
      const int64_t n = layer.out_channels(), dim = layer.weight.numel() / n;
      Recovery& r = rec[l];
      if (r.field) {  // fixed point of unknown scale: take the surrogate's filter norms
        double have = 0, want = 0;
        for (double v : r.filters) have += v * v;
        for (const auto& node : surrogate_folded.graph.nodes)
          if (node.name == layer.name)
            for (float v : surrogate_folded.graph.initializers.at(node.inputs[1]).floats())
              want += double(v) * v;
        const double k = have > 0 ? std::sqrt(want / have) : 1;
        for (double& v : r.filters) v *= k;
        r.field = false;  // scaled once
      }
      Tensor bias({n});
      for (size_t c = 0; c < r.bias.size(); ++c) bias.data()[c] = static_cast<float>(r.bias[c]);
      set_linear_weights(*recovered, layer, placed_weight(layer, r, dim), bias);
    };
    for (size_t l = 0; l < rec.size(); ++l)
      if (rec[l].kind != "none") write(l);
    // The logits' order: match the output layer's filters to the classes on labelled images.
    if (output_layer && rec[*output_layer].kind == "paired") {
      Recovery& r = rec[*output_layer];
      const int64_t n = report.layers[*output_layer].filters;
      int64_t classes = 0;
      const auto out = outputs(*recovered, fit, fit.size(), norm, o.threads, classes);
      if (classes == n && n <= fit.num_classes) {
        // score[k][c]: mean standardised output of (current) channel k on images of class c
        std::vector<double> score(n * n, 0), mean(n, 0), sd(n, 0);
        std::vector<int64_t> count(n, 0);
        const int64_t m = fit.size();
        for (int64_t i = 0; i < m; ++i)
          for (int64_t k = 0; k < n; ++k) mean[k] += out[i * n + k] / double(m);
        for (int64_t i = 0; i < m; ++i)
          for (int64_t k = 0; k < n; ++k)
            sd[k] += std::pow(out[i * n + k] - mean[k], 2) / double(m);
        for (int64_t i = 0; i < m; ++i) {
          const int32_t c = fit.labels[i];
          ++count[c];
          for (int64_t k = 0; k < n; ++k)
            score[k * n + c] += (out[i * n + k] - mean[k]) / std::sqrt(std::max(sd[k], 1e-30));
        }
        for (int64_t k = 0; k < n; ++k)
          for (int64_t c = 0; c < n; ++c)
            score[k * n + c] /= double(std::max<int64_t>(count[c], 1));
        const auto to_class = max_score_assignment(score, n, n);
        for (auto& ch : r.channel) ch = to_class[ch];
        r.unpermuted = true;
        write(*output_layer);
      }
    }
  }
  for (size_t l = 0; l < rec.size(); ++l) report.layers[l].unpermuted = rec[l].unpermuted;

  // 5. Fine-tune, then choose on the held-out images (the attacker cannot ask the victim). The
  // output layer has no next layer to calibrate it: its biases are trained first, alone, which
  // leaves every calibrated layer as it is; a second candidate fine-tunes everything. (Training its
  // scales or weights too follows the attacker's labels away from the victim: with a LeNet at 78 %
  // test accuracy, fitting the output scales cost 6 points of fidelity.)
  auto held_accuracy = [&](model::Model& m) {
    return agreement(predictions(m, held, held.size(), norm, o.threads), held.labels);
  };
  std::vector<std::pair<std::string, model::Model>> candidates;
  candidates.emplace_back("surrogate", std::move(surrogate));
  if (recovered) {
    std::vector<std::string> biases;
    if (output_layer)
      for (const auto& node : recovered->graph.nodes)
        if (node.name == part.linear[*output_layer].layer.name && node.inputs.size() > 2 &&
            recovered->graph.is_initializer(node.inputs[2]))
          biases.push_back(node.inputs[2]);
    if (!biases.empty())
      train_on(*recovered, fit, std::max(1, o.finetune_epochs), 0.01f, norm, o.seed + 2, o,
               "output biases", biases);
    candidates.emplace_back("recovered", *recovered);
    // A recovered model whose layers could not all be calibrated may start far from any minimum:
    // a fine-tuning that diverges just leaves that candidate out.
    try {
      train_on(*recovered, fit, o.finetune_epochs, 0.002f, norm, o.seed + 1, o, "fine-tune");
      candidates.emplace_back("recovered", std::move(*recovered));
    } catch (const Error& e) {
      say(std::string("fine-tuning the recovered model failed: ") + e.what());
    }
  }
  // The held-out images are few and score against the labels, not the victim. When a candidate's
  // logits agree with what the view shows of the victim's (up to scale and bias per class) to
  // R^2 >= kExactAgreement, it is the victim up to the output layer: it is chosen. Otherwise the
  // recovery is approximate, agreement ranks approximations poorly (on ResNet-20 it preferred a
  // candidate 4 points less faithful), and held-out accuracy decides.
  std::vector<double> accuracy, agree;
  for (size_t i = 0; i < candidates.size(); ++i) {
    accuracy.push_back(held_accuracy(candidates[i].second));
    agree.push_back(output_layer
                        ? transcript_agreement(candidates[i].second, view, part, *output_layer,
                                               rec[*output_layer], o.threads)
                        : -1);
    say(fmt::format(
        "{}{}: held-out accuracy {:.1f}%{}", candidates[i].first, i == 2 ? " (fine-tuned)" : "",
        100 * accuracy[i],
        agree[i] >= 0 ? fmt::format(", agreement with the view {:.3f}", agree[i]) : ""));
  }
  const size_t most_agreeing = std::max_element(agree.begin(), agree.end()) - agree.begin();
  const bool exact = agree[most_agreeing] >= kExactAgreement;
  const std::vector<double>& scores = exact ? agree : accuracy;
  const size_t pick =
      exact ? most_agreeing : std::max_element(accuracy.begin(), accuracy.end()) - accuracy.begin();
  report.chosen = candidates[pick].first;

  // 6. Score against the victim (evaluation only).
  const int64_t tn = o.test_limit > 0 ? std::min<int64_t>(o.test_limit, test.size()) : test.size();
  report.test_images = tn;
  const std::vector<int32_t> truth(test.labels.begin(), test.labels.begin() + tn);
  model::Model victim_copy = victim;
  const auto pv = predictions(victim_copy, test, tn, norm, o.threads);
  const auto ps = predictions(candidates[0].second, test, tn, norm, o.threads);
  report.victim_accuracy = agreement(pv, truth);
  report.surrogate_fidelity = agreement(ps, pv);
  report.surrogate_accuracy = agreement(ps, truth);
  if (candidates.size() > 1) {  // the better recovered candidate, chosen or not
    const size_t best = std::max_element(scores.begin() + 1, scores.end()) - scores.begin();
    const auto pr = predictions(candidates[best].second, test, tn, norm, o.threads);
    report.recovered_fidelity = agreement(pr, pv);
    report.recovered_accuracy = agreement(pr, truth);
  }
  report.fidelity = pick == 0 ? report.surrogate_fidelity : report.recovered_fidelity;
  report.accuracy = pick == 0 ? report.surrogate_accuracy : report.recovered_accuracy;
  for (size_t l = 0; l < rec.size(); ++l) {
    const LinearLayer& layer = part.linear[l].layer;
    const int64_t n = layer.out_channels();
    score_layer(layer, rec[l], n, layer.weight.numel() / n, report.layers[l]);
  }
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return report;
}

}  // namespace veil::split
