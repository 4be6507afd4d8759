#include "veil/lock/keygen.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <set>

#include "veil/core/error.hpp"
#include "veil/lock/evaluate.hpp"
#include "veil/lock/gradient_model.hpp"
#include "veil/nn/executor.hpp"
#include "veil/nn/loss.hpp"

namespace veil::lock {

void validate_options(const KeygenOptions& o) {
  if (o.num < 0) throw InvalidArgument("--num must be >= 0, got " + std::to_string(o.num));
  if (!(o.intensity > 0) || !std::isfinite(o.intensity))
    throw InvalidArgument("--intensity must be a finite value > 0, got " +
                          fmt::format("{:g}", o.intensity));
  if (!(o.max_percent > 0 && o.max_percent <= 1))
    throw InvalidArgument("--max-percent must be in (0, 1], got " +
                          fmt::format("{:g}", o.max_percent));
  if (o.samples < 1)
    throw InvalidArgument("--samples must be >= 1, got " + std::to_string(o.samples));
  if (o.batch < 1) throw InvalidArgument("batch size must be >= 1");
  if (!(o.band_low >= 0.5 && o.band_low < o.band_high && o.band_high <= 1))
    throw InvalidArgument("stealth band must satisfy 0.5 <= low < high <= 1");
  if (o.per_round < 1)
    throw InvalidArgument("--per-round must be >= 1, got " + std::to_string(o.per_round));
  if (o.target_class < -1)
    throw InvalidArgument("--target-class must be >= 0 (or -1 for automatic), got " +
                          std::to_string(o.target_class));
}

void apply_preset(KeygenOptions& o, const std::string& name) {
  if (name == "reference") return;
  if (name != "strong" && name != "stealthy")
    throw InvalidArgument("--preset must be 'reference', 'strong' or 'stealthy', got '" + name +
                          "'");
  o.incremental = true;
  o.objective = Objective::Collapse;
  o.target_class = -1;
  o.intensity_mode = IntensityMode::Relative;
  o.intensity = 1.0f;
  o.num = 30;
  o.max_percent = 0.2;
  o.per_round = 3;
  o.mode = name == "stealthy" ? LockMode::Stealthy : LockMode::Sfge;
}

float layer_scale(std::span<const float> w) {
  float m = 0;
  for (float v : w)
    if (std::isfinite(v)) m = std::max(m, std::fabs(v));
  return m;
}

int64_t layer_budget(int64_t numel, int64_t num, double max_percent) {
  // floor(numel * max_percent) as the reference computes it (float product, then int()).
  auto cap = static_cast<int64_t>(std::floor(static_cast<double>(numel) * max_percent));
  return std::max<int64_t>(0, std::min(cap, num));
}

namespace {

bool abs_greater(std::span<const float> g, uint32_t a, uint32_t b) {
  float x = std::fabs(g[a]), y = std::fabs(g[b]);
  return x > y || (x == y && a < b);
}

bool usable(float g) { return g != 0 && std::isfinite(g); }

}  // namespace

std::vector<uint64_t> top_k_abs(std::span<const float> grad, int64_t k,
                                const std::vector<bool>* excluded) {
  if (k <= 0) return {};
  if (grad.size() > UINT32_MAX) throw InvalidArgument("tensor too large for key generation");
  std::vector<uint32_t> cand;
  cand.reserve(grad.size());
  for (uint32_t i = 0; i < grad.size(); ++i)
    if (usable(grad[i]) && !(excluded && (*excluded)[i])) cand.push_back(i);
  size_t take = std::min<size_t>(cand.size(), static_cast<size_t>(k));
  std::partial_sort(cand.begin(), cand.begin() + take, cand.end(),
                    [&](uint32_t a, uint32_t b) { return abs_greater(grad, a, b); });
  return {cand.begin(), cand.begin() + take};
}

namespace {

// Accumulates d(sum of losses)/dW over `samples` with an executor built on a gradient model.
std::map<std::string, std::vector<float>> accumulate(nn::Executor& exec, const model::Model& gm,
                                                     const data::Dataset& samples,
                                                     const std::vector<std::string>& tensors,
                                                     int64_t batch, int32_t target) {
  std::map<std::string, std::vector<double>> sum;
  std::vector<int32_t> target_labels;
  if (target >= 0) target_labels.assign(static_cast<size_t>(batch), target);
  for (const auto& t : tensors)
    sum[t].assign(static_cast<size_t>(gm.graph.initializers.at(t).numel()), 0.0);
  for (int64_t b = 0; b < samples.size(); b += batch) {
    int64_t n = std::min(batch, samples.size() - b);
    auto f = forward_batch(exec, gm, samples.batch(b, n), nn::Mode::Training);
    auto labels = target >= 0 ? std::span<const int32_t>(target_labels).first(n)
                              : std::span<const int32_t>(samples.labels).subspan(b, n);
    auto loss = nn::softmax_cross_entropy(f.logits, labels, true);
    // The loss gradient is of the batch mean; the reference sums over the sample set. The
    // collapse objective is the negated cross-entropy towards the target (maximised like the
    // reference's loss, so every caller steps along +sign(g)).
    const float scale = static_cast<float>(target >= 0 ? -n : n);
    for (float& v : loss.grad.floats()) v *= scale;
    backward_from_logits(exec, f, std::move(loss.grad));
    const auto& pg = exec.param_grads();
    for (const auto& t : tensors) {
      auto it = pg.find(t);
      if (it == pg.end()) throw Error("executor returned no gradient for '" + t + "'");
      auto g = it->second.floats();
      auto& s = sum[t];
      if (g.size() != s.size()) throw Error("gradient of '" + t + "' has the wrong size");
      for (size_t i = 0; i < g.size(); ++i) s[i] += g[i];
    }
  }
  std::map<std::string, std::vector<float>> out;
  for (auto& [t, s] : sum) out[t] = std::vector<float>(s.begin(), s.end());
  return out;
}

std::vector<std::string> unique_tensors(const model::Graph& g,
                                        std::map<std::string, std::string>& node_of) {
  std::vector<std::string> out;
  for (const auto& ref : model::weight_tensors(g))
    if (node_of.emplace(ref.tensor, ref.node).second) out.push_back(ref.tensor);
  return out;
}

// Per-layer state of the stealthy selection: the value band on each side and how many picks each
// output channel already holds.
struct StealthLayer {
  float up_lo = 0, up_hi = 0, down_lo = 0, down_hi = 0;
  int64_t channels = 1, per_channel = 1, cap = 1;
  std::vector<int64_t> used;
};

double quantile(const std::vector<float>& sorted, double q) {
  if (sorted.empty()) return 0;
  double pos = q * static_cast<double>(sorted.size() - 1);
  auto i = static_cast<size_t>(std::floor(pos));
  size_t j = std::min(i + 1, sorted.size() - 1);
  double f = pos - static_cast<double>(i);
  return sorted[i] * (1 - f) + sorted[j] * f;
}

StealthLayer make_stealth(const Tensor& w, int64_t budget, const KeygenOptions& o) {
  std::vector<float> sorted(w.floats().begin(), w.floats().end());
  std::sort(sorted.begin(), sorted.end());
  StealthLayer s;
  s.up_lo = static_cast<float>(quantile(sorted, o.band_low));
  s.up_hi = static_cast<float>(quantile(sorted, o.band_high));
  s.down_lo = static_cast<float>(quantile(sorted, 1 - o.band_high));
  s.down_hi = static_cast<float>(quantile(sorted, 1 - o.band_low));
  s.channels = (o.spread && w.rank() >= 2) ? std::max<int64_t>(1, w.dim(0)) : 1;
  s.per_channel = w.numel() / s.channels;
  s.cap = std::max<int64_t>(1, (budget + s.channels - 1) / s.channels);
  s.used.assign(static_cast<size_t>(s.channels), 0);
  return s;
}

// First-order loss increase of moving w[i] into the band the gradient points to; 0 if the band
// is not strictly on that side of w[i].
double stealth_gain(const StealthLayer& s, float w, float g) {
  if (!usable(g)) return 0;
  if (g > 0) return w < s.up_lo ? std::fabs(g) * (0.5 * (s.up_lo + s.up_hi) - w) : 0;
  return w > s.down_hi ? std::fabs(g) * (w - 0.5 * (s.down_lo + s.down_hi)) : 0;
}

std::vector<uint64_t> stealth_pick(StealthLayer& s, std::span<const float> w,
                                   std::span<const float> g, int64_t k,
                                   const std::vector<bool>& excluded) {
  std::vector<std::pair<double, uint32_t>> cand;
  for (uint32_t i = 0; i < g.size(); ++i) {
    if (excluded[i]) continue;
    double gain = stealth_gain(s, w[i], g[i]);
    if (gain > 0) cand.emplace_back(gain, i);
  }
  std::sort(cand.begin(), cand.end(), [](const auto& a, const auto& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  });
  std::vector<uint64_t> out;
  for (const auto& [gain, i] : cand) {
    if (static_cast<int64_t>(out.size()) >= k) break;
    auto ch = static_cast<size_t>(i / static_cast<uint64_t>(s.per_channel));
    if (s.used[ch] >= s.cap) continue;
    ++s.used[ch];
    out.push_back(i);
  }
  return out;
}

float stealth_target(const StealthLayer& s, float g, AesCtrPrg& prg) {
  double u = static_cast<double>(prg.next_u64() >> 11) * 0x1.0p-53;
  return g > 0 ? static_cast<float>(s.up_lo + u * (s.up_hi - s.up_lo))
               : static_cast<float>(s.down_lo + u * (s.down_hi - s.down_lo));
}

}  // namespace

std::map<std::string, std::vector<float>> summed_gradients(const model::Model& model,
                                                           const data::Dataset& samples,
                                                           const std::vector<std::string>& tensors,
                                                           int64_t batch, int32_t target) {
  if (batch < 1) throw InvalidArgument("batch size must be >= 1");
  model::Model gm = gradient_model(model);
  nn::ExecutorOptions opts;
  opts.trainable = tensors;
  opts.fuse = false;
  nn::Executor exec(gm, opts);
  return accumulate(exec, gm, samples, tensors, batch, target);
}

int32_t collapse_target(const model::Model& model, const data::Dataset& samples, int64_t batch) {
  if (batch < 1) throw InvalidArgument("batch size must be >= 1");
  model::Model gm = gradient_model(model);
  nn::ExecutorOptions opts;
  opts.fuse = false;
  nn::Executor exec(gm, opts);
  std::vector<double> mass;
  for (int64_t b = 0; b < samples.size(); b += batch) {
    int64_t n = std::min(batch, samples.size() - b);
    auto f = forward_batch(exec, gm, samples.batch(b, n), nn::Mode::Training);
    auto z = f.logits.floats();
    const int64_t c = static_cast<int64_t>(z.size()) / std::max<int64_t>(n, 1);
    if (c < 1) throw MalformedInput("model output has no classes");
    mass.resize(static_cast<size_t>(c), 0.0);
    for (int64_t i = 0; i < n; ++i) {
      const float* row = z.data() + i * c;
      double mx = *std::max_element(row, row + c), sum = 0;
      for (int64_t k = 0; k < c; ++k) sum += std::exp(double(row[k]) - mx);
      for (int64_t k = 0; k < c; ++k) mass[k] += std::exp(double(row[k]) - mx) / sum;
    }
  }
  if (mass.empty()) throw InvalidArgument("the sample set is empty");
  return static_cast<int32_t>(std::max_element(mass.begin(), mass.end()) - mass.begin());
}

std::vector<UnlockedLayer> unlocked_layers(const model::Graph& graph, const LockKey& key) {
  std::set<std::string> locked;
  for (const auto& l : key.layers)
    if (!l.entries.empty()) locked.insert(l.tensor);
  std::map<std::string, std::string> node_of;
  std::vector<UnlockedLayer> out;
  for (const auto& t : unique_tensors(graph, node_of)) {
    if (locked.count(t)) continue;
    const int64_t numel = graph.initializers.at(t).numel();
    out.push_back(
        {t, node_of[t], numel, layer_budget(numel, key.params.num, key.params.max_percent)});
  }
  return out;
}

LockKey generate_key(const model::Model& model, const data::Dataset& samples,
                     const KeygenOptions& o) {
  validate_options(o);
  if (samples.size() == 0) throw InvalidArgument("the sample set for key generation is empty");
  auto t0 = std::chrono::steady_clock::now();

  std::map<std::string, std::string> node_of;
  std::vector<std::string> tensors = unique_tensors(model.graph, node_of);
  std::map<std::string, int64_t> budget;
  std::vector<std::string> active;
  for (const auto& t : tensors) {
    int64_t b = layer_budget(model.graph.initializers.at(t).numel(), o.num, o.max_percent);
    budget[t] = b;
    if (b > 0) active.push_back(t);  // the reference skips layers with number <= 0
  }

  LockKey key;
  key.params.mode = o.mode;
  key.params.incremental = o.incremental;
  key.params.num = o.num;
  key.params.intensity = o.intensity;
  key.params.max_percent = o.max_percent;
  key.params.samples = samples.size();
  key.params.dataset = o.dataset;
  key.params.intensity_mode = o.intensity_mode;
  key.params.objective = o.objective;
  key.params.per_round = o.incremental ? o.per_round : 1;
  int32_t target = -1;
  if (o.objective == Objective::Collapse) {
    target = o.target_class >= 0 ? o.target_class : collapse_target(model, samples, o.batch);
    if (samples.num_classes > 0 && target >= samples.num_classes)
      throw InvalidArgument(fmt::format("--target-class {} is outside the dataset's {} classes",
                                        target, samples.num_classes));
  }
  key.params.target_class = target;
  std::map<std::string, LayerKey> layer_keys;
  for (const auto& t : active)
    layer_keys[t] =
        LayerKey{t, node_of[t], static_cast<uint64_t>(model.graph.initializers.at(t).numel()), {}};

  model::Model gm = gradient_model(model);
  std::map<std::string, std::vector<bool>> excluded;
  std::map<std::string, StealthLayer> stealth;
  std::map<std::string, float> step;  // SFGE mode: the step of each layer
  for (const auto& t : active) {
    step[t] = o.intensity_mode == IntensityMode::Relative
                  ? o.intensity * layer_scale(model.graph.initializers.at(t).floats())
                  : o.intensity;
    excluded[t].assign(static_cast<size_t>(gm.graph.initializers.at(t).numel()), false);
    if (o.mode == LockMode::Stealthy)
      stealth[t] = make_stealth(model.graph.initializers.at(t), budget[t], o);
  }
  AesCtrPrg prg(o.seed ? *o.seed : random_seed(), 0x10c4);

  // Records one chosen position (and, for i-SFGE, perturbs the working copy).
  auto record = [&](const std::string& t, uint64_t idx, float g, bool perturb_working) {
    const Tensor& orig = model.graph.initializers.at(t);
    float w = orig.floats()[idx];
    int8_t sign = g > 0 ? 1 : -1;
    float locked = o.mode == LockMode::Stealthy
                       ? stealth_target(stealth[t], g, prg)
                       : w + step[t] * static_cast<float>(sign);  // fp32, as the reference
    layer_keys[t].entries.push_back(
        {idx, std::bit_cast<uint32_t>(w), std::bit_cast<uint32_t>(locked), sign});
    excluded[t][idx] = true;
    if (perturb_working) gm.graph.initializers.at(t).floats()[idx] = locked;
  };

  if (!active.empty()) {
    nn::ExecutorOptions opts;
    opts.trainable = active;
    opts.fuse = false;
    nn::Executor exec(gm, opts);
    if (!o.incremental) {
      auto grads = accumulate(exec, gm, samples, active, o.batch, target);
      for (const auto& t : active) {
        const auto& g = grads[t];
        std::vector<uint64_t> picks =
            o.mode == LockMode::Stealthy
                ? stealth_pick(stealth[t], model.graph.initializers.at(t).floats(), g, budget[t],
                               excluded[t])
                : top_k_abs(g, budget[t]);
        for (uint64_t idx : picks) record(t, idx, g[idx], false);
      }
    } else {
      // Round r gives every layer its next min(per_round, budget - r * per_round) positions.
      const int64_t rounds = (o.num + o.per_round - 1) / o.per_round;
      for (int64_t round = 0; round < rounds; ++round) {
        std::vector<std::string> live;
        for (const auto& t : active)
          if (budget[t] > round * o.per_round) live.push_back(t);
        if (live.empty()) break;
        auto grads = accumulate(exec, gm, samples, live, o.batch, target);
        for (const auto& t : live) {
          const auto& g = grads[t];
          int64_t k = std::min(o.per_round, budget[t] - round * o.per_round);
          std::vector<uint64_t> picks =
              o.mode == LockMode::Stealthy
                  ? stealth_pick(stealth[t], gm.graph.initializers.at(t).floats(), g, k,
                                 excluded[t])
                  : top_k_abs(g, k, &excluded[t]);
          for (uint64_t idx : picks) record(t, idx, g[idx], true);
          exec.parameter_changed(t);
        }
        if (o.on_round) o.on_round(round, rounds);
      }
    }
  }
  for (const auto& t : active)
    if (!layer_keys[t].entries.empty()) key.layers.push_back(std::move(layer_keys[t]));
  bind_fingerprints(key, model.graph);
  key.params.keygen_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return key;
}

}  // namespace veil::lock
