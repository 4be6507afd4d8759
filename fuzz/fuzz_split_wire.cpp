// libFuzzer target for the split execution wire protocol (veil/split/wire.hpp): any bytes, as
// the payload of any message kind, must parse or throw a veil::Error; what parses must encode
// back to the same bytes (the encoding is canonical). The first byte picks the kind; compute
// requests and replies are checked against two fixed layers (a float conv, a Z_P dense).
#include <cstddef>
#include <cstdint>

#include "veil/core/error.hpp"
#include "veil/split/wire.hpp"

namespace {

using namespace veil;
using namespace veil::split;

std::vector<OutsourcedLayer> fixed_layers() {
  OutsourcedLayer conv;
  conv.kind = LinearKind::Conv;
  conv.conv.strides = {2, 2};
  conv.conv.pads = {1, 1, 1, 1};
  conv.input_shape = {2, 5, 4};
  conv.output_shape = {3, 3, 2};
  conv.weight = Tensor({3, 2, 3, 3});
  OutsourcedLayer dense;
  dense.kind = LinearKind::Dense;
  dense.input_shape = {4};
  dense.output_shape = {2};
  dense.weight = FieldTensor{{2, 4}, std::vector<uint64_t>(8, 1)};
  return {conv, dense};
}

bool same(const mpc::Message& a, const mpc::Message& b) {
  return a.tag == b.tag && a.payload == b.payload;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<OutsourcedLayer> layers = fixed_layers();
  if (size == 0) return 0;
  const auto kind = static_cast<wire::Kind>(1 + data[0] % 7);
  mpc::Message m;
  m.tag = wire::tag_of(kind);
  m.payload.assign(data + 1, data + size);
  try {
    switch (kind) {
      case wire::Kind::Setup: {
        wire::Setup s = wire::parse_setup(m);
        if (!same(wire::encode_setup(s.scheme, s.layers), m)) __builtin_trap();
        break;
      }
      case wire::Kind::Compute: {
        wire::Compute c = wire::parse_compute(m, layers);
        if (!same(wire::encode_compute(c.layer, c.inputs), m)) __builtin_trap();
        break;
      }
      case wire::Kind::Reply: {
        // Against a request of two conv payloads with batches 1 and 2.
        static const std::vector<Payload> in = {Tensor({1, 2, 5, 4}), Tensor({2, 2, 5, 4})};
        wire::Reply r = wire::parse_reply(m, layers[0], in);
        if (!same(wire::encode_reply(r.outputs, r.faults_injected), m)) __builtin_trap();
        break;
      }
      case wire::Kind::Error:
        if (!same(wire::encode_error(wire::parse_error(m)), m)) __builtin_trap();
        break;
      case wire::Kind::Closed: {
        wire::Closed c = wire::parse_closed(m);
        if (!same(wire::encode_closed(c), m)) __builtin_trap();
        break;
      }
      case wire::Kind::Ready:
        wire::parse_ready(m);
        break;
      case wire::Kind::Close:
        wire::parse_close(m);
        break;
    }
  } catch (const veil::Error&) {
  }
  return 0;
}
