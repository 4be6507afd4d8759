// libFuzzer target for the CIFAR-10/100 record parser: any input must parse or throw a
// veil::Error, and a failed parse must leave the output vectors unchanged.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "veil/core/error.hpp"
#include "veil/data/cifar.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  using veil::data::CifarKind;
  // First byte: bit 0 picks the kind, the rest a record limit (0 = all).
  const CifarKind kind = (data[0] & 1) ? CifarKind::Cifar100 : CifarKind::Cifar10;
  const int64_t limit = data[0] >> 1;
  std::vector<float> images = {0.5f};
  std::vector<int32_t> labels = {7};
  try {
    veil::data::parse_cifar_records(data + 1, size - 1, kind, limit, images, labels);
  } catch (const veil::Error&) {
    if (images.size() != 1 || labels.size() != 1) __builtin_trap();
    return 0;
  }
  const uint64_t rec = static_cast<uint64_t>(veil::data::cifar_record_bytes(kind));
  uint64_t n = (size - 1) / rec;
  if (limit > 0 && n > static_cast<uint64_t>(limit)) n = static_cast<uint64_t>(limit);
  if (labels.size() != n + 1 || images.size() != n * veil::data::kCifarPixels + 1) __builtin_trap();
  for (size_t i = 1; i < labels.size(); ++i)
    if (labels[i] < 0 || labels[i] >= veil::data::cifar_num_classes(kind)) __builtin_trap();
  for (float v : images)
    if (!(v >= 0.0f && v <= 1.0f)) __builtin_trap();
  return 0;
}
