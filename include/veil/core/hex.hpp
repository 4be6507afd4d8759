// Lower-case hexadecimal for hashes and fingerprints shown to users and written to configs.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace veil {

std::string to_hex(std::span<const uint8_t> bytes);

// Decodes hex digits (either case) into exactly out.size() bytes; returns false, leaving `out`
// unspecified, when `hex` has another length or a character that is not a hex digit.
[[nodiscard]] bool from_hex(std::string_view hex, std::span<uint8_t> out);

// Decodes a whole hex string; throws InvalidArgument naming `what` if it is not one.
std::vector<uint8_t> from_hex(std::string_view hex, std::string_view what);

}  // namespace veil
