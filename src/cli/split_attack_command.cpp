// veil split attack: model stealing from what the accelerator saw.
#include "veil/cli/commands.hpp"

namespace veil::cli {

void add_split_attack_command(CLI::App&) {}

}  // namespace veil::cli
