// The memory a run of a lowered graph needs, planned from shapes alone before anything is
// allocated: every value's shape is inferred for the actual input shapes (the batch in use),
// values are live from the op that produces them to their last reader (graph inputs and outputs
// for the whole run; every value when training keeps activations for backward, plus as much
// again for their gradients), and the initializers count once. The peak is what the float
// engine's buffers come to, give or take oneDNN's blocked-layout padding and scratch; engines
// refuse a run whose peak exceeds veil::memory_budget() before they start it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "veil/core/tensor.hpp"
#include "veil/model/graph.hpp"
#include "veil/model/lowered.hpp"

namespace veil::model {

struct MemoryPlan {
  std::vector<Shape> shapes;         // per value id, for these inputs (-1: still unknown)
  uint64_t weight_bytes = 0;         // the initializers
  std::vector<uint64_t> live_after;  // per op: weights + values live while it runs
  uint64_t peak_bytes = 0;           // the largest live_after (weights + inputs if no ops)
};

// When each value may be released: the index of the last op that reads it, or kKeptThroughout
// for the graph's inputs and outputs, the initializers and values no op reads. The float
// engine's plan and the three-party engine free values by this rule.
inline constexpr size_t kKeptThroughout = static_cast<size_t>(-1);
std::vector<size_t> last_readers(const LoweredGraph& lowered);

// `inputs` are the shapes of the graph inputs in order. A dimension that stays unknown (it
// depends on tensor contents) counts as the batch (the first dimension of the first input).
MemoryPlan plan_memory(const LoweredGraph& lowered, const Graph& graph,
                       const std::vector<Shape>& inputs, bool training = false);

// Throws InvalidArgument naming the first op during which the plan exceeds `budget` bytes, its
// largest output and the totals (one line; `--max-memory` raises the budget).
void require_within_budget(const MemoryPlan& plan, const LoweredGraph& lowered, uint64_t budget);

}  // namespace veil::model
