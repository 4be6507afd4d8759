#include "veil/core/svg_plot.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <sstream>

#include "veil/core/error.hpp"

namespace veil {

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
                          double y_min, double y_max, bool log_x) {
  const double w = 720, h = 460, left = 70, right = 190, top = 50, bottom = 60;
  const double pw = w - left - right, ph = h - top - bottom;
  // A log axis needs positive x: the caller checks (plot_csv refuses x <= 0 with --log-x).
  auto tx = [&](double x) { return log_x ? std::log10(x) : x; };
  double x_min = 0, x_max = 1;
  bool first = true;
  for (const auto& s : series)
    for (double x : s.x) {
      if (first) x_min = x_max = tx(x), first = false;
      x_min = std::min(x_min, tx(x));
      x_max = std::max(x_max, tx(x));
    }
  if (x_max <= x_min) x_max = x_min + 1;
  if (y_max <= y_min) y_max = y_min + 1;
  auto px = [&](double x) { return left + (tx(x) - x_min) / (x_max - x_min) * pw; };
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
    for (int i = 0; i <= 10; ++i) {
      const double v = x_min + (x_max - x_min) * i / 10;
      t.push_back(log_x ? std::pow(10.0, v) : v);
    }
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

namespace {

std::vector<std::string> split_cells(const std::string& line) {
  std::vector<std::string> cells(1);
  for (char ch : line) {
    if (ch == ',')
      cells.emplace_back();
    else if (ch != '\r')
      cells.back() += ch;
  }
  return cells;
}

}  // namespace

std::vector<PlotSeries> plot_series_from_csv(const std::string& text, std::string* x_name) {
  constexpr size_t kMaxColumns = 64, kMaxRows = 100000;
  std::istringstream in(text);
  std::string line;
  if (!std::getline(in, line)) throw MalformedInput("plot CSV: empty");
  const auto header = split_cells(line);
  if (header.size() < 2 || header.size() > kMaxColumns)
    throw MalformedInput("plot CSV: the header needs an x column and 1 to " +
                         std::to_string(kMaxColumns - 1) + " series");
  if (x_name) *x_name = header[0];
  std::vector<PlotSeries> series(header.size() - 1);
  for (size_t k = 1; k < header.size(); ++k) series[k - 1].label = header[k];
  size_t row = 1;
  while (std::getline(in, line)) {
    ++row;
    if (line.empty() || line == "\r") continue;
    if (row > kMaxRows) throw MalformedInput("plot CSV: more than 100000 rows");
    const auto cells = split_cells(line);
    if (cells.size() != header.size())
      throw MalformedInput("plot CSV: row " + std::to_string(row) + " has " +
                           std::to_string(cells.size()) + " cells, the header " +
                           std::to_string(header.size()));
    std::vector<double> v(cells.size());
    for (size_t k = 0; k < cells.size(); ++k) {
      if (cells[k].empty()) {
        if (k == 0) throw MalformedInput("plot CSV: row " + std::to_string(row) + " has no x");
        v[k] = std::nan("");
        continue;
      }
      char* end = nullptr;
      v[k] = std::strtod(cells[k].c_str(), &end);
      if (end != cells[k].c_str() + cells[k].size() || !std::isfinite(v[k]))
        throw MalformedInput("plot CSV: row " + std::to_string(row) + ", column " +
                             std::to_string(k + 1) + ": not a finite number");
    }
    for (size_t k = 1; k < cells.size(); ++k)
      if (!std::isnan(v[k])) {
        series[k - 1].x.push_back(v[0]);
        series[k - 1].y.push_back(v[k]);
      }
  }
  return series;
}

}  // namespace veil
