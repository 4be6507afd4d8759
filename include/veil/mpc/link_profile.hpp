// In-process link emulation: a one-way delay and a bandwidth applied by the sender of every TCP
// link (tcp_channel.hpp), so `veil mpc run --link wan` shows what a 100 Mbit/s, 40 ms RTT link
// costs without root, network namespaces or the sch_netem qdisc.
//
// Model (one direction of one link, LinkModel): the link is a pipe that serialises frames at
// `bits_per_second` and then carries them for `one_way_delay`. A frame queued at `now` starts
// transmitting when the pipe is free, so
//
//   tx_done    = max(link_free, now) + wire_bytes * 8 / rate;   link_free = tx_done
//   deliver_at = tx_done + one_way_delay
//
// and the sender thread writes the frame to the socket at deliver_at. Several frames can be in
// flight at once (a pipelined link, not stop-and-wait), frames stay in order, and an idle link
// builds up no credit. wire_bytes is the frame (24-byte header + payload); TCP/IP, Ethernet and
// TLS overheads are not counted. Not modelled: loss, jitter, reordering, TCP slow start and
// congestion control, the receiver's kernel buffers (a real link stalls a sender whose peer
// stops reading; the emulator's queue does not), and a party's two links sharing one uplink
// (each link is shaped on its own).
#pragma once

#include <chrono>
#include <cstdint>
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

// The schedule of one direction of a link. Pure: the caller supplies the clock, so the tests
// can check the arithmetic against hand-computed times.
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

}  // namespace veil::mpc
