// Small dense square matrices over Z_P (DarkNight's mixing matrices: (K+1) x (K+1) for a batch
// of K images).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace veil::split {

struct FieldMatrix {
  int64_t n = 0;
  std::vector<uint64_t> a;  // row-major n x n, elements in [0, P)

  uint64_t& at(int64_t i, int64_t j) { return a[static_cast<size_t>(i * n + j)]; }
  uint64_t at(int64_t i, int64_t j) const { return a[static_cast<size_t>(i * n + j)]; }
  static FieldMatrix identity(int64_t n);
};

FieldMatrix field_matmul(const FieldMatrix& x, const FieldMatrix& y);
// The inverse by Gauss-Jordan elimination mod P; nullopt when the matrix is singular.
std::optional<FieldMatrix> field_inverse(const FieldMatrix& m);

}  // namespace veil::split
