#include "veil/core/svg_plot.hpp"

#include <gtest/gtest.h>

#include <regex>

#include "veil/core/error.hpp"

namespace veil {
namespace {

// The circle centres of the chart, in drawing order.
std::vector<std::pair<double, double>> markers(const std::string& svg) {
  std::vector<std::pair<double, double>> out;
  const std::regex re("<circle cx=\"([0-9.]+)\" cy=\"([0-9.]+)\"");
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), re); it != std::sregex_iterator();
       ++it)
    out.emplace_back(std::stod((*it)[1]), std::stod((*it)[2]));
  return out;
}

TEST(SvgPlot, CsvColumnsBecomeSeriesAndEmptyCellsAreMissingPoints) {
  std::string x;
  const auto s =
      plot_series_from_csv("budget,knapsack,uniform\n3,80.5,\n6,85,70.25\r\n\n100,91,91\n", &x);
  EXPECT_EQ(x, "budget");
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0].label, "knapsack");
  EXPECT_EQ(s[0].x, (std::vector<double>{3, 6, 100}));
  EXPECT_EQ(s[0].y, (std::vector<double>{80.5, 85, 91}));
  EXPECT_EQ(s[1].x, (std::vector<double>{6, 100}));
  EXPECT_EQ(s[1].y, (std::vector<double>{70.25, 91}));
}

TEST(SvgPlot, HostileCsvIsRefused) {
  for (const char* bad : {"", "x\n1\n", "x,a\n1,2,3\n", "x,a\n1,abc\n", "x,a\n1,nan\n",
                          "x,a\n1,inf\n", "x,a\n,2\n", "x,a\n1,2x\n"})
    EXPECT_THROW(plot_series_from_csv(bad), MalformedInput) << bad;
}

TEST(SvgPlot, LogAxisSpacesDecadesEvenly) {
  const PlotSeries s{"a", {1, 10, 100}, {10, 20, 30}};
  const auto log = markers(line_plot_svg("t", "x", "y", {s}, 0, 100, true));
  ASSERT_EQ(log.size(), 3u);
  EXPECT_NEAR(log[1].first - log[0].first, log[2].first - log[1].first, 0.2);
  const auto lin = markers(line_plot_svg("t", "x", "y", {s}, 0, 100, false));
  ASSERT_EQ(lin.size(), 3u);
  EXPECT_GT(lin[2].first - lin[1].first, 5 * (lin[1].first - lin[0].first));
  // Higher y is drawn higher (smaller cy).
  EXPECT_GT(log[0].second, log[2].second);
}

TEST(SvgPlot, LabelsAreEscaped) {
  const auto svg = line_plot_svg("a<b & \"c\"", "x", "y", {{"<s>", {1}, {2}}});
  EXPECT_EQ(svg.find("<b &"), std::string::npos);
  EXPECT_NE(svg.find("a&lt;b &amp; &quot;c&quot;"), std::string::npos);
  EXPECT_NE(svg.find("&lt;s&gt;"), std::string::npos);
}

}  // namespace
}  // namespace veil
