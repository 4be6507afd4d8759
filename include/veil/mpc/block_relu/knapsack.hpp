// The exact multiple-choice knapsack that picks a block size per channel (Gorski & Avidan,
// arXiv 2304.10442, Sec. 4.2): every item (channel) takes exactly one of its options (block
// sizes), each with a cost (DReLUs) and a value (distortion); minimize the summed value with the
// summed cost at most the budget.
//
// Solver: options dominated within an item (another with cost <= and value <=) are dropped;
// then a min-plus DP over the cost, f_i[b] = min_j f_{i-1}[b - c_j] + d_j (the best value with
// cost <= b), contiguous in b so the inner loop runs on AVX-512/AVX2. The choices are recovered
// without the items x budget argmin table the reference keeps, Hirschberg style: the DP of the
// first half of the items and that of the second half meet at the best split of the budget, and
// both halves recurse (as concurrent tasks). Time O(2 * items * options * budget), memory
// O(budget): concurrent subproblems split the budget between them. Ties go deterministically (the
// smallest budget split, then the cheapest option).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

namespace veil::mpc {

struct KnapsackOption {
  int64_t cost = 0;  // >= 0
  double value = 0;  // finite
};

// Item i chooses among options[offsets[i] .. offsets[i + 1]).
struct KnapsackInstance {
  std::vector<KnapsackOption> options;
  std::vector<int64_t> offsets{0};

  void add_item(std::span<const KnapsackOption> item_options);
  int64_t items() const { return static_cast<int64_t>(offsets.size()) - 1; }
  std::span<const KnapsackOption> item(int64_t i) const {
    return {options.data() + offsets[i], options.data() + offsets[i + 1]};
  }
};

struct KnapsackResult {
  std::vector<int32_t> choice;  // per item, the index of its chosen option
  int64_t cost = 0;             // summed cost of the choice
  double value = 0;             // summed value of the choice, in item order
};

struct KnapsackSettings {
  int threads = 2;  // cores to use (1: everything on the calling thread)
  // Called now and then with the fraction of the work done (from any of the solver's threads,
  // one call at a time).
  std::function<void(double)> progress;
};

// Throws InvalidArgument for a negative budget, an item without options, a negative cost or a
// non-finite value, and when the budget is below the cheapest assignment.
KnapsackResult solve_knapsack(const KnapsackInstance& instance, int64_t budget,
                              const KnapsackSettings& settings = {});

}  // namespace veil::mpc
