// In-process link emulation: a one-way delay and a bandwidth applied by the sender of every TCP
// link (tcp_channel.hpp), so `veil mpc run --link wan` shows what a 100 Mbit/s, 40 ms RTT link
// costs without root, network namespaces or the sch_netem qdisc.
//
// Model (a party's uplink, LinkModel): the uplink is a pipe that serialises frames at
// `bits_per_second`; each frame then travels for `one_way_delay` to its peer. A frame queued at
// `now` starts transmitting when the pipe is free, so
//
//   tx_done    = max(link_free, now) + wire_bytes * 8 / rate;   link_free = tx_done
//   deliver_at = tx_done + one_way_delay
//
// and the sender thread of the frame's link writes it to the socket at deliver_at. A party's two
// outgoing links share one pipe (Uplink, created by connect_tcp_links), as they do on a real
// network and under `tc netem` on the party's interface (scripts/mpc-netem): a frame to one peer
// waits for the frames already queued to the other, so a party sending to both peers at once
// gets the configured rate in total, not per link. The delay is per frame: frames on both links
// are in flight together. The pipe is first-come first-served by whole frames, whereas a real
// uplink interleaves the two TCP flows' packets: the time to send both is the same, which of the
// two frames arrives first is not. Several frames can be in flight at once (a pipelined link, not
// stop-and-wait), frames stay in order on each link (tx_done only grows), and an idle uplink
// builds up no credit. wire_bytes is the frame (24-byte header + payload); TCP/IP, Ethernet and
// TLS overheads are not counted. Not modelled: loss, jitter, reordering, TCP slow start and
// congestion control, a shared downlink (frames arriving from both peers at once are not
// serialised at the receiver; netem on egress does not do that either), the receiver's kernel
// buffers (a real link stalls a sender whose peer stops reading; the emulator's queue does not),
// and heartbeats, which bypass the pipe (tcp_channel.hpp).
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

namespace veil::mpc {

// Bounds accepted by parse_link_profile() and LinkProfile::validate().
inline constexpr double kMaxLinkRttMs = 10000;       // 10 s
inline constexpr double kMinLinkRateMbitS = 0.1;     // 100 kbit/s
inline constexpr double kMaxLinkRateMbitS = 100000;  // 100 Gbit/s

struct LinkProfile {
  std::chrono::nanoseconds one_way_delay{0};  // RTT / 2
  double bits_per_second = 0;                 // 0 = not rate-limited

  bool enabled() const { return one_way_delay.count() > 0 || bits_per_second > 0; }
  double rtt_ms() const { return static_cast<double>(one_way_delay.count()) / 5e5; }
  double rate_mbit_s() const { return bits_per_second / 1e6; }
  // Canonical text that parse_link_profile() maps back to this profile: "none", "lan", "wan"
  // or "rtt=<ms>,rate=<Mbit/s>" (a part that is zero is left out).
  std::string spec() const;
  // For reports: "1 Gbit/s, 0.5 ms RTT", "not shaped".
  std::string describe() const;
  // Throws InvalidArgument unless 0 <= RTT <= kMaxLinkRttMs and the rate is 0 (unlimited) or
  // within [kMinLinkRateMbitS, kMaxLinkRateMbitS].
  void validate() const;

  friend bool operator==(const LinkProfile&, const LinkProfile&) = default;
};

// 1 Gbit/s, 0.5 ms RTT.
LinkProfile lan_link();
// 100 Mbit/s, 40 ms RTT.
LinkProfile wan_link();

// "lan", "wan", "none", or comma-separated "rtt=<ms>" and "rate=<Mbit/s>" (either may be left
// out: no delay / no rate limit), e.g. "rtt=20,rate=1000". Throws InvalidArgument naming the
// problem.
LinkProfile parse_link_profile(std::string_view spec);

// The schedule of one pipe: a party's uplink, or one direction of a lone link. Pure and not
// thread-safe: the caller supplies the clock, so the tests can check the arithmetic against
// hand-computed times.
class LinkModel {
 public:
  using Clock = std::chrono::steady_clock;

  explicit LinkModel(const LinkProfile& profile) : profile_(profile) {}

  // Time to put `wire_bytes` on the link at the profile's rate (0 when unlimited).
  std::chrono::nanoseconds transmission_time(uint64_t wire_bytes) const;
  // A frame of `wire_bytes` queued at `now`: returns deliver_at (when it has fully reached the
  // peer) and advances link_free.
  Clock::time_point schedule(uint64_t wire_bytes, Clock::time_point now);
  // When the last scheduled frame has left the sender (its tx_done).
  Clock::time_point link_free() const { return link_free_; }
  const LinkProfile& profile() const { return profile_; }

 private:
  LinkProfile profile_;
  Clock::time_point link_free_{};
};

// A party's uplink: one LinkModel shared by all the links the party sends on (held through a
// shared_ptr by each of its TcpChannels). Thread-safe, since the links are scheduled from
// whichever threads call their send(). Each link keeps its frames in order as long as it
// schedules them in queue order (TcpChannel does so under its own lock): tx_done only grows.
class Uplink {
 public:
  using Clock = LinkModel::Clock;

  explicit Uplink(const LinkProfile& profile) : model_(profile) {}

  // LinkModel::schedule on the shared pipe.
  Clock::time_point schedule(uint64_t wire_bytes, Clock::time_point now) {
    std::lock_guard lock(mu_);
    return model_.schedule(wire_bytes, now);
  }
  Clock::time_point link_free() const {
    std::lock_guard lock(mu_);
    return model_.link_free();
  }
  const LinkProfile& profile() const { return model_.profile(); }  // immutable

 private:
  mutable std::mutex mu_;
  LinkModel model_;  // guarded by mu_
};

}  // namespace veil::mpc
