// The signals that stop veil (a kill, a Ctrl-C, a closed terminal) and the one way veil takes
// them over: the CLI's temporary-file cleanup and `veil mpc run`'s supervisor both install
// through here, so both leave a signal that was ignored (nohup, a background job) ignored and
// both keep the previous disposition for the chain.
#pragma once

#include <signal.h>

#include <array>

namespace veil {

inline constexpr std::array<int, 3> kStopSignals = {SIGTERM, SIGINT, SIGHUP};

// Installs `handler` (SA_RESTART) for `sig` and stores the previous disposition in `previous`,
// unless `sig` is ignored now: then nothing changes and it returns false. With
// `block_stop_signals` the other stop signals are blocked while the handler runs.
bool install_unless_ignored(int sig, void (*handler)(int), bool block_stop_signals,
                            struct sigaction* previous);

}  // namespace veil
