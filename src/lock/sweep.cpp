#include "veil/lock/sweep.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "veil/core/error.hpp"
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

namespace {

std::string xml_escape(const std::string& in) {
  std::string out;
  for (char c : in) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

}  // namespace

std::string line_plot_svg(const std::string& title, const std::string& x_label,
                          const std::string& y_label, const std::vector<PlotSeries>& series,
                          double y_min, double y_max) {
  const double w = 720, h = 460, left = 70, right = 190, top = 50, bottom = 60;
  const double pw = w - left - right, ph = h - top - bottom;
  double x_min = 0, x_max = 1;
  bool first = true;
  for (const auto& s : series)
    for (double x : s.x) {
      if (first) x_min = x_max = x, first = false;
      x_min = std::min(x_min, x);
      x_max = std::max(x_max, x);
    }
  if (x_max <= x_min) x_max = x_min + 1;
  if (y_max <= y_min) y_max = y_min + 1;
  auto px = [&](double x) { return left + (x - x_min) / (x_max - x_min) * pw; };
  auto py = [&](double y) { return top + (1 - (y - y_min) / (y_max - y_min)) * ph; };
  static const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                                  "#9467bd", "#8c564b", "#e377c2", "#17becf"};
  std::string s = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" "
      "viewBox=\"0 0 {} {}\" font-family=\"sans-serif\" font-size=\"12\">\n"
      "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      "<text x=\"{}\" y=\"28\" text-anchor=\"middle\" font-size=\"15\">{}</text>\n",
      w, h, w, h, left + pw / 2, xml_escape(title));
  // Grid and ticks: 5 intervals on y, the series' own x values (up to 12) on x.
  for (int i = 0; i <= 5; ++i) {
    double v = y_min + (y_max - y_min) * i / 5;
    s += fmt::format(
        "<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#ddd\"/>\n"
        "<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">{:g}</text>\n",
        left, py(v), left + pw, py(v), left - 6, py(v) + 4, v);
  }
  std::vector<double> xs;
  for (const auto& ser : series) xs.insert(xs.end(), ser.x.begin(), ser.x.end());
  std::sort(xs.begin(), xs.end());
  xs.erase(std::unique(xs.begin(), xs.end()), xs.end());
  if (xs.size() > 12) {
    std::vector<double> t;
    for (int i = 0; i <= 10; ++i) t.push_back(x_min + (x_max - x_min) * i / 10);
    xs = t;
  }
  for (double x : xs)
    s += fmt::format(
        "<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#eee\"/>\n"
        "<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{:g}</text>\n",
        px(x), top, px(x), top + ph, px(x), top + ph + 18, x);
  s += fmt::format(
      "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#333\"/>\n"
      "<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n"
      "<text x=\"18\" y=\"{:.1f}\" text-anchor=\"middle\" transform=\"rotate(-90 18 {:.1f})\">{}"
      "</text>\n",
      left, top, pw, ph, left + pw / 2, h - 18, xml_escape(x_label), top + ph / 2, top + ph / 2,
      xml_escape(y_label));
  for (size_t k = 0; k < series.size(); ++k) {
    const auto& ser = series[k];
    const char* color = kColors[k % 8];
    std::string pts;
    for (size_t i = 0; i < ser.x.size() && i < ser.y.size(); ++i)
      pts += fmt::format("{:.1f},{:.1f} ", px(ser.x[i]), py(ser.y[i]));
    s += fmt::format("<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\" points=\"{}\"/>\n",
                     color, pts);
    for (size_t i = 0; i < ser.x.size() && i < ser.y.size(); ++i)
      s += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3\" fill=\"{}\"/>\n", px(ser.x[i]),
                       py(ser.y[i]), color);
    double ly = top + 10 + 20 * static_cast<double>(k);
    s += fmt::format(
        "<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"{}\" "
        "stroke-width=\"2\"/>\n<text x=\"{:.1f}\" y=\"{:.1f}\">{}</text>\n",
        left + pw + 12, ly, left + pw + 36, ly, color, left + pw + 42, ly + 4,
        xml_escape(ser.label));
  }
  s += "</svg>\n";
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
