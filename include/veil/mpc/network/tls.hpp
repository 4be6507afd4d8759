// TLS 1.3 (OpenSSL) for the links between the parties, with pinned keys instead of a PKI.
//
// Every party has an Ed25519 key pair (`veil mpc keygen`); the party configuration lists each
// party's public-key fingerprint, "sha256:" + hex SHA-256 of the DER SubjectPublicKeyInfo. At
// start-up a party wraps its key in a throw-away self-signed certificate (TLS needs one) and
// both ends of a link require the other's certificate (mutual authentication); the only check
// is that the certificate's public key has a pinned fingerprint. Chains, names and validity
// dates are deliberately ignored: the pin is the trust anchor.
//
// The TLS engine runs on memory BIOs so that the channel's existing sender and receiver threads
// keep doing the socket I/O: the sender encrypts under a lock and writes the records, the
// receiver reads records and decrypts under the same lock. OpenSSL never touches the socket.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace veil::mpc {

class TlsIdentity {
 public:
  ~TlsIdentity();
  TlsIdentity(const TlsIdentity&) = delete;
  TlsIdentity& operator=(const TlsIdentity&) = delete;

  // Reads a PEM private key (Ed25519, or any key type OpenSSL signs TLS 1.3 with).
  static std::shared_ptr<TlsIdentity> load(const std::filesystem::path& pem);
  // A fresh Ed25519 key (tests, `mpc run --tls`).
  static std::shared_ptr<TlsIdentity> generate();
  // Writes the private key as PEM (mode 0600, atomically).
  void save(const std::filesystem::path& pem) const;
  // Writes the private key as PEM to an open file (e.g. a memory file a party inherits).
  void write_pem(int fd) const;

  const std::string& fingerprint() const { return fingerprint_; }
  void* key() const { return key_; }    // EVP_PKEY*
  void* cert() const { return cert_; }  // X509*

 private:
  TlsIdentity() = default;
  void make_certificate();
  void* key_ = nullptr;
  void* cert_ = nullptr;
  std::string fingerprint_;
};

// Checks and normalises "sha256:<64 hex>" (case-insensitive hex). Throws InvalidArgument.
std::string normalize_fingerprint(const std::string& fp);

struct TlsSettings {
  std::shared_ptr<const TlsIdentity> identity;
  std::array<std::string, 3> peer_fingerprints;  // pinned, indexed by role ("" = unknown)
};

// One TLS connection over memory BIOs. The handshake is driven on the socket directly (before
// the channel's threads start); afterwards encrypt()/decrypt() are thread-safe.
class TlsSession {
 public:
  // `accepted`: the pinned fingerprints this end accepts from its peer.
  TlsSession(const TlsSettings& settings, bool is_client, std::vector<std::string> accepted);
  ~TlsSession();
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;

  // Runs the handshake over the connected socket `fd`, at most `timeout_ms`. Throws
  // ProtocolError (naming a key that is not pinned, a timeout, or OpenSSL's reason).
  void handshake(int fd, int timeout_ms);

  // Plaintext -> TLS records to put on the wire, appended to `wire` together with anything
  // else the engine produced before (in order). size 0 just flushes. Only one thread (the
  // sender) may write the returned bytes to the socket, which keeps the records in order.
  void encrypt(const uint8_t* data, size_t size, std::vector<uint8_t>& wire);
  // Feeds bytes read from the wire; appends any plaintext. Returns false when the peer closed
  // the TLS session (close_notify). Throws ProtocolError on a bad record or an alert.
  bool decrypt(const uint8_t* data, size_t size, std::vector<uint8_t>& plain);
  // The engine has records to send that no encrypt() has taken yet (e.g. a reply the receiver
  // side triggered); the sender should flush with encrypt(nullptr, 0, wire).
  bool has_pending_output();
  // close_notify alert to send before closing the socket.
  std::vector<uint8_t> close_notify();

  const std::string& peer_fingerprint() const { return peer_fingerprint_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string peer_fingerprint_;
};

}  // namespace veil::mpc
