// File names in error messages.
#pragma once

#include <filesystem>
#include <string>

namespace veil::data::detail {

// 'path' in single quotes. Built with append(): `"'" + std::string&&` trips a GCC 12
// -Wrestrict false positive.
inline std::string quoted(const std::filesystem::path& path) {
  std::string s(1, '\'');
  s.append(path.string()).push_back('\'');
  return s;
}

}  // namespace veil::data::detail
