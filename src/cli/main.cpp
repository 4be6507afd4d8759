// veil command-line entry point.
#include <CLI/CLI.hpp>
#include <exception>
#include <iostream>

#include "veil/cli/commands.hpp"
#include "veil/core/error.hpp"

int main(int argc, char** argv) {
  CLI::App app{"veil: confidential neural-network inference on untrusted hardware"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "veil 0.1.0");
  veil::cli::add_core_commands(app);
  veil::cli::add_lock_commands(app);
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
