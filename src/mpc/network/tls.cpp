#include "veil/mpc/network/tls.hpp"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>
#include <memory>
#include <mutex>

#include "veil/core/error.hpp"
#include "veil/core/hex.hpp"
#include "veil/core/io.hpp"
#include "veil/core/random.hpp"
#include "veil/core/temporaries.hpp"

namespace veil::mpc {
namespace {

std::string openssl_error() {
  unsigned long e = ERR_get_error();
  std::string s;
  while (e != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    if (!s.empty()) s += "; ";
    s += buf;
    e = ERR_get_error();
  }
  return s.empty() ? "unknown OpenSSL error" : s;
}

EVP_PKEY* as_key(void* k) { return static_cast<EVP_PKEY*>(k); }
X509* as_cert(void* c) { return static_cast<X509*>(c); }

std::string key_fingerprint(EVP_PKEY* key) {
  unsigned char* der = nullptr;
  int len = i2d_PUBKEY(key, &der);
  if (len <= 0) throw Error("OpenSSL: cannot encode a public key: " + openssl_error());
  unsigned char digest[32];
  unsigned int dlen = 0;
  int ok = EVP_Digest(der, static_cast<size_t>(len), digest, &dlen, EVP_sha256(), nullptr);
  OPENSSL_free(der);
  if (ok != 1) throw Error("OpenSSL: SHA-256 failed");
  return "sha256:" + veil::to_hex(digest);
}

// The private key as PEM in a memory BIO (the caller frees it).
BIO* pem_bio(EVP_PKEY* key) {
  BIO* bio = BIO_new(BIO_s_mem());
  if (!bio || PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    BIO_free(bio);
    throw Error("OpenSSL: cannot encode the private key: " + openssl_error());
  }
  return bio;
}

}  // namespace

std::string normalize_fingerprint(const std::string& fp) {
  std::string prefix = fp.substr(0, 7);
  for (char& c : prefix) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::string h = prefix == "sha256:" ? fp.substr(7) : fp;
  bool ok = h.size() == 64;
  for (char& c : h) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    ok = ok && std::isxdigit(static_cast<unsigned char>(c));
  }
  if (!ok) throw InvalidArgument("bad key fingerprint '" + fp + "' (expected sha256:<64 hex>)");
  return "sha256:" + h;
}

TlsIdentity::~TlsIdentity() {
  X509_free(as_cert(cert_));
  EVP_PKEY_free(as_key(key_));
}

std::shared_ptr<TlsIdentity> TlsIdentity::generate() {
  std::shared_ptr<TlsIdentity> id(new TlsIdentity());
  id->key_ = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  if (!id->key_) throw Error("OpenSSL: Ed25519 key generation failed: " + openssl_error());
  id->make_certificate();
  return id;
}

std::shared_ptr<TlsIdentity> TlsIdentity::load(const std::filesystem::path& pem) {
  std::vector<uint8_t> bytes = read_file(pem, 1 << 20);
  BIO* bio = BIO_new_mem_buf(bytes.data(), static_cast<int>(bytes.size()));
  if (!bio) throw Error("OpenSSL: out of memory");
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  OPENSSL_cleanse(bytes.data(), bytes.size());
  if (!key)
    throw MalformedInput(pem.string() + ": not a PEM private key (" + openssl_error() + ")");
  std::shared_ptr<TlsIdentity> id(new TlsIdentity());
  id->key_ = key;
  id->make_certificate();
  return id;
}

void TlsIdentity::save(const std::filesystem::path& pem) const {
  BIO* bio = pem_bio(as_key(key_));
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  // Not write_file_atomic: a private key must never exist on disk with a wider mode than 0600,
  // so the temporary file is created 0600 before anything is written to it.
  std::string tmp = pem.string() + ".tmp";
  PendingTemporary pending(tmp);  // removed if a signal ends the process before the rename
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  bool ok = fd >= 0 && ::write(fd, data, static_cast<size_t>(len)) == len && ::fsync(fd) == 0;
  if (fd >= 0) ::close(fd);
  BIO_free(bio);
  if (!ok || ::rename(tmp.c_str(), pem.c_str()) != 0) {
    ::unlink(tmp.c_str());
    throw IoError("cannot write " + pem.string() + ": " + std::strerror(errno));
  }
}

void TlsIdentity::write_pem(int fd) const {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(pem_bio(as_key(key_)), &BIO_free);
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  write_all(fd, std::span(reinterpret_cast<const uint8_t*>(data), static_cast<size_t>(len)),
            "a private key");
}

void TlsIdentity::make_certificate() {
  fingerprint_ = key_fingerprint(as_key(key_));
  // TLS needs a certificate to carry the public key; nothing but the key in it is ever checked.
  X509* x = X509_new();
  X509_NAME* name = X509_NAME_new();
  uint8_t serial[8];
  secure_random_bytes(serial);
  uint64_t sn = 0;
  std::memcpy(&sn, serial, 8);
  bool ok = x && name && X509_set_version(x, 2) == 1 &&
            ASN1_INTEGER_set_uint64(X509_get_serialNumber(x), sn >> 1) == 1 &&
            X509_gmtime_adj(X509_getm_notBefore(x), -3600) &&
            X509_gmtime_adj(X509_getm_notAfter(x), 3600L * 24 * 365) &&
            X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                       reinterpret_cast<const unsigned char*>("veil-mpc"), -1, -1,
                                       0) == 1 &&
            X509_set_subject_name(x, name) == 1 && X509_set_issuer_name(x, name) == 1 &&
            X509_set_pubkey(x, as_key(key_)) == 1;
  X509_NAME_free(name);
  // Ed25519 signs without a separate digest (md = NULL); other key types use SHA-256.
  if (ok) {
    const EVP_MD* md = EVP_PKEY_get_id(as_key(key_)) == EVP_PKEY_ED25519 ? nullptr : EVP_sha256();
    ok = X509_sign(x, as_key(key_), md) > 0;
  }
  if (!ok) {
    X509_free(x);
    throw Error("OpenSSL: cannot build the TLS certificate: " + openssl_error());
  }
  cert_ = x;
}

struct TlsSession::Impl {
  std::mutex mu;
  SSL_CTX* ctx = nullptr;
  SSL* ssl = nullptr;
  BIO* rbio = nullptr;  // wire -> engine
  BIO* wbio = nullptr;  // engine -> wire
  std::vector<std::string> accepted;
  std::string peer_fp;
  std::string rejected;  // why the peer's certificate was refused

  ~Impl() {
    SSL_free(ssl);  // frees the BIOs
    SSL_CTX_free(ctx);
  }

  // Replaces OpenSSL's chain verification: the peer's public key must be pinned.
  static int verify(X509_STORE_CTX* store, void* arg) {
    auto* self = static_cast<Impl*>(arg);
    X509* leaf = X509_STORE_CTX_get0_cert(store);
    EVP_PKEY* pk = leaf ? X509_get0_pubkey(leaf) : nullptr;
    if (!pk) {
      self->rejected = "the peer sent no usable certificate";
      X509_STORE_CTX_set_error(store, X509_V_ERR_CERT_REJECTED);
      return 0;
    }
    std::string fp;
    try {
      fp = key_fingerprint(pk);
    } catch (const std::exception&) {
      X509_STORE_CTX_set_error(store, X509_V_ERR_CERT_REJECTED);
      return 0;
    }
    if (std::find(self->accepted.begin(), self->accepted.end(), fp) == self->accepted.end()) {
      self->rejected = "the peer's key " + fp + " is not the pinned one";
      X509_STORE_CTX_set_error(store, X509_V_ERR_CERT_REJECTED);
      return 0;
    }
    self->peer_fp = fp;
    return 1;
  }

  std::vector<uint8_t> drain() {
    std::vector<uint8_t> out(static_cast<size_t>(BIO_ctrl_pending(wbio)));
    if (!out.empty()) {
      int n = BIO_read(wbio, out.data(), static_cast<int>(out.size()));
      out.resize(n > 0 ? static_cast<size_t>(n) : 0);
    }
    return out;
  }

  std::string reason(const std::string& what) {
    if (!rejected.empty()) return what + ": " + rejected;
    return what + ": " + openssl_error();
  }
};

TlsSession::TlsSession(const TlsSettings& settings, bool is_client,
                       std::vector<std::string> accepted)
    : impl_(std::make_unique<Impl>()) {
  if (!settings.identity) throw InvalidArgument("tls: this party has no key");
  Impl& s = *impl_;
  for (auto& a : accepted)
    if (!a.empty()) s.accepted.push_back(normalize_fingerprint(a));
  if (s.accepted.empty()) throw InvalidArgument("tls: no pinned key for the peer");
  s.ctx = SSL_CTX_new(TLS_method());
  if (!s.ctx) throw Error("OpenSSL: " + openssl_error());
  const TlsIdentity& id = *settings.identity;
  if (SSL_CTX_set_min_proto_version(s.ctx, TLS1_3_VERSION) != 1 ||
      SSL_CTX_set_max_proto_version(s.ctx, TLS1_3_VERSION) != 1 ||
      SSL_CTX_use_certificate(s.ctx, as_cert(id.cert())) != 1 ||
      SSL_CTX_use_PrivateKey(s.ctx, as_key(id.key())) != 1 || SSL_CTX_check_private_key(s.ctx) != 1)
    throw Error("OpenSSL: cannot set up TLS: " + openssl_error());
  SSL_CTX_set_verify(s.ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  SSL_CTX_set_cert_verify_callback(s.ctx, &Impl::verify, &s);
  SSL_CTX_set_options(s.ctx, SSL_OP_NO_TICKET);
  SSL_CTX_set_num_tickets(s.ctx, 0);  // no resumption: nothing arrives after the handshake
  s.ssl = SSL_new(s.ctx);
  s.rbio = BIO_new(BIO_s_mem());
  s.wbio = BIO_new(BIO_s_mem());
  if (!s.ssl || !s.rbio || !s.wbio) throw Error("OpenSSL: " + openssl_error());
  BIO_set_mem_eof_return(s.rbio, -1);  // empty = "want more", not EOF
  SSL_set_bio(s.ssl, s.rbio, s.wbio);
  if (is_client)
    SSL_set_connect_state(s.ssl);
  else
    SSL_set_accept_state(s.ssl);
}

TlsSession::~TlsSession() = default;

namespace {

void send_all(int fd, const std::vector<uint8_t>& bytes,
              std::chrono::steady_clock::time_point end) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t r = ::send(fd, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (r >= 0) {
      done += static_cast<size_t>(r);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK)
      throw ProtocolError(std::string("tls: handshake send failed: ") + std::strerror(errno));
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        end - std::chrono::steady_clock::now());
    pollfd p{fd, POLLOUT, 0};
    if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) == 0)
      throw ProtocolError("tls: handshake timed out");
  }
}

}  // namespace

void TlsSession::handshake(int fd, int timeout_ms) {
  Impl& s = *impl_;
  std::lock_guard lock(s.mu);
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    ERR_clear_error();
    int r = SSL_do_handshake(s.ssl);
    int err = r == 1 ? SSL_ERROR_NONE : SSL_get_error(s.ssl, r);
    std::vector<uint8_t> out = s.drain();  // send our flight (or alert) in any case
    try {
      send_all(fd, out, end);
    } catch (const ProtocolError&) {
      if (err == SSL_ERROR_NONE || err == SSL_ERROR_WANT_READ) throw;
    }
    if (r == 1) break;
    if (err != SSL_ERROR_WANT_READ) throw ProtocolError(s.reason("tls: handshake failed"));
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          end - std::chrono::steady_clock::now());
      pollfd p{fd, POLLIN, 0};
      int pr = left.count() > 0 ? ::poll(&p, 1, static_cast<int>(left.count())) : 0;
      if (pr < 0 && errno == EINTR) continue;
      if (pr <= 0) throw ProtocolError("tls: handshake timed out");
      uint8_t buf[16384];
      ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0)
        throw ProtocolError(
            "tls: the peer closed the connection during the handshake (it refused our key, or "
            "is not speaking TLS)");
      BIO_write(s.rbio, buf, static_cast<int>(n));
      break;
    }
  }
  peer_fingerprint_ = s.peer_fp;
  if (peer_fingerprint_.empty()) throw ProtocolError("tls: the peer was not authenticated");
}

void TlsSession::encrypt(const uint8_t* data, size_t size, std::vector<uint8_t>& wire) {
  Impl& s = *impl_;
  std::lock_guard lock(s.mu);
  size_t done = 0;
  while (done < size) {
    int chunk = static_cast<int>(std::min<size_t>(size - done, 1 << 30));
    ERR_clear_error();
    int r = SSL_write(s.ssl, data + done, chunk);
    if (r <= 0) throw ProtocolError(s.reason("tls: encryption failed"));
    done += static_cast<size_t>(r);
  }
  std::vector<uint8_t> out = s.drain();
  wire.insert(wire.end(), out.begin(), out.end());
}

bool TlsSession::decrypt(const uint8_t* data, size_t size, std::vector<uint8_t>& plain) {
  Impl& s = *impl_;
  std::lock_guard lock(s.mu);
  if (size > 0 && BIO_write(s.rbio, data, static_cast<int>(size)) != static_cast<int>(size))
    throw Error("OpenSSL: buffer write failed");
  bool open = true;
  for (;;) {
    uint8_t buf[65536];
    ERR_clear_error();
    int r = SSL_read(s.ssl, buf, sizeof(buf));
    if (r > 0) {
      plain.insert(plain.end(), buf, buf + r);
      continue;
    }
    int err = SSL_get_error(s.ssl, r);
    if (err == SSL_ERROR_WANT_READ) break;
    if (err == SSL_ERROR_ZERO_RETURN) {
      open = false;
      break;
    }
    throw ProtocolError(s.reason("tls: the peer's data was refused (or it refused ours)"));
  }
  return open;
}

bool TlsSession::has_pending_output() {
  std::lock_guard lock(impl_->mu);
  return BIO_ctrl_pending(impl_->wbio) > 0;
}

std::vector<uint8_t> TlsSession::close_notify() {
  Impl& s = *impl_;
  std::lock_guard lock(s.mu);
  ERR_clear_error();
  SSL_shutdown(s.ssl);
  return s.drain();
}

}  // namespace veil::mpc
