// Coefficient storage of plaintexts, ciphertexts and evaluator temporaries: std::vector on a
// pooled, 64-byte-aligned allocator that leaves words uninitialised unless a value is given.
// The pool itself (size classes, limits, statistics) is private to the he module.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

namespace veil::he {

inline constexpr size_t kPoolAlignment = 64;  // one cache line, one AVX-512 vector

namespace detail {
// MemoryPool::global().allocate / deallocate (memory_pool.cpp).
void* pool_allocate(size_t bytes);
void pool_deallocate(void* p, size_t bytes) noexcept;
}  // namespace detail

// std::vector allocator on the he module's process-wide MemoryPool (memory_pool.hpp). Stateless, so
// vectors move by pointer swap. construct() without arguments default-initialises trivially
// constructible types, so vector(n) and resize(n) leave the words uninitialised (vector(n, 0) still
// zero-fills).
template <class T>
class PoolAllocator {
 public:
  static_assert(alignof(T) <= kPoolAlignment);
  using value_type = T;
  using is_always_equal = std::true_type;
  using propagate_on_container_move_assignment = std::true_type;

  PoolAllocator() noexcept = default;
  template <class U>
  PoolAllocator(const PoolAllocator<U>&) noexcept {}

  T* allocate(size_t count) {
    if (count > static_cast<size_t>(-1) / sizeof(T)) throw std::bad_array_new_length();
    return static_cast<T*>(detail::pool_allocate(count * sizeof(T)));
  }
  void deallocate(T* p, size_t count) noexcept { detail::pool_deallocate(p, count * sizeof(T)); }

  template <class U, class... Args>
  void construct(U* p, Args&&... args) {
    if constexpr (sizeof...(Args) == 0 && std::is_trivially_default_constructible_v<U>) {
      ::new (static_cast<void*>(p)) U;
    } else {
      std::construct_at(p, std::forward<Args>(args)...);
    }
  }
};

template <class T, class U>
bool operator==(const PoolAllocator<T>&, const PoolAllocator<U>&) noexcept {
  return true;
}

template <class T>
using PoolVector = std::vector<T, PoolAllocator<T>>;

// Coefficient storage of plaintexts, ciphertexts and evaluator temporaries.
using PolyVector = PoolVector<uint64_t>;

}  // namespace veil::he
