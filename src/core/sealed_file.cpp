#include "veil/core/sealed_file.hpp"

#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "veil/core/byte_io.hpp"
#include "veil/core/error.hpp"
#include "veil/core/io.hpp"
#include "veil/core/random.hpp"

namespace veil {

namespace {

// scrypt memory is 128 * r * N bytes; a tampered header must not make us allocate gigabytes.
constexpr uint64_t kMaxScryptMemory = 256ull << 20;

bool scrypt_in_range(const ScryptParams& sp) {
  return sp.log2_n >= 10 && sp.log2_n <= 24 && sp.r >= 1 && sp.r <= 32 && sp.p >= 1 && sp.p <= 16 &&
         (uint64_t{128} * sp.r << sp.log2_n) <= kMaxScryptMemory;
}

// ---- KDFs and AEAD (OpenSSL) ----

struct KdfFree {
  void operator()(EVP_KDF* k) const { EVP_KDF_free(k); }
  void operator()(EVP_KDF_CTX* c) const { EVP_KDF_CTX_free(c); }
};

std::array<uint8_t, 32> derive_key(const KeySecret& secret, const SealedHeader& h,
                                   std::string_view info) {
  std::array<uint8_t, 32> key{};
  const bool scrypt = h.kdf == KeySecret::Kind::Passphrase;
  std::unique_ptr<EVP_KDF, KdfFree> alg(
      EVP_KDF_fetch(nullptr, scrypt ? "SCRYPT" : "HKDF", nullptr));
  if (!alg) throw Error("OpenSSL: KDF not available");
  std::unique_ptr<EVP_KDF_CTX, KdfFree> ctx(EVP_KDF_CTX_new(alg.get()));
  if (!ctx) throw Error("OpenSSL: cannot allocate a KDF context");
  auto mat = secret.material();
  auto salt = std::span<const uint8_t>(h.salt);
  std::vector<OSSL_PARAM> params;
  static char kDigest[] = "SHA256";
  uint64_t n = uint64_t{1} << h.scrypt.log2_n;
  uint32_t r = h.scrypt.r, p = h.scrypt.p;
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
    params.push_back(OSSL_PARAM_construct_octet_string(
        OSSL_KDF_PARAM_INFO, const_cast<char*>(info.data()), info.size()));
  }
  params.push_back(OSSL_PARAM_construct_end());
  if (EVP_KDF_derive(ctx.get(), key.data(), key.size(), params.data()) != 1)
    throw Error(std::string("OpenSSL: ") + (scrypt ? "scrypt" : "HKDF") + " derivation failed");
  return key;
}

struct CipherFree {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};

// An AES-256-GCM context (encrypting or decrypting) under the key derived from `secret` with the
// header's KDF, nonce h.nonce, that has taken the header bytes `aad` as associated data. The
// derived key is wiped before this returns.
std::unique_ptr<EVP_CIPHER_CTX, CipherFree> gcm_begin(bool encrypt, const KeySecret& secret,
                                                      const SealedHeader& h,
                                                      std::string_view kdf_info,
                                                      std::span<const uint8_t> aad) {
  auto aes_key = derive_key(secret, h, kdf_info);
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
  if (!scrypt_in_range(params))
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

// ---- SecretBytes ----

SecretBytes& SecretBytes::operator=(SecretBytes&& o) noexcept {
  if (this != &o) {
    wipe();
    bytes_ = std::move(o.bytes_);
  }
  return *this;
}

void SecretBytes::wipe() noexcept {
  if (!bytes_.empty()) OPENSSL_cleanse(bytes_.data(), bytes_.size());
}

// ---- container ----

SealedHeader parse_sealed_header(std::span<const uint8_t> file, const SealedFormat& format) {
  const std::string name(format.name);
  if (file.size() < kSealedHeaderSize + kSealedTagSize)
    throw IntegrityError(name + " is truncated (" + std::to_string(file.size()) + " bytes)");
  if (std::memcmp(file.data(), format.magic.data(), format.magic.size()) != 0)
    throw IntegrityError("not a veil " + name + " (bad magic), or the " + name +
                         " was tampered with");
  ByteReader r(file.subspan(8, kSealedHeaderSize - 8), name + " header");
  SealedHeader h;
  h.version = r.u16("version");
  if (h.version != format.version)
    throw IntegrityError("unsupported " + name + " version " + std::to_string(h.version) +
                         " (expected " + std::to_string(format.version) + "), or the " + name +
                         " was tampered with");
  uint8_t kdf = r.u8("kdf");
  h.scrypt.log2_n = r.u8("scrypt N");
  h.scrypt.r = r.u32("scrypt r");
  h.scrypt.p = r.u32("scrypt p");
  if (kdf == static_cast<uint8_t>(KeySecret::Kind::SecretFile)) {
    if (h.scrypt.log2_n != 0 || h.scrypt.r != 0 || h.scrypt.p != 0)
      throw IntegrityError(name + " header is inconsistent (tampered?)");
  } else if (kdf == static_cast<uint8_t>(KeySecret::Kind::Passphrase)) {
    if (!scrypt_in_range(h.scrypt))
      throw IntegrityError(name + ": scrypt parameters out of the accepted range");
  } else {
    throw IntegrityError(name + " names an unknown key-derivation method (tampered?)");
  }
  h.kdf = static_cast<KeySecret::Kind>(kdf);
  r.read(h.salt, "salt");
  r.read(h.nonce, "nonce");
  r.read(h.fingerprint, "fingerprint");
  h.payload_size = r.u64("payload size");
  if (h.payload_size != file.size() - kSealedHeaderSize - kSealedTagSize)
    throw IntegrityError(name + " size does not match its header (truncated or tampered)");
  return h;
}

std::vector<uint8_t> seal_payload(std::span<const uint8_t> payload, const KeySecret& secret,
                                  const SealedFormat& format,
                                  std::span<const uint8_t, 32> fingerprint) {
  if (payload.size() > kMaxSealedPayload)
    throw InvalidArgument(std::string(format.name) + ": payload too large to seal");
  SealedHeader h;
  h.kdf = secret.kind();
  if (h.kdf == KeySecret::Kind::Passphrase)
    h.scrypt = secret.scrypt();
  else
    h.scrypt = ScryptParams{0, 0, 0};
  secure_random_bytes(h.salt);
  secure_random_bytes(h.nonce);
  ByteWriter w;
  w.bytes(std::string_view(format.magic.data(), format.magic.size()));
  w.u16(format.version);
  w.u8(static_cast<uint8_t>(h.kdf));
  w.u8(h.scrypt.log2_n);
  w.u32(h.scrypt.r);
  w.u32(h.scrypt.p);
  w.bytes(h.salt);
  w.bytes(h.nonce);
  w.bytes(fingerprint);
  w.u64(payload.size());
  std::vector<uint8_t> out = w.take();
  if (out.size() != kSealedHeaderSize) throw Error("internal: sealed header size");

  auto ctx = gcm_begin(true, secret, h, format.kdf_info, out);
  int len = 0;
  const size_t ct_at = out.size();
  out.resize(ct_at + payload.size() + kSealedTagSize);
  bool ok = EVP_EncryptUpdate(ctx.get(), out.data() + ct_at, &len, payload.data(),
                              static_cast<int>(payload.size())) == 1;
  int fin = 0;
  ok = ok && EVP_EncryptFinal_ex(ctx.get(), out.data() + ct_at + len, &fin) == 1 &&
       EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kSealedTagSize,
                           out.data() + ct_at + payload.size()) == 1;
  if (!ok) throw Error("OpenSSL: AES-256-GCM encryption failed");
  return out;
}

SecretBytes open_payload(std::span<const uint8_t> file, const KeySecret& secret,
                         const SealedFormat& format, SealedHeader* header) {
  const std::string name(format.name);
  SealedHeader h = parse_sealed_header(file, format);
  if (h.kdf != secret.kind())
    throw IntegrityError(h.kdf == KeySecret::Kind::Passphrase
                             ? "the " + name +
                                   " is protected by a passphrase: use --passphrase-file"
                             : "the " + name + " is protected by a secret file: use --secret");
  auto ctx = gcm_begin(false, secret, h, format.kdf_info, file.first(kSealedHeaderSize));
  auto ct = file.subspan(kSealedHeaderSize, h.payload_size);
  std::array<uint8_t, kSealedTagSize> tag{};
  std::copy(file.end() - kSealedTagSize, file.end(), tag.begin());
  SecretBytes plain(ct.size());
  int len = 0;
  bool ok = EVP_DecryptUpdate(ctx.get(), plain.data(), &len, ct.data(),
                              static_cast<int>(ct.size())) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kSealedTagSize, tag.data()) == 1;
  int fin = 0;
  // Tag check happens in Final; the plaintext is discarded (and wiped) unless it passes.
  ok = ok && EVP_DecryptFinal_ex(ctx.get(), plain.data() + len, &fin) == 1;
  if (!ok)
    throw IntegrityError("cannot open the " + name + ": wrong secret or passphrase, or the " +
                         name + " was tampered with");
  if (header) *header = h;
  return plain;
}

}  // namespace veil
