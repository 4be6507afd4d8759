// libFuzzer target for the split serve configuration parser (parse_serve_config, which
// load_serve_config uses): any text must parse into a configuration or throw a veil::Error.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "veil/core/error.hpp"
#include "veil/split/serve_config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    (void)veil::split::parse_serve_config(text, "/fuzz");
  } catch (const veil::Error&) {
  }
  return 0;
}
