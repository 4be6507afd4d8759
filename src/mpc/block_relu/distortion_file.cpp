#include "veil/mpc/block_relu/distortion_file.hpp"

#include <cmath>
#include <cstring>
#include <set>
#include <span>

#include "veil/core/byte_io.hpp"
#include "veil/core/error.hpp"
#include "veil/core/io.hpp"

namespace veil::mpc {
namespace {

constexpr char kMagic[4] = {'V', 'D', 'S', 'T'};
constexpr const char* kContext = "distortion file (.vdist)";

// What is wrong with a layer whose counts are in bounds, or "" (shared by the writer's check
// and the parser, so both accept exactly the same tables).
std::string layer_problem(const LayerDistortion& l) {
  if (l.node.empty() || l.node.size() > kVdistMaxNodeName) return "bad node name length";
  if (l.channels < 1 || l.channels > kVdistMaxChannels) return "bad channel count";
  if (l.height < 1 || l.height > kVdistMaxSide || l.width < 1 || l.width > kVdistMaxSide)
    return "bad feature map size";
  if (l.sizes.empty() || l.sizes.size() > kVdistMaxSizes) return "bad block size count";
  if (l.sizes.front() != model::BlockSize{1, 1}) return "the first block size is not 1x1";
  std::set<model::BlockSize> seen;
  for (const auto& s : l.sizes) {
    if (!model::valid_block_size(s)) return "invalid block size";
    if (!seen.insert(s).second) return "repeated block size";
  }
  if (l.distortion.size() != static_cast<size_t>(l.channels) * l.sizes.size())
    return "wrong number of distortions";
  for (double d : l.distortion)
    if (!std::isfinite(d) || d < 0) return "distortion not finite and >= 0";
  return "";
}

std::string describe_layer(size_t i, const std::string& node) {
  return "layer " + std::to_string(i) + (node.empty() ? "" : " ('" + node + "')");
}

}  // namespace

int64_t DistortionTable::relu_count() const {
  int64_t n = 0;
  for (const auto& l : layers) n += l.channels * l.height * l.width;
  return n;
}

void check_distortion_table(const DistortionTable& table) {
  if (table.samples < 0) throw InvalidArgument("distortion table: negative sample count");
  if (table.layers.size() > kVdistMaxLayers)
    throw InvalidArgument("distortion table: more than 4096 layers");
  std::set<std::string> names;
  for (size_t i = 0; i < table.layers.size(); ++i) {
    const auto& l = table.layers[i];
    if (std::string p = layer_problem(l); !p.empty())
      throw InvalidArgument("distortion table: " + describe_layer(i, l.node) + ": " + p);
    if (!names.insert(l.node).second)
      throw InvalidArgument("distortion table: node '" + l.node + "' appears twice");
  }
}

std::string serialize(const DistortionTable& table) {
  check_distortion_table(table);
  ByteWriter w;
  w.bytes(std::string_view(kMagic, 4));
  w.u32(kVdistVersion);
  w.bytes(std::span<const uint8_t>(table.model_hash));
  w.i64(table.samples);
  w.u64(table.seed);
  w.u32(static_cast<uint32_t>(table.layers.size()));
  for (const auto& l : table.layers) {
    w.str(l.node);
    w.i64(l.channels);
    w.i64(l.height);
    w.i64(l.width);
    w.u32(static_cast<uint32_t>(l.sizes.size()));
    for (const auto& s : l.sizes) {
      w.i64(s.h);
      w.i64(s.w);
    }
    w.array(std::span<const double>(l.distortion));
    w.u8(l.done ? 1 : 0);
  }
  const auto& out = w.out();
  return std::string(out.begin(), out.end());
}

DistortionTable parse_distortion_file(std::string_view bytes) {
  ByteReader r(std::span(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()), kContext);
  auto magic = r.bytes(4, "magic");
  if (std::memcmp(magic.data(), kMagic, 4) != 0) r.fail("not a .vdist file (bad magic)");
  if (uint32_t v = r.u32("version"); v != kVdistVersion)
    r.fail("unsupported version " + std::to_string(v));
  DistortionTable t;
  r.read(t.model_hash, "model hash");
  t.samples = r.i64("sample count");
  if (t.samples < 0) r.fail("negative sample count");
  t.seed = r.u64("seed");
  // A layer takes at least 4 + 1 + 3 * 8 + 4 + 16 + 8 + 1 bytes.
  const uint32_t n_layers = r.count(kVdistMaxLayers, "layer count", 58);
  t.layers.reserve(n_layers);
  std::set<std::string> names;
  for (uint32_t i = 0; i < n_layers; ++i) {
    LayerDistortion l;
    l.node = r.str(kVdistMaxNodeName, "node name");
    const std::string where = describe_layer(i, l.node);
    l.channels = r.i64("channel count");
    l.height = r.i64("height");
    l.width = r.i64("width");
    if (l.channels < 1 || l.channels > kVdistMaxChannels)
      r.fail(where + ": bad channel count " + std::to_string(l.channels));
    if (l.height < 1 || l.height > kVdistMaxSide || l.width < 1 || l.width > kVdistMaxSide)
      r.fail(where + ": bad feature map size");
    const uint32_t n_sizes = r.count(kVdistMaxSizes, "block size count", 16);
    if (n_sizes == 0) r.fail(where + ": no block sizes");
    l.sizes.resize(n_sizes);
    for (auto& s : l.sizes) {
      s.h = r.i64("block height");
      s.w = r.i64("block width");
    }
    const uint64_t n_values = static_cast<uint64_t>(l.channels) * n_sizes;
    r.need(n_values * sizeof(double), "distortions");
    l.distortion.resize(n_values);
    for (auto& d : l.distortion) d = r.f64();
    const uint8_t done = r.u8("done flag");
    if (done > 1) r.fail(where + ": bad done flag");
    l.done = done == 1;
    if (std::string p = layer_problem(l); !p.empty()) r.fail(where + ": " + p);
    if (!names.insert(l.node).second) r.fail(where + ": the node appears twice");
    t.layers.push_back(std::move(l));
  }
  r.expect_end();
  return t;
}

DistortionTable read_distortion_file(const std::filesystem::path& path) {
  const std::vector<uint8_t> bytes = read_file(path, kVdistMaxFileBytes);
  return parse_distortion_file(
      std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

void write_distortion_file(const std::filesystem::path& path, const DistortionTable& table) {
  write_file_atomic(path, serialize(table));
}

}  // namespace veil::mpc
