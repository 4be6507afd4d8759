// veil command-line entry point.
#include <malloc.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <exception>
#include <iostream>

#include "veil/cli/commands.hpp"
#include "veil/core/error.hpp"
#include "veil/core/memory_budget.hpp"
#include "veil/nn/threads.hpp"

int main(int argc, char** argv) {
  // veil's hot loops allocate and free multi-megabyte buffers every layer (secure-inference
  // shares, Z_67 digit vectors, activations). By default glibc serves those with mmap/munmap, so
  // each one costs page faults and kernel zero-fill; keeping them on the heap (threshold at
  // glibc's 32 MiB maximum, trimming only past 256 MiB free) removes that cost from secure DReLU.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  CLI::App app{"veil: confidential neural-network inference on untrusted hardware"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "veil 0.1.0");
  // Small networks run fastest on one thread, and a second OpenMP thread on a busy machine stalls
  // at every barrier, so one thread is the default; OMP_NUM_THREADS or --threads raise it.
  veil::nn::set_num_threads(std::getenv("OMP_NUM_THREADS") ? 0 : 1);
  app.add_option_function<int>(
         "--threads", [](const int& n) { veil::nn::set_num_threads(n); },
         "CPU threads for the float kernels (default 1, or OMP_NUM_THREADS)")
      ->check(CLI::Range(1, 1024));
  app.add_option_function<std::string>(
      "--max-memory",
      [](const std::string& s) { veil::set_memory_budget(veil::parse_byte_size(s)); },
      "Refuse a model run planned to need more memory, e.g. 2G (default: half of RAM)");
  veil::cli::add_core_commands(app);
  veil::cli::add_lock_commands(app);
  veil::cli::add_mpc_commands(app);
  veil::cli::add_he_commands(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const veil::Error& e) {
    std::cerr << "veil: error: " << e.what() << "\n";
    return 1;
  } catch (const std::bad_alloc&) {
    std::cerr << "veil: error: out of memory\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "veil: internal error: " << e.what() << "\n";
    return 3;
  }
  return 0;
}
