// libFuzzer target for the IDX parsers (raw and gzip-compressed): any input must parse or
// throw a veil::Error.
#include <cstddef>
#include <cstdint>

#include "veil/core/error.hpp"
#include "veil/data/idx.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    veil::Tensor t = veil::data::parse_idx_images(data, size);
    (void)t.numel();
  } catch (const veil::Error&) {
  }
  try {
    auto labels = veil::data::parse_idx_labels(data, size, 10);
    (void)labels.size();
  } catch (const veil::Error&) {
  }
  try {
    veil::Tensor t = veil::data::parse_idx_images(data, size, 2);
    (void)t.numel();
  } catch (const veil::Error&) {
  }
  return 0;
}
