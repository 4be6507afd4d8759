#include "veil/core/byte_io.hpp"

#include "veil/core/error.hpp"

namespace veil {

void ByteReader::fail(const std::string& message) const {
  throw MalformedInput(context_ + ": " + message);
}

void ByteReader::truncated(const char* what) const {
  fail(what ? std::string("truncated while reading ") + what : std::string("truncated"));
}

std::string ByteReader::str(size_t max_len, const char* what) {
  const uint32_t n = u32(what);
  if (n > max_len) fail(std::string(what) + " too long");
  auto s = bytes(n, what);
  return std::string(s.begin(), s.end());
}

void ByteReader::check_count(uint64_t n, uint64_t max, const char* what,
                             uint64_t min_item_bytes) const {
  if (n > max) fail("bad " + std::string(what) + " " + std::to_string(n));
  if (min_item_bytes != 0 && n > remaining() / min_item_bytes) truncated(what);
}

uint32_t ByteReader::count(uint64_t max, const char* what, uint64_t min_item_bytes) {
  const uint32_t n = u32(what);
  check_count(n, max, what, min_item_bytes);
  return n;
}

uint64_t ByteReader::count64(uint64_t max, const char* what, uint64_t min_item_bytes) {
  const uint64_t n = u64(what);
  check_count(n, max, what, min_item_bytes);
  return n;
}

void ByteReader::expect_end() const {
  if (remaining() != 0) fail("trailing bytes");
}

}  // namespace veil
