#include "veil/cli/commands.hpp"

namespace veil::cli {

void add_core_commands(CLI::App& app) {}

}  // namespace veil::cli
