// Cache-line-aligned storage for kernel operands. std::vector's memory comes from malloc, which
// aligns to 16 bytes only; an AMX tile load whose 64-byte rows straddle two cache lines runs
// about 6x slower on Sapphire Rapids (every row becomes a split load), and AVX-512 loads pay
// the same penalty at a smaller scale. Packed GEMM operands therefore live in AlignedVector.
#pragma once

#include <cstddef>
#include <new>
#include <vector>

namespace veil {

inline constexpr std::size_t kCacheLine = 64;

template <class T, std::size_t Alignment = kCacheLine>
struct AlignedAllocator {
  static_assert(Alignment >= alignof(T) && (Alignment & (Alignment - 1)) == 0);
  using value_type = T;

  AlignedAllocator() noexcept = default;
  template <class U>
  AlignedAllocator(const AlignedAllocator<U, Alignment>&) noexcept {}
  template <class U>
  struct rebind {
    using other = AlignedAllocator<U, Alignment>;
  };

  T* allocate(std::size_t n) {
    if (n > std::size_t(-1) / sizeof(T)) throw std::bad_array_new_length();
    return static_cast<T*>(::operator new (n * sizeof(T), std::align_val_t{Alignment}));
  }
  void deallocate(T* p, std::size_t) noexcept {
    ::operator delete (p, std::align_val_t{Alignment});
  }

  template <class U>
  bool operator==(const AlignedAllocator<U, Alignment>&) const noexcept {
    return true;
  }
};

template <class T>
using AlignedVector = std::vector<T, AlignedAllocator<T>>;

}  // namespace veil
