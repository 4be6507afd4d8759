// Runs the real `veil` binary for end-to-end tests and captures its exit code and output.
#pragma once

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "temp_dir.hpp"

namespace veil::testing {

struct CliResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// `args` is passed through the shell; quote paths with spaces yourself.
inline CliResult run_veil(const std::string& args, const TempDir& dir) {
  auto out = dir / "stdout.txt", err = dir / "stderr.txt";
  std::string cmd = std::string(VEIL_CLI_PATH) + " " + args + " >" + out.string() + " 2>" +
                    err.string() + " </dev/null";
  int status = std::system(cmd.c_str());
  CliResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
  r.out = slurp(out);
  r.err = slurp(err);
  return r;
}

// Peak RSS of the largest child process waited for so far, in bytes.
inline uint64_t children_max_rss() {
  rusage u{};
  getrusage(RUSAGE_CHILDREN, &u);
  return static_cast<uint64_t>(u.ru_maxrss) * 1024;
}

inline bool have_fashion_mnist() {
  const char* env = std::getenv("VEIL_FASHION_MNIST_DIR");
  std::filesystem::path dir = env ? env : "/usr/share/datasets/fashion-mnist";
  return std::filesystem::exists(dir / "t10k-images-idx3-ubyte.gz");
}

// Polls `done` every 50 ms until it holds or `limit` passes.
inline bool wait_until(const std::function<bool()>& done,
                       std::chrono::steady_clock::duration limit) {
  const auto end = std::chrono::steady_clock::now() + limit;
  for (;;) {
    if (done()) return true;
    if (std::chrono::steady_clock::now() >= end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

// A port the kernel just handed out and released: a party binds it a moment later.
inline uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  uint16_t port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

// Live processes whose environment carries `tag` (a marker a test puts in the environment of a
// process it starts: its children inherit it, and it survives their re-parenting) and whose
// command line (arguments separated by NULs) contains `cmdline_part`. A zombie has no
// environment left, so it does not count.
inline std::vector<pid_t> processes_tagged(const std::string& tag,
                                           const std::string& cmdline_part = "") {
  std::vector<pid_t> pids;
  DIR* d = ::opendir("/proc");
  if (!d) return pids;
  while (dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    const std::string base = "/proc/" + name;
    if (slurp(base + "/environ").find(tag) == std::string::npos) continue;
    if (slurp(base + "/cmdline").find(cmdline_part) != std::string::npos)
      pids.push_back(static_cast<pid_t>(std::stoi(name)));
  }
  ::closedir(d);
  return pids;
}

}  // namespace veil::testing
