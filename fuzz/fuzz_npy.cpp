// libFuzzer target for the .npy parser: any input must parse or throw a veil::Error.
#include <cstddef>
#include <cstdint>

#include "veil/core/error.hpp"
#include "veil/data/npy.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    veil::Tensor t = veil::data::parse_npy(data, size);
    (void)t.numel();
  } catch (const veil::Error&) {
  }
  return 0;
}
