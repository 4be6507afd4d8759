// libFuzzer target for the block ReLU spec parser (`veil relu apply --spec`): any text must
// parse or throw a veil::Error, every accepted size must be valid, and an accepted spec must
// survive to_json -> parse unchanged.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "veil/core/error.hpp"
#include "veil/mpc/block_relu/spec.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  veil::mpc::BlockReluSpec spec;
  try {
    spec = veil::mpc::parse_block_relu_spec(text);
  } catch (const veil::Error&) {
    return 0;
  }
  for (const auto& [name, sizes] : spec.layers)
    for (const auto& b : sizes)
      if (!veil::model::valid_block_size(b)) __builtin_trap();
  const veil::mpc::BlockReluSpec again = veil::mpc::parse_block_relu_spec(to_json(spec));
  if (again.layers != spec.layers) __builtin_trap();
  return 0;
}
