#include "veil/core/progress.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

namespace veil {
namespace {

using testing::HasSubstr;
using testing::Not;

// Concatenation by append(); `"literal" + std::string&&` trips a GCC 12 -Wrestrict false positive.
std::string cat(std::initializer_list<std::string> parts) {
  std::string out;
  for (const auto& p : parts) out += p;
  return out;
}

size_t count_char(const std::string& s, char c) {
  return static_cast<size_t>(std::count(s.begin(), s.end(), c));
}

TEST(ProgressFormat, Duration) {
  EXPECT_EQ(format_duration(0), "0:00");
  EXPECT_EQ(format_duration(59.9), "0:59");
  EXPECT_EQ(format_duration(61), "1:01");
  EXPECT_EQ(format_duration(10 * 60 + 5), "10:05");
  EXPECT_EQ(format_duration(3600 + 2 * 60 + 3), "1:02:03");
  EXPECT_EQ(format_duration(-1), "?");
  EXPECT_EQ(format_duration(std::numeric_limits<double>::infinity()), "?");
  EXPECT_EQ(format_duration(std::nan("")), "?");
  EXPECT_EQ(format_duration(1e300), "?");
}

TEST(ProgressFormat, Rate) {
  EXPECT_EQ(format_rate(0.5), "0.500");
  EXPECT_EQ(format_rate(2), "2.00");
  EXPECT_EQ(format_rate(12.34), "12.3");
  EXPECT_EQ(format_rate(152), "152");
  EXPECT_EQ(format_rate(1523), "1.52k");
  EXPECT_EQ(format_rate(15230), "15.2k");
  EXPECT_EQ(format_rate(3.4e6), "3.40M");
  EXPECT_EQ(format_rate(-1), "?");
  EXPECT_EQ(format_rate(std::nan("")), "?");
}

TEST(ProgressFormat, LineShowsCountsRateElapsedEtaAndExtra) {
  // 50 of 100 items in 2 s: 25 items/s, 50 more items take another 2 s.
  std::string line = format_progress_line("train", 50, 100, 2.0, "loss 0.42 acc 87.1%", 20);
  EXPECT_THAT(line, HasSubstr("train"));
  EXPECT_THAT(line, HasSubstr("[##########..........]"));
  EXPECT_THAT(line, HasSubstr(" 50/100"));
  EXPECT_THAT(line, HasSubstr(" 50%"));
  EXPECT_THAT(line, HasSubstr(cat({format_rate(25.0), " it/s"})));
  EXPECT_THAT(line, HasSubstr(cat({" ", format_duration(2.0), " eta ", format_duration(2.0)})));
  EXPECT_THAT(line, HasSubstr("loss 0.42 acc 87.1%"));

  // 1000 of 60000 after 4 s: 250/s, ETA 59000 / 250 = 236 s.
  line = format_progress_line("e", 1000, 60000, 4.0, "", 0);
  EXPECT_THAT(line, HasSubstr(" 1000/60000"));
  EXPECT_THAT(line, HasSubstr(cat({"eta ", format_duration(236.0)})));
  EXPECT_THAT(line, Not(HasSubstr("[")));

  // Nothing done yet: no rate, no ETA.
  line = format_progress_line("e", 0, 10, 0.0, "", 10);
  EXPECT_THAT(line, HasSubstr("? it/s"));
  EXPECT_THAT(line, HasSubstr("eta ?"));
  // Done: ETA zero.
  line = format_progress_line("e", 10, 10, 3.0, "", 10);
  EXPECT_THAT(line, HasSubstr("[##########]"));
  EXPECT_THAT(line, HasSubstr(cat({"eta ", format_duration(0)})));
  // Unknown total: count and rate only.
  line = format_progress_line("scan", 40, 0, 4.0, "", 10);
  EXPECT_THAT(line, HasSubstr(cat({"scan 40 ", format_rate(10.0), " it/s"})));
  EXPECT_THAT(line, Not(HasSubstr("eta")));
  EXPECT_THAT(line, Not(HasSubstr("%")));
}

struct FakeClock {
  double t = 100.0;
  ProgressBar::Clock fn() {
    return [this] { return t; };
  }
};

TEST(ProgressBar, TtyRedrawsAtMostTenTimesPerSecond) {
  std::ostringstream out;
  FakeClock clock;
  {
    ProgressBar bar("train", 1000, out, true, clock.fn());
    for (int i = 1; i <= 500; ++i) bar.update(i, "loss 1.0");  // all at the same instant
    EXPECT_EQ(count_char(out.str(), '\r'), 1u);
    clock.t += 0.05;
    bar.update(600);
    EXPECT_EQ(count_char(out.str(), '\r'), 1u);
    clock.t += 0.06;
    bar.update(700, "loss 0.5");
    EXPECT_EQ(count_char(out.str(), '\r'), 2u);
    EXPECT_THAT(out.str(), HasSubstr("700/1000"));
    EXPECT_THAT(out.str(), HasSubstr("loss 0.5"));
    EXPECT_EQ(count_char(out.str(), '\n'), 0u);
    clock.t += 0.01;
    bar.finish();
  }
  const std::string s = out.str();
  EXPECT_EQ(count_char(s, '\n'), 1u);  // the destructor does not print a second final line
  EXPECT_EQ(s.back(), '\n');
  // The final line repeats the last extra text and the last count.
  std::string last = s.substr(s.rfind('\r'));
  EXPECT_THAT(last, HasSubstr("700/1000"));
  EXPECT_THAT(last, HasSubstr("loss 0.5"));
}

TEST(ProgressBar, ShorterLineOverwritesLongerOne) {
  std::ostringstream out;
  FakeClock clock;
  ProgressBar bar("x", 10, out, true, clock.fn());
  bar.update(1, std::string(30, 'a'));
  clock.t += 1;
  bar.update(2, "b");
  std::string s = out.str();
  std::string first = s.substr(1, s.find('\r', 1) - 1);
  std::string second = s.substr(s.find('\r', 1) + 1);
  EXPECT_GE(second.size(), first.size());
}

// A bar resumed at 900 of 1000 items shows the rate of the 100 it saw, not 1000 over its time.
TEST(ProgressBar, AResumedBarRatesOnlyWhatItSaw) {
  std::ostringstream out;
  FakeClock clock;
  {
    ProgressBar bar("epoch 2/20", 1000, out, false, clock.fn());
    bar.resume_at(900);
    clock.t += 10;
    bar.update(950);
  }
  EXPECT_THAT(out.str(), HasSubstr(" 950/1000  95% 5.00 it/s 0:10 eta 0:10"));
  EXPECT_THAT(format_progress_line("x", 950, 1000, 10, "", 0, 900), HasSubstr("5.00 it/s"));
  EXPECT_THAT(format_progress_line("x", 950, 1000, 10, "", 0), HasSubstr("95.0 it/s"));
}

// A log gets one line per phase however long the phase runs: a fast loop (1024 items/s, steps
// exact in binary so the rate prints exactly) and a slow one (1 item/s for 1000 s, past any
// interval a log might print on).
TEST(ProgressBar, LogPrintsOnlyTheFinalLine) {
  for (double step : {1.0 / 1024, 1.0}) {
    std::ostringstream out;
    FakeClock clock;
    {
      ProgressBar bar("eval", 1000, out, false, clock.fn());
      for (int i = 1; i <= 1000; ++i) {
        clock.t += step;
        bar.update(i, i == 1000 ? "top-1 90%" : "");
      }
      EXPECT_TRUE(out.str().empty()) << step;
    }  // the destructor finishes the bar
    const std::string s = out.str();
    EXPECT_EQ(count_char(s, '\n'), 1u) << step;
    EXPECT_EQ(count_char(s, '\r'), 0u) << step;  // no carriage returns in a log
    EXPECT_THAT(s, HasSubstr("1000/1000"));
    EXPECT_THAT(s, HasSubstr("top-1 90%"));
    // The same rate and elapsed time a terminal's final line shows, without the bar.
    EXPECT_THAT(s, HasSubstr(cat({format_rate(1 / step), " it/s ", format_duration(1000 * step)})));
    EXPECT_THAT(s, Not(HasSubstr("[")));
  }
  // A bar finished early (an error path) still leaves its one line, with the count it reached.
  std::ostringstream out;
  FakeClock clock;
  ProgressBar bar("train", 100, out, false, clock.fn());
  bar.update(40);
  bar.finish();
  bar.finish();
  EXPECT_EQ(count_char(out.str(), '\n'), 1u);
  EXPECT_THAT(out.str(), HasSubstr("40/100"));
}

TEST(ProgressBar, QuietPrintsNothing) {
  std::ostringstream out;
  FakeClock clock;
  {
    ProgressBar bar("q", 10, out, true, clock.fn());
    bar.set_quiet(true);
    for (int i = 0; i <= 10; ++i) {
      clock.t += 1;
      bar.update(i);
    }
    bar.finish("done");
  }
  EXPECT_TRUE(out.str().empty());

  ProgressBar::set_default_quiet(true);
  {
    ProgressBar bar("q", 10, out, false, clock.fn());
    EXPECT_TRUE(bar.quiet());
    bar.update(10);
  }
  ProgressBar::set_default_quiet(false);
  EXPECT_TRUE(out.str().empty());
}

TEST(ProgressBar, ClampsOutOfRangeCounts) {
  std::ostringstream out;
  FakeClock clock;
  ProgressBar bar("c", 10, out, true, clock.fn());
  bar.update(25);
  clock.t += 1;
  bar.finish();
  EXPECT_THAT(out.str(), HasSubstr("10/10"));
  EXPECT_THAT(out.str(), Not(HasSubstr("25/10")));
}

}  // namespace
}  // namespace veil
