// veil split serve|run: split execution between a trusted process and an untrusted accelerator.
#include "veil/cli/commands.hpp"

namespace veil::cli {

void add_split_commands(CLI::App& app) {
  auto* split = app.add_subcommand(
      "split", "Split execution: a trusted part outsources linear layers to an accelerator");
  split->require_subcommand(1);
  add_split_attack_command(*split);
}

}  // namespace veil::cli
