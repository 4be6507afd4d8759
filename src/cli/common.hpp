// Helpers shared by the CLI command groups.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "veil/data/dataset.hpp"
#include "veil/data/normalization.hpp"
#include "veil/model/graph.hpp"

namespace veil::cli {

// Loads an ONNX model (refusing a missing path with one clear line).
model::Model load_model(const std::string& path);

// The model's own preprocessing, or --normalize MEAN,STD when given (it wins).
data::Normalization input_normalization(const model::Model& model,
                                        const std::string& normalize_opt);

// Prints a JSON document on stdout (machines read --json output from there).
void print_json(const nlohmann::json& j);

// "12.3 MB", "4.5 k" style numbers for human-readable tables.
std::string human_count(double v);

}  // namespace veil::cli
