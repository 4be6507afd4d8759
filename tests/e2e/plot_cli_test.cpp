// End-to-end: `veil plot` draws one curve of test top-1 per epoch for each `veil train --json`
// summary, and refuses a file that is not one without writing the chart.
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "cli_runner.hpp"
#include "veil/core/io.hpp"

namespace veil::testing {
namespace {

namespace fs = std::filesystem;

void write_text(const fs::path& p, const std::string& text) { std::ofstream(p) << text; }

TEST(PlotCli, OneCurvePerTrainingSummary) {
  TempDir dir;
  write_text(
      dir / "a.json",
      R"({"arch":"he-cnn","epochs":[{"epoch":1,"test_top1":0.8},{"epoch":2,"test_top1":0.9}]})");
  write_text(dir / "b.json", R"({"epochs":[{"epoch":1,"test_top1":0.85}]})");
  const fs::path svg = dir / "fig.svg";
  const std::string args = "plot --series 'square <x^2>=" + (dir / "a.json").string() +
                           "' --series relu=" + (dir / "b.json").string() + " --out " +
                           svg.string() + " --y-min 50 --title 'Fashion-MNIST'";
  const CliResult r = run_veil(args, dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string text = read_text_file(svg, 1 << 20);
  EXPECT_EQ(text.rfind("<svg", 0), 0u);
  EXPECT_NE(text.find("Fashion-MNIST"), std::string::npos);
  EXPECT_NE(text.find("square &lt;x^2&gt;"), std::string::npos);  // labels are escaped
  EXPECT_NE(text.find("relu"), std::string::npos);
  EXPECT_EQ(text.find("<x^2>"), std::string::npos);
}

TEST(PlotCli, RefusesWhatIsNotATrainingSummary) {
  TempDir dir;
  write_text(dir / "bad.json", R"({"epochs":[{"epoch":1}]})");
  write_text(dir / "text.json", "not json");
  const fs::path svg = dir / "fig.svg";
  for (const char* file : {"bad.json", "text.json"}) {
    const CliResult r =
        run_veil("plot --series x=" + (dir / file).string() + " --out " + svg.string(), dir);
    EXPECT_EQ(r.exit_code, 1) << file << r.err;
    EXPECT_EQ(r.err.rfind("veil: error: ", 0), 0u) << r.err;
  }
  EXPECT_EQ(run_veil("plot --series nolabel --out " + svg.string(), dir).exit_code, 2);
  EXPECT_FALSE(fs::exists(svg));
}

TEST(PlotCli, CsvTableWithALogAxis) {
  TempDir dir;
  write_text(dir / "t.csv", "budget,knapsack,uniform\n3,80,\n6,85,70\n100,91,91\n");
  const fs::path svg = dir / "fig.svg";
  const CliResult r = run_veil("plot --csv " + (dir / "t.csv").string() + " --log-x --out " +
                                   svg.string() + " --y-label 'top-1 (%)'",
                               dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string text = read_text_file(svg, 1 << 20);
  EXPECT_NE(text.find("top-1 (%) per budget"), std::string::npos);
  EXPECT_NE(text.find(">uniform<"), std::string::npos);
  // Neither or both of --csv and --series, a non-positive x on a log axis: refused, no chart.
  write_text(dir / "zero.csv", "x,a\n0,1\n");
  const fs::path svg2 = dir / "fig2.svg";
  for (const std::string& args :
       {"plot --out " + svg2.string(),
        "plot --csv " + (dir / "zero.csv").string() + " --log-x --out " + svg2.string(),
        "plot --csv " + (dir / "t.csv").string() + " --series a=" + (dir / "t.csv").string() +
            " --out " + svg2.string()}) {
    const CliResult bad = run_veil(args, dir);
    EXPECT_NE(bad.exit_code, 0) << args;
    EXPECT_EQ(bad.err.rfind("veil: error: ", 0), 0u) << bad.err;
  }
  EXPECT_FALSE(fs::exists(svg2));
}

}  // namespace
}  // namespace veil::testing
