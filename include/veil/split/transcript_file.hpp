// The transcript file (.vtrs): what `veil split serve --role accelerator --transcript F` records,
// the input of `veil split attack`. Little-endian, with the wire protocol's encodings of layers
// and payloads (veil/split/wire.hpp):
//   magic "VTRS" (u32) | version (u16) | reserved (u16, 0) | scheme (u32 length + bytes)
//   | layer count (u32) | layers | query count (u64) | per query: layer (u64), the inputs
//   (u32 count + payloads), the outputs (u32 count + payloads)
// The parser bounds every count by the bytes left before allocating and checks each query
// against its layer, as the accelerator checks a request. Files are written atomically.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "veil/split/transcript.hpp"

namespace veil::split {

inline constexpr uint32_t kTranscriptMagic = 0x53525456;  // "VTRS" little-endian
inline constexpr uint16_t kTranscriptVersion = 1;
inline constexpr uint64_t kMaxTranscriptBytes = uint64_t{16} << 30;

std::vector<uint8_t> encode_transcript(const Transcript& t);
// Throws MalformedInput naming `context` and the field.
Transcript parse_transcript(std::span<const uint8_t> bytes, const std::string& context);

void write_transcript(const std::filesystem::path& path, const Transcript& t);
// Throws IoError if the file cannot be read, MalformedInput if it is larger than `max_bytes` or
// does not parse.
Transcript read_transcript(const std::filesystem::path& path,
                           uint64_t max_bytes = kMaxTranscriptBytes);

}  // namespace veil::split
