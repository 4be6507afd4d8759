// Networked sessions: the public model structure, the party configuration, TLS links with
// pinned keys and whole parties (run_party) over loopback TCP.
#include "veil/mpc/party_session.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <thread>

#include "test_util.hpp"
#include "veil/core/error.hpp"
#include "veil/data/npy.hpp"
#include "veil/model/fold_batch_norm.hpp"
#include "veil/model/onnx.hpp"
#include "veil/model/zoo.hpp"
#include "veil/mpc/network/tcp_channel.hpp"
#include "veil/mpc/network/tls.hpp"
#include "veil/mpc/public_model.hpp"
#include "veil/nn/executor.hpp"
#include "veil/nn/preprocess.hpp"

namespace veil::mpc {
namespace {

namespace fs = std::filesystem;
using testing::on_each_role;
using testing::TempDir;
using testing::TestRng;

// ---------------------------------------------------------------------------------------------
// Public structure

TEST(PublicModel, RoundTripKeepsTheStructureHashAndDropsTheWeights) {
  for (const char* arch : {"lenet5", "resnet20"}) {
    model::Model m = model::build_arch(arch, {});
    model::fold_batch_norm(m);
    m.metadata["veil.normalize.mean"] = "0.25";
    m.metadata["veil.normalize.std"] = "0.5";
    m.metadata["private.note"] = "not for the client";
    std::vector<uint8_t> bytes = public_model_to_bytes(m);
    model::Model back = public_model_from_bytes(bytes);
    EXPECT_EQ(structure_hash(back.graph), structure_hash(m.graph)) << arch;
    EXPECT_EQ(back.metadata.at("veil.normalize.mean"), "0.25");
    EXPECT_EQ(back.metadata.count("private.note"), 0u);
    int64_t params = 0;
    for (const auto& [name, t] : back.graph.initializers) {
      const Tensor& orig = m.graph.initializers.at(name);
      EXPECT_EQ(t.shape(), orig.shape()) << name;
      if (t.dtype() == DType::Float32) {
        params += t.numel();
        for (int64_t i = 0; i < t.numel(); ++i) ASSERT_EQ(t.data()[i], 0.0f) << name;
      } else {
        EXPECT_EQ(t, orig) << name;  // integer constants are structure
      }
    }
    // The message is far smaller than the weights it describes (they never travel).
    EXPECT_LT(static_cast<int64_t>(bytes.size()), params) << arch;
  }
}

TEST(PublicModel, RejectsMalformedAndOversizedStructures) {
  model::Model m = model::build_arch("lenet5", {});
  nlohmann::json j = public_model_to_json(m);
  std::string text = j.dump();
  std::vector<uint8_t> cut(text.begin(), text.begin() + static_cast<long>(text.size() / 2));
  EXPECT_THROW(public_model_from_bytes(cut), MalformedInput);

  nlohmann::json huge = j;
  huge["initializers"][0]["shape"] = {1 << 30, 1 << 30};
  EXPECT_THROW(public_model_from_json(huge), MalformedInput);

  nlohmann::json dangling = j;
  dangling["nodes"][1]["inputs"][0] = "no_such_value";
  EXPECT_THROW(public_model_from_json(dangling), MalformedInput);

  nlohmann::json wrong = j;
  wrong["format"] = "something-else";
  EXPECT_THROW(public_model_from_json(wrong), MalformedInput);
}

// ---------------------------------------------------------------------------------------------
// Configuration

TEST(PartyConfig, ParsesValidatesAndRoundTrips) {
  nlohmann::json j = {{"version", 1},
                      {"parties",
                       {{"client", {{"host", "127.0.0.1"}}},
                        {"server", {{"host", "127.0.0.1"}, {"port", 7001}, {"key", "server.pem"}}},
                        {"helper", {{"host", "localhost"}, {"port", 7002}}}}},
                      {"model", "m.onnx"},
                      {"input", {{"data", "fashion-mnist"}, {"n", 5}, {"batch", 2}}},
                      {"frac_bits", 14},
                      {"drelu", {{"num_lsb_to_ignore", 5}, {"comparison_bits_ignored", 48}}}};
  PartyConfig c = PartyConfig::from_json(j, "/etc/veil");
  EXPECT_EQ(c.parties[1].port, 7001);
  EXPECT_EQ(c.parties[1].key, "/etc/veil/server.pem");
  EXPECT_EQ(c.model, "/etc/veil/m.onnx");
  EXPECT_EQ(c.input.n, 5);
  EXPECT_EQ(c.batch, 2);
  EXPECT_EQ(c.drelu.comparison_bits_ignored, 48);
  EXPECT_TRUE(c.all_loopback());
  EXPECT_FALSE(c.tls_enabled());  // auto: all on loopback
  PartyConfig again = PartyConfig::from_json(c.to_json(), "/elsewhere");
  EXPECT_EQ(again.to_json(), c.to_json());

  nlohmann::json remote = j;
  remote["parties"]["helper"]["host"] = "10.1.2.3";
  EXPECT_TRUE(PartyConfig::from_json(remote, ".").tls_enabled());  // auto: on off-loopback
  remote["tls"] = "off";
  EXPECT_FALSE(PartyConfig::from_json(remote, ".").tls_enabled());

  for (auto [key, value] : std::vector<std::pair<std::string, nlohmann::json>>{
           {"frac_bits", 40},
           {"tls", "maybe"},
           {"version", 2},
           {"threads", 0},
           {"threads", 1e300},                        // not representable: no UB cast
           {"threads", 2.5},                          // not an integer
           {"version", 4294967297LL},                 // would wrap to 1
           {"io_timeout_ms", 99},                     // too short
           {"io_timeout_ms", 9223372036854775807LL},  // would overflow the deadline
           {"connect_timeout_ms", 86400001}}) {
    nlohmann::json bad = j;
    bad[key] = value;
    EXPECT_THROW(PartyConfig::from_json(bad, "."), InvalidArgument) << key;
  }
  nlohmann::json bad = j;
  bad["drelu"]["num_lsb_to_ignore"] = 50;  // s > k
  EXPECT_THROW(PartyConfig::from_json(bad, "."), InvalidArgument);
  bad = j;
  bad["parties"]["server"]["fingerprint"] = "sha256:xyz";
  EXPECT_THROW(PartyConfig::from_json(bad, "."), InvalidArgument);
}

// ---------------------------------------------------------------------------------------------
// TLS links

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

// ---------------------------------------------------------------------------------------------
// Whole parties over loopback

struct Session {
  std::array<PartyReport, 3> reports;
  std::array<std::string, 3> errors;
};

Session run_three(PartyConfig cfg, std::array<PartyConfig, 3>* per_role = nullptr) {
  TcpListener ls("127.0.0.1", 0), lh("127.0.0.1", 0);
  cfg.parties[1].port = ls.port();
  cfg.parties[2].port = lh.port();
  Session s;
  auto run = [&](int r) {
    PartyConfig c = per_role ? (*per_role)[r] : cfg;
    c.parties[1].port = ls.port();
    c.parties[2].port = lh.port();
    PartyRunOptions o;
    o.listen_fd = r == 1 ? ::dup(ls.fd()) : r == 2 ? ::dup(lh.fd()) : -1;
    try {
      s.reports[r] = run_party(static_cast<Role>(r), c, o);
    } catch (const std::exception& e) {
      s.errors[r] = e.what();
    }
  };
  on_each_role(run);
  return s;
}

class PartySession : public ::testing::Test {
 protected:
  void SetUp() override {
    model::ArchSpec spec;
    spec.height = spec.width = 16;  // keeps the test quick under the sanitizers
    spec.seed = 3;
    model_ = model::build_arch("lenet5", spec);
    model_.metadata["veil.normalize.mean"] = "0.5";
    model_.metadata["veil.normalize.std"] = "0.25";
    model::save_onnx(model_, dir_ / "m.onnx");
    TestRng rng;
    std::vector<float> v(5 * 16 * 16);
    for (auto& x : v) x = static_cast<float>(rng.uniform(0, 1));
    images_ = Tensor::from_floats({5, 1, 16, 16}, v);
    data::write_npy(dir_ / "x.npy", images_);
    cfg_.model = (dir_ / "m.onnx").string();
    cfg_.input.npy = (dir_ / "x.npy").string();
    cfg_.input.n = 0;
    cfg_.batch = 2;  // 2 + 2 + 1
    cfg_.tls = TlsMode::Off;
    cfg_.io_timeout_ms = cfg_.connect_timeout_ms = 5000;
  }

  // Plaintext logits with the model's own preprocessing.
  Tensor plaintext() {
    Tensor x = images_.reshaped(images_.shape());
    nn::normalization_of(model_).apply(x);
    nn::Executor e(model_);
    return e.forward({x})[0];
  }

  // TLS on, each party with a fresh key that the others pin.
  void pin_fresh_keys() {
    cfg_.tls = TlsMode::On;
    for (int r = 0; r < 3; ++r) {
      auto k = TlsIdentity::generate();
      std::string path = (dir_ / ("k" + std::to_string(r) + ".pem")).string();
      k->save(path);
      cfg_.parties[r].key = path;
      cfg_.parties[r].fingerprint = k->fingerprint();
    }
  }

  TempDir dir_;
  model::Model model_;
  Tensor images_;
  PartyConfig cfg_;
};

void expect_matches_plaintext(const Session& s, const Tensor& want) {
  for (const auto& e : s.errors) ASSERT_EQ(e, "");
  const PartyReport& c = s.reports[0];
  ASSERT_EQ(c.logits.shape(), want.shape());
  for (int64_t i = 0; i < want.numel(); ++i)
    EXPECT_NEAR(c.logits.data()[i], want.data()[i], 0.02) << i;
  EXPECT_EQ(c.predictions.size(), 5u);
  EXPECT_EQ(c.batches.size(), 3u);
  EXPECT_EQ(s.reports[1].model_hash, c.model_hash);
  EXPECT_EQ(s.reports[2].model_hash, c.model_hash);
  for (const auto& r : s.reports) {
    EXPECT_GT(r.run_stats.bytes_sent, 0u);
    ASSERT_FALSE(r.layers.empty());
    uint64_t sum = 0;
    for (const auto& l : r.layers) sum += l.bytes_sent;
    EXPECT_EQ(sum, r.run_stats.bytes_sent - 8 * (r.role == Role::Client ? 2 * (1 + 3) : 0));
  }
  EXPECT_TRUE(s.reports[1].logits.empty());
}

TEST_F(PartySession, PlainTcpMatchesPlaintextInference) {
  Session s = run_three(cfg_);
  expect_matches_plaintext(s, plaintext());
  EXPECT_FALSE(s.reports[0].tls);
}

TEST_F(PartySession, TlsWithPinnedKeysMatchesPlaintextInference) {
  pin_fresh_keys();
  Session s = run_three(cfg_);
  expect_matches_plaintext(s, plaintext());
  EXPECT_TRUE(s.reports[0].tls);
}

TEST_F(PartySession, AnImpostorServerIsRefused) {
  pin_fresh_keys();
  std::array<PartyConfig, 3> per_role = {cfg_, cfg_, cfg_};
  auto evil = TlsIdentity::generate();
  evil->save(dir_ / "evil.pem");
  per_role[1].parties[1].key = (dir_ / "evil.pem").string();  // the server uses another key
  per_role[1].parties[1].fingerprint = evil->fingerprint();
  Session s = run_three(cfg_, &per_role);
  EXPECT_NE(s.errors[0], "");
  EXPECT_NE(s.errors[1], "");
  EXPECT_NE(s.errors[2], "");
  // The parties that check the server's key name the reason.
  EXPECT_TRUE(s.errors[0].find("not the pinned one") != std::string::npos ||
              s.errors[2].find("not the pinned one") != std::string::npos)
      << s.errors[0] << " | " << s.errors[2];
}

TEST_F(PartySession, APinnedStructureHashMustMatch) {
  cfg_.model_hash = std::string(64, '0');
  Session s = run_three(cfg_);
  EXPECT_NE(s.errors[1].find("structure hash"), std::string::npos) << s.errors[1];
  EXPECT_NE(s.errors[0], "");
  EXPECT_NE(s.errors[2], "");
}

}  // namespace
}  // namespace veil::mpc
