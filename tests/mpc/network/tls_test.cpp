// TLS 1.3 links with pinned keys (tls.hpp over tcp_channel.hpp).
#include "veil/mpc/network/tls.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "mpc/test_util.hpp"
#include "veil/core/error.hpp"
#include "veil/mpc/network/tcp_channel.hpp"

namespace veil::mpc {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;
using testing::TestRng;

struct TlsPair {
  std::unique_ptr<Channel> a, b;  // a connected, b accepted
};

TlsPair tls_pair(const std::shared_ptr<TlsIdentity>& ka, const std::shared_ptr<TlsIdentity>& kb,
                 const std::string& a_pins, const std::string& b_pins, std::string* a_error,
                 std::string* b_error) {
  TcpListener l("127.0.0.1", 0);
  TcpOptions oa, ob;
  auto sa = std::make_shared<TlsSettings>(), sb = std::make_shared<TlsSettings>();
  sa->identity = ka;
  sb->identity = kb;
  oa.tls = sa;
  ob.tls = sb;
  oa.tls_accept = {a_pins};
  ob.tls_accept = {b_pins};
  oa.connect_timeout = ob.connect_timeout = std::chrono::seconds(5);
  TlsPair p;
  std::thread t([&] {
    try {
      p.b = l.accept(ob, std::chrono::seconds(5));
    } catch (const ProtocolError& e) {
      *b_error = e.what();
    }
  });
  try {
    p.a = tcp_connect("127.0.0.1", l.port(), oa);
  } catch (const ProtocolError& e) {
    *a_error = e.what();
  }
  t.join();
  return p;
}

TEST(Tls, PinnedKeysCarryLargeMessagesBothWays) {
  auto ka = TlsIdentity::generate(), kb = TlsIdentity::generate();
  std::string ea, eb;
  TlsPair p = tls_pair(ka, kb, kb->fingerprint(), ka->fingerprint(), &ea, &eb);
  ASSERT_EQ(ea, "");
  ASSERT_EQ(eb, "");
  EXPECT_EQ(p.a->peer_fingerprint(), kb->fingerprint());
  EXPECT_EQ(p.b->peer_fingerprint(), ka->fingerprint());
  TestRng rng;
  Bytes big(3 << 20);
  for (auto& x : big) x = static_cast<uint8_t>(rng.u64());
  // Both directions at once: each side's sender and receiver threads run concurrently.
  std::thread t([&] {
    p.b->send({7, 0, big});
    p.b->send({8, 0, {}});
  });
  p.a->send({9, 0, big});
  Message m1 = p.a->recv(), m2 = p.a->recv(), m3 = p.b->recv();
  t.join();
  EXPECT_EQ(m1.tag, 7u);
  EXPECT_EQ(m1.payload, big);
  EXPECT_EQ(m2.tag, 8u);
  EXPECT_EQ(m3.payload, big);
  // Closing one end is seen by the other as a disconnect (TLS close_notify).
  p.a->close();
  EXPECT_THROW(p.b->recv(), ProtocolError);
}

TEST(Tls, AKeyThatIsNotPinnedIsRefused) {
  auto ka = TlsIdentity::generate(), kb = TlsIdentity::generate(), other = TlsIdentity::generate();
  {
    std::string ea, eb;  // a expects `other`, b presents kb
    tls_pair(ka, kb, other->fingerprint(), ka->fingerprint(), &ea, &eb);
    EXPECT_NE(ea.find("is not the pinned one"), std::string::npos) << ea;
    EXPECT_NE(eb, "");
  }
  {
    std::string ea, eb;  // b expects `other`, a presents ka
    TlsPair p = tls_pair(ka, kb, kb->fingerprint(), other->fingerprint(), &ea, &eb);
    EXPECT_NE(eb.find("is not the pinned one"), std::string::npos) << eb;
    // In TLS 1.3 the client may finish before the server rejects its certificate; then its
    // first receive fails.
    if (ea.empty() && p.a) {
      EXPECT_THROW(p.a->recv(), ProtocolError);
    }
  }
}

TEST(Tls, KeyFilesRoundTrip) {
  TempDir dir;
  auto k = TlsIdentity::generate();
  k->save(dir / "k.pem");
  EXPECT_EQ((fs::status(dir / "k.pem").permissions() & fs::perms::group_read), fs::perms::none);
  EXPECT_EQ(TlsIdentity::load(dir / "k.pem")->fingerprint(), k->fingerprint());
  EXPECT_EQ(normalize_fingerprint("SHA256:" + std::string(64, 'A')),
            "sha256:" + std::string(64, 'a'));
  EXPECT_THROW(normalize_fingerprint("sha256:abc"), InvalidArgument);
  std::ofstream(dir / "junk.pem") << "not a key";
  EXPECT_THROW(TlsIdentity::load(dir / "junk.pem"), MalformedInput);
}

}  // namespace
}  // namespace veil::mpc
