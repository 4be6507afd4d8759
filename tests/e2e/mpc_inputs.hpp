// What the `veil mpc` end-to-end tests run: a LeNet-5 with random weights and synthetic images.
#pragma once

#include <filesystem>

#include "veil/data/npy.hpp"
#include "veil/model/onnx.hpp"
#include "veil/model/zoo.hpp"

namespace veil::testing {

// LeNet-5 with seed-11 random weights (secure and plaintext inference must still agree).
inline std::filesystem::path save_lenet5(const std::filesystem::path& path) {
  model::ArchSpec spec;
  spec.seed = 11;
  model::save_onnx(model::build_arch("lenet5", spec), path);
  return path;
}

// `n` 1x28x28 images, pixel i being (i % period) / period.
inline std::filesystem::path save_images(const std::filesystem::path& path, int64_t n, int period) {
  Tensor x({n, 1, 28, 28});
  for (int64_t i = 0; i < x.numel(); ++i)
    x.data()[i] = static_cast<float>(i % period) / static_cast<float>(period);
  data::write_npy(path, x);
  return path;
}

}  // namespace veil::testing
