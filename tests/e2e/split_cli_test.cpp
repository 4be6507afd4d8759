// End-to-end: `veil split run|serve` through the real binary (the trusted process and the
// accelerator process talking TCP on loopback).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "cli_runner.hpp"
#include "veil/split/transcript_file.hpp"

namespace veil::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

int count_lines(const std::string& s) {
  return static_cast<int>(std::count(s.begin(), s.end(), '\n'));
}

class SplitCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!have_fashion_mnist()) return;
    dir_ = new TempDir;
    model_ = (*dir_ / "lenet5.onnx").string();
    const CliResult r = run_veil(
        "train --arch lenet5 --epochs 1 --limit 2000 --test-limit 100 --quiet --out " + model_,
        *dir_);
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  void SetUp() override {
    if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  }

  static TempDir* dir_;
  static std::string model_;
  TempDir tmp_;
};

TempDir* SplitCli::dir_ = nullptr;
std::string SplitCli::model_;

void expect_one_error_line(const CliResult& r) {
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_EQ(r.err.rfind("veil: error: ", 0), 0u) << r.err;
}

TEST_F(SplitCli, PlainRunAgreesWithPlaintextAndReportsEverything) {
  const fs::path transcript = tmp_ / "view.vtrs";
  const CliResult r = run_veil("split run --model " + model_ +
                                   " --scheme plain --limit 40 --batch 8 --json --transcript " +
                                   transcript.string(),
                               tmp_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = json::parse(r.out);
  EXPECT_EQ(j["images"], 40);
  EXPECT_EQ(j["scheme"], "plain");
  EXPECT_DOUBLE_EQ(j["agreement"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(j["split_top1"].get<double>(), j["plain_top1"].get<double>());
  EXPECT_GT(j["plain_top1"].get<double>(), 0.3);  // a trained model, real labels
  for (const char* k : {"split_ms_per_image", "trusted_only_ms_per_image", "trusted_peak_rss_mb",
                        "accelerator_peak_rss_mb", "channel_bytes_sent_per_image",
                        "channel_bytes_received_per_image", "setup_bytes_sent"})
    EXPECT_GT(j[k].get<double>(), 0) << k;
  EXPECT_GE(j["offline_s"].get<double>(), 0);
  // LeNet-5: every conv and dense layer goes to the accelerator.
  EXPECT_DOUBLE_EQ(j["offloaded_share_of_linear_macs"].get<double>(), 1.0);
  EXPECT_EQ(j["trusted_linear_macs_per_image"], 0);
  ASSERT_EQ(j["layers"].size(), 5u);
  int64_t macs = 0;
  double sent = 0;
  for (const auto& l : j["layers"]) {
    macs += l["macs_per_image"].get<int64_t>();
    sent += l["payload_bytes_sent_per_image"].get<double>();
  }
  EXPECT_EQ(macs, j["offloaded_linear_macs_per_image"].get<int64_t>());
  EXPECT_DOUBLE_EQ(sent, j["payload_bytes_sent_per_image"].get<double>());
  // The plain scheme sends each layer's input as it is: the first is the image itself.
  EXPECT_DOUBLE_EQ(j["layers"][0]["payload_bytes_sent_per_image"].get<double>(), 4.0 * 28 * 28);
  // The channel carries the payloads plus a small header per message.
  EXPECT_GE(j["channel_bytes_sent_per_image"].get<double>(),
            j["payload_bytes_sent_per_image"].get<double>());
  EXPECT_LT(j["channel_bytes_sent_per_image"].get<double>(),
            1.05 * j["payload_bytes_sent_per_image"].get<double>());
  EXPECT_EQ(j["accelerator_queries"], 5 * 5);  // 5 layers x 5 batches
  EXPECT_EQ(j["faults_injected"], 0);
  EXPECT_EQ(j["faults_detected"], 0);
  EXPECT_GT(j["trusted_bytes"].get<double>(), 40000);  // LeNet-5's weights at least

  // What the accelerator saw, one query per reply.
  const split::Transcript view = split::read_transcript(transcript);
  EXPECT_EQ(view.scheme, "plain");
  EXPECT_EQ(view.layers.size(), 5u);
  EXPECT_EQ(view.queries.size(), 25u);
}

TEST_F(SplitCli, InjectedFaultsAreSpreadOverTheRunAndReported) {
  const CliResult r = run_veil("split run --model " + model_ +
                                   " --scheme plain --limit 40 --batch 8 --inject-faults 3 --json",
                               tmp_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = json::parse(r.out);
  EXPECT_EQ(j["faults_injected"], 3);
  EXPECT_EQ(j["faults_detected"], 0);  // plain does not verify
  EXPECT_DOUBLE_EQ(j["false_accept_bound"].get<double>(), 1.0);
}

TEST_F(SplitCli, TwoServeProcessesFromOneConfig) {
  const uint16_t port = free_port();
  const fs::path config = tmp_ / "split.json";
  std::ofstream(config) << json{
      {"version", 1},
      {"accelerator", {{"host", "127.0.0.1"}, {"port", port}}},
      {"model", model_},
      {"scheme", "plain"},
      {"limit", 20},
      {"batch", 10},
      {"transcript",
       "acc.vtrs"}}.dump();
  TempDir acc_dir;
  auto acc = std::async(std::launch::async, [&] {
    return run_veil("split serve --role accelerator --json --config " + config.string(), acc_dir);
  });
  const CliResult t =
      run_veil("split serve --role trusted --json --config " + config.string(), tmp_);
  const CliResult a = acc.get();
  ASSERT_EQ(t.exit_code, 0) << t.err;
  ASSERT_EQ(a.exit_code, 0) << a.err;
  const json tj = json::parse(t.out), aj = json::parse(a.out);
  EXPECT_DOUBLE_EQ(tj["agreement"].get<double>(), 1.0);
  EXPECT_EQ(tj["images"], 20);
  EXPECT_EQ(aj["queries"], 10);  // 5 layers x 2 batches
  EXPECT_EQ(split::read_transcript(tmp_ / "acc.vtrs").queries.size(), 10u);
}

TEST_F(SplitCli, BadConfigsAreRefusedWithOneLine) {
  const std::vector<std::string> bad = {
      R"({"accelerator": {"host": "127.0.0.1", "port": 7000}, "modle": "m.onnx"})",
      R"({"accelerator": {"host": "127.0.0.1", "port": 70000}})",
      R"({"accelerator": {"host": "127.0.0.1", "port": 7000, "tls": true}})",
      R"({"limit": 1.5})",
      R"({"scheme": "shadow"})",
      R"({"verify": "yes"})",
      R"({"version": 2})",
      R"([1, 2])",
      R"({"accelerator": )"};
  for (const std::string& text : bad) {
    std::ofstream(tmp_ / "bad.json") << text;
    for (const char* role : {"trusted", "accelerator"}) {
      const CliResult r = run_veil(
          std::string("split serve --role ") + role + " --config " + (tmp_ / "bad.json").string(),
          tmp_);
      expect_one_error_line(r);
      EXPECT_NE(r.err.find("split config"), std::string::npos) << text << ": " << r.err;
    }
  }
}

TEST_F(SplitCli, ATranscriptThatCannotBeWrittenIsRefusedFirst) {
  const CliResult r =
      run_veil("split run --model " + model_ + " --scheme plain --transcript " + model_, tmp_);
  expect_one_error_line(r);
  EXPECT_NE(r.err.find("--transcript"), std::string::npos) << r.err;
  EXPECT_EQ(run_veil("info --model " + model_, tmp_).exit_code, 0);  // still a model
  // A transcript that could not be written at the end is refused before the session starts.
  const CliResult nodir = run_veil("split run --model " + model_ + " --scheme plain --transcript " +
                                       (tmp_ / "missing" / "t.vtrs").string(),
                                   tmp_);
  expect_one_error_line(nodir);
  EXPECT_NE(nodir.err.find("does not exist"), std::string::npos) << nodir.err;
}

TEST_F(SplitCli, RunsWithItsStandardDescriptorsClosed) {
  // With stderr closed, the accelerator's log would get descriptor 2 and be lost to it.
  const fs::path out = tmp_ / "closed.json";
  const std::string cmd = std::string(VEIL_CLI_PATH) + " split run --model " + model_ +
                          " --scheme plain --limit 10 --json >" + out.string() + " 2>&- <&-";
  const int status = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_DOUBLE_EQ(json::parse(slurp(out))["agreement"].get<double>(), 1.0);
}

TEST_F(SplitCli, TheAcceleratorProcessDiesWithTheTrustedOne) {
  const std::string tag = "VEIL_SPLIT_TEST=" + std::to_string(::getpid()) + "_" +
                          std::to_string(std::random_device{}());
  std::vector<std::string> args = {VEIL_CLI_PATH, "split",   "run", "--model", model_, "--scheme",
                                   "plain",       "--limit", "0",   "--batch", "1",    "--quiet"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const std::string null_out = (tmp_ / "out").string();
  const pid_t trusted = ::fork();
  ASSERT_GE(trusted, 0);
  if (trusted == 0) {
    ::putenv(const_cast<char*>(tag.c_str()));
    std::freopen(null_out.c_str(), "w", stdout);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  // Both processes up (the accelerator inherits the environment), then SIGKILL the trusted one:
  // no handler of it runs; the dropped link and the parent-death signal each end the accelerator.
  const bool both =
      wait_until([&] { return processes_tagged(tag).size() == 2; }, std::chrono::seconds(20));
  ::kill(trusted, SIGKILL);
  ::waitpid(trusted, nullptr, 0);
  ASSERT_TRUE(both) << "the accelerator process never ran";
  EXPECT_TRUE(wait_until([&] { return processes_tagged(tag).empty(); }, std::chrono::seconds(5)))
      << "the accelerator outlived the trusted process";
  for (pid_t p : processes_tagged(tag)) ::kill(p, SIGKILL);
}

TEST_F(SplitCli, ADeadAcceleratorIsAProtocolErrorNotAHang) {
  const auto t0 = std::chrono::steady_clock::now();
  const CliResult r = run_veil(
      "split run --model " + model_ + " --scheme plain --limit 40 --batch 4 --die-after 6", tmp_);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(8));
  expect_one_error_line(r);
  EXPECT_NE(r.err.find("accelerator"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("exit code 9"), std::string::npos) << r.err;
}

TEST_F(SplitCli, EverySchemeRunsOrFailsWithOneCleanLine) {
  // Until a scheme is built its factory throws Unsupported; either way the trusted process must
  // stop the accelerator process and say why in one line.
  for (const char* scheme : {"shadownet", "slalom", "darknight", "hardened"}) {
    const CliResult r = run_veil(
        "split run --model " + model_ + " --scheme " + scheme + " --limit 10 --batch 5 --json",
        tmp_);
    if (r.exit_code == 0) {
      EXPECT_GE(json::parse(r.out)["agreement"].get<double>(), 0.9) << scheme;
    } else {
      expect_one_error_line(r);
    }
  }
  expect_one_error_line(run_veil("split run --model " + model_ + " --scheme nope", tmp_));
}

}  // namespace
}  // namespace veil::testing
