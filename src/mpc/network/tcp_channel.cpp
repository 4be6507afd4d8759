#include "veil/mpc/network/tcp_channel.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>

#include "veil/core/error.hpp"
#include "veil/core/memory_budget.hpp"

namespace veil::mpc {
namespace {

using Clock = std::chrono::steady_clock;
constexpr uint32_t kLinkHelloTag = 0xffff0001;
// A connection a listener accepts must show within this time (at most half the io_timeout, plus
// two one-way delays of the emulated link) that it is an expected peer, by its TLS handshake
// with a pinned key and its hello, or it is refused: a stray connection that says nothing
// cannot hold the listener long, nor long enough for a real peer queued behind it, which hears
// nothing until it is accepted, to time out.
constexpr std::chrono::milliseconds kCandidateTime{3000};
// The hello is one byte: a larger first frame on an inbound link is refused before its payload
// is allocated, so a stray connection cannot make the listener allocate much.
constexpr uint64_t kHelloPayload = 1;
constexpr int kRefusalsLogged = 10;

std::string errno_text() { return std::strerror(errno); }

// Waits until fd is readable/writable; false on timeout.
bool wait_fd(int fd, short events, std::chrono::milliseconds timeout) {
  pollfd p{fd, events, 0};
  for (;;) {
    int r = ::poll(&p, 1, static_cast<int>(timeout.count()));
    if (r > 0) return true;
    if (r == 0) return false;
    if (errno != EINTR) throw ProtocolError("tcp: poll failed: " + errno_text());
  }
}

// One socket, two threads: the sender writes queued messages (and heartbeats when idle), the
// receiver reads frames into a queue as soon as they arrive, so neither side's computation can
// stall the other's writes. recv() fails when no frame at all (data or heartbeat) has arrived
// for io_timeout.
class TcpChannel final : public Channel {
 public:
  // `first_data_limit` (> 0): the payload limit of the first data frame (then max_frame_payload).
  TcpChannel(int fd, TcpOptions options, std::unique_ptr<TlsSession> tls,
             uint64_t first_data_limit = 0)
      : fd_(fd),
        opt_(std::move(options)),
        tls_(std::move(tls)),
        first_limit_(first_data_limit),
        max_queued_(opt_.max_queued_bytes) {
    if (opt_.link.enabled())
      uplink_ = opt_.uplink ? opt_.uplink : std::make_shared<Uplink>(opt_.link);
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    timeval tv{};
    tv.tv_sec = opt_.io_timeout.count() / 1000;
    tv.tv_usec = (opt_.io_timeout.count() % 1000) * 1000;
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    last_frame_ = Clock::now();
    sender_ = std::thread([this] { sender_loop(); });
    receiver_ = std::thread([this] { receiver_loop(); });
  }

  ~TcpChannel() override { close(); }

  std::string peer_fingerprint() const override {
    return tls_ ? tls_->peer_fingerprint() : std::string();
  }

  void send(Message m) override {
    uint64_t n = m.payload.size();
    {
      std::lock_guard lock(mu_);
      if (!send_error_.empty()) throw ProtocolError("tcp: " + send_error_);
      if (closed_) throw ProtocolError("tcp: send on a closed link");
      // The emulated link is scheduled here, in queue order (under mu_, so the due times of this
      // link's frames only grow even though the other link shares the uplink), so the sender
      // thread only has to wait for each frame's time.
      Clock::time_point due{};
      if (uplink_) due = uplink_->schedule(kFrameHeaderSize + n, Clock::now());
      out_.push_back({std::move(m), due});
    }
    out_cv_.notify_all();
    count_sent(n);
  }

  Message recv() override { return recv_before(Clock::time_point::max()); }

  void limit_queued(uint64_t bytes) override {
    std::lock_guard lock(mu_);
    max_queued_ = bytes;
  }

  // recv(), which also fails at `end` (a candidate peer that has not said hello by then).
  Message recv_before(Clock::time_point end) {
    std::unique_lock lock(mu_);
    for (;;) {
      if (!in_.empty()) {
        Message m = std::move(in_.front());
        in_.pop_front();
        queued_ -= m.payload.size();
        lock.unlock();
        count_received(m.payload.size());
        return m;
      }
      if (!recv_error_.empty()) throw ProtocolError("tcp: " + recv_error_);
      if (closed_) throw ProtocolError("tcp: recv on a closed link");
      const auto now = Clock::now();
      const auto idle = now - last_frame_;
      if (idle >= opt_.io_timeout)
        throw ProtocolError("tcp: nothing from the peer for " +
                            std::to_string(opt_.io_timeout.count()) + " ms (peer hung?)");
      if (now >= end) throw ProtocolError("tcp: no hello from the peer in time");
      in_cv_.wait_for(lock, std::min<Clock::duration>(opt_.io_timeout - idle, end - now));
    }
  }

  void close() override {
    {
      std::lock_guard lock(mu_);
      if (closed_) return;
      closed_ = true;  // the sender flushes what is queued, then exits
    }
    out_cv_.notify_all();
    in_cv_.notify_all();
    if (sender_.joinable()) sender_.join();
    if (tls_) {
      try {
        std::vector<uint8_t> bye = tls_->close_notify();
        write_all(bye.data(), bye.size());
      } catch (const std::exception&) {
        // best effort: the FIN below ends the link anyway
      }
    }
    ::shutdown(fd_, SHUT_RDWR);  // FIN after the flushed data; wakes the receiver
    if (receiver_.joinable()) receiver_.join();
    ::close(fd_);
  }

 private:
  // Returns false on EOF/error (recorded) or shutdown.
  bool read_exact(uint8_t* p, size_t n) { return tls_ ? read_exact_tls(p, n) : read_raw(p, n); }

  // TLS: decrypted bytes go to p as they come (plain_ holds what one socket read decrypts to).
  // Buffering a whole frame first kept a copy of the largest message of the session, in a
  // vector grown to up to twice its size, for every link.
  bool read_exact_tls(uint8_t* p, size_t n) {
    size_t have = 0;
    for (;;) {
      const size_t k = std::min(n - have, plain_.size() - plain_pos_);
      if (k > 0) std::memcpy(p + have, plain_.data() + plain_pos_, k);
      plain_pos_ += k;
      have += k;
      if (plain_pos_ == plain_.size()) {
        plain_.clear();
        plain_pos_ = 0;
      }
      if (have == n) return true;
      // The peer's close_notify may arrive in the same read as its last records: those are
      // delivered first.
      if (tls_closed_) return fail_recv("peer disconnected (TLS closed)");
      uint8_t buf[65536];
      size_t got = 0;
      if (!tls_primed_) {
        tls_primed_ = true;  // records that arrived with the handshake's last flight
      } else {
        ssize_t r = ::recv(fd_, buf, sizeof(buf), 0);
        if (r == 0) return fail_recv("peer disconnected");
        if (r < 0) {
          if (errno == EINTR) continue;
          return fail_recv("receive failed: " + errno_text());
        }
        got = static_cast<size_t>(r);
      }
      try {
        if (!tls_->decrypt(buf, got, plain_)) tls_closed_ = true;
      } catch (const ProtocolError& e) {
        fail_recv(e.what());
        ::shutdown(fd_, SHUT_RDWR);
        return false;
      }
      if (tls_->has_pending_output()) {
        {
          std::lock_guard lock(mu_);
          flush_ = true;
        }
        out_cv_.notify_all();
      }
    }
  }

  bool read_raw(uint8_t* p, size_t n) {
    size_t done = 0;
    while (done < n) {
      ssize_t r = ::recv(fd_, p + done, n - done, 0);
      if (r == 0) return fail_recv("peer disconnected");
      if (r < 0) {
        if (errno == EINTR) continue;
        return fail_recv("receive failed: " + errno_text());
      }
      done += static_cast<size_t>(r);
    }
    return true;
  }

  bool fail_recv(std::string what) {
    {
      std::lock_guard lock(mu_);
      if (recv_error_.empty()) recv_error_ = std::move(what);
    }
    in_cv_.notify_all();
    return false;
  }

  void receiver_loop() {
    for (;;) {
      uint8_t header[kFrameHeaderSize];
      if (!read_exact(header, sizeof(header))) return;
      FrameHeader h;
      try {
        h = parse_frame_header(std::span<const uint8_t>(header, sizeof(header)),
                               first_limit_ && !got_data_ ? first_limit_ : opt_.max_frame_payload);
      } catch (const MalformedInput& e) {
        fail_recv(std::string("peer sent a malformed frame: ") + e.what());
        ::shutdown(fd_, SHUT_RDWR);
        return;
      }
      if (h.kind == FrameKind::Data) {
        std::string flood;
        {
          std::lock_guard lock(mu_);
          if (!in_.empty() && queued_ + h.length > max_queued_)
            flood = "peer sent " + human_bytes(queued_ + h.length) +
                    " ahead of the protocol, over this party's limit of " +
                    human_bytes(max_queued_);
        }
        if (!flood.empty()) {
          fail_recv(flood);
          ::shutdown(fd_, SHUT_RDWR);
          return;
        }
      }
      Message m;
      m.tag = h.tag;
      m.depth = h.depth;
      m.payload.resize(h.length);  // bounded by max_frame_payload, checked above
      if (!read_exact(m.payload.data(), m.payload.size())) return;
      got_data_ = got_data_ || h.kind == FrameKind::Data;
      {
        std::lock_guard lock(mu_);
        last_frame_ = Clock::now();
        if (h.kind == FrameKind::Data) {
          queued_ += m.payload.size();
          in_.push_back(std::move(m));
        }
      }
      in_cv_.notify_all();
    }
  }

  bool write_all(const uint8_t* p, size_t n) {
    size_t done = 0;
    while (done < n) {
      ssize_t r = ::send(fd_, p + done, n - done, MSG_NOSIGNAL);
      if (r < 0) {
        if (errno == EINTR) continue;
        std::lock_guard lock(mu_);
        send_error_ = (errno == EAGAIN || errno == EWOULDBLOCK)
                          ? "peer stopped reading (send timed out)"
                          : "send failed: " + errno_text();
        return false;
      }
      done += static_cast<size_t>(r);
    }
    return true;
  }

  void sender_loop() {
    Clock::time_point last_write = Clock::now();
    for (;;) {
      Message m;
      bool heartbeat = false;
      {
        std::unique_lock lock(mu_);
        bool flush = false;
        for (;;) {
          const auto now = Clock::now();
          if (!out_.empty() && out_.front().due <= now) {
            m = std::move(out_.front().message);
            out_.pop_front();
            break;
          }
          if (flush_) {
            flush_ = false;
            flush = true;
            break;
          }
          if (out_.empty() && closed_) return;  // closing and flushed
          // Heartbeats are not scheduled on the emulated link: a frame waiting for its
          // delivery time must not silence the socket long enough to trip the peer's timeout.
          const auto heartbeat_at = last_write + opt_.heartbeat;
          if (now >= heartbeat_at) {
            heartbeat = true;
            break;
          }
          out_cv_.wait_until(
              lock, out_.empty() ? heartbeat_at : std::min(heartbeat_at, out_.front().due));
        }
        if (flush) {
          lock.unlock();
          std::vector<uint8_t> wire;
          try {
            tls_->encrypt(nullptr, 0, wire);
          } catch (const ProtocolError& e) {
            return fail_send(e.what());
          }
          if (!write_all(wire.data(), wire.size())) return;
          last_write = Clock::now();
          continue;
        }
      }
      FrameHeader h;
      h.kind = heartbeat ? FrameKind::Heartbeat : FrameKind::Data;
      h.tag = m.tag;
      h.depth = m.depth;
      h.length = m.payload.size();
      uint8_t header[kFrameHeaderSize];
      encode_frame_header(h, std::span<uint8_t, kFrameHeaderSize>(header, kFrameHeaderSize));
      if (tls_) {
        // Encrypted and written in pieces: a whole message at once was held four more times
        // (OpenSSL's buffer, its copy, the wire bytes growing) beside its payload.
        constexpr size_t kPiece = size_t{1} << 20;
        const size_t size = m.payload.size();
        std::vector<uint8_t> wire;
        size_t done = 0;
        do {
          const size_t k = std::min(kPiece, size - done);
          wire.clear();
          try {
            if (done == 0) tls_->encrypt(header, sizeof(header), wire);
            tls_->encrypt(m.payload.data() + done, k, wire);
          } catch (const ProtocolError& e) {
            return fail_send(e.what());
          }
          if (!write_all(wire.data(), wire.size())) return;
          done += k;
        } while (done < size);
      } else if (!write_all(header, sizeof(header)) ||
                 !write_all(m.payload.data(), m.payload.size())) {
        return;
      }
      last_write = Clock::now();
    }
  }

  void fail_send(const std::string& what) {
    std::lock_guard lock(mu_);
    if (send_error_.empty()) send_error_ = what;
  }

  int fd_;
  TcpOptions opt_;
  std::unique_ptr<TlsSession> tls_;
  std::vector<uint8_t> plain_;  // decrypted bytes not yet consumed (receiver thread only)
  size_t plain_pos_ = 0;
  const uint64_t first_limit_;
  bool got_data_ = false;  // receiver thread only
  bool tls_primed_ = false;
  bool tls_closed_ = false;
  bool flush_ = false;  // the TLS engine has records to send (guarded by mu_)
  std::mutex mu_;
  std::condition_variable out_cv_, in_cv_;
  struct Outgoing {
    Message message;
    Clock::time_point due;  // when the emulated link delivers it; the epoch without emulation
  };
  std::deque<Outgoing> out_;
  std::deque<Message> in_;
  uint64_t queued_ = 0;             // payload bytes in in_
  uint64_t max_queued_;             // limit_queued
  std::shared_ptr<Uplink> uplink_;  // null without emulation; thread-safe itself
  bool closed_ = false;
  std::string send_error_, recv_error_;
  Clock::time_point last_frame_;
  std::thread sender_, receiver_;
};

struct AddrInfo {
  addrinfo* list = nullptr;
  ~AddrInfo() {
    if (list) freeaddrinfo(list);
  }
};

AddrInfo resolve(const std::string& host, uint16_t port, bool passive) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = passive ? AI_PASSIVE : 0;
  AddrInfo ai;
  std::string service = std::to_string(port);
  int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &ai.list);
  if (rc != 0) throw IoError("tcp: cannot resolve '" + host + "': " + gai_strerror(rc));
  return ai;
}

// make_tcp_channel with the TLS handshake bounded by `handshake_timeout` and the first data
// frame's payload by `first_data_limit` (0: max_frame_payload).
std::unique_ptr<TcpChannel> open_channel(int fd, const TcpOptions& options, bool tls_client,
                                         std::chrono::milliseconds handshake_timeout,
                                         uint64_t first_data_limit) {
  std::unique_ptr<TlsSession> tls;
  try {
    options.link.validate();
    if (options.uplink && !options.link.enabled())
      throw InvalidArgument("tcp: an emulated uplink was given without a link profile");
    if (options.uplink && options.uplink->profile() != options.link)
      throw InvalidArgument("tcp: the shared uplink's profile differs from the link's");
    if (options.tls) {
      tls = std::make_unique<TlsSession>(*options.tls, tls_client, options.tls_accept);
      tls->handshake(fd, static_cast<int>(handshake_timeout.count()));
    }
  } catch (...) {
    ::close(fd);
    throw;
  }
  return std::make_unique<TcpChannel>(fd, options, std::move(tls), first_data_limit);
}

struct Accepted {
  int fd = -1;
  std::string peer;  // numeric address:port, for the log
};

// One connection from the listening socket within `timeout`; fd -1 if none came.
Accepted accept_within(int listen_fd, std::chrono::milliseconds timeout) {
  Accepted a;
  if (!wait_fd(listen_fd, POLLIN, std::max(timeout, std::chrono::milliseconds(1)))) return a;
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  a.fd = ::accept4(listen_fd, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_CLOEXEC);
  if (a.fd < 0) throw IoError("tcp: accept failed: " + errno_text());
  char host[NI_MAXHOST], serv[NI_MAXSERV];
  if (::getnameinfo(reinterpret_cast<sockaddr*>(&ss), len, host, sizeof(host), serv, sizeof(serv),
                    NI_NUMERICHOST | NI_NUMERICSERV) == 0)
    a.peer = std::string(host) + ":" + serv;
  return a;
}

// An accepted connection becomes the link of the peer it proves to be (a lower role not yet
// linked, authenticated with that role's pinned key under TLS) by `end`; throws otherwise.
std::pair<size_t, std::unique_ptr<Channel>> admit(
    int fd, Role me, const TcpOptions& in, const std::array<std::unique_ptr<Channel>, 3>& links,
    Clock::time_point end) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now());
  auto ch = open_channel(fd, in, /*tls_client=*/false, std::max(left, std::chrono::milliseconds(1)),
                         kHelloPayload);
  Message hello = ch->recv_before(end);
  if (hello.tag != kLinkHelloTag || hello.payload.size() != 1 ||
      hello.payload[0] >= static_cast<uint8_t>(me) || links[hello.payload[0]])
    throw ProtocolError("tcp: not a hello from a party expected here");
  const size_t role = hello.payload[0];
  // With TLS, the role a peer claims must be the one its key is pinned for.
  if (in.tls && ch->peer_fingerprint() != normalize_fingerprint(in.tls->peer_fingerprints[role]))
    throw ProtocolError(std::string("tcp: a peer claimed to be the ") +
                        role_name(static_cast<Role>(role)) +
                        " but authenticated with another party's key");
  return {role, std::move(ch)};
}

}  // namespace

std::unique_ptr<Channel> make_tcp_channel(int fd, const TcpOptions& options, bool tls_client) {
  return open_channel(fd, options, tls_client, options.connect_timeout, 0);
}

TcpListener::TcpListener(int listening_fd) : fd_(listening_fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (::getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len) != 0)
    throw IoError("tcp: not a socket: fd " + std::to_string(listening_fd));
  port_ = ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                         : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  ::fcntl(fd_, F_SETFD, FD_CLOEXEC);
}

TcpListener::TcpListener(const std::string& host, uint16_t port) {
  AddrInfo ai = resolve(host, port, true);
  std::string last = "no address";
  for (addrinfo* a = ai.list; a; a = a->ai_next) {
    int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(fd, a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd, 8) == 0) {
      sockaddr_storage ss{};
      socklen_t len = sizeof(ss);
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
      port_ = ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                             : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
      fd_ = fd;
      return;
    }
    last = errno_text();
    ::close(fd);
  }
  throw IoError("tcp: cannot listen on " + host + ":" + std::to_string(port) + ": " + last);
}

TcpListener::~TcpListener() {
  if (fd_ >= 0) ::close(fd_);
}

std::unique_ptr<Channel> TcpListener::accept(const TcpOptions& options,
                                             std::chrono::milliseconds timeout) {
  const int fd = accept_within(fd_, timeout).fd;
  if (fd < 0)
    throw ProtocolError("tcp: no peer connected within " + std::to_string(timeout.count()) + " ms");
  return make_tcp_channel(fd, options, /*tls_client=*/false);
}

std::unique_ptr<Channel> tcp_connect(const std::string& host, uint16_t port,
                                     const TcpOptions& options) {
  const auto deadline = Clock::now() + options.connect_timeout;
  std::string last;
  for (;;) {
    AddrInfo ai = resolve(host, port, false);
    for (addrinfo* a = ai.list; a; a = a->ai_next) {
      int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
      if (fd < 0) continue;
      if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0)
        return make_tcp_channel(fd, options, /*tls_client=*/true);
      last = errno_text();
      ::close(fd);
    }
    if (Clock::now() >= deadline)
      throw ProtocolError("tcp: cannot connect to " + host + ":" + std::to_string(port) + ": " +
                          last);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

std::array<std::unique_ptr<Channel>, 3> connect_tcp_links(
    Role me, TcpListener* listener, const std::array<PartyAddress, 3>& addrs,
    const TcpOptions& options, const std::function<void(const std::string&)>& log) {
  std::array<std::unique_ptr<Channel>, 3> links;
  // Both links leave through the party's one uplink, as with netem on its interface.
  TcpOptions shared = options;
  if (shared.link.enabled() && !shared.uplink)
    shared.uplink = std::make_shared<Uplink>(shared.link);
  int expected_inbound = 0;
  for (int peer = 0; peer < 3; ++peer) {
    if (peer == static_cast<int>(me)) continue;
    if (peer > static_cast<int>(me)) {
      const PartyAddress& a = addrs[static_cast<size_t>(peer)];
      TcpOptions o = shared;
      if (o.tls) o.tls_accept = {o.tls->peer_fingerprints[static_cast<size_t>(peer)]};
      try {
        links[static_cast<size_t>(peer)] = tcp_connect(a.host, a.port, o);
      } catch (const Error& e) {
        throw ProtocolError(std::string("link to the ") + role_name(static_cast<Role>(peer)) +
                            ": " + e.what());
      }
      links[static_cast<size_t>(peer)]->send({kLinkHelloTag, 0, {static_cast<uint8_t>(me)}});
    } else {
      ++expected_inbound;
    }
  }
  if (expected_inbound > 0 && !listener)
    throw InvalidArgument(std::string("tcp: the ") + role_name(me) + " needs a listener");
  TcpOptions in = shared;
  if (in.tls)
    for (int peer = 0; peer < static_cast<int>(me); ++peer)
      in.tls_accept.push_back(in.tls->peer_fingerprints[static_cast<size_t>(peer)]);
  // Connections that are not an expected peer (a port scan, a stray client, an unknown key) are
  // refused one at a time, each within kCandidateTime, until the expected peers are linked or
  // connect_timeout passed: so they cannot keep the party past its timeout, and hold at most one
  // socket (plus the kernel's backlog) and a frame of kHelloPayload bytes.
  const auto deadline = Clock::now() + options.connect_timeout;
  const auto candidate_time =
      std::min(kCandidateTime, options.io_timeout / 2) + 2 * options.link.one_way_delay;
  int refused = 0;
  for (int linked = 0; linked < expected_inbound;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    Accepted a;
    try {
      // Nothing is accepted once the time is up, however many connections are waiting.
      if (left.count() > 0) a = accept_within(listener->fd(), left);
    } catch (const Error& e) {
      throw ProtocolError(std::string("incoming link: ") + e.what());
    }
    if (a.fd < 0)
      throw ProtocolError(
          "incoming link: tcp: no " + std::string(refused ? "expected " : "") +
          "peer connected within " + std::to_string(options.connect_timeout.count()) + " ms" +
          (refused ? " (" + std::to_string(refused) + " other connections refused)" : ""));
    try {
      auto [role, ch] = admit(a.fd, me, in, links,
                              std::min<Clock::time_point>(deadline, Clock::now() + candidate_time));
      links[role] = std::move(ch);
      ++linked;
    } catch (const Error& e) {
      // A line each for the first few; a flood is only counted (in the timeout's error).
      if (++refused <= kRefusalsLogged && log)
        log(std::string(role_name(me)) + ": refused a connection from " + a.peer + ": " + e.what() +
            (refused == kRefusalsLogged ? " (further ones are not logged)" : ""));
    }
  }
  return links;
}

}  // namespace veil::mpc
