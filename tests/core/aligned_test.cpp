#include "veil/core/aligned.hpp"

#include <gtest/gtest.h>

#include <cstdint>

namespace veil {
namespace {

bool line_aligned(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % kCacheLine == 0; }

TEST(AlignedVector, EveryAllocationIsCacheLineAligned) {
  // malloc would give 16-byte alignment for most of these sizes; the kernels rely on 64.
  for (std::size_t n : {1u, 3u, 17u, 1000u, 1u << 20}) {
    AlignedVector<uint8_t> bytes(n);
    AlignedVector<uint64_t> words(n, 7);
    EXPECT_TRUE(line_aligned(bytes.data())) << n;
    EXPECT_TRUE(line_aligned(words.data())) << n;
    EXPECT_EQ(words.back(), 7u);
    words.resize(3 * n + 5);  // reallocation keeps the alignment and the contents
    EXPECT_TRUE(line_aligned(words.data())) << n;
    EXPECT_EQ(words[n - 1], 7u);
  }
}

TEST(AlignedVector, RejectsImpossibleSizes) {
  AlignedAllocator<uint64_t> alloc;
  EXPECT_THROW((void)alloc.allocate(std::size_t(-1) / 4), std::bad_array_new_length);
}

}  // namespace
}  // namespace veil
