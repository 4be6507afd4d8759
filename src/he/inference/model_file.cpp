#include "veil/he/inference/model_file.hpp"

#include <bit>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>

#include "veil/core/byte_io.hpp"
#include "veil/core/error.hpp"
#include "veil/core/hex.hpp"
#include "veil/core/sha256.hpp"
#include "veil/he/serialization.hpp"

namespace veil::he {

namespace {

constexpr char kModelMagic[8] = {'V', 'E', 'I', 'L', 'H', 'E', 'M', 'D'};
constexpr char kBatchMagic[8] = {'V', 'E', 'I', 'L', 'H', 'E', 'C', 'T'};
constexpr uint16_t kVersion = 1;
constexpr uint32_t kMaxLayers = 64;
constexpr uint32_t kMaxName = 4096;
constexpr uint32_t kMaxMetadata = 256;
constexpr uint32_t kMaxRank = 8;
constexpr uint32_t kMaxImages = 1u << 20;
constexpr uint64_t kMaxCiphertextBytes = uint64_t{1} << 31;

void put_hash(ByteWriter& w, std::span<const uint8_t> h) { w.bytes(h); }

template <size_t N>
void read_fixed(ByteReader& r, std::array<uint8_t, N>& out, const char* what) {
  r.read(out, what);
}

void check_magic(ByteReader& r, const char (&magic)[8], const std::string& what) {
  auto m = r.bytes(8, "magic");
  if (std::memcmp(m.data(), magic, 8) != 0)
    throw MalformedInput(what + ": not a veil " + what + " (bad magic)");
  const uint16_t v = r.u16("version");
  if (v != kVersion)
    throw MalformedInput(what + ": version " + std::to_string(v) + " (this veil reads " +
                         std::to_string(kVersion) + ")");
}

void check_params(ByteReader& r, const HeContext& ctx, const std::string& what) {
  std::array<uint8_t, 32> h{};
  r.read(h, "parameter hash");
  if (h != ctx.hash())
    throw IntegrityError(what + " was made under other CKKS parameters (hash " +
                         to_hex(h).substr(0, 16) + "..., keys have " +
                         ctx.hash_hex().substr(0, 16) + "...)");
}

void check_key(const KeyId& got, const KeyId* want, const std::string& what) {
  if (want && got != *want)
    throw IntegrityError(what + " was made under other keys (key id " + to_hex(got).substr(0, 16) +
                         "..., expected " + to_hex(*want).substr(0, 16) + "...)");
}

bool pow2(uint32_t v) { return v != 0 && std::has_single_bit(v); }

Ciphertext read_ct(ByteReader& r, const HeContext& ctx, const char* what) {
  const uint64_t size = r.u64(what);
  if (size > kMaxCiphertextBytes) throw MalformedInput(std::string(what) + ": too large");
  auto bytes = r.bytes(static_cast<size_t>(size), what);
  return load_ciphertext(ctx, bytes);
}

void write_ct(ByteWriter& w, const HeContext& ctx, const Ciphertext& ct) {
  auto b = serialize(ctx, ct);
  w.u64(b.size());
  w.bytes(b);
}

}  // namespace

std::vector<uint8_t> serialize_layout(const ProgramLayout& l) {
  ByteWriter w;
  w.u32(static_cast<uint32_t>(l.input_shape.size()));
  for (int64_t d : l.input_shape) w.i64(d);
  w.u32(l.input_dim);
  w.u32(l.output_dim);
  w.u32(l.depth);
  w.f64(l.scale);
  w.u32(static_cast<uint32_t>(l.layers.size()));
  for (const auto& layer : l.layers) {
    if (const auto* s = std::get_if<SquareLayout>(&layer)) {
      w.u8(2);
      w.str(s->name);
      w.u32(s->dim);
      w.u32(s->period);
      w.u32(s->level);
      w.array<double>(s->shift);
      continue;
    }
    const auto& x = std::get<LinearLayout>(layer);
    w.u8(1);
    w.str(x.name);
    w.u8(static_cast<uint8_t>(x.method));
    for (uint32_t v : {x.m, x.n, x.rows, x.cols, x.terms, x.baby, x.level}) w.u32(v);
    w.f64(x.scale_out);
    w.bytes(x.present);
    w.u32(static_cast<uint32_t>(x.gather.size()));
    w.array<int32_t>(x.gather);
    w.u32(static_cast<uint32_t>(x.sum_steps.size()));
    w.array<int32_t>(x.sum_steps);
  }
  return w.take();
}

ProgramLayout parse_layout(std::span<const uint8_t> bytes, const HeContext& ctx) {
  ByteReader r(bytes, "encrypted model layout");
  ProgramLayout l;
  const uint32_t slots = static_cast<uint32_t>(ctx.slots());
  auto bad = [](const std::string& why) -> MalformedInput {
    return MalformedInput("encrypted model layout: " + why);
  };
  const uint32_t rank = r.count(kMaxRank, "rank", 8);
  int64_t numel = 1;
  for (uint32_t i = 0; i < rank; ++i) {
    const int64_t d = r.i64("dimension");
    if (d <= 0 || d > slots) throw bad("a dimension out of range");
    numel *= d;
    if (numel > slots) throw bad("an input larger than the slots");
    l.input_shape.push_back(d);
  }
  l.input_dim = r.u32("input size");
  l.output_dim = r.u32("output size");
  l.depth = r.u32("depth");
  l.scale = r.f64("scale");
  if (l.input_dim != numel || l.input_dim == 0) throw bad("input size does not match its shape");
  if (!(std::isfinite(l.scale) && l.scale > 1)) throw bad("bad scale");
  const uint32_t count = r.count(kMaxLayers, "layers", 1);
  if (count == 0 || count != l.depth) throw bad("the depth is not the number of layers");
  uint32_t expect_level = static_cast<uint32_t>(ctx.max_level());
  uint32_t dim = l.input_dim, period = 0;
  for (uint32_t i = 0; i < count; ++i) {
    const uint8_t kind = r.u8("layer kind");
    if (kind == 2) {
      SquareLayout s;
      s.name = r.str(kMaxName, "name");
      s.dim = r.u32("dim");
      s.period = r.u32("period");
      s.level = r.u32("level");
      if (i == 0 || s.dim != dim || s.period != period || !pow2(s.period) || s.dim > s.period)
        throw bad("a square that does not fit the previous layer");
      r.need(uint64_t{s.dim} * 8, "shift");
      s.shift.resize(s.dim);
      for (auto& v : s.shift) {
        v = r.f64("shift");
        if (!std::isfinite(v)) throw bad("a non-finite shift");
      }
      if (s.level != expect_level || s.level == 0) throw bad("levels out of order");
      --expect_level;
      l.layers.push_back(std::move(s));
      continue;
    }
    if (kind != 1) throw bad("unknown layer kind");
    LinearLayout x;
    x.name = r.str(kMaxName, "name");
    const uint8_t method = r.u8("method");
    if (method != 1 && method != 2) throw bad("unknown method");
    x.method = static_cast<LinearMethod>(method);
    x.m = r.u32();
    x.n = r.u32();
    x.rows = r.u32();
    x.cols = r.u32();
    x.terms = r.u32();
    x.baby = r.u32();
    x.level = r.u32();
    x.scale_out = r.f64();
    if (!pow2(x.rows) || !pow2(x.cols) || x.rows > slots || x.cols > slots || x.m == 0 ||
        x.m > x.rows || x.n == 0 || !pow2(x.baby) || x.terms == 0 || x.terms % x.baby != 0)
      throw bad("layer sizes out of range");
    if (x.n != dim) throw bad("a layer whose input size is not the previous output size");
    if (x.method == LinearMethod::Diagonal) {
      if (x.n > x.cols || x.terms != std::min(x.rows, x.cols)) throw bad("bad diagonal layout");
      if (i > 0 && x.cols != period)
        throw bad("a layer whose input period is not the previous one");
    } else {
      if (i != 0 || x.cols != x.rows || x.baby != 1 || x.terms > 4096)
        throw bad("bad gather layout");
    }
    if (x.level != expect_level || x.level == 0) throw bad("levels out of order");
    if (!(std::isfinite(x.scale_out) && x.scale_out > 1)) throw bad("bad scale");
    auto present = r.bytes(x.terms, "present flags");
    x.present.assign(present.begin(), present.end());
    for (uint8_t p : x.present)
      if (p > 1) throw bad("bad present flag");
    const uint32_t g = r.count(4096u * 32768u, "gather", 4);
    if (x.method == LinearMethod::Gather ? g != uint64_t{x.terms} * x.rows : g != 0)
      throw bad("bad gather table size");
    x.gather.resize(g);
    for (auto& v : x.gather) {
      v = static_cast<int32_t>(r.u32());
      if (v < -1 || v >= static_cast<int32_t>(dim)) throw bad("a gather index out of range");
    }
    const uint32_t ns = r.count(32, "sum steps", 4);
    for (uint32_t k = 0; k < ns; ++k) {
      const int32_t s = static_cast<int32_t>(r.u32());
      if (s <= 0 || static_cast<uint32_t>(s) >= x.cols) throw bad("a rotation step out of range");
      x.sum_steps.push_back(s);
    }
    --expect_level;
    dim = x.m;
    period = x.rows;
    l.layers.push_back(std::move(x));
  }
  r.expect_end();
  if (!std::holds_alternative<LinearLayout>(l.layers.front()) ||
      !std::holds_alternative<LinearLayout>(l.layers.back()))
    throw bad("a program must start and end with a linear layer");
  if (l.output_dim != dim) throw bad("output size does not match the last layer");
  return l;
}

std::array<uint8_t, 32> program_id(const ProgramLayout& layout) {
  return sha256(serialize_layout(layout));
}

std::vector<uint8_t> serialize_model(const HeContext& ctx, const EncryptedModel& m) {
  ByteWriter head;
  head.str(m.part);
  head.u32(static_cast<uint32_t>(m.metadata.size()));
  for (const auto& [k, v] : m.metadata) {
    head.str(k);
    head.str(v);
  }
  auto layout = serialize_layout(m.program.layout);
  head.u64(layout.size());
  head.bytes(layout);

  ByteWriter w;
  w.bytes(std::string_view(kModelMagic, 8));
  w.u16(kVersion);
  w.u16(0);
  put_hash(w, ctx.hash());
  put_hash(w, m.key_id);
  w.u64(head.size());
  w.bytes(head.out());
  w.u64(m.prefix_onnx.size());
  w.bytes(m.prefix_onnx);
  for (const auto& lin : m.program.linears) {
    Ciphertext full;
    for (const auto& t : lin.terms) {
      w.u8(t ? 1 : 0);
      if (!t) continue;
      t->expand(ctx, full);
      write_ct(w, ctx, full);  // compressed again: c_1 is its seed's expansion
    }
    write_ct(w, ctx, lin.bias);
  }
  return w.take();
}

namespace {

// The next `n` bytes of a model file (a span valid until the next call), or, with `skip`, just
// past them; throws MalformedInput when fewer remain.
using NextBytes = std::function<std::span<const uint8_t>(uint64_t n, const char* what, bool skip)>;

constexpr size_t kFixedHeader = 8 + 2 + 2 + 32 + 32 + 8;
constexpr uint64_t kMaxHead = uint64_t{64} << 20;
constexpr uint64_t kMaxPrefix = uint64_t{2} << 30;

EncryptedModel parse_model_from(const NextBytes& next, const HeContext& ctx,
                                const KeyId* expected_key, const ModelLoad& load) {
  ByteReader r(next(kFixedHeader, "header", false), "encrypted model");
  check_magic(r, kModelMagic, "encrypted model");
  r.u16("reserved");
  check_params(r, ctx, "the encrypted model");
  EncryptedModel m;
  r.read(m.key_id, "key id");
  check_key(m.key_id, expected_key, "the encrypted model");
  const uint64_t head_size = r.u64("head size");
  if (head_size > kMaxHead) throw MalformedInput("encrypted model: head too large");
  ByteReader h(next(head_size, "head", false), "encrypted model");
  m.part = h.str(16, "part");
  const uint32_t nm = h.count(kMaxMetadata, "metadata", 8);
  for (uint32_t i = 0; i < nm; ++i) {
    std::string k = h.str(kMaxName, "metadata key");
    m.metadata[k] = h.str(1u << 20, "metadata value");
  }
  const uint64_t lsize = h.u64("layout size");
  if (lsize > (uint64_t{64} << 20)) throw MalformedInput("encrypted model: layout too large");
  h.need(lsize, "layout");
  m.program.layout = parse_layout(h.bytes(static_cast<size_t>(lsize), "layout"), ctx);
  h.expect_end();
  const uint64_t prefix = load_le<uint64_t>(next(8, "prefix size", false).data());
  if (prefix > kMaxPrefix) throw MalformedInput("encrypted model: prefix too large");
  m.has_prefix = prefix > 0;
  auto pb = next(prefix, "prefix", !load.prefix);
  if (load.prefix) m.prefix_onnx.assign(pb.begin(), pb.end());
  if (!load.weights) return m;
  auto ciphertext = [&](const char* what) {
    const uint64_t size = load_le<uint64_t>(next(8, what, false).data());
    if (size > kMaxCiphertextBytes) throw MalformedInput(std::string(what) + ": too large");
    return load_ciphertext(ctx, next(size, what, false));
  };
  for (const auto& layer : m.program.layout.layers) {
    const auto* l = std::get_if<LinearLayout>(&layer);
    if (!l) continue;
    EncryptedLinear e;
    const double wscale = static_cast<double>(ctx.prime_values()[l->level]);
    for (uint32_t t = 0; t < l->terms; ++t) {
      const uint8_t present = next(1, "present", false)[0];
      if (present != l->present[t]) throw MalformedInput("encrypted model: present flags differ");
      if (!present) {
        e.terms.emplace_back();
        continue;
      }
      Ciphertext c = ciphertext("weights");
      if (c.level() != l->level || c.size() != 2 || std::fabs(c.scale() / wscale - 1) > 1e-9)
        throw MalformedInput("encrypted model: weights of layer '" + l->name +
                             "' at another level or scale than its layout");
      if (!c.seed())
        throw MalformedInput("encrypted model: weights of layer '" + l->name +
                             "' are not a fresh symmetric encryption");
      e.terms.emplace_back(SeededCiphertext(ctx, std::move(c)));
    }
    e.bias = ciphertext("bias");
    if (e.bias.level() != l->level - 1 || e.bias.size() != 2 ||
        std::fabs(e.bias.scale() / l->scale_out - 1) > 1e-9)
      throw MalformedInput("encrypted model: bias of layer '" + l->name +
                           "' at another level or scale than its layout");
    m.program.linears.push_back(std::move(e));
  }
  return m;
}

}  // namespace

EncryptedModel parse_model(std::span<const uint8_t> bytes, const HeContext& ctx,
                           const KeyId* expected_key) {
  ByteReader r(bytes, "encrypted model");
  auto m = parse_model_from(
      [&](uint64_t n, const char* what, bool) {
        r.need(n, what);
        return r.bytes(static_cast<size_t>(n), what);
      },
      ctx, expected_key, ModelLoad{});
  r.expect_end();
  return m;
}

EncryptedModel load_model_file(const std::filesystem::path& path, const HeContext& ctx,
                               const KeyId* expected_key, const ModelLoad& load) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw IoError("cannot read '" + path.string() + "': not a regular file or does not exist");
  const uint64_t size = std::filesystem::file_size(path, ec);
  if (ec) throw IoError("cannot read '" + path.string() + "': " + ec.message());
  if (size > kMaxModelFileBytes)
    throw MalformedInput("'" + path.string() + "' is larger than an encrypted model may be");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError("cannot open '" + path.string() + "'");
  uint64_t pos = 0;
  std::vector<uint8_t> buffer;  // one record at a time: the file is never held whole
  auto m = parse_model_from(
      [&](uint64_t n, const char* what, bool skip) -> std::span<const uint8_t> {
        if (n > size - pos)
          throw MalformedInput("encrypted model: truncated while reading " + std::string(what));
        if (skip) {
          in.seekg(static_cast<std::streamoff>(n), std::ios::cur);
          if (!in) throw IoError("cannot read '" + path.string() + "'");
          pos += n;
          return {};
        }
        buffer.resize(static_cast<size_t>(n));
        if (n && !in.read(reinterpret_cast<char*>(buffer.data()), static_cast<std::streamsize>(n)))
          throw IoError("cannot read '" + path.string() + "'");
        pos += n;
        return buffer;
      },
      ctx, expected_key, load);
  if (load.weights && pos != size) throw MalformedInput("encrypted model: trailing bytes");
  return m;
}

std::string batch_kind_name(BatchKind kind) {
  switch (kind) {
    case BatchKind::EncryptedInput:
      return "encrypted input";
    case BatchKind::PlainInput:
      return "plaintext input";
    case BatchKind::EncryptedOutput:
      return "encrypted output";
  }
  return "?";
}

size_t CiphertextBatch::images() const {
  if (kind == BatchKind::PlainInput) return values == 0 ? 0 : plain.size() / values;
  return vectors == 0 ? 0 : cts.size() / vectors;
}

std::vector<uint8_t> serialize_batch(const HeContext& ctx, const CiphertextBatch& b) {
  ByteWriter w;
  w.bytes(std::string_view(kBatchMagic, 8));
  w.u16(kVersion);
  w.u8(static_cast<uint8_t>(b.kind));
  w.u8(0);
  put_hash(w, ctx.hash());
  put_hash(w, b.key_id);
  put_hash(w, b.program);
  w.u32(static_cast<uint32_t>(b.images()));
  w.u32(b.vectors);
  w.u32(b.values);
  if (b.kind == BatchKind::PlainInput) {
    w.array<float>(b.plain);
  } else {
    for (const auto& c : b.cts) write_ct(w, ctx, c);
  }
  return w.take();
}

CiphertextBatch parse_batch(std::span<const uint8_t> bytes, const HeContext& ctx,
                            const EncryptedModel* model) {
  ByteReader r(bytes, "ciphertext file");
  check_magic(r, kBatchMagic, "ciphertext file");
  CiphertextBatch b;
  const uint8_t kind = r.u8("kind");
  if (kind < 1 || kind > 3) throw MalformedInput("ciphertext file: unknown kind");
  b.kind = static_cast<BatchKind>(kind);
  r.u8("reserved");
  check_params(r, ctx, "the ciphertext file");
  r.read(b.key_id, "key id");
  r.read(b.program, "program id");
  if (model) {
    check_key(b.key_id, &model->key_id, "the ciphertext file");
    if (b.program != program_id(model->program.layout))
      throw IntegrityError("the ciphertext file was made for another encrypted model");
  }
  const uint32_t images = r.u32("images");
  b.vectors = r.u32("vectors");
  b.values = r.u32("values");
  if (images == 0 || images > kMaxImages) throw MalformedInput("ciphertext file: bad image count");
  if (b.kind == BatchKind::PlainInput) {
    if (b.vectors != 1 || b.values == 0 || b.values > (1u << 24))
      throw MalformedInput("ciphertext file: bad plaintext sizes");
    const uint64_t total = uint64_t{images} * b.values;
    r.need(total * 4, "values");
    b.plain.resize(static_cast<size_t>(total));
    for (auto& v : b.plain) v = r.f32();
  } else {
    if (b.vectors == 0 || b.vectors > 4096 || b.values == 0 || b.values > ctx.slots())
      throw MalformedInput("ciphertext file: bad vector count or size");
    const uint64_t total = uint64_t{images} * b.vectors;
    r.need(total * 8, "ciphertexts");  // at least a size word each
    if (model) {
      const auto& lay = model->program.layout;
      const uint32_t want = b.kind == BatchKind::EncryptedInput ? lay.input_vectors() : 1;
      if (b.vectors != want)
        throw MalformedInput("ciphertext file: " + std::to_string(b.vectors) +
                             " ciphertexts per image, the model takes " + std::to_string(want));
      const uint32_t dim = b.kind == BatchKind::EncryptedInput ? lay.input_dim : lay.output_dim;
      if (b.values != dim)
        throw MalformedInput("ciphertext file: " + std::to_string(b.values) +
                             " values per image, the model has " + std::to_string(dim));
    }
    for (uint64_t i = 0; i < total; ++i) {
      Ciphertext c = read_ct(r, ctx, "ciphertext");
      if (c.size() != 2)
        throw MalformedInput("ciphertext file: a ciphertext of size " + std::to_string(c.size()));
      if (model) {
        const auto& lay = model->program.layout;
        const size_t want =
            b.kind == BatchKind::EncryptedInput ? lay.first().level : lay.first().level - lay.depth;
        if (c.level() != want)
          throw MalformedInput("ciphertext file: a ciphertext at level " +
                               std::to_string(c.level()) + ", the model expects " +
                               std::to_string(want));
      }
      b.cts.push_back(std::move(c));
    }
  }
  r.expect_end();
  return b;
}

}  // namespace veil::he
