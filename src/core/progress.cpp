#include "veil/core/progress.hpp"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string_view>

namespace veil {

namespace {

constexpr double kTtyInterval = 0.1;  // seconds between redraws on a terminal

std::atomic<bool> g_default_quiet{false};

double steady_seconds() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

bool stream_is_tty(const std::ostream& out) {
  if (&out == &std::cerr || &out == &std::clog) return ::isatty(::fileno(stderr)) == 1;
  if (&out == &std::cout) return ::isatty(::fileno(stdout)) == 1;
  return false;
}

// Columns of the terminal behind `out`, 0 if unknown.
size_t terminal_width(const std::ostream& out) {
  int fd = &out == &std::cout ? ::fileno(stdout) : ::fileno(stderr);
  struct winsize ws {};
  if (::ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  return 0;
}

std::string printf_string(const char* fmt, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, v);
  return buf;
}

}  // namespace

std::string format_duration(double seconds) {
  // Beyond ~11 years an estimate means nothing (and the integer conversion must stay defined).
  if (!std::isfinite(seconds) || seconds < 0 || seconds >= 3.6e8) return "?";
  const auto t = static_cast<int64_t>(seconds);
  const int64_t h = t / 3600, m = (t % 3600) / 60, s = t % 60;
  char buf[48];
  if (h > 0)
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", static_cast<long long>(h),
                  static_cast<long long>(m), static_cast<long long>(s));
  else
    std::snprintf(buf, sizeof buf, "%lld:%02lld", static_cast<long long>(m),
                  static_cast<long long>(s));
  return buf;
}

std::string format_rate(double r) {
  if (!std::isfinite(r) || r < 0) return "?";
  const char* suffix = "";
  if (r >= 1e6) {
    r /= 1e6;
    suffix = "M";
  } else if (r >= 1e3) {
    r /= 1e3;
    suffix = "k";
  }
  const char* fmt = r >= 100 ? "%.0f" : r >= 10 ? "%.1f" : r >= 1 || *suffix ? "%.2f" : "%.3f";
  return printf_string(fmt, r) + suffix;
}

std::string format_progress_line(const std::string& label, int64_t done, int64_t total,
                                 double elapsed, const std::string& extra, int bar_width,
                                 int64_t resumed_from) {
  // Built with append() rather than operator+ chains, which GCC 12 misdiagnoses (-Wrestrict).
  std::string line = label;
  const double rate = elapsed > 0 ? static_cast<double>(done - resumed_from) / elapsed : -1;
  if (total > 0) {
    if (bar_width > 0) {
      const double frac = std::clamp(static_cast<double>(done) / total, 0.0, 1.0);
      const auto filled = static_cast<size_t>(frac * bar_width);
      line.append(" [").append(filled, '#').append(bar_width - filled, '.').append("]");
    }
    const std::string t = std::to_string(total);
    const std::string d = std::to_string(done);
    line.append(" ").append(d.size() < t.size() ? t.size() - d.size() : 0, ' ');
    line.append(d).append("/").append(t);
    char pct[16];
    std::snprintf(pct, sizeof pct, " %3d%%", static_cast<int>(100.0 * done / total));
    line.append(pct);
  } else {
    line.append(" ").append(std::to_string(done));
  }
  line.append(" ").append(format_rate(rate)).append(" it/s ").append(format_duration(elapsed));
  if (total > 0) {
    double eta = done >= total ? 0 : rate > 0 ? static_cast<double>(total - done) / rate : -1;
    line.append(" eta ").append(format_duration(eta));
  }
  if (!extra.empty()) line.append(" ").append(extra);
  return line;
}

ProgressBar::ProgressBar(std::string label, int64_t total, std::ostream& out)
    : ProgressBar(std::move(label), total, out, stream_is_tty(out), steady_seconds) {
  if (tty_) width_ = terminal_width(out);
}

ProgressBar::ProgressBar(std::string label, int64_t total, std::ostream& out, bool tty, Clock clock)
    : label_(std::move(label)),
      total_(total),
      out_(out),
      tty_(tty),
      clock_(std::move(clock)),
      quiet_(g_default_quiet.load()) {
  start_ = clock_();
}

ProgressBar::~ProgressBar() {
  try {
    finish();
  } catch (...) {
    // A failing stream must not turn into std::terminate during unwinding.
  }
}

void ProgressBar::set_default_quiet(bool quiet) { g_default_quiet = quiet; }
bool ProgressBar::default_quiet() { return g_default_quiet.load(); }

std::string ProgressBar::line(double now) const {
  return format_progress_line(label_, done_, total_, now - start_, extra_, tty_ ? 20 : 0,
                              resumed_from_);
}

void ProgressBar::resume_at(int64_t done) {
  update(done);
  resumed_from_ = done_;
}

void ProgressBar::update(int64_t done, const std::string& extra) {
  if (finished_) return;
  if (done < 0) done = 0;
  if (total_ > 0 && done > total_) done = total_;
  done_ = done;
  if (!extra.empty()) extra_ = extra;
  // A log (not a terminal) gets only the line finish() prints: one line per epoch or phase.
  if (quiet_ || !tty_) return;
  const double now = clock_();
  if (last_draw_ >= 0 && now - last_draw_ < kTtyInterval) return;
  last_draw_ = now;
  draw(line(now), false);
}

void ProgressBar::finish(const std::string& extra) {
  if (finished_) return;
  finished_ = true;
  if (!extra.empty()) extra_ = extra;
  if (quiet_) return;
  draw(line(clock_()), true);
}

void ProgressBar::draw(const std::string& text, bool final) {
  if (tty_) {
    // A line longer than the terminal wraps, and '\r' would then redraw only its last row.
    std::string_view shown = text;
    if (width_ > 1 && shown.size() >= width_) shown = shown.substr(0, width_ - 1);
    out_ << '\r' << shown;
    // Overwrite what is left of a longer previous line.
    if (shown.size() < last_len_) out_ << std::string(last_len_ - shown.size(), ' ');
    last_len_ = shown.size();
    if (final) out_ << '\n';
  } else {
    out_ << text << '\n';
  }
  out_.flush();
}

}  // namespace veil
