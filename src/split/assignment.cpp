#include "veil/split/assignment.hpp"

#include <cmath>
#include <limits>

#include "veil/core/error.hpp"

namespace veil::split {

std::vector<int64_t> max_score_assignment(const std::vector<double>& score, int64_t rows,
                                          int64_t cols) {
  if (rows < 0 || cols < 0 || rows > cols) throw InvalidArgument("assignment: needs rows <= cols");
  if (static_cast<int64_t>(score.size()) != rows * cols)
    throw InvalidArgument("assignment: score size does not match rows x cols");
  for (double s : score)
    if (!std::isfinite(s)) throw InvalidArgument("assignment: a score is not finite");
  if (rows == 0) return {};
  // Minimise cost = -score with row potentials u, column potentials v and augmenting paths
  // (1-based, column 0 is the virtual start).
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> u(rows + 1, 0), v(cols + 1, 0);
  std::vector<int64_t> owner(cols + 1, 0), way(cols + 1, 0);
  for (int64_t i = 1; i <= rows; ++i) {
    owner[0] = i;
    int64_t j0 = 0;
    std::vector<double> minv(cols + 1, inf);
    std::vector<char> used(cols + 1, 0);
    do {
      used[j0] = 1;
      const int64_t i0 = owner[j0];
      double delta = inf;
      int64_t j1 = 0;
      for (int64_t j = 1; j <= cols; ++j) {
        if (used[j]) continue;
        const double cur = -score[(i0 - 1) * cols + (j - 1)] - u[i0] - v[j];
        if (cur < minv[j]) minv[j] = cur, way[j] = j0;
        if (minv[j] < delta) delta = minv[j], j1 = j;
      }
      for (int64_t j = 0; j <= cols; ++j) {
        if (used[j])
          u[owner[j]] += delta, v[j] -= delta;
        else
          minv[j] -= delta;
      }
      j0 = j1;
    } while (owner[j0] != 0);
    do {
      const int64_t j1 = way[j0];
      owner[j0] = owner[j1];
      j0 = j1;
    } while (j0);
  }
  std::vector<int64_t> column(rows, -1);
  for (int64_t j = 1; j <= cols; ++j)
    if (owner[j]) column[owner[j] - 1] = j - 1;
  return column;
}

}  // namespace veil::split
