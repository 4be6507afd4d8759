// Each CLI command group registers its sub-commands on the root app. Handlers throw veil::Error
// subclasses; main() turns them into one line on stderr and a non-zero exit code.
#pragma once

#include <CLI/CLI.hpp>

namespace veil::cli {

void add_core_commands(CLI::App& app);   // train, eval, infer, info
void add_lock_commands(CLI::App& app);   // lock keygen|encrypt|decrypt|eval|sweep|run|attack
void add_mpc_commands(CLI::App& app);    // mpc party|run
void add_he_commands(CLI::App& app);     // he info|bench, then the inference commands below
void add_relu_commands(CLI::App& app);   // relu distortion|knapsack|apply (block ReLU)
void add_split_commands(CLI::App& app);  // split serve|run (split_commands.cpp), then attack:
void add_split_attack_command(CLI::App& split);  // split attack (split_attack_command.cpp)
// he keygen|encrypt-model|encrypt-input|infer|decrypt|eval, under the `he` command.
void add_he_inference_commands(CLI::App& he);

}  // namespace veil::cli
