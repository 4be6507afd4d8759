// A bidirectional, ordered message link between two parties. send() only queues (a sender
// thread or the peer's queue takes it), so parties overlap sending with computing; recv()
// blocks until the next data message arrives or fails with ProtocolError on disconnect or
// timeout. There are no per-message acknowledgements.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "veil/core/default_init.hpp"

namespace veil::mpc {

struct Message {
  uint32_t tag = 0;
  uint32_t depth = 0;  // the sender's round clock when it sent the message
  Bytes payload;       // not zero-filled when sized (default_init.hpp)
};

// Payload bytes and message counts (frame headers and heartbeats excluded).
struct ChannelStats {
  uint64_t bytes_sent = 0;
  uint64_t bytes_received = 0;
  uint64_t messages_sent = 0;
  uint64_t messages_received = 0;
};

class Channel {
 public:
  virtual ~Channel() = default;
  // Queues a message; throws ProtocolError if the link has already failed.
  virtual void send(Message message) = 0;
  // Next data message; throws ProtocolError on disconnect, timeout or a malformed frame.
  virtual Message recv() = 0;
  // Ends the link: the peer's pending and later recv() fail with ProtocolError.
  virtual void close() = 0;
  // Bounds the payload bytes received but not yet taken by recv(): a peer that sends further
  // ahead of the protocol fails the link with ProtocolError (one message is always taken when
  // none waits). In-memory links, whose peer is this process, ignore it.
  virtual void limit_queued(uint64_t /*bytes*/) {}
  // The peer's authenticated key fingerprint (TLS links); empty for unauthenticated links.
  virtual std::string peer_fingerprint() const { return {}; }

  ChannelStats stats() const;

 protected:
  void count_sent(uint64_t bytes) {
    bytes_sent_ += bytes;
    ++messages_sent_;
  }
  void count_received(uint64_t bytes) {
    bytes_received_ += bytes;
    ++messages_received_;
  }

 private:
  std::atomic<uint64_t> bytes_sent_{0}, bytes_received_{0}, messages_sent_{0},
      messages_received_{0};
};

// Two connected in-memory endpoints (threads + queues), for tests and benchmarks. recv() waits
// at most `timeout`.
std::pair<std::unique_ptr<Channel>, std::unique_ptr<Channel>> make_memory_channel_pair(
    std::chrono::milliseconds timeout = std::chrono::seconds(30));

}  // namespace veil::mpc
