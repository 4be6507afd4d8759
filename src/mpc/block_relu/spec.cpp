#include "veil/mpc/block_relu/spec.hpp"

#include <nlohmann/json.hpp>

#include "veil/core/error.hpp"

namespace veil::mpc {
namespace {

using nlohmann::json;

constexpr const char* kFormat = "veil-block-relu-spec";
constexpr int64_t kVersion = 1;
constexpr size_t kMaxLayers = size_t{1} << 16;
constexpr size_t kMaxChannels = size_t{1} << 20;

[[noreturn]] void bad(const std::string& message) {
  throw MalformedInput("block ReLU spec: " + message);
}

int64_t side(const json& v, const std::string& where) {
  if (!v.is_number_integer()) bad(where + ": a block side is not an integer");
  return v.get<int64_t>();
}

}  // namespace

std::string to_json(const BlockReluSpec& spec) {
  json layers = json::object();
  for (const auto& [node, sizes] : spec.layers) {
    json pairs = json::array();
    for (const auto& s : sizes) pairs.push_back({s.h, s.w});
    layers[node] = std::move(pairs);
  }
  const json j = {{"format", kFormat}, {"version", kVersion}, {"layers", std::move(layers)}};
  // One line per layer would be nicer to read but a ResNet-50 spec is ~23k pairs: compact.
  return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

BlockReluSpec parse_block_relu_spec(std::string_view text) {
  const json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) bad("not valid JSON");
  if (!j.is_object()) bad("not a JSON object");
  if (!j.contains("format") || j["format"] != kFormat)
    bad(std::string("\"format\" is not \"") + kFormat + "\"");
  if (!j.contains("version") || !j["version"].is_number_integer() || j["version"] != kVersion)
    bad("unsupported \"version\" (expected 1)");
  for (const auto& [key, v] : j.items())
    if (key != "format" && key != "version" && key != "layers") bad("unknown key \"" + key + "\"");
  if (!j.contains("layers") || !j["layers"].is_object()) bad("\"layers\" is not an object");
  const json& layers = j["layers"];
  if (layers.size() > kMaxLayers) bad("more than 65536 layers");
  BlockReluSpec spec;
  for (const auto& [node, pairs] : layers.items()) {
    const std::string where = "layer \"" + node + "\"";
    if (node.empty()) bad("a layer has an empty node name");
    if (!pairs.is_array() || pairs.empty()) bad(where + ": not a non-empty array of [h, w] pairs");
    if (pairs.size() > kMaxChannels) bad(where + ": more than 2^20 channels");
    std::vector<model::BlockSize> sizes;
    sizes.reserve(pairs.size());
    for (const auto& p : pairs) {
      if (!p.is_array() || p.size() != 2) bad(where + ": a channel's size is not an [h, w] pair");
      const model::BlockSize s{side(p[0], where), side(p[1], where)};
      if (!model::valid_block_size(s))
        bad(where + ": invalid block size [" + std::to_string(s.h) + ", " + std::to_string(s.w) +
            "] (sides 1..2^20, or [0, 0] for the identity)");
      sizes.push_back(s);
    }
    spec.layers.emplace(node, std::move(sizes));
  }
  return spec;
}

}  // namespace veil::mpc
