#include "memory_pool.hpp"

#include <array>

#if defined(__SANITIZE_ADDRESS__)
#define VEIL_HE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define VEIL_HE_ASAN 1
#endif
#endif

#ifdef VEIL_HE_ASAN
#include <sanitizer/asan_interface.h>
#endif

namespace veil::he {

namespace {

// Cached blocks are poisoned under AddressSanitizer, so a use after free through a pooled
// buffer is still reported (as use-after-poison) instead of silently reading a cached block.
void poison(void* p, size_t bytes) {
#ifdef VEIL_HE_ASAN
  ASAN_POISON_MEMORY_REGION(p, bytes);
#else
  (void)p;
  (void)bytes;
#endif
}

void unpoison(void* p, size_t bytes) {
#ifdef VEIL_HE_ASAN
  ASAN_UNPOISON_MEMORY_REGION(p, bytes);
#else
  (void)p;
  (void)bytes;
#endif
}

// Blocks of other sizes evicted by one deallocate to make room under max_bytes.
constexpr size_t kMaxEvictions = 8;

}  // namespace

MemoryPool::MemoryPool() : MemoryPool(Limits{}) {}

MemoryPool::MemoryPool(const Limits& limits) : limits_(limits) {}

MemoryPool::~MemoryPool() { release(); }

MemoryPool& MemoryPool::global() {
  // Deliberately never destroyed: pooled vectors also live in static and thread_local storage
  // (the evaluator's per-thread scratch, callers' globals) whose destructors can run after those
  // of any function-local static, and they must still be able to hand their blocks back. Owning
  // the pool through the context's shared_ptr instead would make the allocator stateful (a
  // pointer plus a reference-count update per vector copy) and a default-constructed ciphertext
  // has no context. The cache is bounded by Limits; LeakSanitizer sees the blocks as reachable.
  static MemoryPool* const pool = new MemoryPool();
  return *pool;
}

size_t MemoryPool::class_size(size_t bytes) {
  if (bytes > static_cast<size_t>(-1) - kAlignment) throw std::bad_alloc();
  return bytes == 0 ? kAlignment : (bytes + kAlignment - 1) & ~(kAlignment - 1);
}

void MemoryPool::free_block(void* p, size_t size) noexcept {
  unpoison(p, size);
  ::operator delete (p, std::align_val_t{kAlignment});
}

void* MemoryPool::allocate(size_t bytes) {
  const size_t size = class_size(bytes);
  {
    std::lock_guard lock(mutex_);
    auto it = free_.find(size);
    if (it == free_.end() && free_.size() < limits_.max_classes) {
      std::vector<void*> list;
      list.reserve(limits_.max_blocks_per_class);
      it = free_.emplace(size, std::move(list)).first;
    }
    if (it != free_.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      stats_.cached_bytes -= size;
      --stats_.cached_blocks;
      ++stats_.hits;
      unpoison(p, size);
      return p;
    }
    ++stats_.misses;
  }
  return ::operator new (size, std::align_val_t{kAlignment});
}

void MemoryPool::deallocate(void* p, size_t bytes) noexcept {
  if (p == nullptr) return;
  // class_size without its overflow check: `bytes` was accepted by allocate.
  const size_t cls = bytes == 0 ? kAlignment : (bytes + kAlignment - 1) & ~(kAlignment - 1);
  std::array<std::pair<void*, size_t>, kMaxEvictions> evicted;
  size_t evicted_count = 0;
  bool cached = false;
  {
    std::lock_guard lock(mutex_);
    auto it = free_.find(cls);
    if (it != free_.end() && cls <= limits_.max_bytes) {
      auto& list = it->second;
      // capacity() check: set_limits may have raised the cap; never allocate here.
      if (list.size() < limits_.max_blocks_per_class && list.size() < list.capacity()) {
        // Over the byte bound, evict blocks of other sizes: the size just freed is in use now,
        // the others may belong to a level the computation has left.
        for (auto& [other, blocks] : free_) {
          if (stats_.cached_bytes + cls <= limits_.max_bytes) break;
          if (other == cls) continue;
          while (!blocks.empty() && evicted_count < kMaxEvictions &&
                 stats_.cached_bytes + cls > limits_.max_bytes) {
            evicted[evicted_count++] = {blocks.back(), other};
            blocks.pop_back();
            stats_.cached_bytes -= other;
            --stats_.cached_blocks;
          }
        }
        if (stats_.cached_bytes + cls <= limits_.max_bytes) {
          poison(p, cls);  // under the lock: another thread may take the block right after
          list.push_back(p);
          stats_.cached_bytes += cls;
          ++stats_.cached_blocks;
          cached = true;
        }
      }
    }
  }
  for (size_t i = 0; i < evicted_count; ++i) free_block(evicted[i].first, evicted[i].second);
  if (!cached) free_block(p, cls);
}

void MemoryPool::release() noexcept {
  std::unordered_map<size_t, std::vector<void*>> taken;
  {
    std::lock_guard lock(mutex_);
    taken.swap(free_);
    stats_.cached_bytes = 0;
    stats_.cached_blocks = 0;
  }
  for (auto& [size, blocks] : taken)
    for (void* p : blocks) free_block(p, size);
}

void MemoryPool::set_limits(const Limits& limits) {
  std::vector<std::pair<void*, size_t>> dropped;
  {
    std::lock_guard lock(mutex_);
    dropped.reserve(stats_.cached_blocks);  // the loop below must not throw half-way
    for (auto& entry : free_) entry.second.reserve(limits.max_blocks_per_class);
    limits_ = limits;
    for (auto& [size, blocks] : free_) {
      while (!blocks.empty() && (blocks.size() > limits.max_blocks_per_class ||
                                 stats_.cached_bytes > limits.max_bytes)) {
        dropped.emplace_back(blocks.back(), size);
        blocks.pop_back();
        stats_.cached_bytes -= size;
        --stats_.cached_blocks;
      }
    }
  }
  for (auto& [p, size] : dropped) free_block(p, size);
}

MemoryPool::Limits MemoryPool::limits() const {
  std::lock_guard lock(mutex_);
  return limits_;
}

MemoryPool::Stats MemoryPool::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

namespace detail {

void* pool_allocate(size_t bytes) { return MemoryPool::global().allocate(bytes); }
void pool_deallocate(void* p, size_t bytes) noexcept { MemoryPool::global().deallocate(p, bytes); }

}  // namespace detail

}  // namespace veil::he
