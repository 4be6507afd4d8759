// Byte buffers that are not zero-filled when they grow. std::vector value-initialises new
// elements, so vector<uint8_t>(n) writes n zeros that a received frame or a packed message
// overwrites at once; for secure inference's multi-megabyte messages that memset was ~10 % of
// the CPU time. DefaultInitAllocator default-initialises instead (for bytes: leaves them as they
// are), and Bytes is the vector that uses it. Code that needs zeros asks for them: Bytes(n, 0).
#pragma once

#include <cstdint>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

namespace veil {

template <class T, class A = std::allocator<T>>
class DefaultInitAllocator : public A {
  using Traits = std::allocator_traits<A>;

 public:
  template <class U>
  struct rebind {
    using other = DefaultInitAllocator<U, typename Traits::template rebind_alloc<U>>;
  };

  using A::A;
  DefaultInitAllocator() = default;

  // Default-initialise: no write for trivial types.
  template <class U>
  void construct(U* p) noexcept(std::is_nothrow_default_constructible_v<U>) {
    ::new (static_cast<void*>(p)) U;
  }
  template <class U, class... Args>
  void construct(U* p, Args&&... args) {
    Traits::construct(static_cast<A&>(*this), p, std::forward<Args>(args)...);
  }
};

using Bytes = std::vector<uint8_t, DefaultInitAllocator<uint8_t>>;
// The same for ring words: temporaries that a loop or a PRG writes in full before they are read.
using Words = std::vector<uint64_t, DefaultInitAllocator<uint64_t>>;

}  // namespace veil
