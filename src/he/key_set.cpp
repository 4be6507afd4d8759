#include "veil/he/key_set.hpp"

#include <openssl/crypto.h>

#include <algorithm>
#include <cstring>
#include <set>
#include <string>
#include <system_error>

#include "veil/core/byte_io.hpp"
#include "veil/core/error.hpp"
#include "veil/core/io.hpp"
#include "veil/core/sha256.hpp"
#include "veil/he/serialization.hpp"

namespace veil::he {

namespace {

namespace fs = std::filesystem;

constexpr SealedFormat kSecretFormat{{'V', 'E', 'I', 'L', 'H', 'E', 'S', 'K'},
                                     kKeyDirVersion,
                                     "veil.he.secretkey.v1",
                                     "HE secret key file (secret.vkey)"};
constexpr char kMagic[8] = {'V', 'E', 'I', 'L', 'H', 'E', 'K', 'D'};
constexpr size_t kHeaderSize = 80;
constexpr size_t kDigestSize = 32;

enum class FileKind : uint16_t { kPublic = 1, kEval = 2 };

const char* file_name(FileKind kind) {
  return kind == FileKind::kPublic ? kPublicKeyFileName : kEvalKeyFileName;
}

// Wipes a buffer that held secret-key material (as src/he/encryptor.cpp does for its noise).
void wipe(std::vector<uint8_t>& v) {
  if (!v.empty()) OPENSSL_cleanse(v.data(), v.size());
}

// A length-prefixed embedded object (u64 length, then the bytes).
void put_section(ByteWriter& w, std::span<const uint8_t> bytes) {
  w.u64(bytes.size());
  w.bytes(bytes);
}

std::span<const uint8_t> get_section(ByteReader& r, const char* what) {
  const uint64_t n = r.u64(what);
  r.need(n, what);
  return r.bytes(static_cast<size_t>(n), what);
}

// The Galois elements of `steps`, which must be strictly ascending, each with |step| < slots and
// not 0, and name distinct rotations: the one encoding of a set of rotations.
std::vector<uint32_t> galois_elements(const HeContext& ctx, std::span<const int> steps) {
  const int64_t slots = static_cast<int64_t>(ctx.slots());
  std::vector<uint32_t> elements;
  std::set<uint32_t> seen;
  for (size_t i = 0; i < steps.size(); ++i) {
    const int64_t s = steps[i];
    if (s == 0 || s <= -slots || s >= slots || (i > 0 && s <= steps[i - 1]))
      throw MalformedInput("rotation steps: not ascending distinct steps within (-slots, slots)");
    const uint32_t g = ctx.galois_element_for_step(static_cast<int>(s));
    if (!seen.insert(g).second)
      throw MalformedInput("rotation steps: two steps name the same rotation");
    elements.push_back(g);
  }
  return elements;
}

// Throws unless `galois` holds exactly the keys for `steps`.
void check_galois_matches_steps(const HeContext& ctx, const GaloisKeys& galois,
                                std::span<const int> steps) {
  if (galois.keys().size() != steps.size())
    throw MalformedInput("eval.vkey: the Galois keys do not match the rotation steps");
  for (uint32_t g : galois_elements(ctx, steps))
    if (!galois.has(g))
      throw MalformedInput("eval.vkey: the Galois keys do not match the rotation steps");
}

// ---- public.vkey and eval.vkey ----

std::vector<uint8_t> finish_file(ByteWriter& w) {
  const Sha256Digest digest = sha256(w.out());
  w.bytes(digest);
  return w.take();
}

ByteWriter begin_file(FileKind kind, const HeContext& ctx, const KeySetId& id) {
  ByteWriter w;
  w.reserve(kHeaderSize);
  w.bytes(std::string_view(kMagic, sizeof(kMagic)));
  w.u16(kKeyDirVersion);
  w.u16(static_cast<uint16_t>(kind));
  w.u32(0);
  w.bytes(ctx.hash());
  w.bytes(id);
  return w;
}

struct FileHeader {
  ParamsHash params{};
  KeySetId id{};
};

// Checks the header and the content digest of a public.vkey or eval.vkey image; returns the
// header and a reader over the body.
std::pair<FileHeader, ByteReader> open_file(std::span<const uint8_t> file, FileKind kind) {
  const std::string name = file_name(kind);
  if (file.size() < kHeaderSize + kDigestSize)
    throw MalformedInput(name + " is truncated (" + std::to_string(file.size()) + " bytes)");
  ByteReader r(file.first(file.size() - kDigestSize), name);
  if (std::memcmp(r.bytes(8).data(), kMagic, sizeof(kMagic)) != 0)
    throw MalformedInput(name + ": not a veil HE key file (bad magic)");
  const uint16_t version = r.u16("version");
  if (version != kKeyDirVersion)
    throw MalformedInput(name + ": unsupported version " + std::to_string(version));
  const uint16_t k = r.u16("kind");
  if (k != static_cast<uint16_t>(kind))
    throw MalformedInput(name + ": holds another kind of key (" +
                         (k == static_cast<uint16_t>(FileKind::kPublic) ? "a public key"
                          : k == static_cast<uint16_t>(FileKind::kEval) ? "evaluation keys"
                                                                        : "unknown") +
                         ")");
  if (r.u32("reserved") != 0) throw MalformedInput(name + ": reserved field set");
  const Sha256Digest digest = sha256(file.first(file.size() - kDigestSize));
  if (!std::equal(digest.begin(), digest.end(), file.end() - kDigestSize))
    throw IntegrityError(name + ": content digest does not match (truncated or corrupted file)");
  FileHeader h;
  r.read(h.params, "parameter hash");
  r.read(h.id, "key-set id");
  return {h, std::move(r)};
}

struct PublicFile {
  PublicKeys keys;
  std::span<const uint8_t> params;  // the serialized parameters, inside the file
};

PublicFile parse_public(std::span<const uint8_t> file, int threads, bool allow_insecure) {
  auto [h, r] = open_file(file, FileKind::kPublic);
  PublicFile out;
  out.params = get_section(r, "parameters");
  const auto pk_bytes = get_section(r, "public key");
  r.expect_end();
  PublicKeys& k = out.keys;
  try {
    k.ctx = load_context(out.params, allow_insecure, threads);
  } catch (const InvalidArgument& e) {  // test-only parameters, not allowed here
    throw InvalidArgument(std::string("public.vkey: ") + e.what());
  }
  if (k.ctx->hash() != h.params)
    throw IntegrityError("public.vkey: the header's parameter hash is not the parameters'");
  k.pub = load_public_key(*k.ctx, pk_bytes);
  k.id = sha256(pk_bytes);
  if (k.id != h.id) throw IntegrityError("public.vkey: the key-set id is not the public key's");
  return out;
}

[[noreturn]] void other_key_set(const std::string& file, const char* what) {
  throw IntegrityError(file + " and public.vkey belong to different key sets (" + what +
                       "): do not mix the files of two key directories");
}

// eval.vkey's contents under the key set of `pub`.
EvalKeys parse_eval(std::span<const uint8_t> file, PublicKeys pub) {
  auto [h, r] = open_file(file, FileKind::kEval);
  if (h.params != pub.ctx->hash()) other_key_set("eval.vkey", "other parameters");
  if (h.id != pub.id) other_key_set("eval.vkey", "another public key");
  const HeContext& ctx = *pub.ctx;
  EvalKeys k;
  const uint32_t count = r.count(ctx.slots(), "rotation step count", 4);
  k.steps.resize(count);
  for (auto& s : k.steps) s = static_cast<int32_t>(r.u32("rotation step"));
  k.relin = load_relin_keys(ctx, get_section(r, "relinearization key"));
  k.galois = load_galois_keys(ctx, get_section(r, "Galois keys"));
  r.expect_end();
  check_galois_matches_steps(ctx, k.galois, k.steps);
  k.ctx = std::move(pub.ctx);
  k.id = pub.id;
  k.pub = std::move(pub.pub);
  return k;
}

}  // namespace

KeySetId key_set_id(const HeContext& ctx, const PublicKey& pub) {
  return sha256(serialize(ctx, pub));
}

EvalKeys eval_keys_of(const OwnerKeys& keys) {
  return EvalKeys{keys.ctx, keys.id, keys.pub, keys.relin, keys.galois, keys.steps};
}

PublicKeys public_keys_of(const OwnerKeys& keys) { return PublicKeys{keys.ctx, keys.id, keys.pub}; }

OwnerKeys generate_owner_keys(const CkksParameters& params, std::span<const int> rotation_steps,
                              int threads) {
  OwnerKeys k;
  k.ctx = HeContext::create(params, threads);
  const int64_t slots = static_cast<int64_t>(k.ctx->slots());
  std::set<uint32_t> seen;
  for (int s : rotation_steps) {
    if (s <= -slots || s >= slots)
      throw InvalidArgument("rotation step " + std::to_string(s) + " is not within (-" +
                            std::to_string(slots) + ", " + std::to_string(slots) + ")");
    if (s != 0 && seen.insert(k.ctx->galois_element_for_step(s)).second) k.steps.push_back(s);
  }
  std::sort(k.steps.begin(), k.steps.end());
  KeyGenerator kg(k.ctx);
  k.secret = kg.secret_key();
  k.pub = kg.create_public_key();
  k.relin = kg.create_relin_keys();
  k.galois = kg.create_galois_keys(k.steps, /*conjugate=*/false);
  k.id = key_set_id(*k.ctx, k.pub);
  return k;
}

namespace {

// What eval.vkey holds.
struct EvalParts {
  const HeContext& ctx;
  const RelinKeys* relin;
  const GaloisKeys* galois;
  std::span<const int> steps;
};

void check_steps(const EvalParts& k) {
  if (k.galois->context_id() != 0 && k.galois->context_id() != k.ctx.id())
    throw InvalidArgument("Galois keys belong to other parameters");
  try {
    check_galois_matches_steps(k.ctx, *k.galois, k.steps);
  } catch (const MalformedInput&) {
    throw InvalidArgument("the Galois keys are not exactly those of the key set's rotation steps");
  }
}

std::vector<uint8_t> public_file(const HeContext& ctx, std::span<const uint8_t> params,
                                 std::span<const uint8_t> pk, const KeySetId& id) {
  ByteWriter w = begin_file(FileKind::kPublic, ctx, id);
  put_section(w, params);
  put_section(w, pk);
  return finish_file(w);
}

// serialize() refuses keys of another context.
std::vector<uint8_t> eval_file(const EvalParts& k, const KeySetId& id) {
  check_steps(k);
  ByteWriter w = begin_file(FileKind::kEval, k.ctx, id);
  w.u32(static_cast<uint32_t>(k.steps.size()));
  for (int s : k.steps) w.u32(static_cast<uint32_t>(s));
  put_section(w, serialize(k.ctx, *k.relin));
  put_section(w, serialize(k.ctx, *k.galois));
  return finish_file(w);
}

const HeContext& context_of(const ContextPtr& ctx) {
  if (!ctx) throw InvalidArgument("key set without a context");
  return *ctx;
}

}  // namespace

std::vector<uint8_t> encode_public_file(const PublicKeys& keys) {
  const HeContext& ctx = context_of(keys.ctx);
  const std::vector<uint8_t> pk = serialize(ctx, keys.pub);
  return public_file(ctx, serialize_parameters(ctx), pk, sha256(pk));
}

std::vector<uint8_t> encode_eval_file(const EvalKeys& keys) {
  const HeContext& ctx = context_of(keys.ctx);
  return eval_file({ctx, &keys.relin, &keys.galois, keys.steps}, key_set_id(ctx, keys.pub));
}

KeyDirBytes encode_key_dir(const OwnerKeys& keys, const KeySecret& secret) {
  const HeContext& ctx = context_of(keys.ctx);
  const EvalParts parts{ctx, &keys.relin, &keys.galois, keys.steps};
  check_steps(parts);  // before anything secret is serialized
  const std::vector<uint8_t> params = serialize_parameters(ctx);
  const std::vector<uint8_t> pk = serialize(ctx, keys.pub);
  const KeySetId id = sha256(pk);
  KeyDirBytes out;
  out.pub = public_file(ctx, params, pk, id);
  out.eval = eval_file(parts, id);

  std::vector<uint8_t> sk = serialize(ctx, keys.secret);
  ByteWriter sw;
  std::vector<uint8_t> payload;
  try {
    sw.reserve(16 + params.size() + sk.size());
    put_section(sw, params);
    put_section(sw, sk);
    payload = sw.take();
    out.secret = seal_payload(payload, secret, kSecretFormat, id);
  } catch (...) {
    wipe(sk);
    wipe(payload);
    wipe(sw.out());
    throw;
  }
  wipe(sk);
  wipe(payload);
  return out;
}

PublicKeys load_public_keys_bytes(std::span<const uint8_t> public_file, int threads,
                                  bool allow_insecure) {
  return parse_public(public_file, threads, allow_insecure).keys;
}

EvalKeys load_eval_keys_bytes(std::span<const uint8_t> public_file,
                              std::span<const uint8_t> eval_file, int threads,
                              bool allow_insecure) {
  return parse_eval(eval_file, parse_public(public_file, threads, allow_insecure).keys);
}

OwnerKeys load_owner_keys_bytes(std::span<const uint8_t> secret_file,
                                std::span<const uint8_t> public_file,
                                std::span<const uint8_t> eval_file, const KeySecret& secret,
                                int threads, bool allow_insecure) {
  PublicFile pub = parse_public(public_file, threads, allow_insecure);
  // The key-set id is in the sealed header: a secret.vkey of another key set is named as such
  // before the secret is tried (the header is authenticated when the payload is opened below).
  if (parse_sealed_header(secret_file, kSecretFormat).fingerprint != pub.keys.id)
    other_key_set("secret.vkey", "another public key");
  SealedHeader h;
  const SecretBytes payload = open_payload(secret_file, secret, kSecretFormat, &h);
  if (h.fingerprint != pub.keys.id) other_key_set("secret.vkey", "another public key");
  std::span<const uint8_t> params, sk_bytes;
  try {
    ByteReader r(payload, "secret.vkey payload");
    params = get_section(r, "parameters");
    sk_bytes = get_section(r, "secret key");
    r.expect_end();
  } catch (const MalformedInput& e) {
    throw IntegrityError(std::string("authenticated secret.vkey payload does not parse: ") +
                         e.what());
  }
  if (!std::equal(params.begin(), params.end(), pub.params.begin(), pub.params.end()))
    other_key_set("secret.vkey", "other parameters");
  const ContextPtr ctx = pub.keys.ctx;
  SecretKey sk;
  try {
    sk = load_secret_key(*ctx, sk_bytes);
  } catch (const MalformedInput& e) {
    throw IntegrityError(std::string("authenticated secret.vkey payload does not parse: ") +
                         e.what());
  }
  EvalKeys ev = parse_eval(eval_file, std::move(pub.keys));
  OwnerKeys k;
  k.ctx = std::move(ev.ctx);
  k.id = ev.id;
  k.secret = std::move(sk);
  k.pub = std::move(ev.pub);
  k.relin = std::move(ev.relin);
  k.galois = std::move(ev.galois);
  k.steps = std::move(ev.steps);
  return k;
}

void save_key_dir(const fs::path& dir, const OwnerKeys& keys, const KeySecret& secret) {
  KeyDirBytes files = encode_key_dir(keys, secret);
  std::error_code ec;
  const bool dir_existed = fs::exists(dir, ec);
  if (!dir_existed && !fs::create_directories(dir, ec) && ec)
    throw IoError("cannot create key directory '" + dir.string() + "': " + ec.message());
  const std::pair<const char*, const std::vector<uint8_t>*> order[] = {
      {kSecretKeyFileName, &files.secret},
      {kPublicKeyFileName, &files.pub},
      {kEvalKeyFileName, &files.eval}};
  std::vector<fs::path> created;
  try {
    for (const auto& [name, bytes] : order) {
      const fs::path path = dir / name;
      const bool existed = fs::exists(path, ec);
      write_file_atomic(path, *bytes, bytes == &files.secret ? 0600 : 0644);
      if (!existed) created.push_back(path);
    }
  } catch (...) {
    for (const auto& p : created) fs::remove(p, ec);
    if (!dir_existed) fs::remove(dir, ec);  // only if now empty
    throw;
  }
}

OwnerKeys load_owner_keys(const fs::path& dir, const KeySecret& secret, int threads,
                          bool allow_insecure) {
  const auto s = read_file(dir / kSecretKeyFileName, kMaxSecretKeyFileBytes);
  const auto p = read_file(dir / kPublicKeyFileName, kMaxPublicKeyFileBytes);
  const auto e = read_file(dir / kEvalKeyFileName, kMaxEvalKeyFileBytes);
  return load_owner_keys_bytes(s, p, e, secret, threads, allow_insecure);
}

EvalKeys load_eval_keys(const fs::path& dir, int threads, bool allow_insecure) {
  const auto p = read_file(dir / kPublicKeyFileName, kMaxPublicKeyFileBytes);
  const auto e = read_file(dir / kEvalKeyFileName, kMaxEvalKeyFileBytes);
  return load_eval_keys_bytes(p, e, threads, allow_insecure);
}

PublicKeys load_public_keys(const fs::path& dir, int threads, bool allow_insecure) {
  return load_public_keys_bytes(read_file(dir / kPublicKeyFileName, kMaxPublicKeyFileBytes),
                                threads, allow_insecure);
}

std::vector<int> rotation_steps(const EvalKeys& keys) { return keys.steps; }

}  // namespace veil::he
