#include "veil/core/temporaries.hpp"

#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstring>
#include <mutex>

#include "veil/core/signals.hpp"

namespace veil {

namespace {

// Slot states. A slot goes Free -> Writing (its owner copies the path) -> Published; release()
// returns it to Free. The handler moves Published -> Removing -> Removed, and only the owner frees
// a Removed slot, so a slot is never reused while its owner still holds its index.
enum : int { kFree = 0, kWriting = 1, kPublished = 2, kRemoving = 3, kRemoved = 4 };

constexpr int kSlots = 64;  // concurrent writes in flight; veil has a handful at most

struct Slot {
  std::atomic<int> state{kFree};
  char path[PATH_MAX];
};
static_assert(std::atomic<int>::is_always_lock_free, "the signal handler needs lock-free atomics");

std::array<Slot, kSlots> g_slots;

constexpr const std::array<int, 3>& kSignals = kStopSignals;
// The disposition each signal had before ours: a handler installed earlier is called after the
// temporaries are gone (it decides how the process ends).
std::array<struct sigaction, kSignals.size()> g_previous;

void on_fatal_signal(int sig) {
  const int saved_errno = errno;
  remove_pending_temporaries();
  for (size_t i = 0; i < kSignals.size(); ++i) {
    if (kSignals[i] != sig) continue;
    const struct sigaction& prev = g_previous[i];
    if (prev.sa_flags & SA_SIGINFO) break;  // needs siginfo we do not have: default action
    if (prev.sa_handler != SIG_DFL && prev.sa_handler != SIG_IGN) {
      prev.sa_handler(sig);
      errno = saved_errno;
      return;
    }
  }
  // The default action, so the parent sees "killed by <sig>": the signal is blocked while this
  // handler runs, so the raised one is delivered (with SIG_DFL) as soon as it returns.
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  ::sigaction(sig, &dfl, nullptr);
  ::raise(sig);
  errno = saved_errno;
}

}  // namespace

PendingTemporary::PendingTemporary(const std::filesystem::path& path) {
  const std::string& s = path.native();
  if (s.empty() || s.size() >= PATH_MAX) return;
  for (int i = 0; i < kSlots; ++i) {
    int expected = kFree;
    if (!g_slots[i].state.compare_exchange_strong(expected, kWriting)) continue;
    std::memcpy(g_slots[i].path, s.c_str(), s.size() + 1);
    g_slots[i].state.store(kPublished, std::memory_order_release);
    slot_ = i;
    return;
  }
}

void PendingTemporary::release() {
  if (slot_ < 0) return;
  auto& state = g_slots[slot_].state;
  int expected = kPublished;
  // A slot the handler is removing stays taken: the process is about to end.
  if (!state.compare_exchange_strong(expected, kFree)) {
    expected = kRemoved;
    state.compare_exchange_strong(expected, kFree);
  }
  slot_ = -1;
}

void remove_pending_temporaries() noexcept {
  for (auto& slot : g_slots) {
    int expected = kPublished;
    if (!slot.state.compare_exchange_strong(expected, kRemoving, std::memory_order_acquire))
      continue;
    ::unlink(slot.path);
    slot.state.store(kRemoved, std::memory_order_release);
  }
}

void remove_temporaries_on_signal() {
  static std::once_flag once;
  std::call_once(once, [] {
    // The other two are blocked while cleaning up, so a second signal does not cut it short.
    for (size_t i = 0; i < kSignals.size(); ++i)
      install_unless_ignored(kSignals[i], on_fatal_signal, true, &g_previous[i]);
  });
}

}  // namespace veil
