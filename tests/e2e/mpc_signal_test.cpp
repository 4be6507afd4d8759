// End-to-end: `veil mpc run` under signals: its parties die with it, and nothing of the session
// (configuration, private keys, logs, reports) is left on disk.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <random>
#include <thread>
#include <vector>

#include "cli_runner.hpp"
#include "mpc_inputs.hpp"

namespace veil::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// Live `veil mpc party` processes of this test's session.
std::vector<pid_t> parties_tagged(const std::string& tag) {
  return processes_tagged(tag, std::string("mpc\0party\0", 10));
}

std::vector<std::string> entries(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  return names;
}

class MpcSignals : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = save_lenet5(dir_ / "lenet5.onnx");
    // Enough images, one per batch, that the session runs for minutes unless it is stopped.
    input_ = save_images(dir_ / "many.npy", 3000, 251);
    tmp_ = dir_ / "tmp";
    fs::create_directory(tmp_);
    tag_ = "VEIL_SIGNAL_TEST=" + std::to_string(::getpid()) + "_" +
           std::to_string(std::random_device{}());
  }
  void TearDown() override {
    // On a build where the parties outlive their supervisor, do not leave them running.
    for (pid_t p : parties_tagged(tag_)) ::kill(p, SIGKILL);
    if (supervisor_ > 0) {
      ::kill(supervisor_, SIGKILL);
      ::waitpid(supervisor_, nullptr, 0);
    }
  }

  // Starts `veil mpc run --n 0 [--tls]` in its own process group with TMPDIR = tmp_ and waits
  // until its three parties run.
  void start_session(bool tls) {
    const std::string out = (dir_ / "run.out").string(), err = (dir_ / "run.err").string();
    std::vector<std::string> args = {
        VEIL_CLI_PATH, "mpc", "run",     "--model", model_.string(), "--input", input_.string(),
        "--n",         "0",   "--batch", "1"};
    if (tls) args.push_back("--tls");  // three private keys for the session
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const std::string tmpdir = "TMPDIR=" + tmp_.string();
    supervisor_ = ::fork();
    ASSERT_GE(supervisor_, 0);
    if (supervisor_ == 0) {
      ::setpgid(0, 0);  // a group of its own, as a shell job is
      ::putenv(const_cast<char*>(tmpdir.c_str()));
      ::putenv(const_cast<char*>(tag_.c_str()));
      std::freopen(out.c_str(), "w", stdout);
      std::freopen(err.c_str(), "w", stderr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::setpgid(supervisor_, supervisor_);
    ASSERT_TRUE(wait_until([&] { return parties_tagged(tag_).size() == 3; }, 60s))
        << slurp(dir_ / "run.err");
    std::this_thread::sleep_for(500ms);  // links up, batches running
    ASSERT_EQ(parties_tagged(tag_).size(), 3u)
        << "the session ended early: " << slurp(dir_ / "run.err");
  }

  // Waits (bounded) for the supervisor to end; its wait status.
  int reap_supervisor() {
    int status = 0;
    const bool ended =
        wait_until([&] { return ::waitpid(supervisor_, &status, WNOHANG) == supervisor_; }, 20s);
    EXPECT_TRUE(ended) << "the supervisor did not exit after the signal";
    if (ended) supervisor_ = -1;
    return status;
  }

  void expect_no_party_left() {
    EXPECT_TRUE(wait_until([&] { return parties_tagged(tag_).empty(); }, 10s))
        << parties_tagged(tag_).size() << " parties outlived their supervisor";
  }

  // Nothing of the session (configuration, keys, logs, reports) is left in TMPDIR.
  void expect_nothing_on_disk() {
    auto left = entries(tmp_);
    EXPECT_TRUE(left.empty()) << left.size() << " entries left in TMPDIR, e.g. " << left[0];
  }

  // A caught signal: the supervisor exits as killed by it (or with 128 + it).
  static void expect_died_of(int status, int sig) {
    if (WIFSIGNALED(status))
      EXPECT_EQ(WTERMSIG(status), sig);
    else
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 128 + sig) << status;
  }

  // Sends `sig` to `target` (the supervisor, or -its group); the supervisor must end as that
  // signal says, take its parties along and leave nothing of the session on disk.
  void stop_with(int sig, pid_t target) {
    ::kill(target, sig);
    expect_died_of(reap_supervisor(), sig);
    expect_no_party_left();
    expect_nothing_on_disk();
  }

  TempDir dir_;
  fs::path model_, input_, tmp_;
  std::string tag_;
  pid_t supervisor_ = -1;
};

TEST_F(MpcSignals, SigtermStopsThePartiesAndLeavesNothing) {
  start_session(/*tls=*/true);
  stop_with(SIGTERM, supervisor_);
}

TEST_F(MpcSignals, AGroupCtrlCStopsThePartiesAndLeavesNothing) {
  start_session(/*tls=*/false);
  stop_with(SIGINT, -supervisor_);  // what a terminal's Ctrl-C sends: the whole foreground job
}

TEST_F(MpcSignals, SighupStopsThePartiesAndLeavesNothing) {
  start_session(/*tls=*/false);
  stop_with(SIGHUP, supervisor_);
}

TEST_F(MpcSignals, SigkillOfTheSupervisorTakesThePartiesAndLeavesNoKey) {
  start_session(/*tls=*/true);
  stop_with(SIGKILL, supervisor_);  // not even the logs stay: the session never was on disk
}

}  // namespace
}  // namespace veil::testing
