// Range checks for numeric options. Every numeric option of every command carries one, so that a
// value out of range (or NaN, Inf, a negative count, a fraction where an integer is meant) is
// refused as a usage error with one line (exit 2) instead of being replaced by a default.
#pragma once

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <type_traits>

namespace veil::cli {

// The whole of `s` as a finite number (strtod syntax), or nothing: "nan", "inf", "1x" and ""
// are not numbers to any option.
inline bool parse_finite(const std::string& s, double& v) {
  char* end = nullptr;
  v = s.empty() ? NAN : std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size() && std::isfinite(v);
}

// Accepts a value of type T in [lo, hi]: a whole decimal number for an integer T, a finite
// number for a floating-point T. The message names the range: "must be an integer in [1, 4096],
// got '0'" (CLI11 prefixes the option's name).
template <typename T>
CLI::Validator in_range(T lo, T hi) {
  std::string interval, range;  // "[1, 4096]" for --help, "an integer in [1, 4096]" for errors
  if constexpr (std::is_integral_v<T>) {
    interval = fmt::format("[{}, {}]", lo, hi);
    range = "an integer in " + interval;
  } else {
    interval = fmt::format("[{:g}, {:g}]", lo, hi);
    range = "a number in " + interval;
  }
  return CLI::Validator(
      [lo, hi, range](std::string& s) -> std::string {
        bool ok = false;
        if constexpr (std::is_integral_v<T>) {
          T v{};
          const char* end = s.data() + s.size();
          auto [p, ec] = std::from_chars(s.data(), end, v);
          ok = ec == std::errc() && p == end && v >= lo && v <= hi;
        } else {
          double v = 0;
          ok = parse_finite(s, v) && v >= lo && v <= hi;
        }
        return ok ? std::string() : "must be " + range + ", got '" + s + "'";
      },
      interval);
}

// A count of images where 0 means "all of them" (--limit, --test-limit, --n).
inline CLI::Validator image_count() { return in_range<int64_t>(0, int64_t{1} << 31); }

// A strictly positive finite number (learning rates, intensities): (0, hi].
inline CLI::Validator positive_number(double hi) {
  return CLI::Validator(
      [hi](std::string& s) -> std::string {
        double v = 0;
        if (parse_finite(s, v) && v > 0 && v <= hi) return "";
        return fmt::format("must be a number in (0, {:g}], got '{}'", hi, s);
      },
      fmt::format("(0, {:g}]", hi));
}

}  // namespace veil::cli
