#include "veil/nn/preprocess.hpp"

namespace veil::nn {

data::Normalization normalization_of(const model::Model& model) {
  auto m = model.metadata.find("veil.normalize.mean");
  auto s = model.metadata.find("veil.normalize.std");
  if (m == model.metadata.end() || s == model.metadata.end()) return {};
  return data::Normalization::parse(m->second, s->second);
}

void set_normalization(model::Model& model, const data::Normalization& norm) {
  if (norm.identity()) {
    model.metadata.erase("veil.normalize.mean");
    model.metadata.erase("veil.normalize.std");
    return;
  }
  model.metadata["veil.normalize.mean"] = norm.mean_csv();
  model.metadata["veil.normalize.std"] = norm.std_csv();
}

}  // namespace veil::nn
