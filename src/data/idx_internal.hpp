// IDX readers that also report the item count declared in the header, so a dataset loader can
// check that the image and label files agree even when it keeps only a prefix of them.
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

#include "veil/core/tensor.hpp"

namespace veil::data::detail {

struct IdxImages {
  int64_t declared = 0;  // N from the header
  Tensor images;         // [min(N, limit), 1, H, W]
};

struct IdxLabels {
  int64_t declared = 0;
  std::vector<int32_t> labels;
};

IdxImages load_idx_images(const std::filesystem::path& path, int64_t limit);
IdxLabels load_idx_labels(const std::filesystem::path& path, int64_t num_classes, int64_t limit);

}  // namespace veil::data::detail
