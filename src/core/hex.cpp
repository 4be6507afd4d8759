#include "veil/core/hex.hpp"

#include "veil/core/error.hpp"

namespace veil {

namespace {

int digit_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string to_hex(std::span<const uint8_t> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s;
  s.reserve(2 * bytes.size());
  for (uint8_t b : bytes) {
    s.push_back(kDigits[b >> 4]);
    s.push_back(kDigits[b & 15]);
  }
  return s;
}

bool from_hex(std::string_view hex, std::span<uint8_t> out) {
  if (hex.size() != 2 * out.size()) return false;
  for (size_t i = 0; i < out.size(); ++i) {
    const int hi = digit_value(hex[2 * i]), lo = digit_value(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<uint8_t>(hi * 16 + lo);
  }
  return true;
}

std::vector<uint8_t> from_hex(std::string_view hex, std::string_view what) {
  std::vector<uint8_t> out(hex.size() / 2);
  if (hex.size() % 2 != 0 || !from_hex(hex, out))
    throw InvalidArgument(std::string(what) + ": '" + std::string(hex) + "' is not hex");
  return out;
}

}  // namespace veil
