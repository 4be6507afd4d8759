#include "veil/lock/keyfile.hpp"

#include <openssl/crypto.h>

#include <cmath>

#include "veil/core/byte_io.hpp"
#include "veil/core/error.hpp"
#include "veil/core/io.hpp"

namespace veil::lock {

namespace {

// Byte-for-byte the format of the key files written before the container moved to core.
constexpr SealedFormat kKeyFileFormat{
    {'V', 'E', 'I', 'L', 'L', 'O', 'C', 'K'}, kKeyFileVersion, "veil.lock.keyfile.v1", "key file"};
constexpr size_t kMaxName = 4096;
constexpr uint32_t kMaxLayers = 1u << 16;
constexpr size_t kEntryBytes = 8 + 4 + 4 + 1;
constexpr uint8_t kExtensionTag = 0x58;  // 'X': the optional extension after the layers

// Names are u32-length-prefixed strings of at most kMaxName bytes.
void put_name(ByteWriter& w, const std::string& s) {
  if (s.size() > kMaxName) throw InvalidArgument("name too long for a key file: " + s);
  w.str(s);
}

}  // namespace

// ---- payload ----

std::vector<uint8_t> encode_key_payload(const LockKey& key) {
  ByteWriter w;
  w.u8(static_cast<uint8_t>(key.params.mode));
  w.u8(key.params.incremental ? 1 : 0);
  w.u64(static_cast<uint64_t>(key.params.num));
  w.f32(key.params.intensity);
  w.f64(key.params.max_percent);
  w.u64(static_cast<uint64_t>(key.params.samples));
  put_name(w, key.params.dataset);
  w.f64(key.params.keygen_seconds);
  w.bytes(key.plain_fingerprint);
  w.bytes(key.locked_fingerprint);
  if (key.layers.size() > kMaxLayers) throw InvalidArgument("too many layers for a key file");
  w.u32(static_cast<uint32_t>(key.layers.size()));
  for (const auto& l : key.layers) {
    put_name(w, l.tensor);
    put_name(w, l.node);
    w.u64(l.numel);
    if (l.entries.size() > l.numel) throw InvalidArgument("layer key larger than its tensor");
    w.u64(l.entries.size());
    for (const auto& e : l.entries) {
      w.u64(e.index);
      w.u32(e.original_bits);
      w.u32(e.locked_bits);
      w.u8(static_cast<uint8_t>(e.sign));
    }
  }
  // Optional extension (options beyond the reference). Written only when some option differs
  // from its default, and a decoded extension must differ too: one key has one encoding.
  if (key.params.has_extension()) {
    w.u8(kExtensionTag);
    w.u8(static_cast<uint8_t>(key.params.intensity_mode));
    w.u8(static_cast<uint8_t>(key.params.objective));
    w.u32(static_cast<uint32_t>(key.params.target_class));
    w.u64(static_cast<uint64_t>(key.params.per_round));
  }
  return std::move(w.out());
}

LockKey decode_key_payload(std::span<const uint8_t> bytes) {
  ByteReader r(bytes, "key payload");
  LockKey key;
  uint8_t mode = r.u8("mode");
  if (mode > 1) throw MalformedInput("key payload: unknown lock mode " + std::to_string(mode));
  key.params.mode = static_cast<LockMode>(mode);
  uint8_t inc = r.u8("incremental flag");
  if (inc > 1) throw MalformedInput("key payload: bad incremental flag");
  key.params.incremental = inc == 1;
  key.params.num = static_cast<int64_t>(r.u64("num"));
  key.params.intensity = r.f32("intensity");
  key.params.max_percent = r.f64("max percent");
  key.params.samples = static_cast<int64_t>(r.u64("samples"));
  key.params.dataset = r.str(kMaxName, "dataset name");
  key.params.keygen_seconds = r.f64("key-generation time");
  if (key.params.num < 0 || key.params.samples < 0 || !std::isfinite(key.params.intensity) ||
      !std::isfinite(key.params.max_percent) || !std::isfinite(key.params.keygen_seconds))
    throw MalformedInput("key payload: generation parameters out of range");
  r.read(key.plain_fingerprint, "plain fingerprint");
  r.read(key.locked_fingerprint, "locked fingerprint");
  // Each layer takes at least 4 + 4 + 8 + 8 bytes; checked before reserving.
  const uint32_t nlayers = r.count(kMaxLayers, "layer count", 24);
  std::vector<LayerKey> layers;
  layers.reserve(nlayers);
  for (uint32_t i = 0; i < nlayers; ++i) {
    LayerKey l;
    l.tensor = r.str(kMaxName, "tensor name");
    l.node = r.str(kMaxName, "node name");
    l.numel = r.u64("tensor size");
    const uint64_t n = r.count64(l.numel, "entry count", kEntryBytes);
    l.entries.resize(static_cast<size_t>(n));
    for (auto& e : l.entries) {
      e.index = r.u64("position");
      e.original_bits = r.u32("original weight");
      e.locked_bits = r.u32("locked weight");
      e.sign = static_cast<int8_t>(r.u8("sign"));
      if (e.index >= l.numel) throw MalformedInput("key payload: position outside its tensor");
      if (e.sign < -1 || e.sign > 1) throw MalformedInput("key payload: bad sign");
    }
    layers.push_back(std::move(l));
  }
  if (r.remaining() != 0) {
    if (r.u8("extension tag") != kExtensionTag)
      throw MalformedInput("key payload has trailing bytes");
    uint8_t im = r.u8("intensity mode");
    uint8_t obj = r.u8("objective");
    auto target = static_cast<int32_t>(r.u32("target class"));
    auto per_round = static_cast<int64_t>(r.u64("positions per round"));
    if (im > 1) throw MalformedInput("key payload: unknown intensity mode");
    if (obj > 1) throw MalformedInput("key payload: unknown objective");
    if (target < -1 || per_round < 1) throw MalformedInput("key payload: extension out of range");
    key.params.intensity_mode = static_cast<IntensityMode>(im);
    key.params.objective = static_cast<Objective>(obj);
    key.params.target_class = target;
    key.params.per_round = per_round;
    if (!key.params.has_extension()) throw MalformedInput("key payload: redundant extension");
    if (r.remaining() != 0) throw MalformedInput("key payload has trailing bytes");
  }
  key.layers = std::move(layers);
  return key;
}

// ---- container ----

KeyFileHeader parse_key_file_header(std::span<const uint8_t> file) {
  return parse_sealed_header(file, kKeyFileFormat);
}

std::vector<uint8_t> seal_key(const LockKey& key, const KeySecret& secret) {
  std::vector<uint8_t> payload = encode_key_payload(key);
  std::vector<uint8_t> out;
  try {
    out = seal_payload(payload, secret, kKeyFileFormat, key.locked_fingerprint);
  } catch (...) {
    OPENSSL_cleanse(payload.data(), payload.size());
    throw;
  }
  OPENSSL_cleanse(payload.data(), payload.size());
  return out;
}

LockKey open_key(std::span<const uint8_t> file, const KeySecret& secret) {
  KeyFileHeader h;
  const SecretBytes plain = open_payload(file, secret, kKeyFileFormat, &h);
  LockKey key;
  try {
    key = decode_key_payload(plain);
  } catch (const MalformedInput& e) {
    throw IntegrityError(std::string("authenticated key payload does not parse: ") + e.what());
  }
  if (key.locked_fingerprint != h.fingerprint)
    throw IntegrityError("key file header and payload disagree on the model fingerprint");
  return key;
}

void save_key_file(const std::filesystem::path& path, const LockKey& key, const KeySecret& secret) {
  write_file_atomic(path, seal_key(key, secret));
}

LockKey load_key_file(const std::filesystem::path& path, const KeySecret& secret) {
  return open_key(read_file(path, kMaxKeyFileBytes), secret);
}

}  // namespace veil::lock
