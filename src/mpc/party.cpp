#include "veil/mpc/party.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "veil/core/byte_io.hpp"
#include "veil/core/error.hpp"

namespace veil::mpc {
namespace {

constexpr size_t kHelloSize = 4 + 4 + 1 + 1 + 1 + 1 + 1 + 32 + 32;
constexpr uint32_t kHelloMagic = 0x4f4c4548;  // "HELO"

struct PkeyDeleter {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct PkeyCtxDeleter {
  void operator()(EVP_PKEY_CTX* c) const { EVP_PKEY_CTX_free(c); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyDeleter>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxDeleter>;

PkeyPtr x25519_keygen() {
  PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "X25519"));
  if (!key) throw Error("OpenSSL: X25519 key generation failed");
  return key;
}

std::array<uint8_t, 32> x25519_public(EVP_PKEY* key) {
  std::array<uint8_t, 32> pub{};
  size_t len = pub.size();
  if (EVP_PKEY_get_raw_public_key(key, pub.data(), &len) != 1 || len != 32)
    throw Error("OpenSSL: cannot export an X25519 public key");
  return pub;
}

std::array<uint8_t, 32> x25519_derive(EVP_PKEY* key, const std::array<uint8_t, 32>& peer_pub) {
  PkeyPtr peer(
      EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, nullptr, peer_pub.data(), peer_pub.size()));
  if (!peer) throw ProtocolError("handshake: peer sent an invalid X25519 public key");
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new(key, nullptr));
  std::array<uint8_t, 32> secret{};
  size_t len = secret.size();
  if (!ctx || EVP_PKEY_derive_init(ctx.get()) != 1 ||
      EVP_PKEY_derive_set_peer(ctx.get(), peer.get()) != 1 ||
      EVP_PKEY_derive(ctx.get(), secret.data(), &len) != 1 || len != 32)
    throw ProtocolError("handshake: X25519 key agreement failed (low-order peer key?)");
  return secret;
}

std::array<uint8_t, 32> sha256(const std::vector<uint8_t>& data) {
  std::array<uint8_t, 32> out{};
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_sha256(), nullptr) != 1)
    throw Error("OpenSSL: SHA-256 failed");
  return out;
}

Bytes encode_hello(Role from, Role to, const SessionParams& p, const std::array<uint8_t, 32>& pub) {
  Bytes b(kHelloSize, 0);
  uint8_t* q = b.data();
  store_le<uint32_t>(q, kHelloMagic);
  store_le<uint32_t>(q + 4, kProtocolVersion);
  q[8] = static_cast<uint8_t>(from);
  q[9] = static_cast<uint8_t>(to);
  q[10] = static_cast<uint8_t>(p.frac_bits);
  q[11] = static_cast<uint8_t>(p.drelu.num_lsb_to_ignore);
  q[12] = static_cast<uint8_t>(p.drelu.comparison_bits_ignored);
  std::memcpy(q + 13, p.model_hash.data(), 32);
  std::memcpy(q + 45, pub.data(), 32);
  return b;
}

}  // namespace

void SessionParams::validate() const {
  if (frac_bits < 0 || frac_bits > 30) throw InvalidArgument("mpc: frac_bits must be in [0, 30]");
  int s = drelu.num_lsb_to_ignore, k = drelu.comparison_bits_ignored;
  if (s < 0 || k < 0 || k > 62 || s > k)
    throw InvalidArgument("mpc: approximate DReLU needs 0 <= num_lsb_to_ignore (" +
                          std::to_string(s) + ") <= comparison_bits_ignored (" + std::to_string(k) +
                          ") <= 62");
}

std::array<Role, 2> other_roles(Role r) {
  switch (r) {
    case Role::Client:
      return {Role::Server, Role::Helper};
    case Role::Server:
      return {Role::Client, Role::Helper};
    case Role::Helper:
      return {Role::Client, Role::Server};
  }
  throw InvalidArgument("mpc: bad role");
}

Party::Party(Role role, std::array<std::unique_ptr<Channel>, 3> links, const SessionParams& params)
    : role_(role), links_(std::move(links)), params_(params), private_prg_(random_seed()) {
  params_.validate();
  for (Role peer : other_roles(role_))
    if (!links_[static_cast<size_t>(peer)])
      throw InvalidArgument(std::string("mpc: no link to the ") + role_name(peer));
  try {
    handshake();
  } catch (...) {
    close();
    throw;
  }
}

Party::~Party() { close(); }

void Party::limit_queued(uint64_t bytes) {
  for (auto& l : links_)
    if (l) l->limit_queued(bytes);
}

void Party::close() {
  for (auto& l : links_)
    if (l) l->close();
}

Channel& Party::link(Role peer) {
  auto& l = links_[static_cast<size_t>(peer)];
  if (peer == role_ || !l) throw InvalidArgument("mpc: no link to that role");
  return *l;
}

void Party::handshake() {
  PkeyPtr key = x25519_keygen();
  std::array<uint8_t, 32> pub = x25519_public(key.get());
  for (Role peer : other_roles(role_))
    send(peer, Tag::Hello, encode_hello(role_, peer, params_, pub));
  for (Role peer : other_roles(role_)) {
    Bytes h = recv(peer, Tag::Hello, kHelloSize);
    const uint32_t magic = load_le<uint32_t>(h.data());
    const uint32_t version = load_le<uint32_t>(h.data() + 4);
    std::string who = std::string("handshake with the ") + role_name(peer) + ": ";
    if (magic != kHelloMagic) throw ProtocolError(who + "not a veil MPC hello");
    if (version != kProtocolVersion)
      throw ProtocolError(who + "protocol version " + std::to_string(version) + ", expected " +
                          std::to_string(kProtocolVersion));
    if (h[8] != static_cast<uint8_t>(peer) || h[9] != static_cast<uint8_t>(role_))
      throw ProtocolError(who + "the peer has another role than expected");
    if (h[10] != params_.frac_bits || h[11] != params_.drelu.num_lsb_to_ignore ||
        h[12] != params_.drelu.comparison_bits_ignored)
      throw ProtocolError(who + "parameters differ (peer: frac_bits " + std::to_string(h[10]) +
                          ", lsb ignored " + std::to_string(h[11]) + ", bits ignored " +
                          std::to_string(h[12]) + ")");
    if (std::memcmp(h.data() + 13, params_.model_hash.data(), 32) != 0)
      throw ProtocolError(who + "the peer runs a model with another structure hash");
    std::array<uint8_t, 32> peer_pub;
    std::memcpy(peer_pub.data(), h.data() + 45, 32);
    std::array<uint8_t, 32> secret = x25519_derive(key.get(), peer_pub);
    // Transcript in role order so both ends hash the same bytes.
    const auto& lo_pub = role_ < peer ? pub : peer_pub;
    const auto& hi_pub = role_ < peer ? peer_pub : pub;
    std::string label = "veil/mpc/pair-seed/v1";
    std::vector<uint8_t> t(label.begin(), label.end());
    t.push_back(static_cast<uint8_t>(std::min(role_, peer)));
    t.push_back(static_cast<uint8_t>(std::max(role_, peer)));
    t.insert(t.end(), lo_pub.begin(), lo_pub.end());
    t.insert(t.end(), hi_pub.begin(), hi_pub.end());
    t.insert(t.end(), params_.model_hash.begin(), params_.model_hash.end());
    t.insert(t.end(), secret.begin(), secret.end());
    std::array<uint8_t, 32> digest = sha256(t);
    std::copy_n(digest.begin(), 16, pair_seeds_[static_cast<size_t>(peer)].begin());
    std::fill(secret.begin(), secret.end(), 0);
  }
}

void Party::send(Role to, Tag tag, Bytes payload) {
  Message m;
  m.tag = static_cast<uint32_t>(tag);
  m.depth = clock_;
  m.payload = std::move(payload);
  try {
    link(to).send(std::move(m));
  } catch (const ProtocolError& e) {
    throw ProtocolError(std::string("link to the ") + role_name(to) + ": " + e.what());
  }
}

Bytes Party::recv(Role from, Tag tag, size_t expected_bytes) {
  Message m;
  try {
    m = link(from).recv();
  } catch (const ProtocolError& e) {
    // Name the peer: "the helper: tcp: peer disconnected" is what an operator needs to see.
    throw ProtocolError(std::string("link to the ") + role_name(from) + ": " + e.what());
  }
  if (m.tag != static_cast<uint32_t>(tag))
    throw ProtocolError(std::string("mpc: unexpected message from the ") + role_name(from) +
                        " (tag " + std::to_string(m.tag) + ", expected " +
                        std::to_string(static_cast<uint32_t>(tag)) + ")");
  if (m.payload.size() != expected_bytes)
    throw ProtocolError(std::string("mpc: message from the ") + role_name(from) + " has " +
                        std::to_string(m.payload.size()) + " bytes, expected " +
                        std::to_string(expected_bytes));
  clock_ = std::max(clock_, m.depth + 1);
  return std::move(m.payload);
}

void Party::send_u64(Role to, Tag tag, const std::vector<uint64_t>& values) {
  send(to, tag, to_bytes(values));
}

std::vector<uint64_t> Party::recv_u64(Role from, Tag tag, size_t count) {
  return u64s_from_bytes(recv(from, tag, count * 8));
}

AesCtrPrg Party::shared_prg(Role peer, uint32_t purpose) const {
  if (peer == role_) throw InvalidArgument("mpc: no seed shared with oneself");
  if (op_ >= (uint64_t{1} << 56)) throw Error("mpc: op counter exhausted");
  return AesCtrPrg(pair_seeds_[static_cast<size_t>(peer)], (op_ << 8) | (purpose & 0xff));
}

std::vector<uint64_t> Party::shared_words(Role peer, uint32_t purpose, size_t n) const {
  std::vector<uint64_t> v(n);
  shared_prg(peer, purpose).fill(std::span<uint64_t>(v));
  return v;
}

ChannelStats Party::stats_with(Role peer) const {
  const auto& l = links_[static_cast<size_t>(peer)];
  return l && peer != role_ ? l->stats() : ChannelStats{};
}

ChannelStats Party::stats() const {
  ChannelStats s;
  for (Role peer : other_roles(role_)) {
    ChannelStats t = stats_with(peer);
    s.bytes_sent += t.bytes_sent;
    s.bytes_received += t.bytes_received;
    s.messages_sent += t.messages_sent;
    s.messages_received += t.messages_received;
  }
  return s;
}

}  // namespace veil::mpc
