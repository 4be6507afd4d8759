// The in-process link emulator: profile parsing, the pipelined-link schedule and the uplink a
// party's two links share (checked against hand-computed times), and their effect on real TCP
// links over loopback.
#include "veil/mpc/network/link_profile.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "mpc/test_util.hpp"
#include "tcp_test_util.hpp"
#include "veil/core/error.hpp"
#include "veil/mpc/network/party_config.hpp"
#include "veil/mpc/network/tcp_channel.hpp"

namespace veil::mpc {
namespace {

using testing::LoopbackListeners;
using testing::on_each_role;

using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using Clock = LinkModel::Clock;

// ---------------------------------------------------------------------------------------------
// Parsing

TEST(LinkProfile, NamedProfiles) {
  LinkProfile lan = parse_link_profile("lan");
  EXPECT_EQ(lan.one_way_delay, std::chrono::microseconds(250));
  EXPECT_DOUBLE_EQ(lan.bits_per_second, 1e9);
  EXPECT_DOUBLE_EQ(lan.rtt_ms(), 0.5);
  EXPECT_EQ(lan.spec(), "lan");
  EXPECT_EQ(lan.describe(), "1 Gbit/s, 0.5 ms RTT");

  LinkProfile wan = parse_link_profile("wan");
  EXPECT_EQ(wan.one_way_delay, milliseconds(20));
  EXPECT_DOUBLE_EQ(wan.bits_per_second, 1e8);
  EXPECT_EQ(wan.spec(), "wan");
  EXPECT_EQ(wan.describe(), "100 Mbit/s, 40 ms RTT");

  LinkProfile none = parse_link_profile("none");
  EXPECT_FALSE(none.enabled());
  EXPECT_EQ(none, LinkProfile{});
  EXPECT_EQ(none.spec(), "none");
  EXPECT_EQ(none.describe(), "not shaped");
}

TEST(LinkProfile, RttAndRate) {
  LinkProfile p = parse_link_profile("rtt=20,rate=1000");
  EXPECT_EQ(p.one_way_delay, milliseconds(10));
  EXPECT_DOUBLE_EQ(p.bits_per_second, 1e9);
  EXPECT_EQ(p.spec(), "rtt=20,rate=1000");
  EXPECT_EQ(p.describe(), "1 Gbit/s, 20 ms RTT");

  // Either order; either part may be left out.
  EXPECT_EQ(parse_link_profile("rate=50,rtt=0.5").spec(), "rtt=0.5,rate=50");
  LinkProfile delay_only = parse_link_profile("rtt=5");
  EXPECT_EQ(delay_only.one_way_delay, std::chrono::microseconds(2500));
  EXPECT_EQ(delay_only.bits_per_second, 0);
  EXPECT_EQ(delay_only.spec(), "rtt=5");
  EXPECT_EQ(delay_only.describe(), "unlimited rate, 5 ms RTT");
  LinkProfile rate_only = parse_link_profile("rate=0.5");
  EXPECT_EQ(rate_only.one_way_delay.count(), 0);
  EXPECT_EQ(rate_only.spec(), "rate=0.5");
  EXPECT_EQ(rate_only.describe(), "500 kbit/s, no delay");
  EXPECT_FALSE(parse_link_profile("rtt=0").enabled());

  // The numbers of a named profile are that profile.
  EXPECT_EQ(parse_link_profile("rtt=0.5,rate=1000"), lan_link());
  EXPECT_EQ(parse_link_profile("rtt=40,rate=100").spec(), "wan");
  // Bounds are inclusive.
  EXPECT_NO_THROW(parse_link_profile("rtt=10000,rate=0.1"));
  EXPECT_NO_THROW(parse_link_profile("rate=100000"));

  for (const char* s : {"lan", "wan", "none", "rtt=20,rate=1000", "rtt=0.25", "rate=12.5",
                        "rtt=123.456,rate=7.25", "rtt=1e3,rate=2.5e3"}) {
    LinkProfile a = parse_link_profile(s);
    EXPECT_EQ(parse_link_profile(a.spec()), a) << s << " -> " << a.spec();
  }
  // spec() round-trips exactly, also for numbers whose bit/s value is not a whole number.
  for (int k = 0; k < 3000; ++k) {
    char text[80];
    std::snprintf(text, sizeof(text), "rtt=%.17g,rate=%.17g", k * 3.3337, 0.1 + k * 33.3331);
    LinkProfile a = parse_link_profile(text);
    ASSERT_EQ(parse_link_profile(a.spec()), a) << text << " -> " << a.spec();
  }
}

TEST(LinkProfile, BadStringsAreRejected) {
  for (const char* s : {"",
                        "LAN",
                        "Wan",
                        "fast",
                        "rtt",
                        "rtt=",
                        "=20",
                        "rtt=abc",
                        "rtt=20ms",
                        "rtt= 20",
                        "rtt=-1",
                        "rtt=10000.5",
                        "rtt=nan",
                        "rtt=inf",
                        "rtt=1e400",
                        "rtt=0x10",
                        "rate=0",
                        "rate=-5",
                        "rate=0.05",
                        "rate=100001",
                        "rtt=1,rtt=2",
                        "rate=1,rate=1",
                        "rtt=1,",
                        ",rtt=1",
                        "rtt=1;rate=2",
                        "rtt=1,,rate=2",
                        "jitter=1",
                        "rtt=1,rate=2,loss=3",
                        "none,rtt=1"}) {
    EXPECT_THROW(parse_link_profile(s), InvalidArgument) << "'" << s << "'";
  }
  try {
    parse_link_profile("rtt=20,rate=fast");
    ADD_FAILURE() << "accepted";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("rate"), std::string::npos) << e.what();
  }
}

TEST(LinkProfile, ValidateBoundsHandMadeProfiles) {
  LinkProfile p;
  p.one_way_delay = milliseconds(-1);
  EXPECT_THROW(p.validate(), InvalidArgument);
  p.one_way_delay = milliseconds(5001);  // RTT 10.002 s
  EXPECT_THROW(p.validate(), InvalidArgument);
  p.one_way_delay = milliseconds(5000);
  EXPECT_NO_THROW(p.validate());
  p.bits_per_second = 1000;  // 1 kbit/s: below the minimum
  EXPECT_THROW(p.validate(), InvalidArgument);
  p.bits_per_second = -1e6;
  EXPECT_THROW(p.validate(), InvalidArgument);
}

TEST(LinkProfile, PartyConfigField) {
  nlohmann::json j = {{"version", 1}, {"parties", {{"server", {{"port", 7001}}}}}};
  PartyConfig c = PartyConfig::from_json(j, ".");
  EXPECT_FALSE(c.link.enabled());
  EXPECT_FALSE(c.to_json().contains("link"));  // unchanged files for the default

  j["link"] = "wan";
  c = PartyConfig::from_json(j, ".");
  EXPECT_EQ(c.link, wan_link());
  EXPECT_EQ(c.to_json()["link"], "wan");
  j["link"] = "rtt=20,rate=1000";
  c = PartyConfig::from_json(j, ".");
  EXPECT_EQ(PartyConfig::from_json(c.to_json(), ".").link, c.link);

  for (const nlohmann::json& bad : {nlohmann::json("slow"), nlohmann::json("rtt=-4"),
                                    nlohmann::json(40), nlohmann::json::object()}) {
    j["link"] = bad;
    EXPECT_THROW(PartyConfig::from_json(j, "."), InvalidArgument) << bad.dump();
  }
}

// ---------------------------------------------------------------------------------------------
// The schedule (pure arithmetic)

TEST(LinkModel, TransmissionTime) {
  EXPECT_EQ(LinkModel(parse_link_profile("rate=1")).transmission_time(1250), milliseconds(10));
  EXPECT_EQ(LinkModel(lan_link()).transmission_time(125), nanoseconds(1000));
  // 10 MB at 100 Mbit/s: 0.8 s.
  EXPECT_EQ(LinkModel(wan_link()).transmission_time(10'000'000), milliseconds(800));
  EXPECT_EQ(LinkModel(parse_link_profile("rtt=5")).transmission_time(1 << 30), nanoseconds(0));
}

TEST(LinkModel, FramesArePipelinedNotStopAndWait) {
  // 1 Mbit/s: 1250 bytes take 10 ms; one-way delay 5 ms.
  LinkModel link(parse_link_profile("rtt=10,rate=1"));
  const Clock::time_point t0 = Clock::time_point{} + std::chrono::seconds(100);
  // Three frames queued at once leave back to back and are in flight together: each arrives
  // one transmission time after the previous one, not a round trip later.
  EXPECT_EQ(link.schedule(1250, t0), t0 + milliseconds(15));
  EXPECT_EQ(link.schedule(1250, t0), t0 + milliseconds(25));
  EXPECT_EQ(link.schedule(1250, t0), t0 + milliseconds(35));
  EXPECT_EQ(link.link_free(), t0 + milliseconds(30));
  // Queued while the link is still busy (until t0 + 30 ms): waits for it.
  EXPECT_EQ(link.schedule(1250, t0 + milliseconds(12)), t0 + milliseconds(45));
  // After an idle gap: starts at once; the idle time is not banked as credit.
  EXPECT_EQ(link.schedule(1250, t0 + milliseconds(100)), t0 + milliseconds(115));
  EXPECT_EQ(link.schedule(2500, t0 + milliseconds(100)), t0 + milliseconds(135));
  EXPECT_EQ(link.link_free(), t0 + milliseconds(130));
}

TEST(LinkModel, DelayOnlyAndRateOnly) {
  const Clock::time_point t0 = Clock::time_point{} + std::chrono::seconds(7);
  LinkModel delay(parse_link_profile("rtt=40"));
  for (int i = 0; i < 3; ++i) EXPECT_EQ(delay.schedule(1 << 20, t0), t0 + milliseconds(20));
  EXPECT_EQ(delay.schedule(10, t0 + milliseconds(3)), t0 + milliseconds(23));

  LinkModel rate(parse_link_profile("rate=8"));  // 1 byte per microsecond
  EXPECT_EQ(rate.schedule(1000, t0), t0 + milliseconds(1));
  EXPECT_EQ(rate.schedule(500, t0), t0 + std::chrono::microseconds(1500));
}

TEST(LinkModel, BandwidthAccountingOverABurstAndFifoOrder) {
  // WAN: frames of mixed sizes queued over 10 ms, all while the first (320 ms on the wire) is
  // still being sent, arrive in order, and the last one lands exactly when all bytes have
  // crossed at 100 Mbit/s plus the one-way delay.
  LinkModel link(wan_link());
  const Clock::time_point t0 = Clock::time_point{} + std::chrono::seconds(1);
  const uint64_t sizes[] = {4'000'024, 24, 100'024, 24, 824, 1'000'024};
  uint64_t total = 0;
  Clock::time_point prev{}, last{};
  for (size_t i = 0; i < std::size(sizes); ++i) {
    last = link.schedule(sizes[i], t0 + milliseconds(2 * i));
    EXPECT_GE(last, prev) << i;
    prev = last;
    total += sizes[i];
  }
  // 5'100'944 bytes * 80 ns/byte = 408'075'520 ns, all queued before the link went idle.
  EXPECT_EQ(total, 5'100'944u);
  EXPECT_EQ(last, t0 + nanoseconds(408'075'520) + milliseconds(20));
  // A 10 MB frame on the WAN profile: 0.8 s on the wire + 20 ms.
  LinkModel fresh(wan_link());
  EXPECT_EQ(fresh.schedule(10'000'000, t0), t0 + milliseconds(820));
}

TEST(Uplink, TwoLinksShareOnePipeButNotTheDelay) {
  // A party's two links on one uplink of 1 Mbit/s (1250 bytes take 10 ms), one-way delay 5 ms.
  // Each Uplink::schedule call is one frame on the link named in the comment.
  Uplink up(parse_link_profile("rtt=10,rate=1"));
  const Clock::time_point t0 = Clock::time_point{} + std::chrono::seconds(50);
  // A: on the wire [0, 10), arrives at 15.
  EXPECT_EQ(up.schedule(1250, t0), t0 + milliseconds(15));
  // B, queued at the same moment: waits for A's frame to leave, [10, 20), arrives at 25. On a
  // link of its own it would have arrived at 15.
  EXPECT_EQ(up.schedule(1250, t0), t0 + milliseconds(25));
  // A again at 5: behind both, [20, 40), arrives at 45.
  EXPECT_EQ(up.schedule(2500, t0 + milliseconds(5)), t0 + milliseconds(45));
  // B at 12: [40, 41), arrives at 46 -- while A's frame is still in flight: the delays overlap,
  // only the transmissions are serialised.
  EXPECT_EQ(up.schedule(125, t0 + milliseconds(12)), t0 + milliseconds(46));
  EXPECT_EQ(up.link_free(), t0 + milliseconds(41));
  // After an idle gap neither link has credit: B at 100 goes at once, A just behind it.
  EXPECT_EQ(up.schedule(1250, t0 + milliseconds(100)), t0 + milliseconds(115));
  EXPECT_EQ(up.schedule(1250, t0 + milliseconds(101)), t0 + milliseconds(125));

  // The same frames on two separate pipes (the per-link model): twice the throughput.
  LinkModel a(up.profile()), b(up.profile());
  EXPECT_EQ(a.schedule(1250, t0), t0 + milliseconds(15));
  EXPECT_EQ(b.schedule(1250, t0), t0 + milliseconds(15));
}

TEST(Uplink, DelayOnlyUplinkDoesNotSerialise) {
  // Without a rate the pipe takes no time, so sharing it changes nothing.
  Uplink up(parse_link_profile("rtt=40"));
  const Clock::time_point t0 = Clock::time_point{} + std::chrono::seconds(3);
  EXPECT_EQ(up.schedule(1 << 20, t0), t0 + milliseconds(20));
  EXPECT_EQ(up.schedule(1 << 20, t0), t0 + milliseconds(20));
  EXPECT_EQ(up.schedule(10, t0 + milliseconds(1)), t0 + milliseconds(21));
}

TEST(Uplink, ConcurrentSendersGetDisjointSlotsInOrder) {
  // Two threads (the two links' send() callers) schedule 2000 frames each at the same `now`:
  // every frame gets its own slot (no two share a tx_done: the pipe is serialised across the
  // threads), each thread's frames arrive in its own order, and the pipe ends busy for exactly
  // the sum of all transmissions.
  Uplink up(parse_link_profile("rtt=2,rate=8"));  // 1 byte per microsecond
  const Clock::time_point t0 = Clock::time_point{} + std::chrono::seconds(9);
  constexpr int kFrames = 2000;
  std::vector<Clock::time_point> got[2];
  auto run = [&](int k) {
    for (int i = 0; i < kFrames; ++i) got[k].push_back(up.schedule(1000, t0));
  };
  std::thread t(run, 1);
  run(0);
  t.join();
  std::vector<Clock::time_point> all;
  for (auto& g : got) {
    for (size_t i = 1; i < g.size(); ++i) EXPECT_LT(g[i - 1], g[i]) << i;
    all.insert(all.end(), g.begin(), g.end());
  }
  std::sort(all.begin(), all.end());
  for (size_t i = 0; i < all.size(); ++i)
    ASSERT_EQ(all[i], t0 + milliseconds(static_cast<int64_t>(i) + 1) + milliseconds(1)) << i;
  EXPECT_EQ(up.link_free(), t0 + milliseconds(2 * kFrames));
}

// ---------------------------------------------------------------------------------------------
// Real links over loopback

std::pair<std::unique_ptr<Channel>, std::unique_ptr<Channel>> tcp_pair(const TcpOptions& opt) {
  TcpListener l("127.0.0.1", 0);
  std::unique_ptr<Channel> server;
  std::thread t([&] { server = l.accept(opt, std::chrono::seconds(5)); });
  auto client = tcp_connect("127.0.0.1", l.port(), opt);
  t.join();
  return {std::move(client), std::move(server)};
}

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

TEST(EmulatedTcp, PingPongPaysTheRoundTrip) {
  TcpOptions opt;
  opt.link = parse_link_profile("rtt=60");
  auto [a, b] = tcp_pair(opt);
  const auto t0 = Clock::now();
  for (uint32_t i = 0; i < 4; ++i) {
    a->send({i, 0, {1, 2, 3}});
    Message m = b->recv();
    EXPECT_EQ(m.tag, i);
    b->send({i, 0, {}});
    EXPECT_EQ(a->recv().tag, i);
  }
  EXPECT_GE(seconds_since(t0), 4 * 0.060);
}

TEST(EmulatedTcp, FramesInFlightDoNotWaitForEachOther) {
  TcpOptions opt;
  opt.link = parse_link_profile("rtt=200");  // 100 ms one way
  auto [a, b] = tcp_pair(opt);
  const auto t0 = Clock::now();
  for (uint32_t i = 0; i < 10; ++i) a->send({i, 0, Bytes(1000, 7)});
  for (uint32_t i = 0; i < 10; ++i) EXPECT_EQ(b->recv().tag, i);
  const double s = seconds_since(t0);
  EXPECT_GE(s, 0.100);
  EXPECT_LT(s, 0.600) << "stop-and-wait would take 1 s";  // generous: a busy 2-core machine
}

TEST(EmulatedTcp, RateSerialisesFrames) {
  TcpOptions opt;
  opt.link = parse_link_profile("rate=8");  // 1 MB/s: 25 024-byte frames take 25.024 ms each
  auto [a, b] = tcp_pair(opt);
  const auto t0 = Clock::now();
  for (uint32_t i = 0; i < 4; ++i) a->send({i, 0, Bytes(25'000, 1)});
  for (uint32_t i = 0; i < 4; ++i) EXPECT_EQ(b->recv().payload.size(), 25'000u);
  EXPECT_GE(seconds_since(t0), 4 * 0.025024);
}

TEST(EmulatedTcp, AFrameSlowerThanTheIoTimeoutDoesNotTripIt) {
  // 100 kB at 1 Mbit/s is 0.8 s on the emulated wire, twice the receiver's io_timeout: the
  // sender's heartbeats (not delayed) keep the receiver from declaring the peer hung.
  TcpOptions opt;
  opt.io_timeout = milliseconds(400);
  opt.heartbeat = milliseconds(100);
  opt.link = parse_link_profile("rate=1");
  auto [a, b] = tcp_pair(opt);
  const auto t0 = Clock::now();
  a->send({5, 0, Bytes(100'000, 3)});
  Message m = b->recv();
  EXPECT_EQ(m.tag, 5u);
  EXPECT_EQ(m.payload.size(), 100'000u);
  EXPECT_GE(seconds_since(t0), 0.8);
}

TEST(EmulatedTcp, CloseDeliversQueuedFramesFirst) {
  TcpOptions opt;
  opt.link = parse_link_profile("rtt=100");
  auto [a, b] = tcp_pair(opt);
  a->send({1, 0, {9}});
  a->send({2, 0, {8}});
  a->close();  // flushes: the frames still arrive, after their delay, before the EOF
  EXPECT_EQ(b->recv().tag, 1u);
  EXPECT_EQ(b->recv().tag, 2u);
  EXPECT_THROW(b->recv(), ProtocolError);
}

// The three parties' links, made as `veil mpc party` makes them (connect_tcp_links), on threads.
std::array<std::array<std::unique_ptr<Channel>, 3>, 3> party_links(const TcpOptions& opt) {
  LoopbackListeners listen;
  const std::array<PartyAddress, 3> addrs = listen.addresses();
  std::array<std::array<std::unique_ptr<Channel>, 3>, 3> links;
  auto run = [&](int r) {
    TcpListener* l = listen.of(r);
    links[static_cast<size_t>(r)] = connect_tcp_links(static_cast<Role>(r), l, addrs, opt);
  };
  on_each_role(run);
  return links;
}

TEST(EmulatedTcp, APartysTwoLinksShareItsUplink) {
  // The client sends 4 frames of 25 024 bytes to each peer at 1 MB/s: with one uplink the eight
  // frames leave one after another (200 ms); separately shaped links would take 100 ms. Each
  // link's frames still arrive in order.
  TcpOptions opt;
  opt.link = parse_link_profile("rate=8");
  auto links = party_links(opt);
  Channel& to_server = *links[0][1];
  Channel& to_helper = *links[0][2];
  const auto t0 = Clock::now();
  for (uint32_t i = 0; i < 4; ++i) {
    to_server.send({i, 0, Bytes(25'000, 1)});
    to_helper.send({i, 0, Bytes(25'000, 2)});
  }
  double done[3] = {};
  std::thread helper([&] {
    for (uint32_t i = 0; i < 4; ++i) EXPECT_EQ(links[2][0]->recv().tag, i);
    done[2] = seconds_since(t0);
  });
  for (uint32_t i = 0; i < 4; ++i) EXPECT_EQ(links[1][0]->recv().tag, i);
  done[1] = seconds_since(t0);
  helper.join();
  // Slots alternate server, helper, ...: the server's last frame is the 7th, the helper's the
  // 8th.
  EXPECT_GE(done[1], 7 * 0.025024);
  EXPECT_GE(done[2], 8 * 0.025024);
}

TEST(EmulatedTcp, AGivenUplinkMustMatchTheProfile) {
  TcpOptions opt;
  opt.link = wan_link();
  opt.uplink = std::make_shared<Uplink>(lan_link());
  TcpListener l("127.0.0.1", 0);  // the connect completes in the backlog
  EXPECT_THROW(tcp_connect("127.0.0.1", l.port(), opt), InvalidArgument);
  opt.uplink = std::make_shared<Uplink>(wan_link());
  opt.link = {};
  EXPECT_THROW(tcp_connect("127.0.0.1", l.port(), opt), InvalidArgument);
}

}  // namespace
}  // namespace veil::mpc
