#include "veil/split/filter_pairing.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

#include "veil/core/error.hpp"

namespace veil::split {

namespace {

double dot(const double* a, const double* b, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

// |cos| between every two rows (diagonal 0).
std::vector<double> abs_cosines(const std::vector<double>& rows, int64_t slots, int64_t dim) {
  std::vector<double> unit(rows);
  for (int64_t a = 0; a < slots; ++a) {
    double* r = unit.data() + a * dim;
    const double n = std::sqrt(dot(r, r, dim));
    for (int64_t i = 0; i < dim; ++i) r[i] = n > 0 ? r[i] / n : 0;
  }
  std::vector<double> c(slots * slots, 0);
  for (int64_t a = 0; a < slots; ++a)
    for (int64_t b = a + 1; b < slots; ++b)
      c[a * slots + b] = c[b * slots + a] =
          std::abs(dot(unit.data() + a * dim, unit.data() + b * dim, dim));
  return c;
}

std::vector<int64_t> best_partners(const std::vector<double>& cos, int64_t slots) {
  std::vector<int64_t> best(slots, 0);
  for (int64_t a = 0; a < slots; ++a) {
    int64_t arg = a == 0 ? 1 : 0;
    for (int64_t b = 0; b < slots; ++b)
      if (b != a && cos[a * slots + b] > cos[a * slots + arg]) arg = b;
    best[a] = arg;
  }
  return best;
}

double mean_best_cosine(const std::vector<double>& rows, int64_t slots, int64_t dim) {
  const auto cos = abs_cosines(rows, slots, dim);
  const auto best = best_partners(cos, slots);
  double s = 0;
  for (int64_t a = 0; a < slots; ++a) s += cos[a * slots + best[a]];
  return s / static_cast<double>(slots);
}

std::vector<double> gram_matrix(const std::vector<double>& rows, int64_t slots, int64_t dim) {
  std::vector<double> gram(slots * slots);
  for (int64_t a = 0; a < slots; ++a)
    for (int64_t b = a; b < slots; ++b)
      gram[a * slots + b] = gram[b * slots + a] =
          dot(rows.data() + a * dim, rows.data() + b * dim, dim);
  return gram;
}

// Column subset selection: greedily the `count` slots whose span explains most of the others'
// energy (each slot's share normalised, so large slots do not dominate). A fake filter R shared by
// k real slots (W_n - R) / s_n explains half of each of them; a real slot explains less of its
// co-users (they share only R with it) and little of the rest.
std::vector<char> explaining_subset(std::vector<double> gram, int64_t slots, int64_t count) {
  std::vector<double> energy(slots);
  double tiny = 0;
  for (int64_t a = 0; a < slots; ++a)
    energy[a] = gram[a * slots + a], tiny = std::max(tiny, energy[a]);
  tiny = std::max(tiny * 1e-12, 1e-300);
  std::vector<char> in(slots, 0);
  for (int64_t step = 0; step < count; ++step) {
    int64_t pick = -1;
    double pick_gain = -1;
    for (int64_t c = 0; c < slots; ++c) {
      const double gcc = gram[c * slots + c];
      if (in[c] || gcc <= tiny) continue;
      double gain = gcc / std::max(energy[c], tiny);  // its own share leaves the objective
      for (int64_t a = 0; a < slots; ++a)
        if (!in[a] && a != c)
          gain += gram[a * slots + c] * gram[a * slots + c] / (gcc * std::max(energy[a], tiny));
      if (gain > pick_gain) pick_gain = gain, pick = c;
    }
    for (int64_t c = 0; c < slots && pick < 0; ++c)  // only degenerate slots left
      if (!in[c]) pick = c;
    in[pick] = 1;
    // Project the pick out of every slot (deflate the Gram matrix).
    const double gpp = std::max(gram[pick * slots + pick], tiny);
    const std::vector<double> gp(gram.begin() + pick * slots, gram.begin() + (pick + 1) * slots);
    for (int64_t a = 0; a < slots; ++a)
      for (int64_t b = 0; b < slots; ++b) gram[a * slots + b] -= gp[a] * gp[b] / gpp;
  }
  return in;
}

// The real slots grouped by the fake slot they are most correlated with.
std::vector<std::vector<int64_t>> fake_users(const std::vector<char>& is_fake,
                                             const std::vector<double>& cos, int64_t slots) {
  std::vector<std::vector<int64_t>> users(slots);
  for (int64_t a = 0; a < slots; ++a) {
    if (is_fake[a]) continue;
    int64_t b = -1;
    for (int64_t f = 0; f < slots; ++f)
      if (is_fake[f] && (b < 0 || cos[a * slots + f] > cos[a * slots + b])) b = f;
    users[b].push_back(a);
  }
  return users;
}

// Mean |cos| between the members of `group` but c after projecting c out of them. Projecting
// out the group's fake leaves the real filters, correlated only as trained filters are; projecting
// out a real slot leaves part of R (and of that real filter) in all of them.
double correlation_left(const std::vector<double>& gram, int64_t slots,
                        const std::vector<int64_t>& group, int64_t c) {
  const double gcc = std::max(gram[c * slots + c], 1e-300);
  auto residual = [&](int64_t x, int64_t y) {
    return gram[x * slots + y] - gram[x * slots + c] * gram[y * slots + c] / gcc;
  };
  double sum = 0;
  int64_t pairs = 0;
  for (size_t i = 0; i < group.size(); ++i)
    for (size_t j = i + 1; j < group.size(); ++j) {
      const int64_t x = group[i], y = group[j];
      if (x == c || y == c) continue;
      sum +=
          std::abs(residual(x, y)) / std::sqrt(std::max(residual(x, x) * residual(y, y), 1e-300));
      ++pairs;
    }
  return pairs ? sum / static_cast<double>(pairs) : 0;
}

// Which slots are fake: the explaining subset, then within each fake's group (the fake and the
// reals most correlated with it) the member whose projection leaves the group least correlated.
// A fake used by one real filter forms a symmetric pair with it; there the slot whose norm is
// typical of the other fakes is the fake: fakes come from one distribution, while a real slot's
// norm carries its random 1 / s_n.
std::vector<char> choose_fakes(const std::vector<double>& rows, int64_t slots, int64_t dim,
                               int64_t fake_count, const std::vector<double>& cos,
                               const std::vector<double>& norm) {
  const auto gram = gram_matrix(rows, slots, dim);
  auto is_fake = explaining_subset(gram, slots, fake_count);
  auto users = fake_users(is_fake, cos, slots);
  for (int64_t f = 0; f < slots; ++f) {
    if (!is_fake[f] || users[f].size() < 2) continue;
    std::vector<int64_t> group(users[f]);
    group.push_back(f);
    int64_t best = f;
    double best_left = correlation_left(gram, slots, group, f);
    for (int64_t c : users[f]) {
      const double left = correlation_left(gram, slots, group, c);
      if (left < best_left) best_left = left, best = c;
    }
    if (best != f) is_fake[f] = 0, is_fake[best] = 1;
  }
  users = fake_users(is_fake, cos, slots);
  std::vector<double> clear;
  for (int64_t f = 0; f < slots; ++f)
    if (is_fake[f] && users[f].size() >= 2) clear.push_back(norm[f]);
  if (clear.empty()) return is_fake;
  std::nth_element(clear.begin(), clear.begin() + clear.size() / 2, clear.end());
  const double typical = std::max(clear[clear.size() / 2], 1e-300);
  auto atypical = [&](int64_t a) {
    return std::abs(std::log(std::max(norm[a], 1e-300) / typical));
  };
  for (int64_t f = 0; f < slots; ++f)
    if (is_fake[f] && users[f].size() == 1 && atypical(users[f][0]) < atypical(f))
      is_fake[f] = 0, is_fake[users[f][0]] = 1;
  return is_fake;
}

// A Haar-ish random orthogonal matrix: Gram-Schmidt on a Gaussian one. The attacker's own
// randomness, not a secret: std::mt19937 is enough.
std::vector<double> random_orthogonal(int64_t n, std::mt19937_64& rng) {
  std::normal_distribution<double> g(0, 1);
  std::vector<double> q(n * n);
  for (auto& x : q) x = g(rng);
  for (int64_t i = 0; i < n; ++i) {
    double* r = q.data() + i * n;
    for (int64_t k = 0; k < i; ++k) {
      const double* p = q.data() + k * n;
      const double d = dot(r, p, n);
      for (int64_t j = 0; j < n; ++j) r[j] -= d * p[j];
    }
    const double norm = std::sqrt(dot(r, r, n));
    for (int64_t j = 0; j < n; ++j) r[j] /= norm;
  }
  return q;
}

// Observed mean best-partner |cos| against the same weights under random rotations of the
// slots: a rotation keeps the Gram matrix's spectrum (what a dense mixing of the same filters
// would show) but destroys a sparse pairing.
double pairing_confidence(const std::vector<double>& rows, int64_t slots, int64_t dim,
                          uint64_t seed) {
  const double observed = mean_best_cosine(rows, slots, dim);
  std::mt19937_64 rng(seed);
  const int trials = 16;
  std::vector<double> null(trials);
  std::vector<double> mixed(slots * dim);
  for (int t = 0; t < trials; ++t) {
    const auto q = random_orthogonal(slots, rng);
    std::fill(mixed.begin(), mixed.end(), 0.0);
    for (int64_t i = 0; i < slots; ++i)
      for (int64_t k = 0; k < slots; ++k) {
        const double w = q[i * slots + k];
        const double* src = rows.data() + k * dim;
        double* dst = mixed.data() + i * dim;
        for (int64_t j = 0; j < dim; ++j) dst[j] += w * src[j];
      }
    null[t] = mean_best_cosine(mixed, slots, dim);
  }
  const double mean = std::accumulate(null.begin(), null.end(), 0.0) / trials;
  double var = 0;
  for (double x : null) var += (x - mean) * (x - mean);
  // A floor on the spread keeps a degenerate layer (all rows parallel) from scoring infinity.
  const double sd = std::max(std::sqrt(var / (trials - 1)), 1e-3);
  return (observed - mean) / sd;
}

}  // namespace

LayerPairing pair_filters(const std::vector<double>& rows, int64_t slots, int64_t dim,
                          int64_t real_count, uint64_t seed) {
  if (slots < 2 || dim < 1 || static_cast<int64_t>(rows.size()) != slots * dim)
    throw InvalidArgument("pair_filters: rows do not hold slots x dim values");
  if (real_count < 1 || real_count >= slots)
    throw InvalidArgument("pair_filters: the real filter count must be in [1, slots)");
  const auto cos = abs_cosines(rows, slots, dim);
  std::vector<double> norm(slots);
  for (int64_t a = 0; a < slots; ++a)
    norm[a] = std::sqrt(dot(rows.data() + a * dim, rows.data() + a * dim, dim));

  const int64_t fake_count = slots - real_count;
  const auto is_fake = choose_fakes(rows, slots, dim, fake_count, cos, norm);
  LayerPairing out;
  double fake_sq = 0;
  for (int64_t a = 0; a < slots; ++a)
    if (is_fake[a]) out.fakes.push_back(a), fake_sq += norm[a] * norm[a];
  fake_sq /= static_cast<double>(fake_count);

  for (int64_t a = 0; a < slots; ++a) {
    if (is_fake[a]) continue;
    int64_t b = out.fakes.front();
    for (int64_t f : out.fakes)
      if (cos[a * slots + f] > cos[a * slots + b]) b = f;
    const double* wa = rows.data() + a * dim;
    const double* wb = rows.data() + b * dim;
    const double aa = std::max(norm[a] * norm[a], 1e-300), ab = dot(wa, wb, dim);
    const double bb = norm[b] * norm[b];
    const double least_squares = -ab / aa;
    // |t W'_a + W'_b|^2 = fake_sq: t = t* +- sqrt(t*^2 - (bb - fake_sq) / aa). The smaller root
    // is near 0 (the fake filter itself), the larger one is the real filter.
    const double disc = least_squares * least_squares - (bb - fake_sq) / aa;
    double scale = disc > 0 ? least_squares + std::sqrt(disc) : least_squares;
    if (!(scale > 0)) scale = std::abs(least_squares);
    out.pairs.push_back({a, b, cos[a * slots + b], scale});
  }
  out.confidence = pairing_confidence(rows, slots, dim, seed);
  out.claimed = out.confidence >= kPairingThreshold;
  return out;
}

std::vector<double> estimate_filters(const std::vector<double>& rows, int64_t dim,
                                     const LayerPairing& pairing) {
  std::vector<double> est(pairing.pairs.size() * dim);
  for (size_t i = 0; i < pairing.pairs.size(); ++i) {
    const auto& p = pairing.pairs[i];
    for (int64_t j = 0; j < dim; ++j)
      est[i * dim + j] = p.scale * rows[p.real * dim + j] + rows[p.fake * dim + j];
  }
  return est;
}

}  // namespace veil::split
