// A terminal progress bar for long loops (training epochs, dataset evaluation, protocol runs):
//
//   train [#########...........]  4500/10000  45% 1.52k it/s 0:02 eta 0:03 loss 0.42 acc 87.1%
//
// On a TTY the line is redrawn in place with '\r', at most ~10 times per second. When the
// stream is not a TTY (a log file, CI, `make run > log`) only the final line is printed — the one
// the terminal keeps too — so a log holds one line per epoch or phase. quiet mode prints nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <iostream>
#include <string>

namespace veil {

// Pure formatting helpers (exposed for tests and for callers that print their own lines).
// "m:ss" below an hour, "h:mm:ss" from an hour on; "?" for a negative or non-finite value.
std::string format_duration(double seconds);
// Items per second with three significant digits and k/M suffixes: "0.500", "12.3", "152",
// "1.52k", "3.40M"; "?" for a negative or non-finite value.
std::string format_rate(double items_per_second);
// One progress line (no '\r' or newline). total <= 0 means unknown: no bar, percentage or ETA.
// bar_width <= 0 leaves out the bar. `resumed_from` items were done before `elapsed_seconds`
// started (a continued run): they count in the total, not in the rate or the ETA.
std::string format_progress_line(const std::string& label, int64_t done, int64_t total,
                                 double elapsed_seconds, const std::string& extra,
                                 int bar_width = 20, int64_t resumed_from = 0);

class ProgressBar {
 public:
  // Seconds on a monotonic clock; injectable for tests.
  using Clock = std::function<double()>;

  ProgressBar(std::string label, int64_t total, std::ostream& out = std::cerr);
  // Full control, for tests: whether `out` counts as a TTY and which clock to read.
  ProgressBar(std::string label, int64_t total, std::ostream& out, bool tty, Clock clock);
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  // Records `done` items (0 <= done; values above total are clamped) and redraws if due (on a
  // TTY only).
  void update(int64_t done, const std::string& extra = "");
  // Starts a bar at `done` items that an earlier run did (a resumed training epoch): the rate
  // and ETA count only what this bar sees done.
  void resume_at(int64_t done);
  // Prints the final line (ending with a newline); an empty `extra` repeats the last one.
  // Called by the destructor if not called.
  void finish(const std::string& extra = "");

  void set_quiet(bool quiet) { quiet_ = quiet; }
  bool quiet() const { return quiet_; }
  // Default quiet flag for bars created afterwards (the CLI's --quiet sets this once).
  static void set_default_quiet(bool quiet);
  static bool default_quiet();

 private:
  void draw(const std::string& line, bool final);
  std::string line(double now) const;

  std::string label_;
  int64_t total_;
  std::ostream& out_;
  bool tty_;
  Clock clock_;
  bool quiet_;
  double start_ = 0;
  double last_draw_ = -1;
  int64_t done_ = 0;
  int64_t resumed_from_ = 0;
  std::string extra_;
  size_t last_len_ = 0;
  bool finished_ = false;
  size_t width_ = 0;  // terminal columns; 0 = do not truncate
};

}  // namespace veil
