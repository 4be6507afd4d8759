// CIFAR-10 and CIFAR-100 in their binary distributions. A CIFAR-10 record is one label byte and
// 3072 pixel bytes (1024 red, 1024 green, 1024 blue, each 32x32 row-major); a CIFAR-100 record
// has a coarse and a fine label byte before the pixels. Files are concatenated records.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "veil/core/tensor.hpp"
#include "veil/data/dataset.hpp"

namespace veil::data {

enum class CifarKind { Cifar10, Cifar100 };

inline constexpr int64_t kCifarSide = 32;
inline constexpr int64_t kCifarPixels = 3 * kCifarSide * kCifarSide;
// Largest CIFAR batch file accepted (the real ones are 30 MB and 150 MB).
inline constexpr uint64_t kCifarMaxFileBytes = uint64_t{1} << 31;

int64_t cifar_record_bytes(CifarKind kind);
int64_t cifar_num_classes(CifarKind kind);

// Images [N, 3, 32, 32] in [0, 1] and labels (the fine label for CIFAR-100) from a buffer of
// whole records. `limit` > 0 keeps the first `limit` records. Throws MalformedInput when the size
// is not a multiple of the record size or a label is out of range.
void parse_cifar_records(const uint8_t* bytes, size_t size, CifarKind kind, int64_t limit,
                         std::vector<float>& images, std::vector<int32_t>& labels,
                         const std::string& what = "CIFAR data");

// Finds the CIFAR files of `split` in `dir` (or in its cifar-10-batches-bin / cifar-100-binary
// subdirectory). Returns false when the directory holds no CIFAR files.
bool detect_cifar(const std::filesystem::path& dir, CifarKind& kind,
                  std::filesystem::path& data_dir);

// Loads the split: CIFAR-10 train is data_batch_1.bin .. data_batch_5.bin (a prefix of them
// must exist), test is test_batch.bin; CIFAR-100 uses train.bin / test.bin. Class names come
// from batches.meta.txt / fine_label_names.txt when present.
Dataset load_cifar(const std::filesystem::path& dir, CifarKind kind, Split split, int64_t limit);

}  // namespace veil::data
