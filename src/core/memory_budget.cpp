#include "veil/core/memory_budget.hpp"

#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cmath>
#include <cstdio>

#include "veil/core/error.hpp"

namespace veil {

namespace {

std::atomic<uint64_t> g_budget{0};  // 0: the default

// A quarter: a run planned beyond that is far more likely a model built to exhaust memory (the
// 300-byte ConstantOfShape of 2^30 floats plans 8 GiB) than a network that needs it; the user
// raises it with --max-memory.
uint64_t quarter_of_physical_memory() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page <= 0) return uint64_t{4} << 30;  // unknown: assume a 16 GiB machine
  return static_cast<uint64_t>(pages) * static_cast<uint64_t>(page) / 4;
}

}  // namespace

uint64_t memory_budget() {
  const uint64_t b = g_budget.load(std::memory_order_relaxed);
  return b ? b : quarter_of_physical_memory();
}

void set_memory_budget(uint64_t bytes) { g_budget.store(bytes, std::memory_order_relaxed); }

uint64_t parse_byte_size(const std::string& text) {
  auto bad = [&] {
    return InvalidArgument("'" + text.substr(0, 32) +
                           "' is not a memory size (give bytes or a number with k, M, G or T)");
  };
  size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.'))
    ++i;
  if (i == 0) throw bad();
  double value = 0;
  try {
    size_t used = 0;
    value = std::stod(text.substr(0, i), &used);
    if (used != i) throw bad();
  } catch (const std::logic_error&) {
    throw bad();
  }
  std::string unit = text.substr(i);
  for (auto& c : unit) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  double scale = 1;
  if (unit.empty() || unit == "b") {
  } else if (unit == "k" || unit == "kb" || unit == "kib") {
    scale = 1024.0;
  } else if (unit == "m" || unit == "mb" || unit == "mib") {
    scale = 1024.0 * 1024;
  } else if (unit == "g" || unit == "gb" || unit == "gib") {
    scale = 1024.0 * 1024 * 1024;
  } else if (unit == "t" || unit == "tb" || unit == "tib") {
    scale = 1024.0 * 1024 * 1024 * 1024;
  } else {
    throw bad();
  }
  const double bytes = std::floor(value * scale);
  if (!(bytes >= 1) || bytes > std::ldexp(1.0, 62)) throw bad();
  return static_cast<uint64_t>(bytes);
}

std::string human_bytes(uint64_t bytes) {
  const char* units[] = {"KiB", "MiB", "GiB", "TiB"};
  if (bytes < 1024) return std::to_string(bytes) + " B";
  double v = static_cast<double>(bytes) / 1024;
  int u = 0;
  while (v >= 1024 && u < 3) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
  return buf;
}

}  // namespace veil
