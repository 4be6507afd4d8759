// Whole parties (run_party) over loopback TCP, with and without TLS.
#include "veil/mpc/party_session.hpp"

#include <gtest/gtest.h>

#include <thread>

#include "test_util.hpp"
#include "veil/core/error.hpp"
#include "veil/core/memory_budget.hpp"
#include "veil/data/npy.hpp"
#include "veil/model/onnx.hpp"
#include "veil/model/zoo.hpp"
#include "veil/mpc/memory_plan.hpp"
#include "veil/mpc/network/tcp_channel.hpp"
#include "veil/mpc/network/tls.hpp"
#include "veil/nn/executor.hpp"
#include "veil/nn/preprocess.hpp"

namespace veil::mpc {
namespace {

using testing::on_each_role;
using testing::TempDir;
using testing::TestRng;

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
  // Fixed-point error at f = 12 through five layers, logits up to ~10: the largest difference
  // over 300 sessions was 0.016, and one in a clean-clone run reached 0.0203 (the old bound of
  // 0.02 was the distribution's tail). A wrong protocol is off by far more.
  for (int64_t i = 0; i < want.numel(); ++i)
    EXPECT_NEAR(c.logits.data()[i], want.data()[i], 0.04) << i;
  EXPECT_EQ(c.predictions.size(), 5u);
  EXPECT_EQ(c.batches.size(), 3u);
  EXPECT_EQ(s.reports[1].model_hash, c.model_hash);
  EXPECT_EQ(s.reports[2].model_hash, c.model_hash);
  for (const auto& r : s.reports) {
    EXPECT_GT(r.run_stats.bytes_sent, 0u);
    ASSERT_FALSE(r.layers.empty());
    uint64_t sum = 0;
    for (const auto& l : r.layers) sum += l.bytes_sent;
    // Outside every layer: the client's batch plan (a count and three sizes to each peer) and
    // every party's verdict on it (an empty one to each peer).
    EXPECT_EQ(sum, r.run_stats.bytes_sent - 8 * ((r.role == Role::Client ? 2 * (1 + 3) : 0) + 2));
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

// A model that overflows Z_2^64 (issue 14: weights scaled by 1e12 ran to the end with wrong
// logits and exit 0): the server refuses it and all three parties fail with the reason.
TEST_F(PartySession, AModelThatOverflowsIsRefusedAtEveryParty) {
  for (const auto& n : model_.graph.nodes)
    if (n.name == "fc3")
      for (float& w : model_.graph.initializers.at(n.inputs[1]).floats()) w *= 1e12f;
  model::save_onnx(model_, dir_ / "m.onnx");
  Session s = run_three(cfg_);
  EXPECT_NE(s.errors[1].find("node 'fc3' (Gemm) overflows Z_2^64 at frac_bits 12"),
            std::string::npos)
      << s.errors[1];
  EXPECT_NE(s.errors[0].find("the server refused the model: node 'fc3' (Gemm) overflows"),
            std::string::npos)
      << s.errors[0];
  EXPECT_NE(s.errors[2].find("the server refused the model"), std::string::npos) << s.errors[2];
  EXPECT_TRUE(s.reports[0].logits.empty());
}

// Every party plans its memory for the largest batch of the plan; one that does not fit refuses,
// and the other two stop with its reason (not a closed link). The budget lies between the
// largest party's plan and the next one's, so exactly one refuses.
TEST_F(PartySession, APartyThatCannotHoldTheBatchStopsAllThreeWithItsReason) {
  SecureMemoryOptions o;
  o.batch = 2;
  o.images = 5;
  const SecureMemoryPlan plan = plan_secure_memory(SecureModel(model_.graph), o);
  std::array<size_t, 3> order = {0, 1, 2};
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return plan.peak[a] > plan.peak[b]; });
  ASSERT_GT(plan.peak[order[0]], plan.peak[order[1]]);
  set_memory_budget((plan.peak[order[0]] + plan.peak[order[1]]) / 2);
  Session s = run_three(cfg_);
  set_memory_budget(0);  // the default again
  const std::string refuser = role_name(static_cast<Role>(order[0]));
  for (size_t r = 0; r < 3; ++r) {
    const std::string want = r == order[0] ? "at the " + refuser + ", over the memory budget of"
                                           : "the " + refuser + " refused the batch plan: ";
    EXPECT_NE(s.errors[r].find(want), std::string::npos) << r << ": " << s.errors[r];
    EXPECT_NE(s.errors[r].find("three-party inference at batch 2 needs"), std::string::npos)
        << s.errors[r];
  }
  EXPECT_TRUE(s.reports[0].logits.empty());
}

// The server's check assumed pixels in [0, 1]: the client refuses images outside.
TEST_F(PartySession, TheClientRefusesImagesOutsideTheCheckedRange) {
  Tensor x = images_.reshaped(images_.shape());
  x.data()[7] = 3.0f;
  data::write_npy(dir_ / "x.npy", x);
  Session s = run_three(cfg_);
  EXPECT_NE(s.errors[0].find("outside [0, 1]"), std::string::npos) << s.errors[0];
  EXPECT_NE(s.errors[1], "");
  EXPECT_NE(s.errors[2], "");
}

// A declared range travels to the client in the structure: images in [0, 1.5] now pass.
TEST_F(PartySession, ADeclaredInputRangeIsWhatTheServerChecksAndTheClientEnforces) {
  for (int64_t i = 0; i < images_.numel(); i += 50) images_.data()[i] = 1.5f;
  data::write_npy(dir_ / "x.npy", images_);
  cfg_.input_range = "0,1.5";
  Session s = run_three(cfg_);
  expect_matches_plaintext(s, plaintext());
  EXPECT_NE(s.reports[1].range_check.find("fixed point f = 12"), std::string::npos);

  cfg_.input_range = "0,1.25";  // the server assumes less than the client sends
  s = run_three(cfg_);
  EXPECT_NE(s.errors[0].find("outside [0, 1.25]"), std::string::npos) << s.errors[0];
  EXPECT_NE(s.errors[1], "");
  EXPECT_NE(s.errors[2], "");
}

TEST_F(PartySession, TheServerReportsTheRangeCheck) {
  Session s = run_three(cfg_);
  for (const auto& e : s.errors) ASSERT_EQ(e, "");
  EXPECT_NE(s.reports[1].range_check.find("fixed point f = 12"), std::string::npos)
      << s.reports[1].range_check;
  EXPECT_EQ(PartyReport::from_json(s.reports[1].to_json()).range_check, s.reports[1].range_check);
}

}  // namespace
}  // namespace veil::mpc
