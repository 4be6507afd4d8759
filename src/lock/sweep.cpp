#include "veil/lock/sweep.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "veil/core/error.hpp"
#include "veil/core/svg_plot.hpp"
#include "veil/lock/evaluate.hpp"

namespace veil::lock {

std::vector<SweepPoint> run_sweep(const model::Model& model, const data::Dataset& samples,
                                  const data::Dataset& test, const SweepOptions& o) {
  if (o.nums.empty() || o.intensities.empty())
    throw InvalidArgument("a sweep needs at least one num and one intensity");
  int64_t max_num = *std::max_element(o.nums.begin(), o.nums.end());
  if (*std::min_element(o.nums.begin(), o.nums.end()) < 0)
    throw InvalidArgument("--num values must be >= 0");
  std::vector<SweepPoint> points;
  model::Model work = model;
  for (bool inc : {false, true}) {
    if ((inc && !o.incremental) || (!inc && !o.sfge)) continue;
    for (float intensity : o.intensities) {
      KeygenOptions ko = o.base;
      ko.num = max_num;
      ko.intensity = intensity;
      ko.incremental = inc;
      std::string method = inc ? "i-SFGE" : "SFGE";
      if (ko.mode == LockMode::Stealthy) method += " stealthy";
      if (ko.objective == Objective::Collapse) method += " collapse";
      if (ko.mode == LockMode::Sfge && ko.intensity_mode == IntensityMode::Relative)
        method += " relative";
      if (o.log)
        o.log(fmt::format("{} intensity {}: generating key (num {})", method, intensity, max_num));
      LockKey key = generate_key(model, samples, ko);
      for (int64_t num : o.nums) {
        LockKey k = key.prefix(num);
        apply_key_unchecked(work.graph, k);
        Accuracy acc = evaluate(work, test);
        remove_key_unchecked(work.graph, k);
        points.push_back({method, intensity, num, k.total_entries(), acc.top1, acc.top5});
        if (o.log)
          o.log(fmt::format("{} intensity {} num {}: {} weights, top-1 {:.2f}%", method, intensity,
                            num, k.total_entries(), 100 * acc.top1));
      }
    }
  }
  return points;
}

std::string sweep_csv(const std::vector<SweepPoint>& points) {
  std::string s = "method,intensity,num_per_layer,encrypted_weights,top1,top5\n";
  for (const auto& p : points)
    s += fmt::format("{},{},{},{},{:.4f},{:.4f}\n", p.method, p.intensity, p.num, p.encrypted,
                     100 * p.top1, 100 * p.top5);
  return s;
}

std::string sweep_svg(const std::vector<SweepPoint>& points, const std::string& title) {
  std::map<std::string, PlotSeries> by;
  std::vector<std::string> order;
  for (const auto& p : points) {
    std::string label = fmt::format("{} e={:g}", p.method, p.intensity);
    if (!by.count(label)) order.push_back(label);
    auto& ser = by[label];
    ser.label = label;
    ser.x.push_back(static_cast<double>(p.num));
    ser.y.push_back(100 * p.top1);
  }
  std::vector<PlotSeries> series;
  for (const auto& l : order) series.push_back(by[l]);
  return line_plot_svg(title, "encrypted weights per layer (num)", "top-1 accuracy (%)", series);
}

}  // namespace veil::lock
