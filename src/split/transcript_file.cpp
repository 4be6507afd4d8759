#include "veil/split/transcript_file.hpp"

#include "veil/core/byte_io.hpp"
#include "veil/core/error.hpp"
#include "veil/core/io.hpp"
#include "veil/split/wire.hpp"

namespace veil::split {

std::vector<uint8_t> encode_transcript(const Transcript& t) {
  ByteWriter w;
  w.u32(kTranscriptMagic);
  w.u16(kTranscriptVersion);
  w.u16(0);
  w.str(t.scheme);
  w.u32(static_cast<uint32_t>(t.layers.size()));
  for (const OutsourcedLayer& l : t.layers) wire::write_layer(w, l);
  w.u64(t.queries.size());
  for (const TranscriptQuery& q : t.queries) {
    w.u64(q.layer);
    wire::write_payloads(w, q.inputs);
    wire::write_payloads(w, q.outputs);
  }
  return w.take();
}

Transcript parse_transcript(std::span<const uint8_t> bytes, const std::string& context) {
  ByteReader r(bytes, context);
  if (r.u32("magic") != kTranscriptMagic) r.fail("not a veil transcript (bad magic)");
  const uint16_t version = r.u16("version");
  if (version != kTranscriptVersion)
    r.fail("unsupported version " + std::to_string(version) + " (expected " +
           std::to_string(kTranscriptVersion) + ")");
  if (r.u16("reserved") != 0) r.fail("reserved field is not zero");
  Transcript t;
  t.scheme = r.str(wire::kMaxSchemeName, "scheme");
  const uint32_t layers = r.count(wire::kMaxLayers, "layer count", wire::kMinLayerBytes);
  t.layers.reserve(layers);
  for (uint32_t i = 0; i < layers; ++i) t.layers.push_back(wire::read_layer(r));
  // A query takes at least its layer index and two payload counts.
  const uint64_t queries = r.count64(uint64_t{1} << 40, "query count", 16);
  t.queries.reserve(queries);
  for (uint64_t i = 0; i < queries; ++i) {
    TranscriptQuery q;
    const uint64_t layer = r.u64("query layer");
    if (layer >= t.layers.size()) r.fail("query for layer " + std::to_string(layer));
    q.layer = static_cast<size_t>(layer);
    q.inputs = wire::read_inputs(r, t.layers[q.layer]);
    q.outputs = wire::read_outputs(r, t.layers[q.layer], q.inputs);
    t.queries.push_back(std::move(q));
  }
  r.expect_end();
  return t;
}

void write_transcript(const std::filesystem::path& path, const Transcript& t) {
  write_file_atomic(path, encode_transcript(t));
}

Transcript read_transcript(const std::filesystem::path& path, uint64_t max_bytes) {
  const std::vector<uint8_t> bytes = read_file(path, max_bytes);
  return parse_transcript(bytes, path.string());
}

}  // namespace veil::split
