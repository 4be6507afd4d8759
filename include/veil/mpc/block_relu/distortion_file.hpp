// The `.vdist` file: a DistortionTable (distortion_table.hpp) on disk, written by `veil relu
// distortion` (after every finished layer, so a killed run resumes) and read by `veil relu
// knapsack`. Little-endian, no padding:
//
//   "VDST"  u32 version (1)  32 bytes model hash  i64 samples  u64 seed  u32 layer count
//   per layer: u32 name length, name bytes; i64 C, H, W; u32 size count S;
//              S x (i64 h, i64 w); C x S f64 distortion (channel-major); u8 done (0 or 1)
//
// The file is untrusted input (it may come from another machine): parse_distortion_file checks
// every count against its bound and against the bytes that remain before it allocates.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "veil/mpc/block_relu/distortion_table.hpp"

namespace veil::mpc {

// Bounds of the format (a ResNet-50 has 49 ReLU layers of at most 2048 channels).
inline constexpr uint32_t kVdistVersion = 1;
inline constexpr uint32_t kVdistMaxLayers = 4096;
inline constexpr uint32_t kVdistMaxNodeName = 4096;
inline constexpr int64_t kVdistMaxChannels = int64_t{1} << 20;
inline constexpr int64_t kVdistMaxSide = int64_t{1} << 15;  // H, W: C*H*W summed stays < 2^62
inline constexpr uint32_t kVdistMaxSizes = 256;
inline constexpr uint64_t kVdistMaxFileBytes = uint64_t{4} << 30;

std::string serialize(const DistortionTable& table);

// Checked parser: magic, version, every count bounded, node names non-empty and distinct, sizes
// valid (model::valid_block_size), distinct, the first {1, 1}; distortions finite and >= 0; no
// trailing bytes. Throws MalformedInput naming the field.
DistortionTable parse_distortion_file(std::string_view bytes);

// Throws InvalidArgument for a table serialize() would write but the parser would refuse (a
// caller's bug: wrong distortion count, a bad size); serialize() calls it first.
void check_distortion_table(const DistortionTable& table);

// read_file + parse, and serialize + write_file_atomic.
DistortionTable read_distortion_file(const std::filesystem::path& path);
void write_distortion_file(const std::filesystem::path& path, const DistortionTable& table);

}  // namespace veil::mpc
