// IDX files (the MNIST container format): a big-endian header of magic, dimension sizes, then
// unsigned bytes. Image files have magic 0x00000803 and three dimensions [N, H, W]; label files
// have magic 0x00000801 and one dimension [N]. Files may be raw or gzip-compressed; both the
// file readers and the in-memory parsers recognise gzip by its magic bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "veil/core/tensor.hpp"

namespace veil::data {

// Bounds checked against the header before any allocation.
inline constexpr int64_t kIdxMaxItems = 10'000'000;
inline constexpr int64_t kIdxMaxSide = 4096;
// Largest number of pixels a single image file may hold (4 GiB as float32).
inline constexpr int64_t kIdxMaxTotalPixels = int64_t{1} << 30;
// Labels in IDX files are bytes, so no label file can name more classes than this.
inline constexpr int64_t kIdxMaxClasses = 256;

// Parses an image file held in memory into a [N, 1, H, W] float32 tensor with pixels scaled to
// [0, 1]. `limit` > 0 keeps the first `limit` images. `what` names the source in error messages.
// Throws MalformedInput on a bad magic, dimensions out of bounds, truncated or trailing data,
// or a corrupt gzip stream.
Tensor parse_idx_images(const uint8_t* bytes, size_t size, int64_t limit = 0,
                        const std::string& what = "IDX image data");

// Parses a label file held in memory; every label must be < num_classes.
std::vector<int32_t> parse_idx_labels(const uint8_t* bytes, size_t size,
                                      int64_t num_classes = kIdxMaxClasses, int64_t limit = 0,
                                      const std::string& what = "IDX label data");

// The same for files, raw or .gz. Only the bytes needed for the first `limit` items are read
// and decompressed. Missing files throw IoError naming the file.
Tensor read_idx_images(const std::filesystem::path& path, int64_t limit = 0);
std::vector<int32_t> read_idx_labels(const std::filesystem::path& path,
                                     int64_t num_classes = kIdxMaxClasses, int64_t limit = 0);

}  // namespace veil::data
