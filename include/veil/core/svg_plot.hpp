// A self-contained SVG line chart (no external assets, no script): `veil plot`, the locking
// sweep and the bench scripts draw their curves with it.
#pragma once

#include <string>
#include <vector>

namespace veil {

struct PlotSeries {
  std::string label;
  std::vector<double> x, y;
};

// One polyline per series with markers, a legend, grid lines at the series' x values (up to 12,
// else 10 even steps) and 5 steps on y. `log_x` places x on a log10 axis (every x must be > 0);
// tick labels show the values themselves.
std::string line_plot_svg(const std::string& title, const std::string& x_label,
                          const std::string& y_label, const std::vector<PlotSeries>& series,
                          double y_min = 0, double y_max = 100, bool log_x = false);

// The series of a numeric CSV table: a header row (the x column's name, then one label per
// series), then rows of numbers; an empty cell is a missing point. At most 64 columns and
// 100,000 rows; a non-numeric or non-finite cell is refused (MalformedInput naming its row and
// column). The x column's name is returned in `x_name`.
std::vector<PlotSeries> plot_series_from_csv(const std::string& text,
                                             std::string* x_name = nullptr);

}  // namespace veil
