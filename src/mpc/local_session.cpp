#include "veil/mpc/local_session.hpp"

#include <exception>
#include <mutex>
#include <thread>

namespace veil::mpc {

uint64_t LocalSessionReport::total_bytes() const {
  return stats[0].bytes_sent + stats[1].bytes_sent + stats[2].bytes_sent;
}

LocalSessionReport run_local_session(const SessionParams& params,
                                     const std::function<void(Party&)>& body,
                                     std::chrono::milliseconds timeout) {
  std::array<std::array<std::unique_ptr<Channel>, 3>, 3> links;
  for (int i = 0; i < 3; ++i)
    for (int j = i + 1; j < 3; ++j) {
      auto [a, b] = make_memory_channel_pair(timeout);
      links[i][j] = std::move(a);
      links[j][i] = std::move(b);
    }
  LocalSessionReport report;
  std::array<uint32_t, 3> start_clock{}, end_clock{};
  std::mutex mu;
  std::exception_ptr first;
  auto run = [&](int r) {
    std::unique_ptr<Party> party;
    try {
      party = std::make_unique<Party>(static_cast<Role>(r), std::move(links[r]), params);
      ChannelStats before = party->stats();
      start_clock[r] = party->clock();
      body(*party);
      ChannelStats after = party->stats();
      end_clock[r] = party->clock();
      report.stats[r] = {after.bytes_sent - before.bytes_sent,
                         after.bytes_received - before.bytes_received,
                         after.messages_sent - before.messages_sent,
                         after.messages_received - before.messages_received};
    } catch (...) {
      {
        std::lock_guard lock(mu);
        if (!first) first = std::current_exception();
      }
      if (party) party->close();
    }
  };
  std::thread t1(run, 1), t2(run, 2);
  run(0);
  t1.join();
  t2.join();
  if (first) std::rethrow_exception(first);
  uint32_t s = std::max({start_clock[0], start_clock[1], start_clock[2]});
  uint32_t e = std::max({end_clock[0], end_clock[1], end_clock[2]});
  report.rounds = e - s;
  return report;
}

}  // namespace veil::mpc
