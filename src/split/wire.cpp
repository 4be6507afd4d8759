#include "veil/split/wire.hpp"

#include "veil/core/error.hpp"

namespace veil::split::wire {
namespace {

constexpr uint32_t kTagBase = 0x53500000;  // "SP" in the high half: not an mpc tag
constexpr uint8_t kFloat = 0, kField = 1;
constexpr uint8_t kConv = 0, kDense = 1;
constexpr int64_t kMaxStride = 1024, kMaxPad = 1 << 16;

bool is_field(const Payload& p) { return std::holds_alternative<FieldTensor>(p); }
bool is_field_weight(const OutsourcedLayer& l) {
  return std::holds_alternative<FieldTensor>(l.weight);
}

void fail(const std::string& context, const std::string& what) {
  throw MalformedInput(context + ": " + what);
}

// --- writing ----------------------------------------------------------------------------------

ByteWriter begin(Kind kind) {
  ByteWriter w;
  w.u32(kMagic);
  w.u16(kVersion);
  w.u16(static_cast<uint16_t>(kind));
  return w;
}

mpc::Message finish(Kind kind, ByteWriter& w) {
  mpc::Message m;
  m.tag = tag_of(kind);
  const std::vector<uint8_t>& out = w.out();
  m.payload.assign(out.begin(), out.end());
  return m;
}

void write_shape(ByteWriter& w, const Shape& s) {
  w.u8(static_cast<uint8_t>(s.size()));
  for (int64_t d : s) w.i64(d);
}

void write_ints(ByteWriter& w, const std::vector<int64_t>& v) {
  w.u8(static_cast<uint8_t>(v.size()));
  for (int64_t x : v) w.i64(x);
}

void write_payload(ByteWriter& w, const Payload& p) {
  if (const auto* t = std::get_if<Tensor>(&p)) {
    w.u8(kFloat);
    write_shape(w, t->shape());
    w.array<float>(t->floats());
  } else {
    const FieldTensor& f = std::get<FieldTensor>(p);
    w.u8(kField);
    write_shape(w, f.shape);
    w.reserve(w.size() + 4 * f.values.size());
    for (uint64_t v : f.values) w.u32(static_cast<uint32_t>(v));
  }
}

// --- reading ----------------------------------------------------------------------------------

// Opens a message of `kind`: the tag, then magic, version and kind in the payload.
ByteReader open(const mpc::Message& m, Kind kind) {
  const Kind got = kind_of(m);
  if (got != kind)
    throw ProtocolError(std::string("split: expected a ") + kind_name(kind) + " message, got " +
                        kind_name(got));
  ByteReader r(std::span<const uint8_t>(m.payload.data(), m.payload.size()),
               std::string("split ") + kind_name(kind) + " message");
  if (r.u32("magic") != kMagic) r.fail("bad magic");
  const uint16_t version = r.u16("version");
  if (version != kVersion)
    r.fail("unsupported version " + std::to_string(version) + " (expected " +
           std::to_string(kVersion) + ")");
  if (r.u16("kind") != static_cast<uint16_t>(kind)) r.fail("kind does not match the tag");
  return r;
}

Shape read_shape(ByteReader& r, const char* what) {
  const uint8_t rank = r.u8(what);
  if (rank == 0 || rank > kMaxRank) r.fail(std::string("bad rank of ") + what);
  r.need(8 * uint64_t{rank}, what);
  Shape s(rank);
  int64_t numel = 1;
  for (auto& d : s) {
    d = r.i64(what);
    if (d <= 0 || d > kMaxDim) r.fail(std::string("bad dimension in ") + what);
    numel *= d;  // both factors <= 2^28: no overflow before the check
    if (numel > kMaxElements) r.fail(std::string(what) + " has too many elements");
  }
  return s;
}

std::vector<int64_t> read_ints(ByteReader& r, size_t allowed, int64_t lo, int64_t hi,
                               const char* what) {
  const uint8_t n = r.u8(what);
  if (n != 0 && n != allowed) r.fail(std::string("bad count of ") + what);
  std::vector<int64_t> v(n);
  for (auto& x : v) {
    x = r.i64(what);
    if (x < lo || x > hi) r.fail(std::string("bad ") + what);
  }
  return v;
}

// One payload. `expect_field` and `expect_shape` (when not null) are what it must be.
Payload read_payload(ByteReader& r, bool expect_field, const Shape* expect_shape,
                     const char* what) {
  const uint8_t type = r.u8(what);
  if (type != kFloat && type != kField) r.fail(std::string("bad type of ") + what);
  if ((type == kField) != expect_field)
    r.fail(std::string(what) + " is " + (type == kField ? "Z_P" : "float") + ", expected " +
           (expect_field ? "Z_P" : "float"));
  Shape shape = read_shape(r, what);
  if (expect_shape != nullptr && shape != *expect_shape)
    r.fail(std::string(what) + " has shape " + shape_to_string(shape) + ", expected " +
           shape_to_string(*expect_shape));
  const int64_t n = shape_numel(shape);
  auto bytes = r.bytes(4 * static_cast<size_t>(n), what);  // checked before allocating
  if (type == kFloat) {
    std::vector<float> v(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) v[i] = load_le<float>(bytes.data() + 4 * i);
    return Tensor::from_floats(std::move(shape), std::move(v));
  }
  FieldTensor f;
  f.shape = std::move(shape);
  f.values.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t v = load_le<uint32_t>(bytes.data() + 4 * i);
    if (v >= kFieldPrime) r.fail(std::string(what) + " holds a value >= P");
    f.values[i] = v;
  }
  return f;
}

// [batch, per_image...]
Shape batched(const Shape& per_image, int64_t batch) {
  Shape s{batch};
  s.insert(s.end(), per_image.begin(), per_image.end());
  return s;
}

}  // namespace

uint32_t tag_of(Kind kind) { return kTagBase | static_cast<uint32_t>(kind); }

const char* kind_name(Kind kind) {
  switch (kind) {
    case Kind::Setup:
      return "setup";
    case Kind::Ready:
      return "ready";
    case Kind::Compute:
      return "compute";
    case Kind::Reply:
      return "reply";
    case Kind::Error:
      return "error";
    case Kind::Close:
      return "close";
    case Kind::Closed:
      return "closed";
  }
  return "?";
}

Kind kind_of(const mpc::Message& m) {
  const uint32_t k = m.tag - kTagBase;
  if ((m.tag & 0xffff0000u) != kTagBase || k < static_cast<uint32_t>(Kind::Setup) ||
      k > static_cast<uint32_t>(Kind::Closed))
    throw ProtocolError("split: unexpected message tag " + std::to_string(m.tag) +
                        " (not a split execution peer?)");
  return static_cast<Kind>(k);
}

int64_t payload_bytes(const Payload& p) {
  return 4 * (is_field(p) ? std::get<FieldTensor>(p).numel() : std::get<Tensor>(p).numel());
}

const Shape& payload_shape(const Payload& p) {
  return is_field(p) ? std::get<FieldTensor>(p).shape : std::get<Tensor>(p).shape();
}

void check_layer(const OutsourcedLayer& l, const std::string& context) {
  const Shape& w = payload_shape(l.weight);
  const Shape &in = l.input_shape, &out = l.output_shape;
  for (const Shape* s : {&w, &in, &out})
    for (int64_t d : *s)
      if (d <= 0 || d > kMaxDim) fail(context, "bad dimension");
  if (shape_numel(in) > kMaxElements || shape_numel(out) > kMaxElements)
    fail(context, "layer too large");
  if (l.conv.group != 1) fail(context, "grouped convolutions are not outsourced");
  if (l.kind == LinearKind::Dense) {
    if (in.size() != 1 || out.size() != 1 || w.size() != 2 || w[0] != out[0] || w[1] != in[0])
      fail(context, "dense layer geometry does not fit its weight " + shape_to_string(w));
    if (!l.conv.strides.empty() || !l.conv.pads.empty() || !l.conv.dilations.empty())
      fail(context, "dense layer with conv parameters");
    return;
  }
  if (in.size() != 3 || out.size() != 3 || w.size() != 4 || w[0] != out[0] || w[1] != in[0])
    fail(context, "conv layer geometry does not fit its weight " + shape_to_string(w));
  auto at = [](const std::vector<int64_t>& v, size_t i, int64_t dflt) {
    return v.empty() ? dflt : v.at(i);
  };
  const auto& p = l.conv;
  if ((!p.strides.empty() && p.strides.size() != 2) || (!p.pads.empty() && p.pads.size() != 4) ||
      (!p.dilations.empty() && p.dilations.size() != 2))
    fail(context, "bad conv parameter count");
  for (size_t i = 0; i < 2; ++i) {
    const int64_t s = at(p.strides, i, 1), d = at(p.dilations, i, 1);
    const int64_t pad = at(p.pads, i, 0) + at(p.pads, i + 2, 0);
    if (s < 1 || s > kMaxStride || d < 1 || d > kMaxStride || at(p.pads, i, 0) < 0 ||
        at(p.pads, i + 2, 0) < 0 || pad > 2 * kMaxPad)
      fail(context, "bad conv parameters");
    const int64_t span = d * (w[2 + i] - 1) + 1;
    const int64_t o = (in[1 + i] + pad - span) / s + 1;
    if (in[1 + i] + pad < span || o != out[1 + i])
      fail(context, "conv output " + shape_to_string(out) + " does not follow from input " +
                        shape_to_string(in) + " and weight " + shape_to_string(w));
  }
}

void write_layer(ByteWriter& w, const OutsourcedLayer& l) {
  w.u8(l.kind == LinearKind::Conv ? kConv : kDense);
  write_ints(w, l.conv.strides);
  write_ints(w, l.conv.pads);
  write_ints(w, l.conv.dilations);
  w.i64(l.conv.group);
  write_shape(w, l.input_shape);
  write_shape(w, l.output_shape);
  write_payload(w, l.weight);
}

OutsourcedLayer read_layer(ByteReader& r) {
  OutsourcedLayer l;
  const uint8_t kind = r.u8("layer kind");
  if (kind != kConv && kind != kDense) r.fail("bad layer kind");
  l.kind = kind == kConv ? LinearKind::Conv : LinearKind::Dense;
  l.conv.strides = read_ints(r, 2, 1, kMaxStride, "strides");
  l.conv.pads = read_ints(r, 4, 0, kMaxPad, "pads");
  l.conv.dilations = read_ints(r, 2, 1, kMaxStride, "dilations");
  l.conv.group = r.i64("group");
  l.input_shape = read_shape(r, "input shape");
  l.output_shape = read_shape(r, "output shape");
  ByteReader peek = r;  // the weight may be of either type: read_payload checks the one seen
  l.weight = read_payload(r, peek.u8("weight") == kField, nullptr, "weight");
  check_layer(l, r.context());
  return l;
}

void write_payloads(ByteWriter& w, const std::vector<Payload>& payloads) {
  w.u32(static_cast<uint32_t>(payloads.size()));
  for (const Payload& p : payloads) write_payload(w, p);
}

std::vector<Payload> read_inputs(ByteReader& r, const OutsourcedLayer& layer) {
  const uint32_t n = r.count(kMaxPayloads, "payload count", kMinPayloadBytes);
  if (n == 0) r.fail("no payloads");
  std::vector<Payload> out;
  out.reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    // The batch is the payload's own first dimension; the rest must be the layer's input.
    ByteReader peek = r;
    peek.u8("payload");
    const uint8_t rank = peek.u8("payload");
    if (rank != layer.input_shape.size() + 1) r.fail("payload rank does not fit the layer");
    const int64_t batch = peek.i64("payload");
    if (batch <= 0 || batch > kMaxBatch) r.fail("bad payload batch");
    const Shape want = batched(layer.input_shape, batch);
    out.push_back(read_payload(r, is_field_weight(layer), &want, "payload"));
  }
  return out;
}

std::vector<Payload> read_outputs(ByteReader& r, const OutsourcedLayer& layer,
                                  const std::vector<Payload>& inputs) {
  const uint32_t n = r.count(kMaxPayloads, "payload count", kMinPayloadBytes);
  if (n != inputs.size())
    r.fail(std::to_string(n) + " payloads for " + std::to_string(inputs.size()) + " inputs");
  std::vector<Payload> out;
  out.reserve(n);
  for (const Payload& in : inputs) {
    const Shape want = batched(layer.output_shape, payload_shape(in).at(0));
    out.push_back(read_payload(r, is_field_weight(layer), &want, "payload"));
  }
  return out;
}

mpc::Message encode_setup(const std::string& scheme, const std::vector<OutsourcedLayer>& layers) {
  ByteWriter w = begin(Kind::Setup);
  w.str(scheme);
  w.u32(static_cast<uint32_t>(layers.size()));
  for (const OutsourcedLayer& l : layers) write_layer(w, l);
  return finish(Kind::Setup, w);
}

mpc::Message encode_ready() {
  ByteWriter w = begin(Kind::Ready);
  return finish(Kind::Ready, w);
}

mpc::Message encode_compute(size_t layer, const std::vector<Payload>& inputs) {
  ByteWriter w = begin(Kind::Compute);
  w.u64(layer);
  write_payloads(w, inputs);
  return finish(Kind::Compute, w);
}

mpc::Message encode_reply(const std::vector<Payload>& outputs, int64_t faults_injected) {
  ByteWriter w = begin(Kind::Reply);
  w.i64(faults_injected);
  write_payloads(w, outputs);
  return finish(Kind::Reply, w);
}

mpc::Message encode_error(const std::string& text) {
  ByteWriter w = begin(Kind::Error);
  w.str(text.size() > kMaxErrorText ? text.substr(0, kMaxErrorText) : text);
  return finish(Kind::Error, w);
}

mpc::Message encode_close() {
  ByteWriter w = begin(Kind::Close);
  return finish(Kind::Close, w);
}

mpc::Message encode_closed(const Closed& c) {
  ByteWriter w = begin(Kind::Closed);
  w.u64(c.queries);
  w.i64(c.faults_injected);
  w.f64(c.peak_rss_mb);
  return finish(Kind::Closed, w);
}

Setup parse_setup(const mpc::Message& m) {
  ByteReader r = open(m, Kind::Setup);
  Setup s;
  s.scheme = r.str(kMaxSchemeName, "scheme");
  const uint32_t n = r.count(kMaxLayers, "layer count", kMinLayerBytes);
  s.layers.reserve(n);
  for (uint32_t i = 0; i < n; ++i) s.layers.push_back(read_layer(r));
  r.expect_end();
  return s;
}

void parse_ready(const mpc::Message& m) { open(m, Kind::Ready).expect_end(); }

Compute parse_compute(const mpc::Message& m, const std::vector<OutsourcedLayer>& layers) {
  ByteReader r = open(m, Kind::Compute);
  Compute c;
  const uint64_t layer = r.u64("layer");
  if (layer >= layers.size())
    r.fail("layer " + std::to_string(layer) + " of " + std::to_string(layers.size()));
  c.layer = static_cast<size_t>(layer);
  c.inputs = read_inputs(r, layers[c.layer]);
  r.expect_end();
  return c;
}

Reply parse_reply(const mpc::Message& m, const OutsourcedLayer& layer,
                  const std::vector<Payload>& inputs) {
  ByteReader r = open(m, Kind::Reply);
  Reply rep;
  rep.faults_injected = r.i64("faults injected");
  if (rep.faults_injected < 0) r.fail("negative fault count");
  rep.outputs = read_outputs(r, layer, inputs);
  r.expect_end();
  return rep;
}

std::string parse_error(const mpc::Message& m) {
  ByteReader r = open(m, Kind::Error);
  std::string text = r.str(kMaxErrorText, "error text");
  r.expect_end();
  return text;
}

void parse_close(const mpc::Message& m) { open(m, Kind::Close).expect_end(); }

Closed parse_closed(const mpc::Message& m) {
  ByteReader r = open(m, Kind::Closed);
  Closed c;
  c.queries = r.u64("queries");
  c.faults_injected = r.i64("faults injected");
  c.peak_rss_mb = r.f64("peak RSS");
  if (c.faults_injected < 0 || !(c.peak_rss_mb >= 0 && c.peak_rss_mb < 1e9))
    r.fail("bad report values");
  r.expect_end();
  return c;
}

}  // namespace veil::split::wire
