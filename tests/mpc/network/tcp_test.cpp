#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include "mpc/test_util.hpp"
#include "tcp_test_util.hpp"
#include "veil/core/error.hpp"
#include "veil/mpc/network/tcp_channel.hpp"
#include "veil/mpc/protocols/beaver.hpp"
#include "veil/mpc/protocols/nonlinear.hpp"
#include "veil/mpc/protocols/share.hpp"

namespace veil::mpc {
namespace {

using testing::LoopbackListeners;
using testing::on_each_role;
using testing::TestRng;

// Runs body on three threads, each connected to the others over TCP on 127.0.0.1 with
// ephemeral ports; returns the error message per role ("" when it succeeded).
std::array<std::string, 3> run_tcp_session(const std::function<void(Party&)>& body,
                                           TcpOptions opt = {}) {
  LoopbackListeners listen;
  const std::array<PartyAddress, 3> addrs = listen.addresses();
  std::array<std::string, 3> errors;
  auto run = [&](int r) {
    try {
      TcpListener* l = listen.of(r);
      Party p(static_cast<Role>(r), connect_tcp_links(static_cast<Role>(r), l, addrs, opt), {});
      body(p);
    } catch (const ProtocolError& e) {
      errors[r] = std::string("ProtocolError: ") + e.what();
    } catch (const std::exception& e) {
      errors[r] = std::string("other: ") + e.what();
    }
  };
  on_each_role(run);
  return errors;
}

TEST(Tcp, ThreePartyReluAndConvOverLoopback) {
  TestRng rng;
  Conv2dGeometry g;
  g.in_channels = 2, g.in_h = g.in_w = 5, g.out_channels = 3, g.kernel_h = g.kernel_w = 3;
  RingTensor x = RingTensor::zeros({1, 2, 5, 5}), w({3, 2, 3, 3}, rng.u64s(54));
  for (auto& v : x.data) v = static_cast<uint64_t>(rng.signed_bits(40));
  auto xs = testing::split(x, rng);
  std::array<RingTensor, 3> conv_out, relu_out;
  auto errors = run_tcp_session([&](Party& p) {
    RingTensor mine = xs.of(p);
    relu_out[static_cast<int>(p.role())] = reveal_to_client(p, relu(p, mine));
    RingTensor y =
        conv2d_server_weights(p, mine, p.is(Role::Server) ? w : RingTensor::shape_only(w.shape), g);
    conv_out[static_cast<int>(p.role())] = reveal_to_client(p, y);
  });
  for (const auto& e : errors) ASSERT_EQ(e, "");
  for (size_t i = 0; i < x.data.size(); ++i)
    EXPECT_EQ(relu_out[0].data[i], static_cast<int64_t>(x.data[i]) >= 0 ? x.data[i] : 0);
  std::vector<uint64_t> want(g.output_numel());
  conv2d_u64(g, x.data.data(), w.data.data(), want.data());
  EXPECT_EQ(conv_out[0].data, want);
}

TEST(Tcp, ADisconnectingPartyStopsTheOthersWithProtocolError) {
  RingTensor x = RingTensor::zeros({1000});
  TcpOptions opt;
  opt.io_timeout = std::chrono::seconds(10);
  auto errors = run_tcp_session(
      [&](Party& p) {
        if (p.is(Role::Helper)) {
          p.close();  // the helper dies right after the handshake
          return;
        }
        // The client needs nothing from the helper inside ReLU, but the reveal needs the
        // server, which fails waiting for the helper: the failure cascades.
        reveal_to_client(p, relu(p, x));
      },
      opt);
  EXPECT_NE(errors[0].find("ProtocolError"), std::string::npos) << errors[0];
  EXPECT_NE(errors[1].find("ProtocolError"), std::string::npos) << errors[1];
  EXPECT_EQ(errors[2], "");
}

TEST(Tcp, HandshakeRejectsAnotherModel) {
  LoopbackListeners listen;
  const std::array<PartyAddress, 3> addrs = listen.addresses();
  std::array<std::string, 3> errors;
  auto run = [&](int r) {
    try {
      SessionParams sp;
      sp.model_hash[0] = r == 1 ? 1 : 0;  // the server runs another model
      TcpListener* l = listen.of(r);
      Party p(static_cast<Role>(r), connect_tcp_links(static_cast<Role>(r), l, addrs), sp);
    } catch (const ProtocolError& e) {
      errors[r] = e.what();
    }
  };
  on_each_role(run);
  EXPECT_NE(errors[0].find("structure hash"), std::string::npos) << errors[0];
  EXPECT_NE(errors[2].find("structure hash"), std::string::npos) << errors[2];
}

// A raw socket peer that writes `bytes` and then stays silent.
std::unique_ptr<Channel> channel_fed_by_raw_peer(const std::vector<uint8_t>& bytes, int* raw,
                                                 TcpOptions opt) {
  TcpListener l("127.0.0.1", 0);
  *raw = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(l.port());
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(*raw, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  if (!bytes.empty()) {
    EXPECT_EQ(::send(*raw, bytes.data(), bytes.size(), 0), (ssize_t)bytes.size());
  }
  return l.accept(opt, std::chrono::seconds(5));
}

// recv() on a channel whose raw peer wrote `bytes` must fail naming `why`.
void expect_recv_refuses(const std::vector<uint8_t>& bytes, const TcpOptions& opt,
                         const std::string& why) {
  int raw = -1;
  auto ch = channel_fed_by_raw_peer(bytes, &raw, opt);
  try {
    ch->recv();
    ADD_FAILURE() << "accepted a frame that should fail with: " << why;
  } catch (const ProtocolError& e) {
    EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
  }
  ::close(raw);
}

TEST(Tcp, MalformedAndOversizedFramesAreRejected) {
  TcpOptions opt;
  opt.max_frame_payload = 1 << 20;
  expect_recv_refuses(std::vector<uint8_t>(kFrameHeaderSize, 0x41), opt, "malformed");
  std::vector<uint8_t> h(kFrameHeaderSize);
  encode_frame_header({FrameKind::Data, 1, 0, uint64_t{1} << 40},
                      std::span<uint8_t, kFrameHeaderSize>(h.data(), kFrameHeaderSize));
  expect_recv_refuses(h, opt, "exceeds the limit");
}

// A peer that sends further ahead than the receiver allows (run_party sets the party's memory
// plan as the limit) fails the link before its frames are buffered: frames of 600 KiB against a
// limit of 1 MiB, nothing taken by recv() meanwhile. What arrived within the limit is still
// delivered, in order.
TEST(Tcp, APeerFloodingTheLinkIsStoppedAtTheQueueLimit) {
  TcpOptions opt;
  opt.max_queued_bytes = 1 << 20;
  std::vector<uint8_t> bytes;
  for (uint32_t i = 0; i < 5; ++i) {
    const std::vector<uint8_t> payload(600 << 10, static_cast<uint8_t>(i));
    const std::vector<uint8_t> f =
        encode_frame({FrameKind::Data, i + 1, 0, payload.size()}, payload);
    bytes.insert(bytes.end(), f.begin(), f.end());
  }
  // The raw peer writes from its own thread: 3 MiB may not fit the socket buffers before the
  // channel is accepted and reads.
  TcpListener l("127.0.0.1", 0);
  const int raw = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(l.port());
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(raw, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  std::thread writer([&] {
    for (size_t done = 0; done < bytes.size();) {
      const ssize_t r = ::send(raw, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
      if (r <= 0) return;  // the channel shut the link down
      done += static_cast<size_t>(r);
    }
  });
  auto ch = l.accept(opt, std::chrono::seconds(5));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the receiver reads meanwhile
  uint32_t taken = 0;
  try {
    for (; taken < 5; ++taken) {
      const Message m = ch->recv();
      ASSERT_EQ(m.tag, taken + 1);
      ASSERT_EQ(m.payload.size(), size_t{600} << 10);
    }
    ADD_FAILURE() << "all five frames were queued";
  } catch (const ProtocolError& e) {
    EXPECT_NE(
        std::string(e.what()).find("ahead of the protocol, over this party's limit of 1.0 MiB"),
        std::string::npos)
        << e.what();
  }
  EXPECT_GE(taken, 1u);
  EXPECT_LT(taken, 5u);
  ::shutdown(raw, SHUT_RDWR);
  writer.join();
  ::close(raw);
}

TEST(Tcp, SilentPeerTimesOut) {
  TcpOptions opt;
  opt.io_timeout = std::chrono::milliseconds(300);
  int raw = -1;
  auto ch = channel_fed_by_raw_peer({}, &raw, opt);
  EXPECT_THROW(ch->recv(), ProtocolError);
  ::close(raw);
}

TEST(Tcp, HeartbeatsKeepASlowButLivePeerConnected) {
  TcpOptions opt;
  opt.io_timeout = std::chrono::milliseconds(1000);
  opt.heartbeat = std::chrono::milliseconds(50);
  TcpListener l("127.0.0.1", 0);
  std::unique_ptr<Channel> server;
  std::thread t([&] { server = l.accept(opt, std::chrono::seconds(5)); });
  auto client = tcp_connect("127.0.0.1", l.port(), opt);
  t.join();
  std::thread slow([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(2500));  // "computing"
    client->send({42, 0, {1, 2, 3}});
  });
  Message m = server->recv();
  slow.join();
  EXPECT_EQ(m.tag, 42u);
  EXPECT_EQ(m.payload, (Bytes{1, 2, 3}));
}

}  // namespace
}  // namespace veil::mpc
