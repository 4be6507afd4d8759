#include "veil/core/signals.hpp"

namespace veil {

bool install_unless_ignored(int sig, void (*handler)(int), bool block_stop_signals,
                            struct sigaction* previous) {
  struct sigaction current {};
  ::sigaction(sig, nullptr, &current);
  if (!(current.sa_flags & SA_SIGINFO) && current.sa_handler == SIG_IGN) return false;
  struct sigaction sa {};
  sa.sa_handler = handler;
  sigemptyset(&sa.sa_mask);
  if (block_stop_signals)
    for (int s : kStopSignals) sigaddset(&sa.sa_mask, s);
  sa.sa_flags = SA_RESTART;
  return ::sigaction(sig, &sa, previous) == 0;
}

}  // namespace veil
