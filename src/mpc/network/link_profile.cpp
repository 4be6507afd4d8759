#include "veil/mpc/network/link_profile.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <system_error>

#include "veil/core/error.hpp"

namespace veil::mpc {
namespace {

constexpr const char* kForms = "lan, wan, none or rtt=<ms>,rate=<Mbit/s>";

[[noreturn]] void bad(std::string_view spec, const std::string& why) {
  throw InvalidArgument("link profile '" + std::string(spec) + "': " + why + " (expected " +
                        kForms + ")");
}

double parse_number(std::string_view spec, std::string_view key, std::string_view text) {
  double v = 0;
  const char* end = text.data() + text.size();
  auto [p, ec] = std::from_chars(text.data(), end, v);
  if (text.empty() || ec != std::errc() || p != end || !std::isfinite(v))
    bad(spec, std::string(key) + " needs a number, got '" + std::string(text) + "'");
  return v;
}

LinkProfile make(double rtt_ms, double rate_mbit_s) {
  LinkProfile p;
  p.one_way_delay = std::chrono::nanoseconds(std::llround(rtt_ms * 1e6 / 2));
  p.bits_per_second = rate_mbit_s * 1e6;
  return p;
}

// Shortest text that reads back as the same double ("20", "0.5", "12.75").
std::string number(double v) { return fmt::format("{}", v); }

// The Mbit/s value parse_link_profile() turns back into exactly `bits_per_second`. IEEE
// arithmetic does not promise that (bits / 1e6) * 1e6 == bits (no case was found in range), so
// the quotient's neighbours are tried too.
double exact_mbit_s(double bits_per_second) {
  double q = bits_per_second / 1e6;
  for (double c : {q, std::nextafter(q, 0.0), std::nextafter(q, HUGE_VAL)})
    if (c * 1e6 == bits_per_second) return c;
  return q;  // not a parsed value (set by hand): the nearest text will do
}

std::string rate_text(double mbit_s) {
  if (mbit_s >= 1000) return number(mbit_s / 1000) + " Gbit/s";
  if (mbit_s < 1) return number(mbit_s * 1000) + " kbit/s";
  return number(mbit_s) + " Mbit/s";
}

}  // namespace

LinkProfile lan_link() { return make(0.5, 1000); }
LinkProfile wan_link() { return make(40, 100); }

void LinkProfile::validate() const {
  const double rtt = rtt_ms(), rate = rate_mbit_s();
  if (!(rtt >= 0 && rtt <= kMaxLinkRttMs))
    throw InvalidArgument(fmt::format("link profile: the RTT must be in [0, {}] ms (got {} ms)",
                                      kMaxLinkRttMs, number(rtt)));
  if (!(rate == 0 || (rate >= kMinLinkRateMbitS && rate <= kMaxLinkRateMbitS)))
    throw InvalidArgument(fmt::format("link profile: the rate must be in [{}, {}] Mbit/s (got {})",
                                      kMinLinkRateMbitS, kMaxLinkRateMbitS, number(rate)));
}

std::string LinkProfile::spec() const {
  if (!enabled()) return "none";
  if (*this == lan_link()) return "lan";
  if (*this == wan_link()) return "wan";
  std::string s;
  if (one_way_delay.count() > 0) s = "rtt=" + number(rtt_ms());
  if (bits_per_second > 0)
    s += (s.empty() ? "rate=" : ",rate=") + number(exact_mbit_s(bits_per_second));
  return s;
}

std::string LinkProfile::describe() const {
  if (!enabled()) return "not shaped";
  std::string rate = bits_per_second > 0 ? rate_text(rate_mbit_s()) : "unlimited rate";
  std::string rtt = one_way_delay.count() > 0 ? number(rtt_ms()) + " ms RTT" : "no delay";
  return rate + ", " + rtt;
}

LinkProfile parse_link_profile(std::string_view spec) {
  if (spec == "none") return {};
  if (spec == "lan") return lan_link();
  if (spec == "wan") return wan_link();
  if (spec.empty()) bad(spec, "empty");
  double rtt = 0, rate = 0;
  bool have_rtt = false, have_rate = false;
  std::string_view rest = spec;
  for (;;) {
    size_t comma = rest.find(',');
    std::string_view part = rest.substr(0, comma);
    size_t eq = part.find('=');
    if (eq == std::string_view::npos) bad(spec, "'" + std::string(part) + "' is not key=value");
    std::string_view key = part.substr(0, eq), value = part.substr(eq + 1);
    if (key == "rtt") {
      if (have_rtt) bad(spec, "rtt given twice");
      have_rtt = true;
      rtt = parse_number(spec, key, value);
      if (rtt < 0 || rtt > kMaxLinkRttMs)
        bad(spec, fmt::format("rtt must be in [0, {}] ms", kMaxLinkRttMs));
    } else if (key == "rate") {
      if (have_rate) bad(spec, "rate given twice");
      have_rate = true;
      rate = parse_number(spec, key, value);
      if (rate < kMinLinkRateMbitS || rate > kMaxLinkRateMbitS)
        bad(spec, fmt::format("rate must be in [{}, {}] Mbit/s (leave it out for no limit)",
                              kMinLinkRateMbitS, kMaxLinkRateMbitS));
    } else {
      bad(spec, "unknown key '" + std::string(key) + "'");
    }
    if (comma == std::string_view::npos) break;
    rest = rest.substr(comma + 1);
  }
  LinkProfile p = make(rtt, rate);
  p.validate();
  return p;
}

std::chrono::nanoseconds LinkModel::transmission_time(uint64_t wire_bytes) const {
  if (profile_.bits_per_second <= 0) return std::chrono::nanoseconds(0);
  return std::chrono::nanoseconds(
      std::llround(static_cast<double>(wire_bytes) * 8e9 / profile_.bits_per_second));
}

LinkModel::Clock::time_point LinkModel::schedule(uint64_t wire_bytes, Clock::time_point now) {
  Clock::time_point start = std::max(link_free_, now);
  link_free_ = start + transmission_time(wire_bytes);
  return link_free_ + profile_.one_way_delay;
}

}  // namespace veil::mpc
