// Top-1 accuracy against the number of encrypted weights per layer, for SFGE and i-SFGE at
// several intensities — the experiment of Cai et al. (ICCAD 2019, Fig. 6 for VGG-16).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "veil/core/svg_plot.hpp"
#include "veil/data/dataset.hpp"
#include "veil/lock/keygen.hpp"
#include "veil/model/graph.hpp"

namespace veil::lock {

struct SweepOptions {
  std::vector<int64_t> nums{0, 5, 10, 15, 20, 25, 30};
  std::vector<float> intensities{0.1f, 0.2f};
  bool sfge = true;
  bool incremental = true;
  KeygenOptions base;  // max_percent, batch, mode, ... (num / intensity / incremental set here)
  std::function<void(const std::string&)> log;
};

struct SweepPoint {
  std::string method;  // "SFGE" or "i-SFGE"
  float intensity = 0;
  int64_t num = 0;
  int64_t encrypted = 0;  // total encrypted weights
  double top1 = 0, top5 = 0;
};

// One key per (method, intensity) with num = max(nums); the key for a smaller num is its prefix
// (SFGE positions are ranked, i-SFGE rounds are sequential), so each curve costs one key
// generation plus one evaluation per point.
std::vector<SweepPoint> run_sweep(const model::Model& model, const data::Dataset& samples,
                                  const data::Dataset& test, const SweepOptions& options);

std::string sweep_csv(const std::vector<SweepPoint>& points);

std::string sweep_svg(const std::vector<SweepPoint>& points, const std::string& title);

}  // namespace veil::lock
