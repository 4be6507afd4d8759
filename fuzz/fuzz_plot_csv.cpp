// libFuzzer target for the plot CSV parser (`veil plot --csv`): any text must parse or throw a
// veil::Error; accepted series have one y per x, and the chart drawn from them is an SVG.
#include <cstddef>
#include <cstdint>
#include <string>

#include "veil/core/error.hpp"
#include "veil/core/svg_plot.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<veil::PlotSeries> series;
  try {
    series = veil::plot_series_from_csv(text);
  } catch (const veil::Error&) {
    return 0;
  }
  for (const auto& s : series)
    if (s.x.size() != s.y.size()) __builtin_trap();
  if (veil::line_plot_svg("t", "x", "y", series).rfind("<svg", 0) != 0) __builtin_trap();
  return 0;
}
