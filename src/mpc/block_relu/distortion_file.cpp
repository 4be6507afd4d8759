// A minimal .vdist codec (JSON; doubles round-trip exactly) so that `veil relu distortion` can
// write and resume its table. The knapsack work owns the file format: its implementation
// replaces this one.
#include "veil/mpc/block_relu/distortion_file.hpp"

#include <cmath>
#include <nlohmann/json.hpp>

#include "veil/core/error.hpp"
#include "veil/core/hex.hpp"

namespace veil::mpc {

std::string serialize(const DistortionTable& t) {
  nlohmann::json j;
  j["format"] = "veil-distortion";
  j["model_hash"] = to_hex(t.model_hash);
  j["samples"] = t.samples;
  j["seed"] = t.seed;
  j["layers"] = nlohmann::json::array();
  for (const auto& l : t.layers) {
    nlohmann::json sizes = nlohmann::json::array();
    for (const auto& s : l.sizes) sizes.push_back({s.h, s.w});
    j["layers"].push_back({{"node", l.node},
                           {"channels", l.channels},
                           {"height", l.height},
                           {"width", l.width},
                           {"sizes", sizes},
                           {"distortion", l.distortion},
                           {"done", l.done}});
  }
  return j.dump();
}

DistortionTable parse_distortion_file(std::string_view bytes) {
  const auto j = nlohmann::json::parse(bytes, nullptr, false);
  try {
    if (j.is_discarded() || !j.is_object() || j.value("format", "") != "veil-distortion")
      throw MalformedInput("not a veil distortion table");
    DistortionTable t;
    if (!from_hex(j.at("model_hash").get<std::string>(), t.model_hash))
      throw MalformedInput("distortion table: bad model hash");
    t.samples = j.at("samples").get<int64_t>();
    t.seed = j.at("seed").get<uint64_t>();
    for (const auto& jl : j.at("layers")) {
      LayerDistortion l;
      l.node = jl.at("node").get<std::string>();
      l.channels = jl.at("channels").get<int64_t>();
      l.height = jl.at("height").get<int64_t>();
      l.width = jl.at("width").get<int64_t>();
      for (const auto& s : jl.at("sizes"))
        l.sizes.push_back({s.at(0).get<int64_t>(), s.at(1).get<int64_t>()});
      l.distortion = jl.at("distortion").get<std::vector<double>>();
      l.done = jl.at("done").get<bool>();
      if (l.channels < 0 || l.distortion.size() != static_cast<size_t>(l.channels) * l.sizes.size())
        throw MalformedInput("layer '" + l.node + "': distortion count does not match");
      t.layers.push_back(std::move(l));
    }
    return t;
  } catch (const nlohmann::json::exception& e) {
    throw MalformedInput(std::string("distortion table: ") + e.what());
  }
}

}  // namespace veil::mpc
