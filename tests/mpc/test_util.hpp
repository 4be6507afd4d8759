// Shared helpers for the MPC tests: test randomness, secret sharing by the test itself and
// running the three parties as threads.
#pragma once

#include <gtest/gtest.h>

#include <array>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "graph_node.hpp"
#include "temp_dir.hpp"
#include "veil/core/random.hpp"
#include "veil/model/graph.hpp"
#include "veil/mpc/local_session.hpp"
#include "veil/mpc/party.hpp"
#include "veil/mpc/ring.hpp"

namespace veil::mpc::testing {

using veil::testing::TempDir;

// Test data (not secrets) still comes from the AES-CTR PRG under a fresh seed.
class TestRng {
 public:
  TestRng() : prg_(random_seed()) {}
  uint64_t u64() { return prg_.next_u64(); }
  std::vector<uint64_t> u64s(size_t n) {
    std::vector<uint64_t> v(n);
    prg_.fill(std::span<uint64_t>(v));
    return v;
  }
  // Uniform signed value with |v| < 2^bits.
  int64_t signed_bits(int bits) {
    uint64_t m = (uint64_t{1} << bits) - 1;
    int64_t v = static_cast<int64_t>(u64() & m);
    return (u64() & 1) ? -v : v;
  }
  double uniform(double lo, double hi) {
    return lo + (hi - lo) * static_cast<double>(u64() >> 11) * 0x1p-53;
  }

 private:
  AesCtrPrg prg_;
};

// A float tensor of uniform values in [lo, hi) (weights and inputs of test graphs).
inline Tensor random_tensor(Shape s, TestRng& rng, double lo, double hi) {
  std::vector<float> v(static_cast<size_t>(shape_numel(s)));
  for (auto& x : v) x = static_cast<float>(rng.uniform(lo, hi));
  return Tensor::from_floats(std::move(s), std::move(v));
}

using veil::testing::node;

struct Shared {
  RingTensor client, server;
  RingTensor of(const Party& p) const {
    if (p.is(Role::Client)) return client;
    if (p.is(Role::Server)) return server;
    return RingTensor::shape_only(client.shape);
  }
};

inline Shared split(const RingTensor& x, TestRng& rng) {
  Shared s{RingTensor::zeros(x.shape), RingTensor::zeros(x.shape)};
  s.client.data = rng.u64s(x.data.size());
  for (size_t i = 0; i < x.data.size(); ++i) s.server.data[i] = x.data[i] - s.client.data[i];
  return s;
}

// Runs fn(r) for the server (1) and the helper (2) on threads and for the client (0) here, as the
// three parties of a session, and returns when all three are done.
inline void on_each_role(const std::function<void(int)>& fn) {
  std::thread server(fn, 1), helper(fn, 2);
  fn(0);
  server.join();
  helper.join();
}

// Runs `body` on the three parties and returns client share + server share of what it returns
// (and checks that the helper got no values).
inline RingTensor run_and_open(const SessionParams& params,
                               const std::function<RingTensor(Party&)>& body,
                               LocalSessionReport* report = nullptr) {
  std::array<RingTensor, 3> out;
  LocalSessionReport r =
      run_local_session(params, [&](Party& p) { out[static_cast<int>(p.role())] = body(p); });
  if (report) *report = r;
  EXPECT_TRUE(out[2].data.empty() || out[2].numel() == 0);
  EXPECT_EQ(out[0].shape, out[1].shape);
  EXPECT_EQ(out[0].shape, out[2].shape);
  RingTensor sum = out[0];
  for (size_t i = 0; i < sum.data.size(); ++i) sum.data[i] += out[1].data[i];
  return sum;
}

}  // namespace veil::mpc::testing
