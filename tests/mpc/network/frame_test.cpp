#include "veil/mpc/network/frame.hpp"

#include <gtest/gtest.h>

#include "mpc/test_util.hpp"
#include "veil/core/error.hpp"
#include "veil/mpc/kernels/z67.hpp"

namespace veil::mpc {
namespace {

using testing::TestRng;

TEST(Frame, RoundTripThroughTheDecoderInPieces) {
  std::vector<uint8_t> stream;
  std::vector<std::vector<uint8_t>> payloads = {{}, {1, 2, 3}, std::vector<uint8_t>(1000, 9)};
  for (size_t i = 0; i < payloads.size(); ++i) {
    auto f = encode_frame({FrameKind::Data, static_cast<uint32_t>(i + 10), 7, 0}, payloads[i]);
    stream.insert(stream.end(), f.begin(), f.end());
  }
  auto hb = encode_frame({FrameKind::Heartbeat, 0, 0, 0}, {});
  stream.insert(stream.end(), hb.begin(), hb.end());
  FrameDecoder dec(4096);
  std::vector<Frame> got;
  for (size_t i = 0; i < stream.size(); i += 5) {
    dec.feed(std::span(stream.data() + i, std::min<size_t>(5, stream.size() - i)));
    Frame f;
    while (dec.next(f)) got.push_back(std::move(f));
  }
  ASSERT_EQ(got.size(), 4u);
  for (size_t i = 0; i < payloads.size(); ++i) {
    EXPECT_EQ(got[i].header.tag, i + 10);
    EXPECT_EQ(got[i].header.depth, 7u);
    EXPECT_EQ(got[i].payload, payloads[i]);
  }
  EXPECT_EQ(got[3].header.kind, FrameKind::Heartbeat);
  EXPECT_EQ(dec.buffered(), 0u);
}

TEST(Frame, RejectsBadHeadersBeforeAllocating) {
  std::vector<uint8_t> h(kFrameHeaderSize);
  encode_frame_header({FrameKind::Data, 1, 0, 100},
                      std::span<uint8_t, kFrameHeaderSize>(h.data(), kFrameHeaderSize));
  EXPECT_NO_THROW(parse_frame_header(h, 100));
  EXPECT_THROW(parse_frame_header(h, 99), MalformedInput);  // oversized
  EXPECT_THROW(parse_frame_header(std::span(h.data(), 10), 100), MalformedInput);
  auto bad = h;
  bad[0] ^= 1;
  EXPECT_THROW(parse_frame_header(bad, 100), MalformedInput);
  bad = h;
  bad[4] = 2;  // version
  EXPECT_THROW(parse_frame_header(bad, 100), MalformedInput);
  bad = h;
  bad[6] = 7;  // kind
  EXPECT_THROW(parse_frame_header(bad, 100), MalformedInput);
  bad = h;
  bad[6] = 1;  // heartbeat with payload
  EXPECT_THROW(parse_frame_header(bad, 100), MalformedInput);
  // A header announcing 2^63 bytes is rejected by the decoder without buffering a payload.
  std::vector<uint8_t> huge(kFrameHeaderSize);
  encode_frame_header({FrameKind::Data, 1, 0, uint64_t{1} << 63},
                      std::span<uint8_t, kFrameHeaderSize>(huge.data(), kFrameHeaderSize));
  FrameDecoder dec;
  EXPECT_THROW(dec.feed(huge), MalformedInput);
}

TEST(Z67, PackUnpackRoundTripAndSize) {
  TestRng rng;
  for (size_t n : {0, 1, 4, 5, 8, 9, 10, 63, 100, 945}) {
    std::vector<uint8_t> d(n);
    for (auto& v : d) v = static_cast<uint8_t>(rng.u64() % kP);
    if (n > 0) d[0] = kP - 1;
    if (n == 945) std::fill(d.begin() + 500, d.end(), kP - 1);  // the largest groups
    auto packed = pack_z67(d);
    EXPECT_EQ(packed.size(), z67_packed_size(n));
    EXPECT_EQ(unpack_z67(packed, n), d);
    // The wire format: groups of up to nine digits as little-endian base-67 numbers.
    std::vector<uint8_t> naive;
    for (size_t i = 0; i < n; i += kZ67Group) {
      const size_t g = std::min<size_t>(kZ67Group, n - i);
      uint64_t v = 0;
      for (size_t k = g; k-- > 0;) v = v * kP + d[i + k];
      for (int b = 0; b < kZ67GroupBytes[g]; ++b)
        naive.push_back(static_cast<uint8_t>(v >> (8 * b)));
    }
    EXPECT_EQ(std::vector<uint8_t>(packed.begin(), packed.end()), naive) << n;
  }
  EXPECT_EQ(z67_packed_size(63), 49u);
  // Out-of-range group and wrong length are protocol errors.
  std::vector<uint8_t> bad(7, 0xff);
  EXPECT_THROW(unpack_z67(bad, 9), ProtocolError);
  EXPECT_THROW(unpack_z67(bad, 8), ProtocolError);
  EXPECT_THROW(unpack_z67(std::vector<uint8_t>(1, 67), 1), ProtocolError);
}

TEST(Z67, SamplerIsUniformish) {
  ByteSampler s{AesCtrPrg(random_seed())};
  std::vector<int> counts(kP);
  std::vector<uint8_t> draws(67000);
  s.fill_below(kP, draws.data(), draws.size());
  for (uint8_t v : draws) ++counts[v];
  for (int c : counts) {
    EXPECT_GT(c, 700);
    EXPECT_LT(c, 1300);
  }
}

// fill_below's draws and consumed bytes, per kernel: tests/mpc/kernels/z67_kernels_test.cpp.

// Every bound the permutations use: outputs in range, every value reached, no value more than
// ~6 sigma away from its expectation (a biased mapping of the 256 byte values, e.g. a plain
// modulo for bound 200, would put some values at twice the others).
TEST(Z67, SamplerIsUniformForEveryBound) {
  ByteSampler s{AesCtrPrg(random_seed())};
  for (unsigned bound : {1u, 2u, 3u, 7u, 63u, 66u, 67u, 128u, 200u, 255u, 256u}) {
    const int per_value = 400;
    std::vector<int> counts(bound);
    std::vector<uint8_t> draws(bound * per_value);
    s.fill_below(bound, draws.data(), draws.size());
    for (unsigned v : draws) {
      ASSERT_LT(v, bound);
      ++counts[v];
    }
    for (int c : counts) {
      EXPECT_GT(c, per_value - 6 * 20) << "bound " << bound;
      EXPECT_LT(c, per_value + 6 * 20) << "bound " << bound;
    }
  }
}

}  // namespace
}  // namespace veil::mpc
