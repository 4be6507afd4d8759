#include "veil/mpc/block_relu/knapsack.hpp"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <future>
#include <limits>
#include <mutex>
#include <numeric>
#include <string>

#include "min_plus.hpp"
#include "veil/core/default_init.hpp"
#include "veil/core/error.hpp"
#include "veil/core/memory_budget.hpp"

namespace veil::mpc {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr int64_t kMaxCost = int64_t{1} << 40;
constexpr int64_t kMaxItems = int64_t{1} << 22;  // with kMaxCost, cost sums stay below 2^62
// Budget cells per tile: the tile of the row being built (8 KiB) stays in L1 while every option
// adds its shifted copy of the previous row.
constexpr int64_t kTile = 1024;

// A DP row; growing it writes nothing (the DP writes every entry).
using Row = std::vector<double, DefaultInitAllocator<double>>;

// The instance after dominance pruning, items reordered by their largest cost (ascending) so
// the DP row of a prefix, capped at the prefix's largest possible cost, stays short for long.
struct Prepared {
  std::vector<int64_t> item;        // internal position -> caller's item
  std::vector<int64_t> offsets{0};  // internal position -> its options below
  std::vector<int64_t> cost;        // ascending within an item
  std::vector<double> value;        // strictly descending within an item
  std::vector<int32_t> original;    // the option's index in the caller's item
  std::vector<int64_t> max_sum{0};  // prefix sums of each item's largest cost
  std::vector<int64_t> min_sum{0};  // prefix sums of each item's smallest cost

  size_t size() const { return item.size(); }
  int64_t max_cost(size_t k) const { return cost[offsets[k + 1] - 1]; }
};

Prepared prepare(const KnapsackInstance& in) {
  const int64_t n = in.items();
  if (n > kMaxItems) throw InvalidArgument("knapsack: more than 2^22 items");
  struct Opt {
    int64_t cost;
    double value;
    int32_t index;
  };
  std::vector<std::vector<Opt>> kept(n);
  for (int64_t i = 0; i < n; ++i) {
    auto opts = in.item(i);
    if (opts.empty())
      throw InvalidArgument("knapsack: item " + std::to_string(i) + " has no options");
    std::vector<Opt> v;
    for (size_t j = 0; j < opts.size(); ++j) {
      if (opts[j].cost < 0 || opts[j].cost > kMaxCost)
        throw InvalidArgument("knapsack: item " + std::to_string(i) + ": cost out of range");
      if (!std::isfinite(opts[j].value))
        throw InvalidArgument("knapsack: item " + std::to_string(i) + ": value not finite");
      // + 0.0 turns -0 into +0, so that no kernel's minimum depends on the sign of a zero.
      v.push_back({opts[j].cost, opts[j].value + 0.0, static_cast<int32_t>(j)});
    }
    std::sort(v.begin(), v.end(), [](const Opt& a, const Opt& b) {
      if (a.cost != b.cost) return a.cost < b.cost;
      if (a.value != b.value) return a.value < b.value;
      return a.index < b.index;
    });
    // Keep an option only if it is strictly better than every cheaper (or equally cheap, earlier)
    // one: what remains has increasing costs and decreasing values.
    for (const Opt& o : v)
      if (kept[i].empty() || o.value < kept[i].back().value) kept[i].push_back(o);
  }
  Prepared p;
  p.item.resize(n);
  std::iota(p.item.begin(), p.item.end(), int64_t{0});
  std::stable_sort(p.item.begin(), p.item.end(),
                   [&](int64_t a, int64_t b) { return kept[a].back().cost < kept[b].back().cost; });
  for (int64_t i : p.item) {
    for (const Opt& o : kept[i]) {
      p.cost.push_back(o.cost);
      p.value.push_back(o.value);
      p.original.push_back(o.index);
    }
    p.offsets.push_back(static_cast<int64_t>(p.cost.size()));
    p.max_sum.push_back(p.max_sum.back() + kept[i].back().cost);
    p.min_sum.push_back(p.min_sum.back() + kept[i].front().cost);
  }
  return p;
}

// Work counter shared by the solver's threads: cells = DP entries times options.
class Progress {
 public:
  Progress(const std::function<void(double)>& callback, int64_t total)
      : callback_(callback), total_(std::max<int64_t>(total, 1)), step_(total_ / 200 + 1) {}
  void add(int64_t cells) {
    if (!callback_) return;
    const int64_t done = done_ += cells;
    if (done < next_.load()) return;
    std::lock_guard lock(mutex_);
    if (done < next_.load()) return;
    next_ = done + step_;
    callback_(std::min(0.99, static_cast<double>(done) / static_cast<double>(total_)));
  }

 private:
  const std::function<void(double)>& callback_;
  int64_t total_, step_;
  std::atomic<int64_t> done_{0}, next_{0};
  std::mutex mutex_;
};

// DP entries times options that forward(lo, hi, budget) visits.
int64_t forward_cells(const Prepared& p, size_t lo, size_t hi, int64_t budget) {
  int64_t cells = 0, lp = 0;
  for (size_t k = lo; k < hi; ++k) {
    lp = std::min(budget, lp + p.max_cost(k));
    cells += (lp + 1) * (p.offsets[k + 1] - p.offsets[k]);
  }
  return cells;
}

// Where to split items [lo, hi) (hi - lo >= 2): the first point at which the first half's DP
// costs at least as much as the second's, so the two (run concurrently) end together. Any split
// gives the exact optimum; rows capped short make an item-count split lopsided in time.
size_t balanced_split(const Prepared& p, size_t lo, size_t hi, int64_t budget) {
  size_t a = lo + 1, b = hi - 1;  // the answer lies in [a, b]
  while (a < b) {
    const size_t m = a + (b - a) / 2;
    if (forward_cells(p, lo, m, budget) >= forward_cells(p, m, hi, budget))
      b = m;
    else
      a = m + 1;
  }
  return a;
}

class Solver {
 public:
  Solver(const Prepared& p, Progress& progress)
      : p_(p), progress_(progress), kernel_(detail::best_min_plus_kernel()) {}

  // f[b] for b in [0, min(budget, largest cost of items [lo, hi))]: the least summed value of
  // items [lo, hi) with summed cost <= b (infinity when none fits). Past the end f is constant.
  Row forward(size_t lo, size_t hi, int64_t budget) const {
    Row prev(1, 0.0), cur;
    const int64_t full = std::min(budget, p_.max_sum[hi] - p_.max_sum[lo]);
    prev.reserve(full + 1);
    cur.reserve(full + 1);
    int64_t lp = 0;  // prev's last index
    for (size_t k = lo; k < hi; ++k) {
      const int64_t lc = std::min(budget, lp + p_.max_cost(k));
      cur.resize(lc + 1);  // every entry is written below
      const double last = prev[lp];
      const int64_t o0 = p_.offsets[k], o1 = p_.offsets[k + 1];
      // Where every option reads a stored entry of prev, all options run at once with the
      // running minima in registers; the edges go option by option.
      const int64_t full0 = p_.cost[o1 - 1], full1 = p_.cost[o0] + lp + 1;
      for (int64_t t = 0; t <= lc; t += kTile) {
        const int64_t te = std::min(lc + 1, t + kTile);
        const int64_t f0 = std::clamp(full0, t, te), f1 = std::clamp(full1, f0, te);
        if (f0 < f1)
          detail::min_plus_options(kernel_, cur.data() + f0, prev.data() + f0,
                                   static_cast<size_t>(f1 - f0), p_.cost.data() + o0,
                                   p_.value.data() + o0, static_cast<size_t>(o1 - o0));
        std::fill(cur.begin() + t, cur.begin() + f0, kInf);
        std::fill(cur.begin() + f1, cur.begin() + te, kInf);
        edges(t, f0, o0, o1, lp, last, prev, cur);
        edges(f1, te, o0, o1, lp, last, prev, cur);
      }
      progress_.add((lc + 1) * (o1 - o0));
      std::swap(prev, cur);
      lp = lc;
    }
    return prev;
  }

  // cur[x] for x in [xa, xb) from every option that applies there: f_{k-1}[x - c] + d, read
  // from prev where it is stored and the constant `last` past its end.
  void edges(int64_t xa, int64_t xb, int64_t o0, int64_t o1, int64_t lp, double last,
             const Row& prev, Row& cur) const {
    for (int64_t o = o0; o < o1 && xa < xb; ++o) {
      const int64_t c = p_.cost[o];
      const double d = p_.value[o];
      if (c >= xb) break;  // costs ascend
      const int64_t x0 = std::max(xa, c), x1 = std::min(xb, c + lp + 1);
      if (x0 < x1)
        detail::min_plus_accumulate(kernel_, cur.data() + x0, prev.data() + x0 - c,
                                    static_cast<size_t>(x1 - x0), d);
      const double tail = last + d;
      for (int64_t x = std::max(xa, c + lp + 1); x < xb; ++x)
        cur[x] = tail < cur[x] ? tail : cur[x];
    }
  }

  // Chooses items [lo, hi) within `budget`; writes the pruned option index per internal item.
  // `tasks` > 1: run the two halves' DPs, then the two recursions, as concurrent tasks, each
  // half with tasks / 2. The halves' work differs (their budgets and row caps do), so there are
  // more tasks than cores near the top and the scheduler evens them out.
  void solve(size_t lo, size_t hi, int64_t budget, int tasks, std::vector<int64_t>& pick) const {
    budget = std::min(budget, p_.max_sum[hi] - p_.max_sum[lo]);
    if (hi - lo == 1) {
      int64_t o = p_.offsets[lo];
      while (o + 1 < p_.offsets[lo + 1] && p_.cost[o + 1] <= budget) ++o;
      pick[lo] = o;
      return;
    }
    const size_t mid = balanced_split(p_, lo, hi, budget);
    Row f, g;
    if (tasks >= 2) {
      auto left = std::async(std::launch::async, [&] { return forward(lo, mid, budget); });
      g = forward(mid, hi, budget);
      f = left.get();
    } else {
      f = forward(lo, mid, budget);
      g = forward(mid, hi, budget);
    }
    const int64_t af = static_cast<int64_t>(f.size()) - 1, ag = static_cast<int64_t>(g.size()) - 1;
    int64_t best = -1;
    double best_value = kInf;
    for (int64_t b1 = std::max<int64_t>(0, budget - ag); b1 <= std::min(budget, af); ++b1) {
      const double v = f[b1] + g[budget - b1];
      if (v < best_value) best_value = v, best = b1;
    }
    if (best < 0) throw std::logic_error("knapsack: infeasible split after the feasibility check");
    f = {};
    g = {};
    if (tasks >= 2) {
      auto left = std::async(std::launch::async, [&] { solve(lo, mid, best, tasks / 2, pick); });
      solve(mid, hi, budget - best, tasks / 2, pick);
      left.get();
    } else {
      solve(lo, mid, best, 1, pick);
      solve(mid, hi, budget - best, 1, pick);
    }
  }

 private:
  const Prepared& p_;
  Progress& progress_;
  detail::MinPlusKernel kernel_;
};

// DP cells of the top level (both halves), about half of the total work.
int64_t top_level_cells(const Prepared& p, int64_t budget) {
  const size_t n = p.size();
  if (n < 2) return forward_cells(p, 0, n, budget);
  const size_t mid = balanced_split(p, 0, n, budget);
  return forward_cells(p, 0, mid, budget) + forward_cells(p, mid, n, budget);
}

}  // namespace

void KnapsackInstance::add_item(std::span<const KnapsackOption> item_options) {
  options.insert(options.end(), item_options.begin(), item_options.end());
  offsets.push_back(static_cast<int64_t>(options.size()));
}

KnapsackResult solve_knapsack(const KnapsackInstance& instance, int64_t budget,
                              const KnapsackSettings& settings) {
  if (budget < 0) throw InvalidArgument("knapsack: negative budget");
  const Prepared p = prepare(instance);
  const size_t n = p.size();
  if (p.min_sum.back() > budget)
    throw InvalidArgument("knapsack: the budget (" + std::to_string(budget) +
                          ") is below the cheapest assignment (" +
                          std::to_string(p.min_sum.back()) + ")");
  const int64_t row = std::min(budget, p.max_sum.back()) + 1;
  const int threads = std::clamp(settings.threads, 1, 64);
  const int tasks = threads == 1 ? 1 : 4 * std::bit_ceil(static_cast<unsigned>(threads));
  // Concurrent subproblems of one recursion level split the budget, so their rows (two per
  // running DP, two more held for the split) add up to a few rows of the full budget.
  const uint64_t need = static_cast<uint64_t>(row) * sizeof(double) * 6;
  if (need > memory_budget())
    throw InvalidArgument("knapsack: the DP needs " + human_bytes(need) +
                          ", above the memory budget (" + human_bytes(memory_budget()) +
                          "; see --max-memory)");
  KnapsackResult r;
  r.choice.assign(instance.items(), 0);
  if (n == 0) return r;
  Progress progress(settings.progress, 2 * top_level_cells(p, budget));
  std::vector<int64_t> pick(n);
  Solver(p, progress).solve(0, n, budget, tasks, pick);
  for (size_t k = 0; k < n; ++k) r.choice[p.item[k]] = p.original[pick[k]];
  for (int64_t i = 0; i < instance.items(); ++i) {
    const auto& o = instance.item(i)[r.choice[i]];
    r.cost += o.cost;
    r.value += o.value;
  }
  if (settings.progress) settings.progress(1.0);
  return r;
}

}  // namespace veil::mpc
