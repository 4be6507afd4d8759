// TCP links between the three party processes. Each link streams length-prefixed frames
// (frame.hpp) with no acknowledgements; a sender thread per link writes queued messages while
// the party computes, and sends a heartbeat frame whenever the link has been idle for
// `heartbeat`. A receiver that sees no frame at all for `io_timeout` (a hung or partitioned
// peer) or an EOF/reset (a peer that died) throws ProtocolError, so a failure stops the other
// two parties promptly: a dead peer at once, a hung one within io_timeout.
//
// With TcpOptions::link set, the sender also emulates a link (link_profile.hpp): each data frame
// is scheduled when it is queued, on the uplink the party's links share (connect_tcp_links) or
// on the link's own pipe, and written when the emulated link would have delivered it.
// Heartbeats bypass that schedule (they are written whenever the socket has been quiet for
// `heartbeat`), so emulated delay never trips the peer's io_timeout.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "veil/mpc/network/channel.hpp"
#include "veil/mpc/network/frame.hpp"
#include "veil/mpc/network/link_profile.hpp"
#include "veil/mpc/network/tls.hpp"
#include "veil/mpc/ring.hpp"

namespace veil::mpc {

// What a peer may have queued at this end before the session knows its memory plan (the
// largest setup message, the model's structure, is at most 64 MiB); run_party then raises it
// to the party's planned peak (memory_plan.hpp), so a peer flooding the link stops the session
// instead of exhausting memory.
inline constexpr uint64_t kDefaultMaxQueuedBytes = uint64_t{256} << 20;

struct TcpOptions {
  std::chrono::milliseconds io_timeout{10000};
  std::chrono::milliseconds heartbeat{2000};
  std::chrono::milliseconds connect_timeout{10000};  // retried until then (peer starting up)
  uint64_t max_frame_payload = kDefaultMaxFramePayload;
  uint64_t max_queued_bytes = kDefaultMaxQueuedBytes;  // Channel::limit_queued
  // TLS 1.3 with pinned keys when set (tls.hpp); plain TCP otherwise. The handshake must finish
  // within connect_timeout.
  std::shared_ptr<const TlsSettings> tls;
  // Fingerprints accepted from the peer of the next connect/accept (connect_tcp_links fills it
  // from tls->peer_fingerprints).
  std::vector<std::string> tls_accept;
  // Emulated link for every frame this end sends (none by default). The TLS handshake and the
  // TCP connect are not delayed.
  LinkProfile link;
  // The pipe this end's frames are scheduled on, shared with the party's other links; its
  // profile must equal `link`. Null: a link made by tcp_connect/accept gets a pipe of its own,
  // and connect_tcp_links creates one for the party's two links.
  std::shared_ptr<Uplink> uplink;
};

// A listening socket (IPv4/IPv6 literal or host name; port 0 picks an ephemeral port).
class TcpListener {
 public:
  TcpListener(const std::string& host, uint16_t port);
  // Adopts a socket that is already bound and listening (e.g. inherited from a parent process
  // that picked the ephemeral port).
  explicit TcpListener(int listening_fd);
  ~TcpListener();
  int fd() const { return fd_; }
  TcpListener(const TcpListener&) = delete;
  TcpListener& operator=(const TcpListener&) = delete;
  uint16_t port() const { return port_; }
  // Waits up to `timeout` for one connection.
  std::unique_ptr<Channel> accept(const TcpOptions& options, std::chrono::milliseconds timeout);

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

std::unique_ptr<Channel> tcp_connect(const std::string& host, uint16_t port,
                                     const TcpOptions& options);
// Wraps a connected socket (takes ownership of fd). With options.tls, runs the TLS handshake
// first (`tls_client`: this end starts it).
std::unique_ptr<Channel> make_tcp_channel(int fd, const TcpOptions& options,
                                          bool tls_client = true);

struct PartyAddress {
  std::string host = "127.0.0.1";
  uint16_t port = 0;
};

// Builds this party's two links. Topology: for each pair the higher role listens and the lower
// connects (client -> server, client -> helper, server -> helper), so the client listens on
// nothing and `listener` may be null for it; the server and helper pass their listener (bound to
// their address). The connecting side announces its role in the first frame. With TLS, every
// link must authenticate with the key pinned for the role it claims. With options.link set, both
// links send through one emulated uplink (options.uplink, or a new one). A connection to the
// listener that is not an expected peer (no hello, a bad one, a role already linked, a key not
// pinned) is refused with one line to `log` and the listener goes on accepting until the
// expected peers are linked or options.connect_timeout passes; each such connection gets a few
// seconds at most, one at a time.
std::array<std::unique_ptr<Channel>, 3> connect_tcp_links(
    Role me, TcpListener* listener, const std::array<PartyAddress, 3>& addrs,
    const TcpOptions& options = {}, const std::function<void(const std::string&)>& log = {});

}  // namespace veil::mpc
