#include "veil/mpc/protocols/nonlinear.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <thread>

#include "mpc/test_util.hpp"
#include "veil/core/error.hpp"
#include "veil/mpc/kernels/z67.hpp"
#include "veil/mpc/protocols/share.hpp"

namespace veil::mpc {
namespace {

using testing::on_each_role;
using testing::run_and_open;
using testing::split;
using testing::TestRng;

// Plaintext DReLU over the ring: [x >= 0] for x read as a signed 64-bit integer.
uint64_t plain_drelu(uint64_t x) { return static_cast<int64_t>(x) >= 0 ? 1 : 0; }

std::vector<uint64_t> edge_values(TestRng& rng) {
  std::vector<uint64_t> v = {0,
                             1,
                             ~uint64_t{0},  // -1
                             2,
                             ~uint64_t{1},
                             uint64_t{1} << 62,
                             (uint64_t{1} << 62) - 1,
                             uint64_t{0x7fffffffffffffff},
                             uint64_t{0x8000000000000000},
                             uint64_t{0x8000000000000001},
                             static_cast<uint64_t>(-(int64_t{1} << 62)),
                             4096,
                             static_cast<uint64_t>(-4096)};
  for (int i = 0; i < 200; ++i) v.push_back(rng.u64());
  for (int i = 0; i < 200; ++i) v.push_back(static_cast<uint64_t>(rng.signed_bits(1 + i % 62)));
  return v;
}

TEST(Drelu, ExactMatchesPlaintextOnEdgeAndRandomValues) {
  TestRng rng;
  std::vector<uint64_t> vals = edge_values(rng);
  RingTensor x({static_cast<int64_t>(vals.size())}, vals);
  auto sh = split(x, rng);
  RingTensor d = run_and_open({}, [&](Party& p) { return drelu(p, sh.of(p)); });
  for (size_t i = 0; i < vals.size(); ++i)
    EXPECT_EQ(d.data[i], plain_drelu(vals[i])) << "x = " << static_cast<int64_t>(vals[i]);
}

TEST(Drelu, SharesOfZeroAreCorrectForAllShareSplits) {
  // The same value with many different share splits exercises both carry cases of the masked
  // opening (c' < r' and c' >= r').
  TestRng rng;
  for (uint64_t v : {uint64_t{0}, ~uint64_t{0}, uint64_t{1} << 63, (uint64_t{1} << 63) - 1}) {
    RingTensor x = RingTensor::zeros({300});
    std::fill(x.data.begin(), x.data.end(), v);
    auto sh = split(x, rng);
    RingTensor d = run_and_open({}, [&](Party& p) { return drelu(p, sh.of(p)); });
    for (uint64_t o : d.data) ASSERT_EQ(o, plain_drelu(v));
  }
}

TEST(Drelu, ExactCostIsDocumented) {
  // 3 * packed(63 digits) + 16 (opening) + 8 (share of w) bytes per DReLU, 3 rounds.
  TestRng rng;
  const int64_t n = 1000;
  RingTensor x({n}, rng.u64s(n));
  auto sh = split(x, rng);
  LocalSessionReport rep;
  run_and_open(
      {}, [&](Party& p) { return drelu(p, sh.of(p)); }, &rep);
  EXPECT_EQ(rep.total_bytes(), 3 * z67_packed_size(63 * n) + 24 * n);
  EXPECT_EQ(rep.total_bytes() / n, 171u);
  EXPECT_EQ(rep.rounds, 3u);
}

TEST(Drelu, SpansSeveralPrivateCompareChunks) {
  // PrivateCompare runs in chunks of 2^19 / m elements with one message per chunk: several full
  // chunks and a partial one, exact and approximate, must still be right, in 3 rounds, with the
  // bytes of the chunked messages.
  TestRng rng;
  const size_t n = 2 * (size_t{1} << 19) / 43 + 77;  // > 2 chunks of the approximate mode
  std::vector<uint64_t> vals(n);
  for (size_t i = 0; i < n; ++i) vals[i] = static_cast<uint64_t>(rng.signed_bits(1 + i % 40));
  RingTensor x({static_cast<int64_t>(n)}, vals);
  auto sh = split(x, rng);
  for (DreluParams dp : {DreluParams{}, DreluParams{2, 20}}) {
    SessionParams sp;
    sp.drelu = dp;
    LocalSessionReport rep;
    RingTensor d = run_and_open(
        sp, [&](Party& p) { return drelu(p, sh.of(p)); }, &rep);
    for (size_t i = 0; i < n; ++i) {
      // Values below 2^s may get either sign in approximate mode.
      const bool decided =
          dp.exact() || static_cast<uint64_t>(std::abs(static_cast<int64_t>(vals[i]))) >=
                            (uint64_t{1} << dp.num_lsb_to_ignore);
      if (decided) {
        ASSERT_EQ(d.data[i], plain_drelu(vals[i])) << i;
      }
    }
    const size_t m = static_cast<size_t>(dp.ring_bits() - 1), open = (dp.ring_bits() + 7) / 8;
    const size_t chunk = (size_t{1} << 19) / m;
    size_t digit_bytes = 0;
    for (size_t e0 = 0; e0 < n; e0 += chunk)
      digit_bytes += z67_packed_size(std::min(chunk, n - e0) * m);
    EXPECT_EQ(rep.total_bytes(), 3 * digit_bytes + (2 * open + 8) * n);
    EXPECT_EQ(rep.rounds, 3u);
  }
}

// The reference's approximate DReLU on the two shares: v_j = (a_j >> s) << k (arithmetic shift,
// as numpy on int64), MSB of v_0 + v_1.
uint64_t reference_approx_drelu(uint64_t a0, uint64_t a1, int s, int k) {
  uint64_t v0 = static_cast<uint64_t>(static_cast<int64_t>(a0) >> s) << k;
  uint64_t v1 = static_cast<uint64_t>(static_cast<int64_t>(a1) >> s) << k;
  return ((v0 + v1) >> 63) ? 0 : 1;
}

class ApproxDrelu : public ::testing::TestWithParam<std::pair<int, int>> {};

TEST_P(ApproxDrelu, MatchesReferenceSemanticsAndIsExactInItsRange) {
  auto [s, k] = GetParam();
  SessionParams sp;
  sp.frac_bits = 16;
  sp.drelu.num_lsb_to_ignore = s;
  sp.drelu.comparison_bits_ignored = k;
  TestRng rng;
  std::vector<uint64_t> vals = edge_values(rng);
  // Values inside the guaranteed range 2^s <= |x| < 2^(63 - k + s).
  const int hi = 63 - k + s;
  std::vector<size_t> in_range;
  for (int i = 0; i < 300; ++i) {
    int bits = s + static_cast<int>(rng.u64() % static_cast<uint64_t>(hi - s));
    uint64_t mag = (uint64_t{1} << bits) | (rng.u64() & ((uint64_t{1} << bits) - 1));
    in_range.push_back(vals.size());
    vals.push_back(rng.u64() & 1 ? mag : -mag);
  }
  RingTensor x({static_cast<int64_t>(vals.size())}, vals);
  auto sh = split(x, rng);
  LocalSessionReport rep;
  RingTensor d = run_and_open(
      sp, [&](Party& p) { return drelu(p, sh.of(p)); }, &rep);
  for (size_t i = 0; i < vals.size(); ++i)
    ASSERT_EQ(d.data[i], reference_approx_drelu(sh.client.data[i], sh.server.data[i], s, k))
        << "x = " << static_cast<int64_t>(vals[i]);
  for (size_t i : in_range) ASSERT_EQ(d.data[i], plain_drelu(vals[i]));
  const size_t n = vals.size(), l = 64 - static_cast<size_t>(k);
  EXPECT_EQ(rep.total_bytes(), 3 * z67_packed_size((l - 1) * n) + 2 * n * ((l + 7) / 8) + 8 * n);
  EXPECT_EQ(rep.rounds, 3u);
}

INSTANTIATE_TEST_SUITE_P(Knobs, ApproxDrelu,
                         ::testing::Values(std::pair{5, 48}, std::pair{0, 48}, std::pair{3, 3},
                                           std::pair{0, 20}, std::pair{12, 40}, std::pair{0, 62}));

TEST(Relu, ExactMatchesPlaintextIncludingRangeLimits) {
  TestRng rng;
  std::vector<uint64_t> vals = edge_values(rng);
  RingTensor x({static_cast<int64_t>(vals.size())}, vals);
  auto sh = split(x, rng);
  LocalSessionReport rep;
  RingTensor y = run_and_open(
      {}, [&](Party& p) { return relu(p, sh.of(p)); }, &rep);
  for (size_t i = 0; i < vals.size(); ++i)
    ASSERT_EQ(y.data[i], plain_drelu(vals[i]) ? vals[i] : 0)
        << "x = " << static_cast<int64_t>(vals[i]);
  EXPECT_EQ(rep.rounds, 3u);
  const size_t n = vals.size();
  EXPECT_EQ(rep.total_bytes(), 3 * z67_packed_size(63 * n) + 32 * n);
}

TEST(Relu, ApproximateUsesASeparateMultiplicationMask) {
  SessionParams sp;
  sp.frac_bits = 16;
  sp.drelu = {5, 48};
  TestRng rng;
  std::vector<uint64_t> vals;
  for (int i = 0; i < 400; ++i) vals.push_back(encode_fixed(rng.uniform(-10, 10), 16));
  vals.push_back(encode_fixed(15.9, 16));
  vals.push_back(encode_fixed(-15.9, 16));
  RingTensor x({static_cast<int64_t>(vals.size())}, vals);
  auto sh = split(x, rng);
  RingTensor y = run_and_open(sp, [&](Party& p) { return relu(p, sh.of(p)); });
  for (size_t i = 0; i < vals.size(); ++i) {
    int64_t v = static_cast<int64_t>(vals[i]);
    if (std::abs(v) < 32) continue;  // below 2^s the sign may be wrong by design
    ASSERT_EQ(y.data[i], v >= 0 ? vals[i] : 0) << decode_fixed(vals[i], 16);
  }
}

TEST(Relu, EmptyTensor) {
  RingTensor x = RingTensor::zeros({0});
  TestRng rng;
  auto sh = split(x, rng);
  RingTensor y = run_and_open({}, [&](Party& p) { return relu(p, sh.of(p)); });
  EXPECT_EQ(y.numel(), 0);
}

TEST(GatedRelu, BroadcastsOneBitPerGate) {
  TestRng rng;
  const int64_t ng = 50, nx = 400;
  RingTensor gate = RingTensor::zeros({ng}), x = RingTensor::zeros({nx});
  for (auto& v : gate.data) v = static_cast<uint64_t>(rng.signed_bits(30));
  for (auto& v : x.data) v = static_cast<uint64_t>(rng.signed_bits(30));
  std::vector<uint32_t> gate_of(nx);
  for (auto& g : gate_of) g = static_cast<uint32_t>(rng.u64() % ng);
  auto gs = split(gate, rng), xs = split(x, rng);
  for (DreluParams dp : {DreluParams{}, DreluParams{2, 20}}) {
    SessionParams sp;
    sp.drelu = dp;
    RingTensor y =
        run_and_open(sp, [&](Party& p) { return gated_relu(p, xs.of(p), gs.of(p), gate_of); });
    for (int64_t i = 0; i < nx; ++i) {
      int64_t g = static_cast<int64_t>(gate.data[gate_of[i]]);
      if (std::abs(g) < 4) continue;
      ASSERT_EQ(y.data[i], g >= 0 ? x.data[i] : 0);
    }
  }
}

// Plaintext block ReLU over ring values.
RingTensor plain_block_relu(const RingTensor& x, const std::vector<BlockSize>& blocks) {
  RingTensor y = x;
  const int64_t n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3];
  for (int64_t b = 0; b < n; ++b)
    for (int64_t ch = 0; ch < c; ++ch) {
      BlockSize bs = blocks[ch];
      if (bs.h == 0) continue;
      for (int64_t by = 0; by < h; by += bs.h)
        for (int64_t bx = 0; bx < w; bx += bs.w) {
          uint64_t sum = 0;
          for (int64_t yy = by; yy < std::min(h, by + bs.h); ++yy)
            for (int64_t xx = bx; xx < std::min(w, bx + bs.w); ++xx)
              sum += x.data[((b * c + ch) * h + yy) * w + xx];
          bool keep = static_cast<int64_t>(sum) >= 0;
          for (int64_t yy = by; yy < std::min(h, by + bs.h); ++yy)
            for (int64_t xx = bx; xx < std::min(w, bx + bs.w); ++xx)
              if (!keep) y.data[((b * c + ch) * h + yy) * w + xx] = 0;
        }
    }
  return y;
}

TEST(BlockRelu, MatchesPlaintextPerChannelBlocks) {
  TestRng rng;
  RingTensor x = RingTensor::zeros({2, 5, 7, 6});
  for (auto& v : x.data) v = encode_fixed(rng.uniform(-4, 4), 12);
  std::vector<BlockSize> blocks = {{1, 1}, {2, 2}, {0, 0}, {3, 5}, {7, 6}};
  auto sh = split(x, rng);
  LocalSessionReport rep;
  RingTensor y = run_and_open(
      {}, [&](Party& p) { return block_relu(p, sh.of(p), blocks); }, &rep);
  EXPECT_EQ(y.data, plain_block_relu(x, blocks).data);
  const int64_t drelus = block_relu_count(x.shape, blocks);
  EXPECT_EQ(drelus, 2 * (42 + 4 * 3 + 0 + 3 * 2 + 1));
  EXPECT_EQ(rep.rounds, 3u);
}

// Plaintext max pooling over signed ring values, padding excluded.
RingTensor plain_maxpool(const RingTensor& x, const Pool2dGeometry& g) {
  const int64_t n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3];
  const int64_t oh = g.out_h(h), ow = g.out_w(w);
  RingTensor y = RingTensor::zeros({n, c, oh, ow});
  for (int64_t pl = 0; pl < n * c; ++pl)
    for (int64_t oy = 0; oy < oh; ++oy)
      for (int64_t ox = 0; ox < ow; ++ox) {
        int64_t best = std::numeric_limits<int64_t>::min();
        for (int64_t ky = 0; ky < g.kernel_h; ++ky)
          for (int64_t kx = 0; kx < g.kernel_w; ++kx) {
            int64_t yy = oy * g.stride_h - g.pad_top + ky, xx = ox * g.stride_w - g.pad_left + kx;
            if (yy < 0 || yy >= h || xx < 0 || xx >= w) continue;
            best = std::max(best, static_cast<int64_t>(x.data[(pl * h + yy) * w + xx]));
          }
        y.data[(pl * oh + oy) * ow + ox] = static_cast<uint64_t>(best);
      }
  return y;
}

TEST(MaxPool, AnyKernelStrideAndPadding) {
  TestRng rng;
  std::vector<Pool2dGeometry> geoms;
  geoms.push_back({});  // 2x2 / 2
  Pool2dGeometry g3;
  g3.kernel_h = g3.kernel_w = 3;
  g3.pad_top = g3.pad_left = g3.pad_bottom = g3.pad_right = 1;
  geoms.push_back(g3);  // ResNet's 3x3 / 2 / 1
  Pool2dGeometry g4;
  g4.kernel_h = 2;
  g4.kernel_w = 3;
  g4.stride_h = 1;
  g4.stride_w = 2;
  g4.ceil_mode = true;
  geoms.push_back(g4);
  Pool2dGeometry g5;
  g5.kernel_h = g5.kernel_w = 5;
  g5.stride_h = g5.stride_w = 1;
  geoms.push_back(g5);
  RingTensor x = RingTensor::zeros({1, 3, 9, 8});
  for (auto& v : x.data) v = static_cast<uint64_t>(rng.signed_bits(40));
  x.data[5] = static_cast<uint64_t>(-(int64_t{1} << 61));  // large magnitudes
  x.data[6] = uint64_t{1} << 61;
  auto sh = split(x, rng);
  for (const auto& g : geoms) {
    RingTensor y = run_and_open({}, [&](Party& p) { return maxpool2d(p, sh.of(p), g); });
    EXPECT_EQ(y.data, plain_maxpool(x, g).data) << "kernel " << g.kernel_h << "x" << g.kernel_w;
  }
}

TEST(Session, FreshSeedsGiveFreshShares) {
  // No fixed seeds: the same input shared twice gives different client shares.
  RingTensor x = RingTensor::zeros({16});
  std::array<std::vector<uint64_t>, 2> seen;
  for (int run = 0; run < 2; ++run)
    run_local_session({}, [&](Party& p) {
      RingTensor s =
          share_client_input(p, p.is(Role::Client) ? x : RingTensor::shape_only(x.shape));
      if (p.is(Role::Server)) seen[run] = s.data;
    });
  EXPECT_NE(seen[0], seen[1]);
}

TEST(Session, MismatchedParametersFailTheHandshake) {
  std::array<std::array<std::unique_ptr<Channel>, 3>, 3> links;
  for (int i = 0; i < 3; ++i)
    for (int j = i + 1; j < 3; ++j) {
      auto [a, b] = make_memory_channel_pair(std::chrono::seconds(5));
      links[i][j] = std::move(a);
      links[j][i] = std::move(b);
    }
  std::array<std::string, 3> errors;
  auto run = [&](int r) {
    SessionParams sp;
    if (r == 2) sp.frac_bits = 16;
    try {
      Party p(static_cast<Role>(r), std::move(links[r]), sp);
    } catch (const ProtocolError& e) {
      errors[r] = e.what();
    }
  };
  on_each_role(run);
  EXPECT_NE(errors[0].find("parameters differ"), std::string::npos) << errors[0];
  EXPECT_NE(errors[2].find("parameters differ"), std::string::npos) << errors[2];
}

TEST(Session, AFailingPartyStopsTheOthersWithProtocolError) {
  RingTensor x = RingTensor::zeros({64});
  EXPECT_THROW(run_local_session(
                   {},
                   [&](Party& p) {
                     if (p.is(Role::Helper)) throw ProtocolError("helper crashed");
                     RingTensor in = p.is(Role::Helper) ? RingTensor::shape_only(x.shape) : x;
                     relu(p, in);
                   },
                   std::chrono::seconds(20)),
               ProtocolError);
}

}  // namespace
}  // namespace veil::mpc
