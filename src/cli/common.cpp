#include "common.hpp"

#include <fmt/format.h>

#include <cmath>
#include <iostream>

#include "veil/model/onnx.hpp"
#include "veil/nn/preprocess.hpp"

namespace veil::cli {

model::Model load_model(const std::string& path) { return model::load_onnx(path); }

data::Normalization input_normalization(const model::Model& model,
                                        const std::string& normalize_opt) {
  if (!normalize_opt.empty()) return data::Normalization::parse_pair(normalize_opt);
  return nn::normalization_of(model);
}

// Names from a model may hold bytes that are not UTF-8, which nlohmann refuses to write: they
// become U+FFFD (control characters are escaped by JSON itself).
void print_json(const nlohmann::json& j) {
  std::cout << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << std::endl;
}

std::string human_count(double v) {
  const char* units[] = {"", " k", " M", " G", " T"};
  int u = 0;
  while (std::fabs(v) >= 1000 && u < 4) {
    v /= 1000;
    ++u;
  }
  return u == 0 ? fmt::format("{:.0f}", v) : fmt::format("{:.2f}{}", v, units[u]);
}

}  // namespace veil::cli
