#include "veil/model/memory_plan.hpp"

#include <algorithm>

#include "veil/core/error.hpp"
#include "veil/core/memory_budget.hpp"
#include "veil/model/shape_inference.hpp"

namespace veil::model {

namespace {

uint64_t element_bytes(DType t) { return t == DType::Int64 ? 8 : 4; }

// Bytes of a value of `shape`, saturating (a hostile shape must not wrap around to small).
uint64_t value_bytes(const Shape& shape, DType dtype, int64_t batch) {
  const uint64_t limit = uint64_t{1} << 62;
  uint64_t n = element_bytes(dtype);
  for (int64_t d : shape) {
    const uint64_t k = static_cast<uint64_t>(d < 0 ? std::max<int64_t>(batch, 1) : d);
    if (k == 0) return 0;
    n = n > limit / k ? limit : n * k;
  }
  return n;
}

}  // namespace

std::vector<size_t> last_readers(const LoweredGraph& lowered) {
  const size_t nv = lowered.values.size();
  std::vector<size_t> last(nv, kKeptThroughout);
  for (size_t i = 0; i < lowered.ops.size(); ++i)
    for (int id : lowered.ops[i].input_ids)
      if (id >= 0) last[static_cast<size_t>(id)] = i;
  for (int id : lowered.inputs) last[static_cast<size_t>(id)] = kKeptThroughout;
  for (int id : lowered.outputs) last[static_cast<size_t>(id)] = kKeptThroughout;
  for (size_t id = 0; id < nv; ++id)
    if (lowered.is_initializer[id]) last[id] = kKeptThroughout;
  return last;
}

MemoryPlan plan_memory(const LoweredGraph& lowered, const Graph& graph,
                       const std::vector<Shape>& inputs, bool training) {
  MemoryPlan plan;
  const size_t nv = lowered.values.size();
  plan.shapes.resize(nv);
  for (size_t id = 0; id < nv; ++id) plan.shapes[id] = lowered.values[id].shape;
  for (size_t i = 0; i < inputs.size() && i < lowered.inputs.size(); ++i)
    plan.shapes[static_cast<size_t>(lowered.inputs[i])] = inputs[i];
  const int64_t batch = !inputs.empty() && !inputs[0].empty() ? inputs[0][0] : 1;

  // Shapes for these inputs, op by op (the import-time shapes have -1 for the batch).
  for (const auto& op : lowered.ops) {
    std::vector<ValueInfo> in;
    for (int id : op.input_ids) {
      ValueInfo vi;
      if (id >= 0) vi = {lowered.values[id].name, lowered.values[id].dtype, plan.shapes[id]};
      in.push_back(std::move(vi));
    }
    try {
      const auto outs = infer_node(graph.nodes.at(op.node), in, graph);
      for (size_t o = 0; o < outs.size() && o < op.output_ids.size(); ++o)
        if (op.output_ids[o] >= 0 && !outs[o].shape.empty())
          plan.shapes[op.output_ids[o]] = outs[o].shape;
    } catch (const Error&) {
      // Inconsistent with these inputs: the engine reports that itself, naming the node.
    }
  }

  std::vector<uint64_t> bytes(nv, 0);
  for (size_t id = 0; id < nv; ++id)
    bytes[id] = value_bytes(plan.shapes[id], lowered.values[id].dtype, batch);
  for (size_t id = 0; id < nv; ++id)
    if (lowered.is_initializer[id]) plan.weight_bytes += bytes[id];

  const size_t nops = lowered.ops.size();
  const std::vector<size_t> last = last_readers(lowered);

  const uint64_t scale = training ? 2 : 1;  // gradients as large as the activations
  uint64_t live = plan.weight_bytes;
  for (int id : lowered.inputs) live += bytes[id] * scale;
  plan.peak_bytes = live;
  std::vector<bool> counted(nv, false);
  for (int id : lowered.inputs) counted[id] = true;
  plan.live_after.resize(nops);
  for (size_t i = 0; i < nops; ++i) {
    for (int id : lowered.ops[i].output_ids)
      if (id >= 0 && !counted[id] && !lowered.is_initializer[id]) {
        counted[id] = true;
        live += bytes[id] * scale;
      }
    plan.live_after[i] = live;
    plan.peak_bytes = std::max(plan.peak_bytes, live);
    if (training) continue;
    for (int id : lowered.ops[i].input_ids)
      if (id >= 0 && last[id] == i && counted[id]) {
        live -= bytes[id];
        counted[id] = false;  // a value read twice by one op is released once
      }
  }
  return plan;
}

void require_within_budget(const MemoryPlan& plan, const LoweredGraph& lowered, uint64_t budget) {
  if (plan.peak_bytes <= budget) return;
  const auto crossing = std::find_if(plan.live_after.begin(), plan.live_after.end(),
                                     [budget](uint64_t live) { return live > budget; });
  std::string what = "the model's weights and inputs";
  if (crossing != plan.live_after.end()) {
    const LoweredOp& op = lowered.ops[static_cast<size_t>(crossing - plan.live_after.begin())];
    what = op.describe();
    int biggest = -1;
    uint64_t most = 0;
    for (int id : op.output_ids) {
      if (id < 0) continue;
      const uint64_t b = value_bytes(plan.shapes[id], lowered.values[id].dtype, 1);
      if (biggest < 0 || b > most) biggest = id, most = b;
    }
    if (biggest >= 0)
      what += " (output '" + lowered.values[biggest].name + "' " +
              shape_to_string(plan.shapes[biggest]) + ", " + human_bytes(most) + ")";
  }
  throw InvalidArgument(what + " needs " + human_bytes(plan.peak_bytes) +
                        " of memory, over the budget of " + human_bytes(budget) +
                        " (raise it with --max-memory)");
}

}  // namespace veil::model
