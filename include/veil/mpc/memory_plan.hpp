// The memory three-party inference needs, planned per party from shapes before a party starts,
// as veil/model/memory_plan.hpp does for the float engine. For every step of a batch (input
// sharing, each op, the reveal) and each role it adds the activations still live (an op's output
// is freed after its last reader; the helper holds no shares, so none) to the step's own
// buffers: the protocol's temporaries and messages, including those a slow or hostile peer can
// make this party hold (the receiver reads frames as they arrive, so a peer that sends ahead,
// like the helper's PrivateCompare bits, is buffered here). The formulas mirror the protocols
// in src/mpc/protocols; each names the buffers it counts. A party's fixed part adds the weights,
// the server's encoded copy, kernel scratch and the client's images.
//
// What is not counted: the process itself (code, libraries, oneDNN's and glibc's pools), which
// `mpc run --json` shows as the difference between each party's measured peak RSS and its plan.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "veil/mpc/party.hpp"
#include "veil/mpc/secure_model.hpp"

namespace veil::mpc {

struct SecureMemoryOptions {
  int64_t batch = 1;   // images per secure batch
  int64_t images = 0;  // images the client holds (their floats are part of its fixed memory)
  DreluParams drelu;   // the exact and the approximate DReLU use different digit counts
  int threads = 1;     // ring GEMM threads per party (scratch per thread)
};

struct SecureMemoryPlan {
  int64_t batch = 0;
  std::vector<std::string> steps;  // "sharing the input", op descriptions, "revealing the output"
  std::array<std::vector<uint64_t>, 3> during{};  // per role and step: live values + the step's
  std::array<uint64_t, 3> fixed{};                // per role: weights, scratch, images
  std::array<uint64_t, 3> peak{};                 // per role: fixed + the largest `during`
  std::array<size_t, 3> peak_step{};              // per role: the step of its peak
  uint64_t largest_message = 0;                   // one frame's payload, the largest any step sends
  size_t largest_message_step = 0;

  uint64_t total() const;  // the three peaks: what one machine running all needs
  uint64_t need(std::optional<Role> role) const;  // one role's peak, or the total
};

SecureMemoryPlan plan_secure_memory(const SecureModel& model, const SecureMemoryOptions& options);

// Throws InvalidArgument (one line) when `role`'s peak (nullopt: the three peaks together) is
// over `budget`, or when a message would be larger than `max_frame` bytes (the receiver would
// refuse the frame), naming the step where it happens and the largest batch that fits (found by
// planning smaller batches; none when even one image does not).
void require_secure_within(const SecureModel& model, const SecureMemoryOptions& options,
                           std::optional<Role> role, uint64_t budget, uint64_t max_frame);

// The largest batch in [1, limit] whose plan fits (peak of `role` or the total, and message
// size), or 0 when not even one image fits. Plans grow with the batch, so a bisection finds it.
int64_t largest_batch_within(const SecureModel& model, const SecureMemoryOptions& options,
                             std::optional<Role> role, uint64_t budget, uint64_t max_frame,
                             int64_t limit);

}  // namespace veil::mpc
