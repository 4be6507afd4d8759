// libFuzzer target for the .vdist parser (`veil relu knapsack --distortion`): any bytes must
// parse or throw a veil::Error, and an accepted table must serialize back to the same bytes.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "veil/core/error.hpp"
#include "veil/mpc/block_relu/distortion_file.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  veil::mpc::DistortionTable t;
  try {
    t = veil::mpc::parse_distortion_file(bytes);
  } catch (const veil::Error&) {
    return 0;
  }
  if (veil::mpc::serialize(t) != bytes) __builtin_trap();
  (void)t.relu_count();
  return 0;
}
