// Loopback listeners for the three-party TCP tests: the server and the helper listen on
// ephemeral ports of 127.0.0.1, and every role gets the addresses and its own listener.
#pragma once

#include <array>

#include "veil/mpc/network/tcp_channel.hpp"

namespace veil::mpc::testing {

struct LoopbackListeners {
  TcpListener server{"127.0.0.1", 0}, helper{"127.0.0.1", 0};

  std::array<PartyAddress, 3> addresses() const {
    std::array<PartyAddress, 3> a;
    a[1].port = server.port();
    a[2].port = helper.port();
    return a;
  }
  // What connect_tcp_links needs for role r (the client listens on nothing).
  TcpListener* of(int r) { return r == 1 ? &server : r == 2 ? &helper : nullptr; }
};

}  // namespace veil::mpc::testing
