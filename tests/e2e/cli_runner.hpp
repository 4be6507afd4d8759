// Runs the real `veil` binary for end-to-end tests and captures its exit code and output.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

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

inline bool have_fashion_mnist() {
  const char* env = std::getenv("VEIL_FASHION_MNIST_DIR");
  std::filesystem::path dir = env ? env : "/usr/share/datasets/fashion-mnist";
  return std::filesystem::exists(dir / "t10k-images-idx3-ubyte.gz");
}

}  // namespace veil::testing
