#include "veil/nn/threads.hpp"

#include <dlfcn.h>

namespace veil::nn {

namespace {

// The OpenMP runtime is a dependency of libdnnl, not of veil itself: look its entry points up
// at run time instead of linking it directly.
template <typename Fn>
Fn omp_symbol(const char* name) {
  return reinterpret_cast<Fn>(dlsym(RTLD_DEFAULT, name));
}

}  // namespace

void set_num_threads(int n) {
  static const auto fn = omp_symbol<void (*)(int)>("omp_set_num_threads");
  if (n > 0 && fn) fn(n);
}

int num_threads() {
  static const auto fn = omp_symbol<int (*)()>("omp_get_max_threads");
  return fn ? fn() : 1;
}

}  // namespace veil::nn
