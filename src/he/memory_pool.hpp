// The pool behind PolyVector (poly_vector.hpp): pooled, 64-byte-aligned storage for RNS
// polynomials (in the spirit of Microsoft SEAL's MemoryPool). Private to the he module.
//
// Why: a ciphertext at N = 16384 with 7 limbs is 1.8 MB, far above glibc's mmap threshold, so
// every fresh std::vector<uint64_t> went to mmap/munmap: page faults plus the kernel's zero fill,
// then std::vector's own zero fill, on every out-of-place result and every temporary (an
// out-of-place add cost twice an in-place one). The pool keeps freed blocks by exact size and
// hands them back without touching the OS; PoolAllocator (poly_vector.hpp) leaves trivial elements
// uninitialised, so buffers that are about to be overwritten are not memset either.
//
// Size classes are exact (rounded up to 64 bytes) rather than powers of two: CKKS buffers are
// whole numbers of limbs (components x limbs x N words), so a handful of sizes recur exactly and
// power-of-two classes would waste up to half of every multi-megabyte block.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <new>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "veil/he/poly_vector.hpp"

namespace veil::he {

class MemoryPool {
 public:
  static constexpr size_t kAlignment = kPoolAlignment;

  // The pool caches freed blocks up to these bounds and frees the rest, so long runs that walk
  // through many levels (many sizes) do not hoard memory.
  struct Limits {
    size_t max_bytes = size_t{64} << 20;  // all cached blocks together
    size_t max_blocks_per_class = 32;     // cached blocks of one size
    size_t max_classes = 64;              // distinct sizes tracked; others bypass the cache
  };

  struct Stats {
    size_t cached_bytes = 0;
    size_t cached_blocks = 0;
    size_t hits = 0;    // allocations served from the cache
    size_t misses = 0;  // allocations that went to operator new
  };

  MemoryPool();  // default Limits
  explicit MemoryPool(const Limits& limits);
  // Frees the cached blocks. Blocks still handed out must not be returned afterwards.
  ~MemoryPool();
  MemoryPool(const MemoryPool&) = delete;
  MemoryPool& operator=(const MemoryPool&) = delete;

  // The process-wide pool behind PoolAllocator. It is never destroyed (see memory_pool.cpp).
  static MemoryPool& global();

  // A block of at least `bytes` bytes aligned to kAlignment; its contents are unspecified.
  void* allocate(size_t bytes);
  // Returns a block from allocate(bytes) (same `bytes`). Null is ignored.
  void deallocate(void* p, size_t bytes) noexcept;

  // Frees every cached block.
  void release() noexcept;
  // New bounds; cached blocks beyond them are freed.
  void set_limits(const Limits& limits);
  Limits limits() const;
  Stats stats() const;

 private:
  static size_t class_size(size_t bytes);
  static void free_block(void* p, size_t size) noexcept;

  mutable std::mutex mutex_;
  Limits limits_;
  // Size class -> cached blocks (LIFO: the most recently freed block is the likeliest to be
  // in cache). Each list is reserved to max_blocks_per_class when its class is created, so
  // deallocate never allocates.
  std::unordered_map<size_t, std::vector<void*>> free_;
  Stats stats_;
};

}  // namespace veil::he
