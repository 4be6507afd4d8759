#include "veil/split/field_matrix.hpp"

#include <utility>

#include "veil/core/error.hpp"
#include "veil/split/field.hpp"

namespace veil::split {

FieldMatrix FieldMatrix::identity(int64_t n) {
  FieldMatrix m;
  m.n = n;
  m.a.assign(static_cast<size_t>(n * n), 0);
  for (int64_t i = 0; i < n; ++i) m.at(i, i) = 1;
  return m;
}

namespace {

void check_square(const FieldMatrix& m) {
  if (m.n < 0 || m.a.size() != static_cast<size_t>(m.n * m.n))
    throw InvalidArgument("split: field matrix size does not match n x n");
}

}  // namespace

FieldMatrix field_matmul(const FieldMatrix& x, const FieldMatrix& y) {
  check_square(x);
  check_square(y);
  if (x.n != y.n) throw InvalidArgument("split: field matrices of different sizes");
  FieldMatrix z;
  z.n = x.n;
  z.a.assign(x.a.size(), 0);
  for (int64_t i = 0; i < x.n; ++i)
    for (int64_t k = 0; k < x.n; ++k)
      for (int64_t j = 0; j < x.n; ++j)
        z.at(i, j) = field_add(z.at(i, j), field_mul(x.at(i, k), y.at(k, j)));
  return z;
}

std::optional<FieldMatrix> field_inverse(const FieldMatrix& m) {
  check_square(m);
  const int64_t n = m.n;
  FieldMatrix a = m, inv = FieldMatrix::identity(n);
  for (int64_t col = 0; col < n; ++col) {
    int64_t pivot = col;
    while (pivot < n && a.at(pivot, col) == 0) ++pivot;
    if (pivot == n) return std::nullopt;
    for (int64_t j = 0; j < n; ++j) {
      std::swap(a.at(col, j), a.at(pivot, j));
      std::swap(inv.at(col, j), inv.at(pivot, j));
    }
    const uint64_t scale = field_inv(a.at(col, col));
    for (int64_t j = 0; j < n; ++j) {
      a.at(col, j) = field_mul(a.at(col, j), scale);
      inv.at(col, j) = field_mul(inv.at(col, j), scale);
    }
    for (int64_t i = 0; i < n; ++i) {
      const uint64_t f = a.at(i, col);
      if (i == col || f == 0) continue;
      for (int64_t j = 0; j < n; ++j) {
        a.at(i, j) = field_sub(a.at(i, j), field_mul(f, a.at(col, j)));
        inv.at(i, j) = field_sub(inv.at(i, j), field_mul(f, inv.at(col, j)));
      }
    }
  }
  return inv;
}

}  // namespace veil::split
