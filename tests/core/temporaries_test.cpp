// A fatal signal in the middle of write_file_atomic leaves no temporary behind. Each test forks a
// writer that blocks inside the write (the test hook runs once the temporary exists), kills it
// and looks at the directory: deterministic, no timing.
#include "veil/core/temporaries.hpp"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdint>
#include <string>
#include <vector>

#include "temp_dir.hpp"
#include "veil/core/io.hpp"

namespace veil {
namespace {

namespace fs = std::filesystem;
using veil::testing::TempDir;

int g_ready_fd = -1;

// Tells the parent the temporary exists, then waits to be killed.
void block_mid_write(const fs::path&) {
  const char c = 'w';
  if (::write(g_ready_fd, &c, 1) != 1) ::_exit(90);
  for (;;) ::pause();
}

int count_temporaries(const fs::path& dir) {
  int n = 0;
  for (const auto& e : fs::directory_iterator(dir))
    n += e.path().filename().string().find(".tmp.") != std::string::npos;
  return n;
}

// The signals start at their default action whatever the test runner inherited (a runner
// started with nohup ignores SIGHUP, and the handler leaves an ignored signal ignored).
void reset_fatal_signals() {
  for (int s : {SIGTERM, SIGINT, SIGHUP}) std::signal(s, SIG_DFL);
}

struct Writer {
  pid_t pid = -1;
  int ready = -1;
};

// Forks a child that runs `setup`, then write_file_atomic(path) blocked in the hook. Returns
// once the temporary exists.
template <class Setup>
Writer start_blocked_writer(const fs::path& path, Setup setup) {
  int p[2];
  EXPECT_EQ(::pipe(p), 0);
  Writer w;
  w.pid = ::fork();
  if (w.pid == 0) {
    ::close(p[0]);
    g_ready_fd = p[1];
    reset_fatal_signals();
    try {
      setup();
      detail::set_write_hook_for_testing(block_mid_write);
      std::vector<uint8_t> bytes(1 << 20, 0x5a);
      write_file_atomic(path, bytes);
    } catch (...) {
      ::_exit(93);
    }
    ::_exit(91);  // not reached: the hook blocks
  }
  ::close(p[1]);
  char c = 0;
  EXPECT_EQ(::read(p[0], &c, 1), 1) << "the writer did not reach the hook";
  ::close(p[0]);
  return w;
}

int wait_status(pid_t pid) {
  int status = 0;
  EXPECT_EQ(::waitpid(pid, &status, 0), pid);
  return status;
}

class SignalDuringWrite : public ::testing::TestWithParam<int> {};

TEST_P(SignalDuringWrite, RemovesTheTemporaryAndDiesOfTheSignal) {
  const int sig = GetParam();
  TempDir dir;
  Writer w = start_blocked_writer(dir / "out.bin", [] { remove_temporaries_on_signal(); });
  ASSERT_EQ(count_temporaries(dir.path()), 1);  // the write is in flight
  ASSERT_EQ(::kill(w.pid, sig), 0);
  const int status = wait_status(w.pid);
  ASSERT_TRUE(WIFSIGNALED(status)) << "exit status " << status;
  EXPECT_EQ(WTERMSIG(status), sig);  // re-raised with the default action
  EXPECT_EQ(count_temporaries(dir.path()), 0);
  EXPECT_FALSE(fs::exists(dir / "out.bin"));
}

INSTANTIATE_TEST_SUITE_P(Temporaries, SignalDuringWrite, ::testing::Values(SIGTERM, SIGINT, SIGHUP),
                         [](const auto& info) {
                           return info.param == SIGTERM  ? "SIGTERM"
                                  : info.param == SIGINT ? "SIGINT"
                                                         : "SIGHUP";
                         });

// Without the handler the temporary stays: the test above can fail.
TEST(Temporaries, WithoutTheHandlerTheTemporaryStays) {
  TempDir dir;
  Writer w = start_blocked_writer(dir / "out.bin", [] {});
  ASSERT_EQ(::kill(w.pid, SIGTERM), 0);
  const int status = wait_status(w.pid);
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(count_temporaries(dir.path()), 1);
}

// Finished writes give their slot back: after more writes than the registry has slots (64), a
// blocked one is still tracked, and the finished files are not touched by the handler.
TEST(Temporaries, FinishedWritesReleaseTheirSlots) {
  TempDir dir;
  Writer w = start_blocked_writer(dir / "out.bin", [&dir] {
    remove_temporaries_on_signal();
    for (int i = 0; i < 70; ++i) write_file_atomic(dir / ("done" + std::to_string(i)), "x");
  });
  ASSERT_EQ(::kill(w.pid, SIGTERM), 0);
  ASSERT_TRUE(WIFSIGNALED(wait_status(w.pid)));
  EXPECT_EQ(count_temporaries(dir.path()), 0);
  for (int i = 0; i < 70; ++i) EXPECT_TRUE(fs::exists(dir / ("done" + std::to_string(i)))) << i;
}

void earlier_handler(int) { ::_exit(42); }

// A handler installed before ours still runs (after the temporaries are gone) and decides how
// the process ends.
TEST(Temporaries, ChainsToAnEarlierHandler) {
  TempDir dir;
  Writer w = start_blocked_writer(dir / "out.bin", [] {
    std::signal(SIGTERM, earlier_handler);
    remove_temporaries_on_signal();
  });
  ASSERT_EQ(::kill(w.pid, SIGTERM), 0);
  const int status = wait_status(w.pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 42);
  EXPECT_EQ(count_temporaries(dir.path()), 0);
}

// A handler installed after ours (a supervisor's) calls remove_pending_temporaries() itself.
TEST(Temporaries, ALaterHandlerCanRemoveThem) {
  TempDir dir;
  Writer w = start_blocked_writer(dir / "out.bin", [] {
    remove_temporaries_on_signal();
    std::signal(SIGTERM, [](int) {
      remove_pending_temporaries();
      ::_exit(43);
    });
  });
  ASSERT_EQ(::kill(w.pid, SIGTERM), 0);
  const int status = wait_status(w.pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 43);
  EXPECT_EQ(count_temporaries(dir.path()), 0);
}

// An ignored signal (nohup's SIGHUP) stays ignored.
TEST(Temporaries, AnIgnoredSignalStaysIgnored) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    reset_fatal_signals();
    std::signal(SIGHUP, SIG_IGN);
    remove_temporaries_on_signal();
    struct sigaction hup {
    }, term{};
    ::sigaction(SIGHUP, nullptr, &hup);
    ::sigaction(SIGTERM, nullptr, &term);
    ::_exit(hup.sa_handler == SIG_IGN && term.sa_handler != SIG_DFL ? 0 : 1);
  }
  const int status = wait_status(pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

// The registry itself: a registered file goes, a released one stays.
TEST(Temporaries, RemovesRegisteredFilesOnly) {
  TempDir dir;
  write_file_atomic(dir / "kept", "k");
  write_file_atomic(dir / "gone", "g");
  {
    PendingTemporary kept(dir / "kept");
    PendingTemporary gone(dir / "gone");
    kept.release();
    remove_pending_temporaries();
  }
  EXPECT_TRUE(fs::exists(dir / "kept"));
  EXPECT_FALSE(fs::exists(dir / "gone"));
}

}  // namespace
}  // namespace veil
