// connect_tcp_links' listening side: connections that are not an expected peer are refused with
// a log line and the listener goes on, within its connect timeout and with bounded resources.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <mutex>
#include <thread>

#include "mpc/test_util.hpp"
#include "tcp_test_util.hpp"
#include "veil/core/error.hpp"
#include "veil/mpc/network/frame.hpp"
#include "veil/mpc/network/tcp_channel.hpp"
#include "veil/mpc/network/tls.hpp"

namespace veil::mpc {
namespace {

using testing::LoopbackListeners;
using testing::on_each_role;
using Clock = std::chrono::steady_clock;

// A socket connected to 127.0.0.1:port (queued in the listener's backlog at once).
int raw_connect(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  return fd;
}

struct SessionLog {
  std::mutex mu;
  std::array<std::vector<std::string>, 3> lines;
  std::function<void(const std::string&)> of(int r) {
    return [this, r](const std::string& s) {
      std::lock_guard lock(mu);
      lines[r].push_back(s);
    };
  }
};

// Links the three parties (options per role) and returns each one's error ("" = linked).
std::array<std::string, 3> link_three(LoopbackListeners& listen,
                                      const std::array<TcpOptions, 3>& opt, SessionLog& log) {
  const std::array<PartyAddress, 3> addrs = listen.addresses();
  std::array<std::string, 3> errors;
  on_each_role([&](int r) {
    try {
      auto links = connect_tcp_links(static_cast<Role>(r), listen.of(r), addrs, opt[r], log.of(r));
      for (int p = 0; p < 3; ++p)
        if (p != r && !links[p]) errors[r] = "no link to " + std::to_string(p);
    } catch (const std::exception& e) {
      errors[r] = e.what();
    }
  });
  return errors;
}

TEST(LinkSetup, StraysQueuedBeforeThePeersAreRefusedOverPlainTcp) {
  LoopbackListeners listen;
  // In the helper's backlog before any party runs: a connection closed at once, and one that
  // announces a 1 GiB frame (refused before anything is allocated for it).
  ::close(raw_connect(listen.helper.port()));
  FrameHeader big;
  big.tag = 0xffff0001;
  big.length = uint64_t{1} << 30;
  uint8_t header[kFrameHeaderSize];
  encode_frame_header(big, std::span<uint8_t, kFrameHeaderSize>(header, kFrameHeaderSize));
  int announcer = raw_connect(listen.helper.port());
  ASSERT_EQ(::send(announcer, header, sizeof(header), 0), static_cast<ssize_t>(sizeof(header)));
  std::array<TcpOptions, 3> opt;
  SessionLog log;
  auto errors = link_three(listen, opt, log);
  ::close(announcer);
  for (int r = 0; r < 3; ++r) EXPECT_EQ(errors[r], "") << r;
  ASSERT_EQ(log.lines[2].size(), 2u);
  EXPECT_NE(log.lines[2][0].find("helper: refused a connection from 127.0.0.1:"), std::string::npos)
      << log.lines[2][0];
  EXPECT_TRUE(log.lines[2][1].ends_with("exceeds the limit of 1")) << log.lines[2][1];
  EXPECT_TRUE(log.lines[1].empty());
}

TEST(LinkSetup, ATlsPeerWithAnUnpinnedKeyIsRefusedAndThePinnedOnesLinked) {
  std::array<std::shared_ptr<TlsIdentity>, 3> ids;
  for (auto& id : ids) id = TlsIdentity::generate();
  std::array<TcpOptions, 3> opt;
  for (int r = 0; r < 3; ++r) {
    auto s = std::make_shared<TlsSettings>();
    s->identity = ids[r];
    for (int p = 0; p < 3; ++p) s->peer_fingerprints[p] = ids[p]->fingerprint();
    opt[r].tls = s;
  }
  LoopbackListeners listen;
  // An intruder with a key of its own, which pins the helper's real key: its handshake fails on
  // the helper's side only. It connects before the parties start.
  std::thread intruder([&] {
    TcpOptions o;
    auto s = std::make_shared<TlsSettings>();
    s->identity = TlsIdentity::generate();
    o.tls = s;
    o.tls_accept = {ids[2]->fingerprint()};
    o.connect_timeout = std::chrono::seconds(20);
    // Under TLS 1.3 the client's handshake may finish before the server checked its key.
    try {
      auto ch = tcp_connect("127.0.0.1", listen.helper.port(), o);
      EXPECT_THROW(ch->recv(), ProtocolError);
    } catch (const ProtocolError&) {
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // queued first
  SessionLog log;
  auto errors = link_three(listen, opt, log);
  intruder.join();
  for (int r = 0; r < 3; ++r) EXPECT_EQ(errors[r], "") << r;
  ASSERT_EQ(log.lines[2].size(), 1u);
  EXPECT_NE(log.lines[2][0].find("is not the pinned one"), std::string::npos) << log.lines[2][0];
}

TEST(LinkSetup, SilentStraysDoNotKeepTheListenerPastItsConnectTimeout) {
  // The server waits for the client that never comes while connections that say nothing keep
  // arriving: it gives up at its connect timeout, not later, and counts what it refused.
  LoopbackListeners listen;
  std::vector<int> silent;
  for (int i = 0; i < 6; ++i) silent.push_back(raw_connect(listen.server.port()));
  TcpOptions opt;
  opt.connect_timeout = std::chrono::milliseconds(1500);
  const std::array<PartyAddress, 3> addrs = listen.addresses();
  std::thread helper([&] {  // takes the server's link to the helper, and nothing else
    try {
      listen.helper.accept(opt, std::chrono::seconds(10));
    } catch (const std::exception&) {
    }
  });
  std::vector<std::string> lines;
  const auto t0 = Clock::now();
  std::string error;
  try {
    connect_tcp_links(Role::Server, &listen.server, addrs, opt,
                      [&](const std::string& s) { lines.push_back(s); });
  } catch (const ProtocolError& e) {
    error = e.what();
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  helper.join();
  for (int fd : silent) ::close(fd);
  EXPECT_NE(error.find("no expected peer connected within 1500 ms"), std::string::npos) << error;
  EXPECT_GE(seconds, 1.4);
  EXPECT_LT(seconds, 1.5 + 1.5) << "the silent connections kept the listener";
  ASSERT_FALSE(lines.empty());
  EXPECT_NE(lines[0].find("no hello from the peer in time"), std::string::npos) << lines[0];
}

}  // namespace
}  // namespace veil::mpc
