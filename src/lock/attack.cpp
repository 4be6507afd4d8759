#include "veil/lock/attack.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <numeric>
#include <random>
#include <unordered_map>
#include <unordered_set>

#include "veil/core/error.hpp"
#include "veil/lock/evaluate.hpp"
#include "veil/nn/executor.hpp"
#include "veil/nn/loss.hpp"

namespace veil::lock {

namespace {

double median_of(std::vector<double> v) {
  if (v.empty()) return 0;
  size_t m = v.size() / 2;
  std::nth_element(v.begin(), v.begin() + m, v.end());
  double hi = v[m];
  if (v.size() % 2) return hi;
  double lo = *std::max_element(v.begin(), v.begin() + m);
  return 0.5 * (lo + hi);
}

}  // namespace

std::vector<double> robust_z_scores(std::span<const float> w) {
  std::vector<double> v(w.begin(), w.end());
  double med = median_of(v);
  std::vector<double> dev(v.size());
  for (size_t i = 0; i < v.size(); ++i) dev[i] = std::fabs(v[i] - med);
  double scale = 1.4826 * median_of(dev);
  if (!(scale > 0)) {
    double mean_abs = v.empty() ? 0 : std::accumulate(dev.begin(), dev.end(), 0.0) / v.size();
    scale = mean_abs > 0 ? 1.2533 * mean_abs : 1.0;
  }
  for (auto& d : dev) d /= scale;
  return dev;
}

OutlierAttackResult outlier_attack(model::Graph& graph, const OutlierAttackOptions& options,
                                   const LockKey* key) {
  if (options.suspects_per_layer < 0 || options.z_threshold < 0)
    throw InvalidArgument("--suspects and --z-threshold must be >= 0");
  std::unordered_map<std::string, const LayerKey*> keyed;
  if (key)
    for (const auto& l : key->layers) keyed[l.tensor] = &l;
  OutlierAttackResult res;
  std::unordered_set<std::string> done;
  double expected_hits = 0;
  int64_t restored = 0;
  for (const auto& ref : model::weight_tensors(graph)) {
    if (!done.insert(ref.tensor).second) continue;
    Tensor& t = graph.initializers.at(ref.tensor);
    auto w = t.floats();
    auto z = robust_z_scores(w);
    std::vector<uint32_t> order(w.size());
    std::iota(order.begin(), order.end(), 0u);
    int64_t budget =
        options.z_threshold > 0
            ? std::count_if(z.begin(), z.end(), [&](double s) { return s > options.z_threshold; })
            : std::min<int64_t>(options.suspects_per_layer, t.numel());
    std::partial_sort(
        order.begin(), order.begin() + budget, order.end(),
        [&](uint32_t a, uint32_t b) { return z[a] > z[b] || (z[a] == z[b] && a < b); });
    std::vector<double> vals(w.begin(), w.end());
    auto med = static_cast<float>(median_of(vals));
    OutlierLayerResult lr;
    lr.tensor = ref.tensor;
    lr.numel = t.numel();
    lr.suspects = budget;
    lr.max_z = z.empty() ? 0 : *std::max_element(z.begin(), z.end());
    std::unordered_map<uint64_t, uint32_t> enc;  // position -> original bits
    if (auto it = keyed.find(ref.tensor); it != keyed.end())
      for (const auto& e : it->second->entries) enc[e.index] = e.original_bits;
    lr.encrypted = static_cast<int64_t>(enc.size());
    for (int64_t i = 0; i < budget; ++i) {
      uint32_t p = order[static_cast<size_t>(i)];
      w[p] = med;
      if (auto e = enc.find(p); e != enc.end()) {
        ++lr.hits;
        if (std::bit_cast<uint32_t>(med) == e->second) ++restored;
      }
    }
    if (lr.numel) expected_hits += static_cast<double>(budget) * lr.encrypted / lr.numel;
    res.suspects += lr.suspects;
    res.hits += lr.hits;
    res.encrypted += lr.encrypted;
    res.weights += lr.numel;
    res.layers.push_back(lr);
  }
  if (res.suspects) {
    res.precision = static_cast<double>(res.hits) / res.suspects;
    res.chance_precision = expected_hits / res.suspects;
  }
  if (res.encrypted) {
    res.recall = static_cast<double>(res.hits) / res.encrypted;
    res.exact_restored = static_cast<double>(restored) / res.encrypted;
  }
  return res;
}

double finetune(model::Model& model, const data::Dataset& train, const FinetuneOptions& o) {
  if (o.epochs < 1 || o.batch < 1 || !(o.learning_rate > 0) || o.momentum < 0 || o.momentum >= 1)
    throw InvalidArgument("fine-tuning needs epochs >= 1, batch >= 1, lr > 0, momentum in [0, 1)");
  if (train.size() == 0) throw InvalidArgument("fine-tuning data set is empty");
  nn::Executor exec(model);
  std::unordered_map<std::string, std::vector<float>> velocity;
  std::vector<int64_t> order(static_cast<size_t>(train.size()));
  std::iota(order.begin(), order.end(), 0);
  std::mt19937 rng(o.shuffle_seed);
  double last = 0;
  for (int64_t epoch = 0; epoch < o.epochs; ++epoch) {
    std::shuffle(order.begin(), order.end(), rng);
    double total = 0;
    int64_t seen = 0;
    for (int64_t b = 0; b < train.size(); b += o.batch) {
      int64_t n = std::min(o.batch, train.size() - b);
      std::vector<int64_t> idx(order.begin() + b, order.begin() + b + n);
      std::vector<int32_t> labels;
      for (int64_t i : idx) labels.push_back(train.labels[static_cast<size_t>(i)]);
      auto f = forward_batch(exec, model, train.batch(idx), nn::Mode::Training);
      auto loss = nn::softmax_cross_entropy(f.logits, labels, true);
      total += loss.loss * n;
      seen += n;
      backward_from_logits(exec, f, std::move(loss.grad));
      for (const auto& [name, g] : exec.param_grads()) {
        auto w = model.graph.initializers.at(name).floats();
        auto gv = g.floats();
        auto& v = velocity[name];
        if (v.empty()) v.assign(w.size(), 0.f);
        for (size_t i = 0; i < w.size(); ++i) {
          v[i] = o.momentum * v[i] + gv[i];
          w[i] -= o.learning_rate * v[i];
        }
      }
      exec.parameters_changed();
    }
    last = seen ? total / seen : 0;
  }
  return last;
}

}  // namespace veil::lock
