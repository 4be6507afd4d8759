#include "he/memory_pool.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <thread>

namespace veil::he {
namespace {

bool aligned(const void* p) { return reinterpret_cast<uintptr_t>(p) % MemoryPool::kAlignment == 0; }

TEST(MemoryPoolTest, FreedBlockIsReused) {
  MemoryPool pool;
  void* a = pool.allocate(1 << 20);
  pool.deallocate(a, 1 << 20);
  EXPECT_EQ(pool.stats().cached_blocks, 1u);
  EXPECT_EQ(pool.stats().cached_bytes, size_t{1} << 20);
  void* b = pool.allocate(1 << 20);
  EXPECT_EQ(a, b);
  EXPECT_EQ(pool.stats().hits, 1u);
  EXPECT_EQ(pool.stats().misses, 1u);
  EXPECT_EQ(pool.stats().cached_blocks, 0u);
  // Another size is a different class.
  void* c = pool.allocate(1 << 19);
  EXPECT_NE(c, b);
  EXPECT_EQ(pool.stats().misses, 2u);
  pool.deallocate(b, 1 << 20);
  pool.deallocate(c, 1 << 19);
  pool.release();
  EXPECT_EQ(pool.stats().cached_blocks, 0u);
  EXPECT_EQ(pool.stats().cached_bytes, 0u);
}

TEST(MemoryPoolTest, BlocksAreAligned) {
  MemoryPool pool;
  for (size_t bytes : {size_t{0}, size_t{1}, size_t{8}, size_t{63}, size_t{65}, size_t{4096} + 8,
                       size_t{131072} + 24, size_t{1835008}}) {
    void* p = pool.allocate(bytes);
    EXPECT_TRUE(aligned(p)) << bytes;
    std::memset(p, 0xab, bytes);
    pool.deallocate(p, bytes);
    void* q = pool.allocate(bytes);  // from the cache this time
    EXPECT_TRUE(aligned(q)) << bytes;
    pool.deallocate(q, bytes);
  }
  // Sizes that round to the same 64-byte class share blocks.
  void* p = pool.allocate(100);
  pool.deallocate(p, 100);
  EXPECT_EQ(pool.allocate(128), p);
  pool.deallocate(p, 128);
}

TEST(MemoryPoolTest, CacheIsBounded) {
  MemoryPool::Limits limits;
  limits.max_bytes = 1 << 20;
  limits.max_blocks_per_class = 3;
  MemoryPool pool(limits);
  constexpr size_t kBlock = 128 << 10;
  std::vector<void*> blocks;
  for (int i = 0; i < 10; ++i) blocks.push_back(pool.allocate(kBlock));
  for (void* p : blocks) pool.deallocate(p, kBlock);
  EXPECT_EQ(pool.stats().cached_blocks, 3u);  // per-class bound
  EXPECT_EQ(pool.stats().cached_bytes, 3 * kBlock);

  // The byte bound evicts other sizes in favour of the size just freed.
  constexpr size_t kBig = 512 << 10;
  void* big1 = pool.allocate(kBig);
  void* big2 = pool.allocate(kBig);
  pool.deallocate(big1, kBig);
  pool.deallocate(big2, kBig);
  EXPECT_LE(pool.stats().cached_bytes, limits.max_bytes);
  EXPECT_EQ(pool.allocate(kBig), big2);
  pool.deallocate(big2, kBig);

  // A block above the byte bound is never cached.
  void* huge = pool.allocate(2 << 20);
  pool.deallocate(huge, 2 << 20);
  EXPECT_LE(pool.stats().cached_bytes, limits.max_bytes);

  // Tightening the limits frees what no longer fits.
  limits.max_bytes = kBlock;
  pool.set_limits(limits);
  EXPECT_LE(pool.stats().cached_bytes, kBlock);
  EXPECT_LE(pool.stats().cached_blocks, 1u);
}

TEST(MemoryPoolTest, ClassCountIsBounded) {
  MemoryPool::Limits limits;
  limits.max_classes = 2;
  MemoryPool pool(limits);
  for (size_t bytes : {size_t{64}, size_t{128}, size_t{192}, size_t{256}}) {
    void* p = pool.allocate(bytes);
    pool.deallocate(p, bytes);
  }
  EXPECT_EQ(pool.stats().cached_blocks, 2u);
}

// Several threads allocate, fill, check and free blocks of a few sizes at once: a block handed
// to two owners at the same time would show up as a corrupted pattern (and ASan/TSan builds see
// the races directly).
TEST(MemoryPoolTest, ConcurrentAllocateAndFree) {
  MemoryPool::Limits limits;
  limits.max_bytes = 4 << 20;
  limits.max_blocks_per_class = 4;
  MemoryPool pool(limits);
  constexpr int kThreads = 4;
  constexpr size_t kSizes[] = {4096, 65536, 196608, 1 << 20};
  std::vector<std::thread> threads;
  std::vector<int> failures(kThreads, 0);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);  // test data only
      std::vector<std::pair<uint64_t*, size_t>> held;
      for (int iter = 0; iter < 400; ++iter) {
        if (held.size() < 3 && (held.empty() || rng() % 2)) {
          const size_t bytes = kSizes[rng() % 4];
          auto* p = static_cast<uint64_t*>(pool.allocate(bytes));
          if (!aligned(p)) ++failures[t];
          const uint64_t tag = (static_cast<uint64_t>(t) << 32) | static_cast<uint64_t>(iter);
          for (size_t i = 0; i < bytes / 8; ++i) p[i] = tag + i;
          held.emplace_back(p, bytes);
        } else {
          const size_t k = rng() % held.size();
          auto [p, bytes] = held[k];
          const uint64_t tag = p[0];
          for (size_t i = 0; i < bytes / 8; ++i)
            if (p[i] != tag + i) {
              ++failures[t];
              break;
            }
          pool.deallocate(p, bytes);
          held.erase(held.begin() + static_cast<std::ptrdiff_t>(k));
        }
      }
      for (auto [p, bytes] : held) pool.deallocate(p, bytes);
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(failures[t], 0) << "thread " << t;
  const auto s = pool.stats();
  EXPECT_LE(s.cached_bytes, limits.max_bytes);
  EXPECT_GT(s.hits, 0u);
}

TEST(PoolAllocatorTest, VectorsUseTheGlobalPool) {
  constexpr size_t kWords = 3 * 4096 + 5;  // an unusual size: its own class
  const auto before = MemoryPool::global().stats();
  const uint64_t* first;
  {
    PolyVector v(kWords, 7);  // explicit value: filled
    EXPECT_TRUE(aligned(v.data()));
    EXPECT_EQ(v[kWords - 1], 7u);
    first = v.data();
    PolyVector moved = std::move(v);  // stateless allocator: pointer steal
    EXPECT_EQ(moved.data(), first);
  }
  PolyVector w(kWords);  // default-initialised, served from the cache
  EXPECT_EQ(w.data(), first);
  EXPECT_GT(MemoryPool::global().stats().hits, before.hits);
  std::fill(w.begin(), w.end(), 3);
  PolyVector copy = w;
  EXPECT_TRUE(aligned(copy.data()));
  EXPECT_NE(copy.data(), w.data());
  EXPECT_EQ(copy, w);
  PoolVector<int32_t> small(10, -1);
  EXPECT_TRUE(aligned(small.data()));
  EXPECT_EQ(small[9], -1);
}

}  // namespace
}  // namespace veil::he
