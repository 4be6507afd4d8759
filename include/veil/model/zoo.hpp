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

// One of arch_names(); throws InvalidArgument for another name. `classifier_activation` is
// keras-cifar10's hidden classifier activation: "relu" (also when empty), "square" or "none";
// the other architectures refuse a non-empty value.
Model build_arch(const std::string& name, const ArchSpec& spec,
                 const std::string& classifier_activation = "");
std::vector<std::string> arch_names();
// Whether `arch` has a classifier activation to choose (ArchSpec::classifier_activation).
bool takes_classifier_activation(const std::string& arch);

}  // namespace veil::model
