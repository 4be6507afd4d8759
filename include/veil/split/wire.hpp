// The wire protocol between the trusted part and the accelerator process. Each protocol message
// is one mpc::Channel message (so it travels in mpc's length-checked frames, veil/mpc/network/
// frame.hpp) whose tag names the kind and whose payload starts with
//   magic "VSPL" (u32) | version (u16) | kind (u16, the same as the tag's)
// followed by the kind's fields, all little-endian:
//
//   Setup    trusted -> accelerator, once: scheme name, the outsourced layers
//   Ready    accelerator -> trusted: the layers were accepted
//   Compute  trusted -> accelerator: layer index, payloads [B, input_shape...]
//   Reply    accelerator -> trusted: faults injected so far, one payload [B, output_shape...]
//            per input
//   Error    either way: the peer refused the last message (one line of text); the session ends
//   Close    trusted -> accelerator: end of session
//   Closed   accelerator -> trusted: queries served, faults injected, its peak RSS
//
// A payload is: type (u8: 0 float32, 1 Z_P) | rank (u8, 1..4) | dims (i64 each) | elements
// (f32, or u32 values < P). A layer is: kind (u8: 0 conv, 1 dense) | strides, pads, dilations
// (u8 count + i64 each) | group (i64, must be 1) | input and output shape (u8 rank + i64 dims) |
// its weight as a payload. Every parser bounds each count and size before allocating, checks the
// layer geometry (the conv arithmetic included), and checks each payload against the layer it is
// for; it throws MalformedInput naming the message and field. A message of the wrong kind is a
// ProtocolError.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "veil/core/byte_io.hpp"
#include "veil/mpc/network/channel.hpp"
#include "veil/split/scheme.hpp"

namespace veil::split::wire {

inline constexpr uint32_t kMagic = 0x4c505356;  // "VSPL" little-endian
inline constexpr uint16_t kVersion = 1;
inline constexpr size_t kMaxLayers = 1024;
inline constexpr size_t kMaxPayloads = 4096;               // per compute request
inline constexpr int64_t kMaxElements = int64_t{1} << 28;  // per payload or weight
inline constexpr int64_t kMaxBatch = int64_t{1} << 16;     // images per payload
inline constexpr int64_t kMaxDim = int64_t{1} << 24;
inline constexpr size_t kMaxRank = 4;
inline constexpr size_t kMaxErrorText = 4096;
inline constexpr size_t kMaxSchemeName = 64;
// The fewest bytes a payload and a layer take, for bounding counts by the bytes left.
inline constexpr uint64_t kMinPayloadBytes = 1 + 1 + 8;
inline constexpr uint64_t kMinLayerBytes = 1 + 3 + 8 + 2 * (1 + 8) + kMinPayloadBytes;

enum class Kind : uint16_t { Setup = 1, Ready, Compute, Reply, Error, Close, Closed };

uint32_t tag_of(Kind kind);
const char* kind_name(Kind kind);
// The kind a message's tag names; throws ProtocolError for a tag outside the protocol.
Kind kind_of(const mpc::Message& message);

struct Setup {
  std::string scheme;
  std::vector<OutsourcedLayer> layers;
};

struct Compute {
  size_t layer = 0;
  std::vector<Payload> inputs;
};

struct Reply {
  std::vector<Payload> outputs;
  int64_t faults_injected = 0;
};

struct Closed {
  uint64_t queries = 0;
  int64_t faults_injected = 0;
  double peak_rss_mb = 0;
};

mpc::Message encode_setup(const std::string& scheme, const std::vector<OutsourcedLayer>& layers);
mpc::Message encode_ready();
mpc::Message encode_compute(size_t layer, const std::vector<Payload>& inputs);
mpc::Message encode_reply(const std::vector<Payload>& outputs, int64_t faults_injected);
mpc::Message encode_error(const std::string& text);
mpc::Message encode_close();
mpc::Message encode_closed(const Closed& closed);

// One checked parser per kind. Each first checks that the message is of that kind (else
// ProtocolError), then parses all of it (MalformedInput on any bad or trailing byte).
Setup parse_setup(const mpc::Message& m);
void parse_ready(const mpc::Message& m);
// `layers`: the session's setup; the index must name one and every payload must fit it.
Compute parse_compute(const mpc::Message& m, const std::vector<OutsourcedLayer>& layers);
// `layer` and `inputs`: the request this answers (one output per input, same batch).
Reply parse_reply(const mpc::Message& m, const OutsourcedLayer& layer,
                  const std::vector<Payload>& inputs);
std::string parse_error(const mpc::Message& m);
void parse_close(const mpc::Message& m);
Closed parse_closed(const mpc::Message& m);

// The value encodings, shared with the transcript file (veil/split/transcript_file.hpp).
void write_layer(ByteWriter& w, const OutsourcedLayer& layer);
OutsourcedLayer read_layer(ByteReader& r);
void write_payloads(ByteWriter& w, const std::vector<Payload>& payloads);
// Payloads for `layer` (of its weight's type, [B, input_shape...]); at least one.
std::vector<Payload> read_inputs(ByteReader& r, const OutsourcedLayer& layer);
// The layer's outputs for `inputs`: one each, of the weight's type, [B, output_shape...].
std::vector<Payload> read_outputs(ByteReader& r, const OutsourcedLayer& layer,
                                  const std::vector<Payload>& inputs);

// Throws MalformedInput unless the layer's geometry is consistent (ranks, channel counts, conv
// output size, group 1) and within the bounds above.
void check_layer(const OutsourcedLayer& layer, const std::string& context);

// Bytes of a payload's elements (4 per element for both types).
int64_t payload_bytes(const Payload& p);
const Shape& payload_shape(const Payload& p);

}  // namespace veil::split::wire
