// libFuzzer target for the training checkpoint parser (`veil train --checkpoint ... --resume`).
// The fuzzer cannot forge a SHA-256, so the input is taken as the body and the digest is
// appended here: the parser's body checks are what gets exercised. Any bytes must parse or
// throw a veil::Error, and an accepted checkpoint must serialize back to the same bytes.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "veil/core/error.hpp"
#include "veil/core/sha256.hpp"
#include "veil/nn/checkpoint.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> file(data, data + size);
  const auto digest = veil::sha256(file);
  file.insert(file.end(), digest.begin(), digest.end());
  veil::nn::Checkpoint c;
  try {
    c = veil::nn::parse_checkpoint(file);
  } catch (const veil::Error&) {
    return 0;
  }
  if (veil::nn::serialize_checkpoint(c) != file) __builtin_trap();
  return 0;
}
