#include "veil/mpc/block_relu/block_choice.hpp"

#include <algorithm>
#include <cmath>
#include <optional>
#include <set>

#include "veil/core/error.hpp"

namespace veil::mpc {
namespace {

// The index of `s` among the layer's sizes, if offered.
std::optional<size_t> find_size(const LayerDistortion& l, model::BlockSize s) {
  auto it = std::find(l.sizes.begin(), l.sizes.end(), s);
  if (it == l.sizes.end()) return std::nullopt;
  return static_cast<size_t>(it - l.sizes.begin());
}

// Cost and distortion of a choice, summed in layer then channel order (the order the uniform
// baseline sums in too, so equal choices report equal numbers).
void total(const DistortionTable& table, BlockChoice& c) {
  c.cost = 0;
  c.distortion = 0;
  for (const auto& l : table.layers) {
    const auto& sizes = c.spec.layers.at(l.node);
    for (int64_t ch = 0; ch < l.channels; ++ch) {
      const size_t s = *find_size(l, sizes[ch]);
      c.cost += model::block_count(sizes[ch], l.height, l.width);
      c.distortion += l.distortion[ch * l.sizes.size() + s];
    }
  }
}

}  // namespace

int64_t drelu_budget(const DistortionTable& table, double ratio) {
  if (!(ratio >= 0 && ratio <= 1)) throw InvalidArgument("the budget ratio must lie in [0, 1]");
  return static_cast<int64_t>(
      std::floor(static_cast<long double>(ratio) * static_cast<long double>(table.relu_count())));
}

BlockChoice choose_block_sizes(const DistortionTable& table, int64_t budget,
                               const KnapsackSettings& settings) {
  KnapsackInstance in;
  std::vector<KnapsackOption> opts;
  for (const auto& l : table.layers) {
    for (int64_t ch = 0; ch < l.channels; ++ch) {
      opts.clear();
      for (size_t s = 0; s < l.sizes.size(); ++s)
        opts.push_back({model::block_count(l.sizes[s], l.height, l.width),
                        l.distortion[ch * l.sizes.size() + s]});
      in.add_item(opts);
    }
  }
  KnapsackResult r;
  try {
    r = solve_knapsack(in, budget, settings);
  } catch (const InvalidArgument& e) {
    throw InvalidArgument(std::string(e.what()) + " (DReLUs)");
  }
  BlockChoice c;
  c.budget = budget;
  int64_t item = 0;
  for (const auto& l : table.layers) {
    auto& sizes = c.spec.layers[l.node];
    for (int64_t ch = 0; ch < l.channels; ++ch) sizes.push_back(l.sizes[r.choice[item++]]);
  }
  total(table, c);
  return c;
}

BlockChoice choose_uniform_block_size(const DistortionTable& table, int64_t budget) {
  if (table.layers.empty()) throw InvalidArgument("the distortion table has no layers");
  std::set<model::BlockSize> candidates;
  for (const auto& l : table.layers)
    for (const auto& s : l.sizes)
      if (!s.identity()) candidates.insert(s);
  std::optional<BlockChoice> best;
  for (const auto& s : candidates) {
    BlockChoice c;
    c.budget = budget;
    bool offered = true;
    for (const auto& l : table.layers) {
      const model::BlockSize clamped{std::min(s.h, l.height), std::min(s.w, l.width)};
      if (!find_size(l, clamped)) {
        offered = false;
        break;
      }
      c.spec.layers[l.node].assign(l.channels, clamped);
    }
    if (!offered) continue;
    total(table, c);
    if (c.cost > budget) continue;
    if (!best || c.distortion < best->distortion ||
        (c.distortion == best->distortion && c.cost < best->cost))
      best = std::move(c);
  }
  if (!best)
    throw InvalidArgument("no uniform block size fits the budget of " + std::to_string(budget) +
                          " DReLUs");
  return *best;
}

std::map<model::BlockSize, int64_t> channels_per_size(const BlockReluSpec& spec) {
  std::map<model::BlockSize, int64_t> n;
  for (const auto& [node, sizes] : spec.layers)
    for (const auto& s : sizes) ++n[s];
  return n;
}

}  // namespace veil::mpc
