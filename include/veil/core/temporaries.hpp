// Files that exist only while an output is being written (write_file_atomic's temporary, a
// secret created before the key it protects is saved): a process-wide registry that a signal
// handler empties, so SIGTERM, SIGINT or SIGHUP in the middle of a write leaves nothing behind.
//
// The registry is a fixed array of slots, each a path buffer and an atomic state: a path is
// copied into its slot before the slot is published, and the handler only reads published slots,
// so it needs no lock and no allocation (async-signal-safe, POSIX.1-2017 2.4.3).
#pragma once

#include <filesystem>

namespace veil {

// Registers `path` for removal on a fatal signal for as long as the object lives; release()
// (or destruction) forgets it, e.g. once the temporary was renamed into place. With every slot
// in use, or a path longer than PATH_MAX, the file is simply not tracked.
class PendingTemporary {
 public:
  explicit PendingTemporary(const std::filesystem::path& path);
  ~PendingTemporary() { release(); }
  PendingTemporary(const PendingTemporary&) = delete;
  PendingTemporary& operator=(const PendingTemporary&) = delete;
  void release();

 private:
  int slot_ = -1;
};

// Unlinks every registered temporary. Async-signal-safe: a signal handler that replaces the one
// below (e.g. a supervisor's that stops its children first) calls this before re-raising.
void remove_pending_temporaries() noexcept;

// Installs, once, a handler for SIGTERM, SIGINT and SIGHUP that removes the pending temporaries
// and re-raises the signal with the default action, so the exit status stays "killed by signal".
// A signal whose disposition is SIG_IGN (nohup, a background job's SIGINT) is left ignored.
void remove_temporaries_on_signal();

}  // namespace veil
