// File names in error messages.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "veil/core/io.hpp"

namespace veil::data::detail {

// 'path' in single quotes. Built with append(): `"'" + std::string&&` trips a GCC 12
// -Wrestrict false positive.
inline std::string quoted(const std::filesystem::path& path) {
  std::string s(1, '\'');
  s.append(path.string()).push_back('\'');
  return s;
}

// Reads a whole file of at most max_bytes and hands it to parse(bytes, size, what) with the
// quoted file name as `what`.
template <typename Parse>
auto parse_file(const std::filesystem::path& path, uint64_t max_bytes, Parse parse) {
  const std::vector<uint8_t> bytes = read_file(path, max_bytes);
  return parse(bytes.data(), bytes.size(), quoted(path));
}

}  // namespace veil::data::detail
