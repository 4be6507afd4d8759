// The Z_67 packing and sampling kernels against the wire format's definition (groups of up to
// nine digits as little-endian base-67 numbers in kZ67GroupBytes[g] bytes), against plain
// rejection sampling and against each other: the AVX2 and AVX-512 kernels must give the scalar
// one's bytes, digits, errors and draws, since the parties of a session may run different
// kernels.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "mpc/test_util.hpp"
#include "veil/core/cpu.hpp"
#include "veil/core/error.hpp"
#include "veil/mpc/kernels/z67.hpp"

namespace veil::mpc {
namespace {

using testing::TestRng;

uint64_t pow67(size_t g) {
  uint64_t v = 1;
  for (size_t i = 0; i < g; ++i) v *= kP;
  return v;
}

Bytes definition_pack(const std::vector<uint8_t>& d) {
  Bytes out;
  for (size_t i = 0; i < d.size(); i += kZ67Group) {
    const size_t g = std::min<size_t>(kZ67Group, d.size() - i);
    uint64_t v = 0;
    for (size_t k = 0; k < g; ++k) v += d[i + k] * pow67(k);
    for (int b = 0; b < kZ67GroupBytes[g]; ++b) out.push_back(static_cast<uint8_t>(v >> (8 * b)));
  }
  return out;
}

// Appends group value v (< 2^56) as 7 little-endian bytes, and its digits if in range.
void append_group(uint64_t v, std::vector<uint8_t>& bytes, std::vector<uint8_t>* digits) {
  for (int b = 0; b < 7; ++b) bytes.push_back(static_cast<uint8_t>(v >> (8 * b)));
  if (digits)
    for (int k = 0; k < kZ67Group; ++k, v /= kP) digits->push_back(static_cast<uint8_t>(v % kP));
}

enum class Fill { Random, Extremes, AllMax, AllZero };

std::vector<uint8_t> make_digits(TestRng& rng, size_t n, Fill fill) {
  std::vector<uint8_t> d(n);
  for (auto& v : d) {
    switch (fill) {
      case Fill::Random:
        v = static_cast<uint8_t>(rng.u64() % kP);
        break;
      case Fill::Extremes:
        v = (rng.u64() & 1) ? kP - 1 : 0;
        break;
      case Fill::AllMax:
        v = kP - 1;
        break;
      case Fill::AllZero:
        v = 0;
        break;
    }
  }
  return d;
}

std::vector<uint8_t> unpacked(Z67Kernel kernel, std::span<const uint8_t> bytes, size_t n) {
  std::vector<uint8_t> out(n, 0xee);
  unpack_z67_with(kernel, bytes, std::span<uint8_t>(out));
  return out;
}

// The ProtocolError message of f(), or "" when it does not throw one.
template <class F>
std::string protocol_error(F f) {
  try {
    f();
  } catch (const ProtocolError& e) {
    return e.what();
  }
  return "";
}

class Z67KernelTest : public ::testing::TestWithParam<Z67Kernel> {
 protected:
  void SetUp() override {
    if (!z67_kernel_available(GetParam())) GTEST_SKIP() << "kernel not available here";
  }
  Z67Kernel kernel() const { return GetParam(); }
  TestRng rng_;
};

TEST_P(Z67KernelTest, PackAndUnpackFollowTheDefinitionAtEveryLength) {
  std::vector<size_t> lengths;
  for (size_t n = 0; n <= 300; ++n) lengths.push_back(n);
  for (size_t n : {72 * 1000, 72 * 1000 + 71, 1000005}) lengths.push_back(n);
  for (Fill fill : {Fill::Random, Fill::Extremes, Fill::AllMax, Fill::AllZero})
    for (size_t n : lengths) {
      const auto d = make_digits(rng_, n, fill);
      const auto want = definition_pack(d);
      const auto packed = pack_z67_with(kernel(), d);
      ASSERT_EQ(packed.size(), z67_packed_size(n)) << n;
      ASSERT_EQ(packed, want) << "n " << n << " fill " << static_cast<int>(fill);
      ASSERT_EQ(unpacked(kernel(), want, n), d) << "n " << n << " fill " << static_cast<int>(fill);
    }
}

TEST_P(Z67KernelTest, MatchesTheScalarKernel) {
  for (size_t n : {size_t{0}, size_t{6}, size_t{7}, size_t{42}, size_t{43}, size_t{44}, size_t{71},
                   size_t{72}, size_t{145}, size_t{63 * 64}, size_t{63 * 64 * 41 + 7}}) {
    const auto d = make_digits(rng_, n, Fill::Random);
    const auto bytes = pack_z67_with(Z67Kernel::Scalar, d);
    EXPECT_EQ(pack_z67_with(kernel(), d), bytes) << n;
    EXPECT_EQ(pack_z67(d), bytes) << n;
    EXPECT_EQ(unpacked(kernel(), bytes, n), unpacked(Z67Kernel::Scalar, bytes, n)) << n;
    EXPECT_EQ(unpack_z67(bytes, n), d) << n;
  }
}

// Group values where the vector kernel's split v = lo + 67^4 hi (a double-precision estimate
// of hi, then one correction) and its later constant divisions are closest to going wrong:
// lo = 0 and lo = 67^4 - 1 for hi at both ends of its range and at random, and the largest
// group, 67^9 - 1. Checked against the digits of v, not against another kernel.
TEST_P(Z67KernelTest, UnpackIsExactAtTheDivisionBoundaries) {
  const uint64_t p4 = pow67(4), p5 = pow67(5);
  std::vector<uint64_t> his;
  for (uint64_t h = 0; h < 3000; ++h) his.push_back(h);
  for (uint64_t h = p5 - 3000; h < p5; ++h) his.push_back(h);
  for (uint64_t h = 1; h < p5; h *= 2) his.insert(his.end(), {h - 1, h, h + 1});
  for (int i = 0; i < 50000; ++i) his.push_back(rng_.u64() % p5);
  std::vector<uint8_t> bytes, digits;
  for (uint64_t h : his)
    for (uint64_t lo : {uint64_t{0}, uint64_t{1}, p4 / 2, p4 - 2, p4 - 1})
      append_group(h * p4 + lo, bytes, &digits);
  for (int i = 0; i < 50000; ++i) append_group(rng_.u64() % pow67(9), bytes, &digits);
  append_group(pow67(9) - 1, bytes, &digits);
  // A tail of full groups the vector kernel leaves to the scalar code, then one partial group.
  const size_t pad = (8 - digits.size() / kZ67Group % 8) % 8 + 3;
  for (size_t i = 0; i < pad; ++i) append_group(pow67(9) - 1 - i, bytes, &digits);
  digits.insert(digits.end(), {kP - 1, kP - 1, kP - 1, kP - 1, kP - 1});
  for (int b = 0; b < kZ67GroupBytes[5]; ++b)
    bytes.push_back(static_cast<uint8_t>((pow67(5) - 1) >> (8 * b)));
  const auto got = unpacked(kernel(), bytes, digits.size());
  for (size_t i = 0; i < digits.size(); ++i)
    ASSERT_EQ(got[i], digits[i]) << "digit " << i << " of group " << i / kZ67Group;
  EXPECT_EQ(pack_z67_with(kernel(), digits), Bytes(bytes.begin(), bytes.end()));
}

// An out-of-range group anywhere (each lane of a vector block, a full group of the scalar
// tail, the partial last group) is a ProtocolError with the scalar kernel's message.
TEST_P(Z67KernelTest, UnpackRejectsOutOfRangeGroups) {
  const size_t groups = 8 * 25 + 3;  // 25 vector blocks, then three full groups and a partial
  const size_t n = groups * kZ67Group + 5;
  const auto good = pack_z67_with(Z67Kernel::Scalar, make_digits(rng_, n, Fill::Random));
  const std::string want = "Z_67 digits: group out of range";
  std::vector<size_t> positions;
  for (size_t g = 8 * 12; g < 8 * 13; ++g) positions.push_back(g);
  positions.insert(positions.end(), {0, 8 * 25 - 1, 8 * 25, groups - 1});
  for (uint64_t bad : {pow67(9), pow67(9) + 1, (uint64_t{1} << 55), (uint64_t{1} << 56) - 1})
    for (size_t g : positions) {
      auto bytes = good;
      for (int b = 0; b < 7; ++b) bytes[7 * g + static_cast<size_t>(b)] = uint8_t(bad >> (8 * b));
      EXPECT_EQ(protocol_error([&] { unpacked(kernel(), bytes, n); }), want)
          << "group " << g << " value " << bad;
      EXPECT_EQ(protocol_error([&] { unpack_z67(bytes, n); }), want) << g;
    }
  // The partial group of 5 digits: 67^5 does not fit.
  auto bytes = good;
  for (int b = 0; b < kZ67GroupBytes[5]; ++b)
    bytes[7 * groups + static_cast<size_t>(b)] = static_cast<uint8_t>(pow67(5) >> (8 * b));
  EXPECT_EQ(protocol_error([&] { unpacked(kernel(), bytes, n); }), want);
}

TEST_P(Z67KernelTest, UnpackRejectsWrongSizes) {
  for (size_t n : {size_t{0}, size_t{1}, size_t{9}, size_t{72}, size_t{73}, size_t{1000}}) {
    const size_t size = z67_packed_size(n);
    for (size_t wrong : {size + 1, size + 7, size + 56, size - 1, size_t{0}}) {
      if (wrong == size || wrong > size + 56) continue;  // size - 1 wraps when size is 0
      const std::vector<uint8_t> bytes(wrong, 0);
      const std::string want =
          "Z_67 digits: " + std::to_string(wrong) + " bytes, expected " + std::to_string(size);
      EXPECT_EQ(protocol_error([&] { unpacked(kernel(), bytes, n); }), want);
      EXPECT_EQ(protocol_error([&] { unpack_z67(bytes, n); }), want);
    }
  }
}

// fill_below on this kernel draws exactly what byte-at-a-time rejection on the same AES-CTR
// stream draws, for every bound, with counts around the vector steps (32 and 64 candidates),
// and leaves the stream where that loop would (the next byte drawn is the same).
TEST_P(Z67KernelTest, FillBelowMatchesByteAtATimeRejection) {
  const Seed seed = random_seed();
  std::vector<uint8_t> stream(1 << 21);
  AesCtrPrg(seed).fill(std::span<uint8_t>(stream));
  size_t at = 0;
  ByteSampler s{AesCtrPrg(seed)};
  const std::set<unsigned> every_count = {1, 2, 3, 62, 66, 67, 100, 255, 256};
  for (unsigned bound = 1; bound <= 256; ++bound) {
    const size_t counts[] = {0, 1, 31, 32, 33, 63, 64, 65, 97, 4000, 1000 + bound};
    for (size_t count : counts) {
      // Every bound with two counts, some with all of them (keeps it short).
      if (!every_count.count(bound) && bound % 16 != 3 && count != 1000 + bound && count != 33)
        continue;
      std::vector<uint8_t> got(count + 64, 0xee);
      s.fill_below(bound, got.data(), count, kernel());
      const unsigned limit = 256 - 256 % bound;
      for (size_t k = 0; k < count;) {
        ASSERT_LT(at, stream.size());
        const unsigned b = stream[at++];
        if (b >= limit) continue;
        ASSERT_EQ(got[k], b % bound) << "bound " << bound << " count " << count << " k " << k;
        ++k;
      }
      for (size_t k = count; k < got.size(); ++k) ASSERT_EQ(got[k], 0xee) << "wrote past count";
      ASSERT_EQ(s.byte(), stream[at++]) << "bytes consumed differ, bound " << bound;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Kernels, Z67KernelTest,
                         ::testing::Values(Z67Kernel::Scalar, Z67Kernel::Avx2, Z67Kernel::Avx512,
                                           Z67Kernel::Auto),
                         [](const auto& info) {
                           switch (info.param) {
                             case Z67Kernel::Scalar:
                               return std::string("Scalar");
                             case Z67Kernel::Avx2:
                               return std::string("Avx2");
                             case Z67Kernel::Avx512:
                               return std::string("Avx512");
                             default:
                               return std::string("Auto");
                           }
                         });

// Auto runs the best kernel the CPU has within the kernel path, and names it.
class Z67KernelPath : public ::testing::Test {
 protected:
  void TearDown() override { set_kernel_path(saved_); }
  KernelPath saved_ = kernel_path();
};

TEST_F(Z67KernelPath, AutoStaysWithinTheKernelPath) {
  EXPECT_TRUE(z67_kernel_available(Z67Kernel::Scalar));
  EXPECT_TRUE(z67_kernel_available(Z67Kernel::Auto));
  const CpuFeatures& f = cpu_features();
  EXPECT_EQ(z67_kernel_available(Z67Kernel::Avx2), f.avx2 && f.fma && f.bmi2);
  for (KernelPath path : {KernelPath::Scalar, KernelPath::Avx2, KernelPath::Avx512}) {
    if (path > detected_kernel_path()) continue;
    set_kernel_path(path);
    const std::string want =
        path == KernelPath::Avx512 && z67_kernel_available(Z67Kernel::Avx512) ? "avx512vbmi"
        : path >= KernelPath::Avx2 && z67_kernel_available(Z67Kernel::Avx2)   ? "avx2"
                                                                              : "scalar";
    EXPECT_EQ(z67_kernel_name(), want) << kernel_path_name(path);
  }
  for (Z67Kernel k : {Z67Kernel::Avx2, Z67Kernel::Avx512}) {
    if (z67_kernel_available(k)) continue;
    EXPECT_THROW(pack_z67_with(k, std::vector<uint8_t>(9)), InvalidArgument);
    uint8_t out[1];
    EXPECT_THROW(ByteSampler(AesCtrPrg(random_seed())).fill_below(2, out, 1, k), InvalidArgument);
  }
}

}  // namespace
}  // namespace veil::mpc
