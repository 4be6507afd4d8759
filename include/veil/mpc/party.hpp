// One party's view of a three-party session: its role, the links to the two others, the
// pairwise PRG seeds and the public session parameters.
//
// Session start (run by the constructor over the links): every pair exchanges a Hello carrying
// the protocol version, the parameters, the hash of the model's public structure and a fresh
// X25519 public key; the pair seed is SHA-256 of the Diffie-Hellman secret and the transcript.
// Neither party of a pair chooses the seed alone and the third party (or an eavesdropper on the
// links) cannot compute it. Any mismatch throws ProtocolError.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "veil/core/random.hpp"
#include "veil/mpc/network/channel.hpp"
#include "veil/mpc/ring.hpp"

namespace veil::mpc {

// 2: PrivateCompare digits rotated (not permuted) and its coins drawn in bulk.
// 3: PrivateCompare in chunks of about 2^19 digits (drelu.cpp): one message per chunk, and the
//    client-server coins drawn as beta and rotations first, then multipliers and masks per chunk.
// 4: after the batch plan, every party sends the others its verdict on it (Tag::PlanVerdict:
//    whether its memory holds the largest batch).
inline constexpr uint32_t kProtocolVersion = 4;

// Approximate DReLU knobs, with the semantics of the reference implementation
// (yg320/secure_inference const.py): each party maps its share a to (a >> s) mod 2^(64 - k),
// i.e. the reference's (a >> NUM_OF_LSB_TO_IGNORE) << COMPARISON_NUM_BITS_IGNORED, and the sign
// of that (64 - k)-bit value is computed. The result is the sign of x whenever
// 2^s <= |x| < 2^(63 - k + s); values nearer zero or larger may get either sign.
// s = k = 0 is the exact DReLU. Requires 0 <= s <= k <= 62.
struct DreluParams {
  int num_lsb_to_ignore = 0;        // s
  int comparison_bits_ignored = 0;  // k
  bool exact() const { return num_lsb_to_ignore == 0 && comparison_bits_ignored == 0; }
  int ring_bits() const { return 64 - comparison_bits_ignored; }  // L
};

struct SessionParams {
  int frac_bits = 12;  // fixed-point fractional bits
  DreluParams drelu;
  // SHA-256 of the model's public structure (ops, shapes, attributes; not the weights), so the
  // three parties fail fast if they were started on different models. Zero when unused.
  std::array<uint8_t, 32> model_hash{};

  void validate() const;  // throws InvalidArgument
};

// Message tags: the receiver checks them, so a desynchronised peer is a ProtocolError.
enum class Tag : uint32_t {
  Hello = 1,
  Reveal = 2,
  MulCorrection = 3,
  MulOpen = 4,
  LinearCorrection = 5,
  LinearOpenX = 6,
  LinearOpenW = 7,
  CompareBits = 8,
  CompareOpen = 9,
  CompareDigits = 10,
  GateShares = 11,
  Goodbye = 12,
  Plan = 13,         // the client's batch plan (party_session.hpp)
  PlanVerdict = 14,  // each party's verdict on it: empty, or why it refuses
};

class Party {
 public:
  // `links[peer]` is the link to each other role (links[role] is unused and may be null).
  // Runs the handshake; throws ProtocolError if the peers disagree.
  Party(Role role, std::array<std::unique_ptr<Channel>, 3> links, const SessionParams& params);
  ~Party();
  Party(const Party&) = delete;
  Party& operator=(const Party&) = delete;

  Role role() const { return role_; }
  bool is(Role r) const { return role_ == r; }
  const SessionParams& params() const { return params_; }
  int frac_bits() const { return params_.frac_bits; }

  // --- messages -------------------------------------------------------------------------
  void send(Role to, Tag tag, Bytes payload);
  // Receives the next message from `from`; throws ProtocolError unless its tag is `tag` and
  // its size is `expected_bytes`.
  Bytes recv(Role from, Tag tag, size_t expected_bytes);
  void send_u64(Role to, Tag tag, const std::vector<uint64_t>& values);
  std::vector<uint64_t> recv_u64(Role from, Tag tag, size_t count);

  // --- correlated randomness --------------------------------------------------------------
  // Every interactive protocol starts with begin_op(); all three parties call the same
  // protocols in the same order, so op ids agree and each op draws from fresh PRG streams.
  uint64_t begin_op() { return ++op_; }
  // The AES-CTR stream `purpose` of the current op under the seed shared with `peer`.
  AesCtrPrg shared_prg(Role peer, uint32_t purpose) const;
  // The first n words of that stream (masks and shares both sides of a pair draw alike).
  std::vector<uint64_t> shared_words(Role peer, uint32_t purpose, size_t n) const;
  // Randomness known to this party only.
  AesCtrPrg& private_prg() { return private_prg_; }

  // --- accounting ---------------------------------------------------------------------------
  // Logical round clock: a message sent at clock t is received at t + 1 (Lamport). After a
  // protocol, the largest clock of the three parties is its number of sequential rounds.
  uint32_t clock() const { return clock_; }
  ChannelStats stats() const;  // summed over both links
  // DReLU (sign) evaluations so far: every protocol that compares counts its comparisons here
  // (ReLU, block ReLU, MaxPool, LeakyRelu, Clip, ...), so cost reports need no per-op formula.
  uint64_t drelus() const { return drelus_; }
  void count_drelus(uint64_t n) { drelus_ += n; }
  ChannelStats stats_with(Role peer) const;

  // Channel::limit_queued on both links.
  void limit_queued(uint64_t bytes);

  // Closes both links (the peers' pending receives fail). Also done by the destructor.
  void close();

 private:
  Channel& link(Role peer);
  void handshake();

  Role role_;
  std::array<std::unique_ptr<Channel>, 3> links_;
  SessionParams params_;
  std::array<Seed, 3> pair_seeds_{};
  AesCtrPrg private_prg_;
  uint64_t op_ = 0;
  uint32_t clock_ = 0;
  uint64_t drelus_ = 0;
};

// The two roles other than `r`.
std::array<Role, 2> other_roles(Role r);

}  // namespace veil::mpc
