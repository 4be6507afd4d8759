// Built-in architectures that `veil train --arch` builds: ordinary ONNX-shaped graphs with freshly
// initialised weights, so a trained model is exported exactly like an imported one.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "veil/model/graph.hpp"

namespace veil::model {

struct ArchSpec {
  int64_t channels = 1;  // input [N, channels, height, width]
  int64_t height = 28;
  int64_t width = 28;
  int64_t classes = 10;
  uint64_t seed = 1;  // weight initialisation (not secret: std::mt19937)
};

// "lenet5", "mlp", "vgg-small" or "resnet20"; throws InvalidArgument for another name.
Model build_arch(const std::string& name, const ArchSpec& spec);
std::vector<std::string> arch_names();

}  // namespace veil::model
