// `veil mpc run`'s pieces that need no processes: the fault hook's syntax, the party report
// file format and the merge of three reports (the e2e tests run the whole thing).
#include "veil/mpc/local_run.hpp"

#include <gtest/gtest.h>

#include "mpc/test_util.hpp"
#include "veil/core/error.hpp"
#include "veil/data/npy.hpp"
#include "veil/model/onnx.hpp"
#include "veil/model/zoo.hpp"

namespace veil::mpc {
namespace {

using nlohmann::json;
using testing::TempDir;

TEST(PartyFault, ParsesKillAndStop) {
  PartyFault f = parse_party_fault("kill:helper:300");
  EXPECT_EQ(f.role, Role::Helper);
  EXPECT_FALSE(f.freeze);
  EXPECT_EQ(f.after, std::chrono::milliseconds(300));
  f = parse_party_fault("stop:server:0");
  EXPECT_EQ(f.role, Role::Server);
  EXPECT_TRUE(f.freeze);
  EXPECT_EQ(f.after, std::chrono::milliseconds(0));
  for (const char* bad : {"", "kill", "kill:helper", "pause:helper:3", "kill:nobody:3",
                          "kill:helper:x", "kill:helper:-5", "kill:helper:"})
    EXPECT_THROW(parse_party_fault(bad), InvalidArgument) << bad;
}

// A party's report with `layers` (op, bytes, rounds, seconds) and the same for every batch.
PartyReport report(Role role,
                   const std::vector<std::tuple<std::string, uint64_t, uint32_t, double>>& layers,
                   const std::vector<uint32_t>& batch_rounds) {
  PartyReport r;
  r.role = role;
  r.model_name = "m";
  r.model_hash = std::string(64, 'a');
  r.link = parse_link_profile("rtt=10,rate=100");
  r.setup_seconds = 0.5;
  r.run_seconds = 2.0 + static_cast<int>(role);
  r.setup_stats = {100, 90, 4, 4};
  r.run_stats = {1000 * (1 + static_cast<uint64_t>(role)), 900, 40, 41};
  for (uint32_t br : batch_rounds) {
    r.batches.push_back({2, 0.25, br, 10});
    r.rounds += br;
  }
  for (const auto& [op, bytes, rounds, secs] : layers) {
    std::string node = "n";  // n0, n1, ... (appended: g++ 12 misreads "n" + to_string(i))
    node += std::to_string(r.layers.size());
    r.layers.push_back({node, op, bytes, 3, rounds, secs});
  }
  if (role == Role::Client) {
    r.logits = Tensor::from_floats({3, 2}, {0.0f, 1.0f, 2.0f, 1.0f, 0.5f, 0.25f});
    r.predictions = {1, 0, 0};
    r.labels = {1, 1, 0};
  }
  return r;
}

TEST(PartyReportFile, RoundTripsThroughJson) {
  PartyReport r = report(Role::Client, {{"Conv", 7, 2, 0.5}, {"Relu", 9, 4, 1.5}}, {3, 5});
  PartyReport back = PartyReport::from_json(json::parse(r.to_json().dump()));
  EXPECT_EQ(back.to_json(), r.to_json());
  EXPECT_EQ(back.logits, r.logits);
  EXPECT_EQ(back.link.spec(), r.link.spec());
  EXPECT_EQ(back.layers[1].rounds, 4u);
  EXPECT_EQ(back.batches[1].rounds, 5u);
  json j = r.to_json();
  j.erase("layers");
  EXPECT_THROW(PartyReport::from_json(j), MalformedInput);
  j = r.to_json();
  j["rounds"] = "many";
  EXPECT_THROW(PartyReport::from_json(j), MalformedInput);
  j = r.to_json();
  j["logits"][1] = {1.0};  // ragged rows
  EXPECT_THROW(PartyReport::from_json(j), MalformedInput);
}

TEST(MergePartyReports, AddsBytesTakesTheSlowestPartyAndGroupsByOp) {
  // Layers: Conv, Relu, Conv. Per role the bytes differ; rounds and seconds peak at different
  // parties, so max-over-parties and sum-over-layers are both visible.
  std::array<PartyReport, 3> rep = {
      report(Role::Client, {{"Conv", 10, 1, 0.1}, {"Relu", 20, 4, 0.2}, {"Conv", 30, 1, 0.3}},
             {7, 7}),
      report(Role::Server, {{"Conv", 1, 2, 0.4}, {"Relu", 2, 3, 0.1}, {"Conv", 3, 1, 0.1}}, {6, 9}),
      report(Role::Helper, {{"Conv", 100, 1, 0.1}, {"Relu", 200, 4, 0.5}, {"Conv", 300, 2, 0.2}},
             {8, 1})};
  PlainReference plain;
  plain.predictions = {1, 0, 1};
  plain.logits = {{0.0f, 1.5f}, {2.0f, 1.0f}, {0.5f, 0.75f}};
  LocalRunResult m = merge_party_reports(rep, plain, {1, 1, 0});

  EXPECT_EQ(m.images, 3);
  EXPECT_EQ(m.batches, 2);
  EXPECT_EQ(m.agreeing_images, 2);
  EXPECT_DOUBLE_EQ(m.agreement(), 2.0 / 3);
  EXPECT_DOUBLE_EQ(m.max_logit_diff, 0.5);
  EXPECT_DOUBLE_EQ(*m.secure_top1(), 2.0 / 3);  // secure {1, 0, 0} vs labels {1, 1, 0}
  EXPECT_DOUBLE_EQ(*m.plain_top1(), 1.0 / 3);   // plain {1, 0, 1}
  EXPECT_EQ(m.rounds, 8u + 9u);                 // per batch, the slowest party
  EXPECT_DOUBLE_EQ(m.rounds_per_batch(), 8.5);
  EXPECT_DOUBLE_EQ(m.batch_seconds, 0.5);
  EXPECT_DOUBLE_EQ(m.run_seconds, 2.0);  // the client's
  EXPECT_EQ(m.parties[2].bytes_sent, 3000u);
  EXPECT_EQ(m.parties[1].setup_bytes_sent, 100u);

  ASSERT_EQ(m.layers.size(), 3u);
  EXPECT_EQ(m.layers[2].node, "n2");
  EXPECT_EQ(m.layers[2].bytes_sent, (std::array<uint64_t, 3>{30, 3, 300}));
  EXPECT_EQ(m.layers[2].bytes_total(), 333u);
  EXPECT_EQ(m.layers[0].rounds, 2u);
  EXPECT_DOUBLE_EQ(m.layers[1].seconds, 0.5);
  ASSERT_EQ(m.ops.size(), 2u);
  EXPECT_EQ(m.ops[0].op, "Conv");
  EXPECT_EQ(m.ops[0].count, 2);
  EXPECT_EQ(m.ops[0].bytes_total(), 111u + 333u);
  EXPECT_EQ(m.ops[0].rounds, 2u + 2u);
  EXPECT_DOUBLE_EQ(m.ops[0].seconds, 0.4 + 0.3);
  EXPECT_EQ(m.ops[1].op, "Relu");
  EXPECT_EQ(m.ops[1].count, 1);

  json j = m.to_json();
  EXPECT_EQ(j["ops"][0]["bytes_sent"]["helper"], 400u);
  EXPECT_DOUBLE_EQ(j["layers"][1]["rounds_per_batch"].get<double>(), 2.0);
  EXPECT_DOUBLE_EQ(j["parties"]["client"]["bytes_sent_per_image"].get<double>(), 1000.0 / 3);

  // Reports that do not fit together are refused.
  std::array<PartyReport, 3> bad = rep;
  bad[1].layers.pop_back();
  EXPECT_THROW(merge_party_reports(bad, plain, {}), ProtocolError);
  bad = rep;
  bad[2].batches.pop_back();
  EXPECT_THROW(merge_party_reports(bad, plain, {}), ProtocolError);
  plain.predictions.push_back(0);
  plain.logits.push_back({0, 0});
  EXPECT_THROW(merge_party_reports(rep, plain, {}), ProtocolError);
}

// run_local up to the supervision, with a stand-in for the veil executable.
class LocalRun : public ::testing::Test {
 protected:
  void SetUp() override {
    model::ArchSpec spec;
    spec.height = spec.width = 16;
    model::save_onnx(model::build_arch("lenet5", spec), dir_ / "m.onnx");
    data::write_npy(dir_ / "x.npy", Tensor({3, 1, 16, 16}));
    opt_.model = (dir_ / "m.onnx").string();
    opt_.input.npy = (dir_ / "x.npy").string();
    opt_.keep = (dir_ / "session").string();
    opt_.veil_exe = "/bin/false";
  }
  TempDir dir_;
  LocalRunOptions opt_;
};

TEST_F(LocalRun, RefusesBadOptionsBeforeAnyPartyStarts) {
  for (auto edit : std::vector<std::function<void(LocalRunOptions&)>>{
           [](LocalRunOptions& o) { o.batch = 0; }, [](LocalRunOptions& o) { o.batch = 5000; },
           [](LocalRunOptions& o) { o.threads = 0; },
           [](LocalRunOptions& o) { o.io_timeout_ms = 10; },
           [](LocalRunOptions& o) {
             o.drelu = {6, 5};
           },
           [](LocalRunOptions& o) { o.input.offset = 3; },
           [](LocalRunOptions& o) { o.veil_exe.clear(); }}) {
    LocalRunOptions o = opt_;
    edit(o);
    EXPECT_THROW(run_local(o), InvalidArgument);
    EXPECT_FALSE(std::filesystem::exists(dir_ / "session" / "client.log"));
  }
}

TEST_F(LocalRun, PartiesThatFailAreNamedAndTheirLogsKept) {
  try {
    run_local(opt_);
    ADD_FAILURE() << "three failing parties made a result";
  } catch (const ProtocolError& e) {
    const std::string msg = e.what();
    for (const char* role : {"client", "server", "helper"})
      EXPECT_NE(msg.find(std::string(role) + ": exit code 1"), std::string::npos) << msg;
    EXPECT_EQ(msg.find("did not stop"), std::string::npos) << msg;
    EXPECT_EQ(msg.find("--keep"), std::string::npos) << msg;  // it was given
  }
  EXPECT_TRUE(std::filesystem::exists(dir_ / "session" / "parties.json"));
  EXPECT_TRUE(std::filesystem::exists(dir_ / "session" / "helper.log"));
}

}  // namespace
}  // namespace veil::mpc
