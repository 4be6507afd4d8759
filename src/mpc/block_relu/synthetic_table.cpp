#include "veil/mpc/block_relu/synthetic_table.hpp"

#include <algorithm>
#include <cmath>
#include <random>
#include <set>
#include <string>

#include "veil/core/error.hpp"

namespace veil::mpc {
namespace {

struct ReluLayer {
  std::string name;
  int64_t channels, side;
};

std::vector<ReluLayer> resnet50_relus() {
  std::vector<ReluLayer> v = {{"stem.relu", 64, 112}};
  const int blocks[4] = {3, 4, 6, 3};
  int64_t in_side = 56;
  for (int stage = 0; stage < 4; ++stage) {
    const int64_t width = int64_t{64} << stage, side = int64_t{56} >> stage;
    for (int b = 0; b < blocks[stage]; ++b) {
      const std::string p = "layer" + std::to_string(stage + 1) + "." + std::to_string(b) + ".";
      v.push_back({p + "relu1", width, b == 0 ? in_side : side});
      v.push_back({p + "relu2", width, side});
      v.push_back({p + "relu3", 4 * width, side});
    }
    in_side = side;
  }
  return v;
}

std::vector<model::BlockSize> candidate_sizes(int64_t side) {
  std::set<model::BlockSize> s;
  for (int64_t h = 1; h <= 6; ++h)
    for (int64_t w = 1; w <= 6; ++w) s.insert({h, w});
  for (int64_t k : {7, 8, 12, 16}) s.insert({k, k});
  std::vector<model::BlockSize> v = {{1, 1}};
  for (const auto& b : s)
    if (b != model::BlockSize{1, 1} && b.h <= side && b.w <= side) v.push_back(b);
  if (std::find(v.begin(), v.end(), model::BlockSize{side, side}) == v.end())
    v.push_back({side, side});
  v.push_back({0, 0});
  return v;
}

}  // namespace

DistortionTable synthetic_resnet50_table(int64_t channels, uint64_t seed) {
  if (channels < 49 || channels > (int64_t{1} << 20))
    throw InvalidArgument("--synthetic: the channel count must lie in [49, 2^20]");
  DistortionTable t;
  t.seed = seed;
  t.samples = 0;
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0, 1);
  std::uniform_real_distribution<double> noise(0.8, 1.25);
  const auto layers = resnet50_relus();
  for (size_t i = 0; i < layers.size(); ++i) {
    const auto& r = layers[i];
    LayerDistortion l;
    l.node = r.name;
    l.channels =
        std::max<int64_t>(1, std::llround(static_cast<double>(r.channels) * channels / 22720));
    l.height = l.width = r.side;
    l.sizes = candidate_sizes(r.side);
    l.done = true;
    // Later layers matter more per channel (fewer pixels carry the same logit change).
    const double layer_scale = 1e-4 * std::sqrt(static_cast<double>(56 * 56) / (r.side * r.side));
    const double pixels = static_cast<double>(r.side * r.side);
    for (int64_t c = 0; c < l.channels; ++c) {
      const double scale = layer_scale * std::exp(normal(rng));
      for (const auto& s : l.sizes) {
        const double blocks = static_cast<double>(model::block_count(s, r.side, r.side));
        const double per_block = s.identity() ? 4 * pixels : pixels / blocks;
        l.distortion.push_back(
            s == model::BlockSize{1, 1} ? 0.0 : scale * std::log2(1 + per_block) * noise(rng));
      }
    }
    t.layers.push_back(std::move(l));
  }
  return t;
}

}  // namespace veil::mpc
