// Runs the three parties of a session as three threads of this process over in-memory links:
// for tests, benchmarks and single-machine demos.
#pragma once

#include <array>
#include <chrono>
#include <functional>

#include "veil/mpc/party.hpp"

namespace veil::mpc {

struct LocalSessionReport {
  // Per role, counted after the handshake.
  std::array<ChannelStats, 3> stats{};
  // Sequential communication rounds of the body (largest logical clock, handshake excluded).
  uint32_t rounds = 0;
  uint64_t total_bytes() const;  // payload bytes sent by all three parties
};

// Calls body(party) on three threads, one per role. If any party throws, its links are closed
// (so the others fail fast) and the first exception thrown is rethrown here.
LocalSessionReport run_local_session(const SessionParams& params,
                                     const std::function<void(Party&)>& body,
                                     std::chrono::milliseconds timeout = std::chrono::seconds(30));

}  // namespace veil::mpc
