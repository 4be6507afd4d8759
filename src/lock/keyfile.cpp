#include "veil/lock/keyfile.hpp"

#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <memory>

#include "veil/core/byte_io.hpp"
#include "veil/core/error.hpp"
#include "veil/core/io.hpp"
#include "veil/core/random.hpp"

namespace veil::lock {

namespace {

constexpr char kMagic[8] = {'V', 'E', 'I', 'L', 'L', 'O', 'C', 'K'};
constexpr size_t kMaxName = 4096;
constexpr uint32_t kMaxLayers = 1u << 16;
constexpr size_t kEntryBytes = 8 + 4 + 4 + 1;
constexpr uint8_t kExtensionTag = 0x58;  // 'X': the optional extension after the layers
// scrypt memory is 128 * r * N bytes; a tampered header must not make us allocate gigabytes.
constexpr uint64_t kMaxScryptMemory = 256ull << 20;

// Names are u32-length-prefixed strings of at most kMaxName bytes.
void put_name(ByteWriter& w, const std::string& s) {
  if (s.size() > kMaxName) throw InvalidArgument("name too long for a key file: " + s);
  w.str(s);
}

// ---- KDFs and AEAD (OpenSSL) ----

struct KdfFree {
  void operator()(EVP_KDF* k) const { EVP_KDF_free(k); }
  void operator()(EVP_KDF_CTX* c) const { EVP_KDF_CTX_free(c); }
};

std::array<uint8_t, 32> derive_key(const KeySecret& secret, KeySecret::Kind kdf,
                                   const ScryptParams& sp, std::span<const uint8_t> salt) {
  std::array<uint8_t, 32> key{};
  const bool scrypt = kdf == KeySecret::Kind::Passphrase;
  std::unique_ptr<EVP_KDF, KdfFree> alg(
      EVP_KDF_fetch(nullptr, scrypt ? "SCRYPT" : "HKDF", nullptr));
  if (!alg) throw Error("OpenSSL: KDF not available");
  std::unique_ptr<EVP_KDF_CTX, KdfFree> ctx(EVP_KDF_CTX_new(alg.get()));
  if (!ctx) throw Error("OpenSSL: cannot allocate a KDF context");
  auto mat = secret.material();
  std::vector<OSSL_PARAM> params;
  static char kDigest[] = "SHA256";
  static unsigned char kInfo[] = "veil.lock.keyfile.v1";
  uint64_t n = uint64_t{1} << sp.log2_n;
  uint32_t r = sp.r, p = sp.p;
  uint64_t maxmem = kMaxScryptMemory * 2;
  if (scrypt) {
    params.push_back(OSSL_PARAM_construct_octet_string(
        OSSL_KDF_PARAM_PASSWORD, const_cast<uint8_t*>(mat.data()), mat.size()));
    params.push_back(OSSL_PARAM_construct_octet_string(
        OSSL_KDF_PARAM_SALT, const_cast<uint8_t*>(salt.data()), salt.size()));
    params.push_back(OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_N, &n));
    params.push_back(OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_R, &r));
    params.push_back(OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_P, &p));
    params.push_back(OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_MAXMEM, &maxmem));
  } else {
    params.push_back(OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, kDigest, 0));
    params.push_back(OSSL_PARAM_construct_octet_string(
        OSSL_KDF_PARAM_KEY, const_cast<uint8_t*>(mat.data()), mat.size()));
    params.push_back(OSSL_PARAM_construct_octet_string(
        OSSL_KDF_PARAM_SALT, const_cast<uint8_t*>(salt.data()), salt.size()));
    params.push_back(
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, kInfo, sizeof(kInfo) - 1));
  }
  params.push_back(OSSL_PARAM_construct_end());
  if (EVP_KDF_derive(ctx.get(), key.data(), key.size(), params.data()) != 1)
    throw Error(std::string("OpenSSL: ") + (scrypt ? "scrypt" : "HKDF") + " derivation failed");
  return key;
}

struct CipherFree {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};

void check_scrypt(const ScryptParams& sp) {
  if (sp.log2_n < 10 || sp.log2_n > 24 || sp.r < 1 || sp.r > 32 || sp.p < 1 || sp.p > 16 ||
      (uint64_t{128} * sp.r << sp.log2_n) > kMaxScryptMemory)
    throw IntegrityError("key file: scrypt parameters out of the accepted range");
}

}  // namespace

// ---- KeySecret ----

KeySecret KeySecret::from_bytes(std::span<const uint8_t> secret32) {
  if (secret32.size() != 32)
    throw InvalidArgument("a secret must be exactly 32 bytes, got " +
                          std::to_string(secret32.size()));
  KeySecret s;
  s.kind_ = Kind::SecretFile;
  s.material_.assign(secret32.begin(), secret32.end());
  return s;
}

KeySecret KeySecret::from_passphrase(const std::string& passphrase, ScryptParams params) {
  if (passphrase.empty()) throw InvalidArgument("the passphrase is empty");
  if (params.log2_n < 10 || params.log2_n > 24 || params.r < 1 || params.r > 32 || params.p < 1 ||
      params.p > 16 || (uint64_t{128} * params.r << params.log2_n) > kMaxScryptMemory)
    throw InvalidArgument(
        "scrypt parameters out of range (log2 N in [10,24], r in [1,32], "
        "p in [1,16], at most 256 MiB)");
  KeySecret s;
  s.kind_ = Kind::Passphrase;
  s.scrypt_ = params;
  s.material_.assign(passphrase.begin(), passphrase.end());
  return s;
}

KeySecret::KeySecret(const KeySecret& o)
    : kind_(o.kind_), scrypt_(o.scrypt_), material_(o.material_) {}

KeySecret& KeySecret::operator=(const KeySecret& o) {
  if (this != &o) {
    if (!material_.empty()) OPENSSL_cleanse(material_.data(), material_.size());
    kind_ = o.kind_;
    scrypt_ = o.scrypt_;
    material_ = o.material_;
  }
  return *this;
}

KeySecret::~KeySecret() {
  if (!material_.empty()) OPENSSL_cleanse(material_.data(), material_.size());
}

KeySecret load_secret_file(const std::filesystem::path& path, bool create_if_missing) {
  std::error_code ec;
  if (create_if_missing && !std::filesystem::exists(path, ec)) {
    std::array<uint8_t, 32> bytes{};
    secure_random_bytes(bytes);
    // O_EXCL: never replace a secret that appeared meanwhile; 0600: only the owner reads it.
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
      throw IoError("cannot create secret file '" + path.string() + "': " + std::strerror(errno));
    size_t done = 0;
    bool ok = true;
    while (ok && done < bytes.size()) {
      ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0)
        ok = false;
      else
        done += static_cast<size_t>(n);
    }
    ok = ok && ::fsync(fd) == 0;
    ok = (::close(fd) == 0) && ok;
    if (!ok) {
      ::unlink(path.c_str());
      OPENSSL_cleanse(bytes.data(), bytes.size());
      throw IoError("cannot write secret file '" + path.string() + "'");
    }
    KeySecret s = KeySecret::from_bytes(bytes);
    OPENSSL_cleanse(bytes.data(), bytes.size());
    return s;
  }
  auto bytes = read_file(path, 1024);
  if (bytes.size() != 32) {
    OPENSSL_cleanse(bytes.data(), bytes.size());
    throw InvalidArgument("secret file '" + path.string() +
                          "' must hold exactly 32 bytes, it has " + std::to_string(bytes.size()));
  }
  KeySecret s = KeySecret::from_bytes(bytes);
  OPENSSL_cleanse(bytes.data(), bytes.size());
  return s;
}

KeySecret load_passphrase_file(const std::filesystem::path& path, ScryptParams params) {
  std::string text = read_text_file(path, 64 * 1024);
  if (!text.empty() && text.back() == '\n') text.pop_back();
  if (!text.empty() && text.back() == '\r') text.pop_back();
  if (text.empty()) throw InvalidArgument("passphrase file '" + path.string() + "' is empty");
  KeySecret s = KeySecret::from_passphrase(text, params);
  OPENSSL_cleanse(text.data(), text.size());
  return s;
}

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
  if (file.size() < kKeyFileHeaderSize + kKeyFileTagSize)
    throw IntegrityError("key file is truncated (" + std::to_string(file.size()) + " bytes)");
  if (std::memcmp(file.data(), kMagic, sizeof(kMagic)) != 0)
    throw IntegrityError("not a veil key file (bad magic), or the key file was tampered with");
  ByteReader r(file.subspan(8, kKeyFileHeaderSize - 8), "key file header");
  KeyFileHeader h;
  h.version = r.u16("version");
  if (h.version != kKeyFileVersion)
    throw IntegrityError("unsupported key file version " + std::to_string(h.version) +
                         " (expected " + std::to_string(kKeyFileVersion) +
                         "), or the key file was tampered with");
  uint8_t kdf = r.u8("kdf");
  h.scrypt.log2_n = r.u8("scrypt N");
  h.scrypt.r = r.u32("scrypt r");
  h.scrypt.p = r.u32("scrypt p");
  if (kdf == static_cast<uint8_t>(KeySecret::Kind::SecretFile)) {
    if (h.scrypt.log2_n != 0 || h.scrypt.r != 0 || h.scrypt.p != 0)
      throw IntegrityError("key file header is inconsistent (tampered?)");
  } else if (kdf == static_cast<uint8_t>(KeySecret::Kind::Passphrase)) {
    check_scrypt(h.scrypt);
  } else {
    throw IntegrityError("key file names an unknown key-derivation method (tampered?)");
  }
  h.kdf = static_cast<KeySecret::Kind>(kdf);
  r.read(h.salt, "salt");
  r.read(h.nonce, "nonce");
  r.read(h.locked_fingerprint, "fingerprint");
  h.payload_size = r.u64("payload size");
  if (h.payload_size != file.size() - kKeyFileHeaderSize - kKeyFileTagSize)
    throw IntegrityError("key file size does not match its header (truncated or tampered)");
  return h;
}

namespace {

// An AES-256-GCM context (encrypting or decrypting) under the key derived from `secret` with the
// header's KDF, nonce h.nonce, that has taken the header bytes `aad` as associated data. The
// derived key is wiped before this returns.
std::unique_ptr<EVP_CIPHER_CTX, CipherFree> gcm_begin(bool encrypt, const KeySecret& secret,
                                                      const KeyFileHeader& h,
                                                      std::span<const uint8_t> aad) {
  auto aes_key = derive_key(secret, h.kdf, h.scrypt, h.salt);
  std::unique_ptr<EVP_CIPHER_CTX, CipherFree> ctx(EVP_CIPHER_CTX_new());
  const int enc = encrypt ? 1 : 0;
  int len = 0;
  bool ok =
      ctx && EVP_CipherInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr, enc) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, 12, nullptr) == 1 &&
      EVP_CipherInit_ex(ctx.get(), nullptr, nullptr, aes_key.data(), h.nonce.data(), enc) == 1 &&
      EVP_CipherUpdate(ctx.get(), nullptr, &len, aad.data(), static_cast<int>(aad.size())) == 1;
  OPENSSL_cleanse(aes_key.data(), aes_key.size());
  if (!ok) throw Error("OpenSSL: AES-256-GCM init failed");
  return ctx;
}

}  // namespace

std::vector<uint8_t> seal_key(const LockKey& key, const KeySecret& secret) {
  std::vector<uint8_t> payload = encode_key_payload(key);
  KeyFileHeader h;
  h.kdf = secret.kind();
  if (h.kdf == KeySecret::Kind::Passphrase)
    h.scrypt = secret.scrypt();
  else
    h.scrypt = ScryptParams{0, 0, 0};
  secure_random_bytes(h.salt);
  secure_random_bytes(h.nonce);
  ByteWriter w;
  w.bytes(std::string_view(kMagic, sizeof(kMagic)));
  w.u16(kKeyFileVersion);
  w.u8(static_cast<uint8_t>(h.kdf));
  w.u8(h.scrypt.log2_n);
  w.u32(h.scrypt.r);
  w.u32(h.scrypt.p);
  w.bytes(h.salt);
  w.bytes(h.nonce);
  w.bytes(key.locked_fingerprint);
  w.u64(payload.size());
  std::vector<uint8_t> out = std::move(w.out());
  if (out.size() != kKeyFileHeaderSize) throw Error("internal: key file header size");

  if (payload.size() > (1u << 30)) throw Error("internal: key payload too large");
  auto ctx = gcm_begin(true, secret, h, out);
  int len = 0;
  size_t ct_at = out.size();
  out.resize(ct_at + payload.size() + kKeyFileTagSize);
  bool ok = EVP_EncryptUpdate(ctx.get(), out.data() + ct_at, &len, payload.data(),
                              static_cast<int>(payload.size())) == 1;
  int fin = 0;
  ok = ok && EVP_EncryptFinal_ex(ctx.get(), out.data() + ct_at + len, &fin) == 1 &&
       EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kKeyFileTagSize,
                           out.data() + ct_at + payload.size()) == 1;
  OPENSSL_cleanse(payload.data(), payload.size());
  if (!ok) throw Error("OpenSSL: AES-256-GCM encryption failed");
  return out;
}

LockKey open_key(std::span<const uint8_t> file, const KeySecret& secret) {
  KeyFileHeader h = parse_key_file_header(file);
  if (h.kdf != secret.kind())
    throw IntegrityError(h.kdf == KeySecret::Kind::Passphrase
                             ? "the key file is protected by a passphrase: use --passphrase-file"
                             : "the key file is protected by a secret file: use --secret");
  auto ctx = gcm_begin(false, secret, h, file.first(kKeyFileHeaderSize));
  auto ct = file.subspan(kKeyFileHeaderSize, h.payload_size);
  std::vector<uint8_t> tag(file.end() - kKeyFileTagSize, file.end());
  std::vector<uint8_t> plain(ct.size());
  int len = 0;
  bool ok = EVP_DecryptUpdate(ctx.get(), plain.data(), &len, ct.data(),
                              static_cast<int>(ct.size())) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kKeyFileTagSize, tag.data()) == 1;
  int fin = 0;
  // Tag check happens in Final; the plaintext is discarded unless it passes.
  ok = ok && EVP_DecryptFinal_ex(ctx.get(), plain.data() + len, &fin) == 1;
  if (!ok) {
    OPENSSL_cleanse(plain.data(), plain.size());
    throw IntegrityError(
        "cannot open the key file: wrong secret or passphrase, or the key file was tampered with");
  }
  LockKey key;
  try {
    key = decode_key_payload(plain);
  } catch (const MalformedInput& e) {
    OPENSSL_cleanse(plain.data(), plain.size());
    throw IntegrityError(std::string("authenticated key payload does not parse: ") + e.what());
  }
  OPENSSL_cleanse(plain.data(), plain.size());
  if (key.locked_fingerprint != h.locked_fingerprint)
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
