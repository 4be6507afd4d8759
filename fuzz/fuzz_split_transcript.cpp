// libFuzzer target for the split transcript file parser (veil/split/transcript_file.hpp): any
// bytes parse or throw a veil::Error; an accepted transcript encodes back to the same bytes.
#include <cstddef>
#include <cstdint>
#include <span>

#include "veil/core/error.hpp"
#include "veil/split/transcript_file.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> in(data, size);
  veil::split::Transcript t;
  try {
    t = veil::split::parse_transcript(in, "fuzz.vtrs");
  } catch (const veil::Error&) {
    return 0;
  }
  const std::vector<uint8_t> again = veil::split::encode_transcript(t);
  if (again.size() != size || !std::equal(again.begin(), again.end(), data)) __builtin_trap();
  return 0;
}
