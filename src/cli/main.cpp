// veil command-line entry point.
#include <malloc.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <iostream>
#include <string>
#include <string_view>

#include "validators.hpp"
#include "veil/cli/commands.hpp"
#include "veil/core/cpu.hpp"
#include "veil/core/error.hpp"
#include "veil/core/memory_budget.hpp"
#include "veil/core/printable.hpp"
#include "veil/core/temporaries.hpp"
#include "veil/nn/threads.hpp"

namespace {

// Exit codes (README, "The CLI"): 0 success, 1 a failure (bad input, I/O, integrity,
// protocol), 2 a usage error caught by the option parser, 3 an internal error.
constexpr int kFailure = 1, kUsage = 2, kInternal = 3;

// Every failure is exactly one line on stderr. The message is escaped as a whole: exceptions
// embed node names, tensor names and paths read from models, keys and configs, which must not
// add lines or send escape sequences to the terminal.
int fail(int code, std::string_view message) {
  std::cerr << "veil: error: " << veil::printable(message) << std::endl;
  return code;
}

// "veil lock keygen": the command whose options failed to parse, for the --help hint.
std::string command_path(const CLI::App& app) {
  std::string path = "veil";
  for (const CLI::App* cmd = &app;;) {
    auto subs = cmd->get_subcommands();
    if (subs.empty()) return path;
    cmd = subs.front();
    path += " " + cmd->get_name();
  }
}

}  // namespace

int main(int argc, char** argv) {
  // veil's hot loops allocate and free multi-megabyte buffers every layer (secure-inference
  // shares, Z_67 digit vectors, activations). By default glibc serves those with mmap/munmap, so
  // each one costs page faults and kernel zero-fill; keeping them on the heap (threshold at
  // glibc's 32 MiB maximum, trimming only past 256 MiB free) removes that cost from secure DReLU.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  // SIGTERM, SIGINT or SIGHUP during an output write removes the temporary before the process
  // dies of the signal (a command that handles signals itself chains to this handler or calls
  // veil::remove_pending_temporaries()).
  veil::remove_temporaries_on_signal();
  CLI::App app{"veil: confidential neural-network inference on untrusted hardware"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "veil 0.1.0");
  // Small networks run fastest on one thread, and a second OpenMP thread on a busy machine stalls
  // at every barrier, so one thread is the default; OMP_NUM_THREADS or --threads raise it.
  veil::nn::set_num_threads(std::getenv("OMP_NUM_THREADS") ? 0 : 1);
  app.add_option_function<int>(
         "--threads", [](const int& n) { veil::nn::set_num_threads(n); },
         "CPU threads for the float kernels (default 1, or OMP_NUM_THREADS)")
      ->check(veil::cli::in_range(1, 1024));
  app.add_option_function<std::string>(
      "--max-memory",
      [](const std::string& s) {
        try {
          veil::set_memory_budget(veil::parse_byte_size(s));
        } catch (const veil::InvalidArgument& e) {
          throw CLI::ValidationError("--max-memory", e.what());  // a usage error: exit 2
        }
      },
      "Refuse a model run planned to need more memory, e.g. 2G (default: a quarter of RAM)");
  app.add_option_function<std::string>(
      "--kernels",
      [](const std::string& s) {
        try {
          veil::set_kernel_path(veil::parse_kernel_path(s));
        } catch (const veil::InvalidArgument& e) {
          throw CLI::ValidationError("--kernels", e.what());  // a usage error: exit 2
        }
      },
      "Vector kernels to use at most: scalar, avx2 or avx512 (default: the best this CPU has, "
      "or VEIL_KERNELS)");
  veil::cli::add_core_commands(app);
  veil::cli::add_lock_commands(app);
  veil::cli::add_mpc_commands(app);
  veil::cli::add_he_commands(app);
  veil::cli::add_relu_commands(app);
  veil::cli::add_split_commands(app);
  try {
    veil::check_kernel_environment();
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);  // --help, --help-all, --version: their text on stdout, exit 0
  } catch (const CLI::RuntimeError& e) {
    return e.get_exit_code();
  } catch (const CLI::ParseError& e) {
    // Unknown option, missing required option, a value of the wrong type or out of range,
    // excluded options: CLI11's message without its second "Run with --help" line.
    return fail(kUsage, std::string(e.what()) + " (see '" + command_path(app) + " --help')");
  } catch (const veil::Error& e) {
    return fail(kFailure, e.what());
  } catch (const std::bad_alloc&) {
    return fail(kFailure, "out of memory");
  } catch (const std::filesystem::filesystem_error& e) {
    return fail(kFailure, e.what());  // a path that cannot be used is the user's, not a bug
  } catch (const std::exception& e) {
    return fail(kInternal, std::string("internal error: ") + e.what());
  } catch (...) {
    return fail(kInternal, "internal error: unknown exception");
  }
  return 0;
}
