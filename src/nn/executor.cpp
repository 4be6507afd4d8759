#include "veil/nn/executor.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <set>
#include <unordered_set>

#include "kernel.hpp"
#include "veil/core/error.hpp"
#include "veil/core/memory_budget.hpp"
#include "veil/model/memory_plan.hpp"
#include "veil/nn/threads.hpp"

namespace veil::nn {

namespace detail {

enum class ValueKind { Input, Initializer, Computed };

// One kernel invocation: a graph node, or in inference mode a fused Conv[+BN][+Relu] group.
struct Step {
  std::vector<size_t> nodes;  // indices into graph.nodes, for hooks and errors
  std::vector<int> in;        // value ids, -1 for an omitted input
  std::vector<int> out;       // value ids, -1 for an omitted output
  std::unique_ptr<Kernel> kernel;
  std::vector<int> release;  // inference: values whose last use is this step
  bool differentiable = true;
};

struct Slot {
  Tensor owned;                 // plain form, when has_plain and not borrowed
  const Tensor* ref = nullptr;  // borrowed plain form (graph input or initializer)
  bool present = false;
  bool has_plain = false;
  bool taken_plain = false;  // `owned` was moved out by a kernel (take_input)
  // Inference only: the value in a oneDNN layout (`md`, raw storage in `raw`), kept so that
  // consecutive oneDNN kernels exchange it without reorders. `shape` is the logical shape.
  bool blocked = false;
  bool taken_raw = false;
  Tensor raw;
  dnnl::memory::desc md;
  Shape shape;
  // Inference: a bound on |x| over the value set by the kernel that produced it (then every
  // element is finite), +inf when unknown. Lets NaN-exact kernels skip their scan of the input.
  float bound = std::numeric_limits<float>::infinity();
};

// Recycles tensors by element count so that steady-state calls allocate nothing.
class TensorPool {
 public:
  Tensor get(const Shape& shape, DType dtype) {
    const int64_t n = shape_numel(shape);
    auto& bucket = (dtype == DType::Float32 ? f32_ : i64_)[n];
    if (bucket.empty()) return Tensor(shape, dtype);
    Tensor t = std::move(bucket.back());
    bucket.pop_back();
    t.reshape(shape);
    return t;
  }
  void put(Tensor&& t) {
    if (t.numel() == 0) return;
    auto& bucket = (t.dtype() == DType::Float32 ? f32_ : i64_)[t.numel()];
    if (bucket.size() < 64) bucket.push_back(std::move(t));
  }

 private:
  std::unordered_map<int64_t, std::vector<Tensor>> f32_, i64_;
};

class Runtime {
 public:
  Runtime(model::Model& m, ExecutorOptions o) : model(m), opts(std::move(o)) {}

  model::Model& model;
  model::LoweredGraph lowered;  // the kernels' ops
  ExecutorOptions opts;
  DnnlContext dnnl;
  NodeHooks hooks;

  std::vector<std::string> names;
  std::unordered_map<std::string, int> ids;
  std::vector<ValueKind> kinds;
  std::vector<uint64_t> versions;
  uint64_t epoch = 1;
  std::vector<Slot> slots;
  std::vector<bool> is_graph_output;
  std::vector<int> input_ids, output_ids;

  std::vector<Step> train_steps, infer_steps;
  const std::vector<Step>* steps = nullptr;  // the plan of the current forward
  Mode mode = Mode::Inference;
  bool have_training_forward = false;

  // Backward state.
  std::vector<bool> needs_grad;
  std::vector<Tensor> grads;
  std::vector<bool> has_grad;
  std::vector<Tensor> pending;  // per input of the step being back-propagated
  std::vector<bool> pending_set;
  std::vector<std::string> trainable;
  std::vector<int> trainable_ids;
  TensorMap param_grads;
  std::vector<Tensor> input_grads;

  TensorPool pool;
  // Input shapes and mode of the last run whose memory plan fitted the budget.
  std::vector<Shape> planned_inputs;
  Mode planned_mode = Mode::Inference;
  uint64_t planned_budget = 0;

  // Refuses a run whose planned memory (from the shapes, before any allocation) exceeds
  // veil::memory_budget(), naming the op that crosses it.
  void check_memory(const std::vector<Tensor>& inputs, Mode m) {
    std::vector<Shape> shapes;
    for (const auto& t : inputs) shapes.push_back(t.shape());
    const uint64_t budget = memory_budget();
    if (shapes == planned_inputs && m == planned_mode && budget == planned_budget) return;
    const auto plan = model::plan_memory(lowered, model.graph, shapes, m == Mode::Training);
    model::require_within_budget(plan, lowered, budget);
    planned_inputs = std::move(shapes);
    planned_mode = m;
    planned_budget = budget;
  }

  void build();
  void build_inference_plan();
  // Inference: Conv[+BatchNormalization][+Relu] as one kernel when the Conv's output feeds only
  // the BN (with constant float parameters) and the BN's (or Conv's) only the Relu. Extends
  // `step` and marks the absorbed ops; nullptr when there is nothing to fuse. `consumers` lists
  // the ops reading each value.
  std::unique_ptr<Kernel> fuse_conv(const model::LoweredOp& conv, Step& step,
                                    const std::vector<std::vector<size_t>>& consumers,
                                    std::vector<bool>& absorbed);
  std::vector<Tensor> forward(const std::vector<Tensor>& inputs, Mode m);
  void backward(const std::vector<Tensor>& output_grads);
  void run_hooks(const Step& step, bool before);
  void release_value(int id) {
    Slot& s = slots[id];
    if (s.ref) {
      s.ref = nullptr;
    } else if (s.has_plain) {
      if (!s.taken_plain) pool.put(std::move(s.owned));
      s.owned = Tensor();
    }
    if (s.blocked) {
      if (!s.taken_raw) pool.put(std::move(s.raw));
      s.raw = Tensor();
    }
    s.present = s.has_plain = s.blocked = s.taken_plain = s.taken_raw = false;
    s.bound = std::numeric_limits<float>::infinity();
  }

  // The plain form of a value, converted from its blocked form on first request.
  const Tensor& plain(int id) {
    Slot& s = slots[id];
    if (s.has_plain) return s.ref ? *s.ref : s.owned;
    if (!s.blocked || s.taken_raw) throw MalformedInput("value '" + names[id] + "' is missing");
    s.owned = pool.get(s.shape, DType::Float32);
    const dnnl::memory::desc plain_md(s.md.dims(), dnnl::memory::data_type::f32,
                                      plain_tag(s.md.dims().size()));
    dnnl::reorder* r = nullptr;
    for (auto& [md, prim] : to_plain)
      if (md == s.md) r = &prim;
    if (!r) {
      to_plain.emplace_back(s.md, dnnl::reorder(dnnl::reorder::primitive_desc(
                                      dnnl.engine, s.md, dnnl.engine, plain_md)));
      r = &to_plain.back().second;
    }
    dnnl::memory src(s.md, dnnl.engine, s.raw.data()), dst(plain_md, dnnl.engine, s.owned.data());
    r->execute(dnnl.stream, src, dst);
    dnnl.stream.wait();
    s.has_plain = true;
    return s.owned;
  }

  std::vector<bool> may_block;  // inference plan: every reader of the value takes blocked input
  std::vector<std::pair<dnnl::memory::desc, dnnl::reorder>> to_plain;
};

// ---- environments -------------------------------------------------------------------------

size_t ForwardEnv::num_inputs() const { return step_.in.size(); }
bool ForwardEnv::has_input(size_t i) const {
  return i < step_.in.size() && step_.in[i] >= 0 && rt_.slots[step_.in[i]].present;
}
const Tensor& ForwardEnv::input(size_t i) const {
  if (!has_input(i))
    throw MalformedInput(node().describe() + ": required input " + std::to_string(i) +
                         " is missing");
  return rt_.plain(step_.in[i]);
}
const Shape& ForwardEnv::input_shape(size_t i) const {
  if (!has_input(i))
    throw MalformedInput(node().describe() + ": required input " + std::to_string(i) +
                         " is missing");
  const Slot& s = rt_.slots[step_.in[i]];
  if (s.has_plain) return (s.ref ? *s.ref : s.owned).shape();
  return s.shape;
}
const dnnl::memory::desc* ForwardEnv::input_blocked(size_t i) const {
  if (!has_input(i)) return nullptr;
  const Slot& s = rt_.slots[step_.in[i]];
  return s.blocked && !s.taken_raw ? &s.md : nullptr;
}
const float* ForwardEnv::input_blocked_data(size_t i) const {
  return rt_.slots[step_.in.at(i)].raw.data();
}
Tensor* ForwardEnv::take_blocked_input(size_t i) {
  if (!input_blocked(i)) return nullptr;
  const int id = step_.in[i];
  Slot& s = rt_.slots[id];
  if (rt_.is_graph_output[id] || std::count(step_.in.begin(), step_.in.end(), id) != 1)
    return nullptr;
  if (std::find(step_.release.begin(), step_.release.end(), id) == step_.release.end())
    return nullptr;
  s.taken_raw = true;
  return &s.raw;
}
bool ForwardEnv::output_may_block(size_t i) const {
  return rt_.mode == Mode::Inference && has_output(i) && rt_.may_block[step_.out[i]];
}
float* ForwardEnv::output_blocked(size_t i, const Shape& shape, const dnnl::memory::desc& md) {
  Tensor raw = rt_.pool.get({static_cast<int64_t>(md.get_size() / sizeof(float))}, DType::Float32);
  set_output_blocked(i, shape, md, std::move(raw));
  return rt_.slots[step_.out[i]].raw.data();
}
void ForwardEnv::set_output_blocked(size_t i, const Shape& shape, const dnnl::memory::desc& md,
                                    Tensor&& raw) {
  if (!has_output(i)) throw MalformedInput(node().describe() + ": output is omitted");
  const int id = step_.out[i];
  rt_.release_value(id);
  Slot& s = rt_.slots[id];
  s.raw = std::move(raw);
  s.md = md;
  s.shape = shape;
  s.blocked = true;
  s.present = true;
}
uint64_t ForwardEnv::input_version(size_t i) const {
  if (i >= step_.in.size() || step_.in[i] < 0) return kVolatile;
  return rt_.versions[step_.in[i]];
}
Tensor* ForwardEnv::take_input(size_t i) {
  if (rt_.mode != Mode::Inference || !has_input(i)) return nullptr;
  const int id = step_.in[i];
  Slot& s = rt_.slots[id];
  if (s.ref || !s.has_plain || s.taken_plain || s.blocked || rt_.is_graph_output[id])
    return nullptr;
  if (std::count(step_.in.begin(), step_.in.end(), id) != 1) return nullptr;
  if (std::find(step_.release.begin(), step_.release.end(), id) == step_.release.end())
    return nullptr;
  s.taken_plain = true;
  return &s.owned;
}
bool ForwardEnv::input_is_initializer(size_t i) const {
  return i < step_.in.size() && step_.in[i] >= 0 &&
         rt_.kinds[step_.in[i]] == ValueKind::Initializer;
}
Tensor& ForwardEnv::mutable_initializer(size_t i) {
  const int id = step_.in.at(i);
  if (id < 0 || rt_.kinds[id] != ValueKind::Initializer)
    throw MalformedInput(node().describe() + ": input " + std::to_string(i) +
                         " must be an initializer");
  return rt_.model.graph.initializers.at(rt_.names[id]);
}
void ForwardEnv::initializer_written(size_t i) {
  const int id = step_.in.at(i);
  if (id >= 0 && rt_.kinds[id] == ValueKind::Initializer) rt_.versions[id] = ++rt_.epoch;
}
size_t ForwardEnv::num_outputs() const { return step_.out.size(); }
bool ForwardEnv::has_output(size_t i) const { return i < step_.out.size() && step_.out[i] >= 0; }
Tensor& ForwardEnv::output(size_t i, const Shape& shape, DType dtype) {
  if (!has_output(i)) throw MalformedInput(node().describe() + ": output is omitted");
  Slot& s = rt_.slots[step_.out[i]];
  rt_.release_value(step_.out[i]);
  s.owned = rt_.pool.get(shape, dtype);
  s.present = s.has_plain = true;
  return s.owned;
}
void ForwardEnv::set_output(size_t i, Tensor&& t) {
  if (!has_output(i)) return;
  rt_.release_value(step_.out[i]);
  Slot& s = rt_.slots[step_.out[i]];
  s.owned = std::move(t);
  s.present = s.has_plain = true;
}
float ForwardEnv::input_bound(size_t i) const {
  if (!has_input(i) || rt_.mode != Mode::Inference) return std::numeric_limits<float>::infinity();
  return rt_.slots[step_.in[i]].bound;
}
void ForwardEnv::set_output_bound(size_t i, float bound) {
  if (has_output(i) && rt_.mode == Mode::Inference && bound >= 0 &&
      bound < 0.5f * std::numeric_limits<float>::max())
    rt_.slots[step_.out[i]].bound = bound;
}
Mode ForwardEnv::mode() const { return rt_.mode; }
bool ForwardEnv::frozen_batch_norm() const { return rt_.opts.frozen_batch_norm; }
DnnlContext& ForwardEnv::dnnl() const { return rt_.dnnl; }
const model::Node& ForwardEnv::node() const { return rt_.model.graph.nodes[step_.nodes[0]]; }

size_t BackwardEnv::num_inputs() const { return step_.in.size(); }
bool BackwardEnv::has_input(size_t i) const {
  return i < step_.in.size() && step_.in[i] >= 0 && rt_.slots[step_.in[i]].present;
}
const Tensor& BackwardEnv::input(size_t i) const {
  if (!has_input(i))
    throw MalformedInput(node().describe() + ": input " + std::to_string(i) + " is missing");
  return rt_.plain(step_.in[i]);
}
uint64_t BackwardEnv::input_version(size_t i) const {
  if (i >= step_.in.size() || step_.in[i] < 0) return kVolatile;
  return rt_.versions[step_.in[i]];
}
const Tensor& BackwardEnv::output(size_t i) const {
  const int id = step_.out.at(i);
  if (id < 0 || !rt_.slots[id].present)
    throw MalformedInput(node().describe() + ": output " + std::to_string(i) + " is missing");
  return rt_.plain(id);
}
const Tensor* BackwardEnv::grad_output(size_t i) const {
  if (i >= step_.out.size() || step_.out[i] < 0 || !rt_.has_grad[step_.out[i]]) return nullptr;
  return &rt_.grads[step_.out[i]];
}
bool BackwardEnv::wants_grad(size_t i) const {
  return i < step_.in.size() && step_.in[i] >= 0 && rt_.needs_grad[step_.in[i]];
}
Tensor& BackwardEnv::grad_input(size_t i) {
  if (!wants_grad(i)) throw MalformedInput(node().describe() + ": gradient not wanted");
  if (!rt_.pending_set[i]) {
    rt_.pending[i] = rt_.pool.get(input(i).shape(), DType::Float32);
    rt_.pending_set[i] = true;
  }
  return rt_.pending[i];
}
DnnlContext& BackwardEnv::dnnl() const { return rt_.dnnl; }
const model::Node& BackwardEnv::node() const { return rt_.model.graph.nodes[step_.nodes[0]]; }

// ---- plan construction --------------------------------------------------------------------

void Runtime::build() {
  model::validate(model.graph);
  lowered = model::lower(model);
  const auto& g = model.graph;
  // The lowered graph's value ids (a graph input shadows an initializer of the same name).
  for (size_t id = 0; id < lowered.values.size(); ++id) {
    const bool init = lowered.is_initializer[id];
    names.push_back(lowered.values[id].name);
    ids.emplace(names.back(), static_cast<int>(id));
    kinds.push_back(init ? ValueKind::Initializer : ValueKind::Computed);
    versions.push_back(init ? 1 : kVolatile);
  }
  input_ids = lowered.inputs;
  for (int id : input_ids) kinds[id] = ValueKind::Input;
  for (const auto& op : lowered.ops) {
    Step step;
    step.nodes = {op.node};
    step.in = op.input_ids;
    step.out = op.output_ids;
    step.kernel = make_kernel(op);
    step.differentiable = step.kernel->differentiable();
    train_steps.push_back(std::move(step));
  }
  output_ids = lowered.outputs;
  slots.resize(names.size());
  is_graph_output.assign(names.size(), false);
  for (int id : output_ids) is_graph_output[id] = true;

  // Trainable parameters.
  std::vector<std::string> wanted = opts.trainable;
  if (wanted.empty()) {
    std::set<std::string> seen;
    for (const auto& step : train_steps)
      for (size_t i : step.kernel->parameter_inputs()) {
        if (i >= step.in.size() || step.in[i] < 0) continue;
        const int id = step.in[i];
        if (kinds[id] != ValueKind::Initializer) continue;
        if (g.initializers.at(names[id]).dtype() != DType::Float32) continue;
        if (seen.insert(names[id]).second) wanted.push_back(names[id]);
      }
  }
  for (const auto& name : wanted) {
    auto it = ids.find(name);
    if (it == ids.end() || kinds[it->second] != ValueKind::Initializer ||
        g.initializers.at(name).dtype() != DType::Float32)
      throw InvalidArgument("trainable '" + name + "' is not a float initializer of the graph");
    if (std::find(trainable.begin(), trainable.end(), name) != trainable.end()) continue;
    trainable.push_back(name);
    trainable_ids.push_back(it->second);
  }
  needs_grad.assign(names.size(), false);
  for (int id : trainable_ids) needs_grad[id] = true;
  if (opts.input_gradients)
    for (int id : input_ids) needs_grad[id] = true;
  for (const auto& step : train_steps) {
    if (!step.differentiable) continue;
    bool any = false;
    for (int id : step.in) any = any || (id >= 0 && needs_grad[id]);
    if (any)
      for (int id : step.out)
        if (id >= 0) needs_grad[id] = true;
  }
  grads.resize(names.size());
  has_grad.assign(names.size(), false);
  build_inference_plan();
}

std::unique_ptr<Kernel> Runtime::fuse_conv(const model::LoweredOp& conv, Step& step,
                                           const std::vector<std::vector<size_t>>& consumers,
                                           std::vector<bool>& absorbed) {
  auto sole_consumer = [&](int v) -> const model::LoweredOp* {
    if (v < 0 || is_graph_output[v] || consumers[v].size() != 1) return nullptr;
    return &lowered.ops[consumers[v][0]];
  };
  auto is_float_init = [&](int v) {
    return v >= 0 && kinds[v] == ValueKind::Initializer &&
           model.graph.initializers.at(names[v]).dtype() == DType::Float32;
  };
  ConvFusion fusion;
  int tail = conv.output_ids[0];
  const model::LoweredOp* next = sole_consumer(tail);
  if (next && next->kind == model::OpKind::BatchNormalization && next->input_ids.size() == 5 &&
      next->input_ids[0] == tail && is_float_init(next->input_ids[1]) &&
      is_float_init(next->input_ids[2]) && is_float_init(next->input_ids[3]) &&
      is_float_init(next->input_ids[4]) && !next->output_ids.empty() && next->output_ids[0] >= 0) {
    bool extra_outputs_used = false;
    for (size_t o = 1; o < next->output_ids.size(); ++o)
      extra_outputs_used = extra_outputs_used || next->output_ids[o] >= 0;
    if (!extra_outputs_used) {
      fusion.bn = true;
      fusion.bn_epsilon = next->as<model::BatchNormParams>().epsilon;
      step.nodes.push_back(next->node);
      absorbed[next->node] = true;
      step.in.resize(3, -1);
      for (size_t i = 1; i < 5; ++i) step.in.push_back(next->input_ids[i]);
      tail = next->output_ids[0];
      next = sole_consumer(tail);
    }
  }
  if (next && next->kind == model::OpKind::Relu && next->input_ids.size() == 1 &&
      next->output_ids.size() == 1 && next->input_ids[0] == tail) {
    fusion.relu = true;
    step.nodes.push_back(next->node);
    absorbed[next->node] = true;
    tail = next->output_ids[0];
  }
  if (!fusion.bn && !fusion.relu) return nullptr;
  step.out = {tail};
  return make_fused_conv(conv, fusion);
}

void Runtime::build_inference_plan() {
  std::vector<std::vector<size_t>> consumers(names.size());
  for (const auto& op : lowered.ops)
    for (int id : op.input_ids)
      if (id >= 0) consumers[id].push_back(op.node);
  std::vector<bool> absorbed(lowered.ops.size(), false);
  for (const auto& op : lowered.ops) {
    if (absorbed[op.node]) continue;
    Step step;
    step.nodes = {op.node};
    step.in = train_steps[op.node].in;
    step.out = train_steps[op.node].out;
    if (opts.fuse && op.kind == model::OpKind::Conv && op.output_ids.size() == 1 &&
        op.output_ids[0] >= 0)
      step.kernel = fuse_conv(op, step, consumers, absorbed);
    if (!step.kernel) step.kernel = make_kernel(op);
    infer_steps.push_back(std::move(step));
  }
  // Last use of every computed value; values nobody reads are released right away.
  std::vector<int> last(names.size(), -1);
  for (size_t s = 0; s < infer_steps.size(); ++s) {
    for (int id : infer_steps[s].in)
      if (id >= 0) last[id] = static_cast<int>(s);
    for (int id : infer_steps[s].out)
      if (id >= 0 && last[id] < static_cast<int>(s)) last[id] = static_cast<int>(s);
  }
  for (int id = 0; id < static_cast<int>(names.size()); ++id) {
    if (kinds[id] != ValueKind::Computed || is_graph_output[id] || last[id] < 0) continue;
    auto& rel = infer_steps[last[id]].release;
    if (std::find(rel.begin(), rel.end(), id) == rel.end()) rel.push_back(id);
  }
  // A value may stay in a oneDNN layout when every reader accepts that, and readers that keep
  // the layout (Relu, Add) may pass it on themselves.
  std::vector<std::vector<std::pair<size_t, size_t>>> readers(names.size());
  for (size_t st = 0; st < infer_steps.size(); ++st)
    for (size_t i = 0; i < infer_steps[st].in.size(); ++i)
      if (infer_steps[st].in[i] >= 0) readers[infer_steps[st].in[i]].push_back({st, i});
  may_block.assign(names.size(), false);
  for (size_t st = infer_steps.size(); st-- > 0;)
    for (int id : infer_steps[st].out) {
      if (id < 0 || is_graph_output[id] || readers[id].empty()) continue;
      bool ok = true;
      for (const auto& [r, i] : readers[id]) {
        const Step& reader = infer_steps[r];
        ok = ok && reader.kernel->accepts_blocked(i);
        if (ok && reader.kernel->keeps_layout())
          ok = !reader.out.empty() && reader.out[0] >= 0 && may_block[reader.out[0]];
      }
      may_block[id] = ok;
    }
}

// ---- execution ----------------------------------------------------------------------------

void Runtime::run_hooks(const Step& step, bool before) {
  const auto& fn = before ? hooks.before : hooks.after;
  if (!fn) return;
  for (size_t n : step.nodes) fn(model.graph.nodes[n]);
}

namespace {

// Applies ExecutorOptions::threads for the duration of one call.
class ThreadScope {
 public:
  explicit ThreadScope(int n) : saved_(n > 0 ? num_threads() : 0) { set_num_threads(n); }
  ~ThreadScope() { set_num_threads(saved_); }
  ThreadScope(const ThreadScope&) = delete;
  ThreadScope& operator=(const ThreadScope&) = delete;

 private:
  int saved_;
};

template <typename F>
void run_guarded(Runtime& rt, const Step& step, F&& body) {
  rt.run_hooks(step, true);
  try {
    body();
  } catch (...) {
    // Give the hooks a chance to restore their state (e.g. re-encrypt weights) before unwinding.
    try {
      rt.run_hooks(step, false);
    } catch (...) {
    }
    try {
      throw;
    } catch (const Error&) {
      throw;
    } catch (const dnnl::error& e) {
      throw Unsupported(rt.model.graph.nodes[step.nodes[0]].describe() + ": oneDNN: " + e.what());
    } catch (const std::bad_alloc&) {
      throw;
    } catch (const std::exception& e) {
      throw MalformedInput(rt.model.graph.nodes[step.nodes[0]].describe() + ": " + e.what());
    }
  }
  rt.run_hooks(step, false);
}

}  // namespace

std::vector<Tensor> Runtime::forward(const std::vector<Tensor>& inputs, Mode m) {
  const auto& g = model.graph;
  if (inputs.size() != input_ids.size())
    throw InvalidArgument("graph takes " + std::to_string(input_ids.size()) + " inputs, got " +
                          std::to_string(inputs.size()));
  for (size_t i = 0; i < inputs.size(); ++i) {
    const auto& vi = g.inputs[i];
    const auto& t = inputs[i];
    bool ok = t.dtype() == vi.dtype && (vi.shape.empty() || t.rank() == (int64_t)vi.shape.size());
    for (size_t d = 0; ok && !vi.shape.empty() && d < vi.shape.size(); ++d)
      ok = vi.shape[d] < 0 || vi.shape[d] == t.shape()[d];
    if (!ok)
      throw InvalidArgument("input '" + vi.name + "' must be " + to_string(vi.dtype) + " " +
                            shape_to_string(vi.shape) + ", got " + to_string(t.dtype()) + " " +
                            shape_to_string(t.shape()));
  }
  check_memory(inputs, m);
  ThreadScope threads(opts.threads);
  mode = m;
  have_training_forward = false;
  steps = m == Mode::Training ? &train_steps : &infer_steps;
  for (size_t id = 0; id < slots.size(); ++id)
    if (kinds[id] != ValueKind::Initializer) release_value(static_cast<int>(id));
  for (size_t id = 0; id < slots.size(); ++id) {
    if (kinds[id] != ValueKind::Initializer) continue;
    slots[id].ref = &g.initializers.at(names[id]);
    slots[id].present = slots[id].has_plain = true;
  }
  for (size_t i = 0; i < inputs.size(); ++i) {
    Slot& s = slots[input_ids[i]];
    if (m == Mode::Training) {
      // Backward reads the inputs after forward returns; keep a copy.
      s.owned = pool.get(inputs[i].shape(), inputs[i].dtype());
      if (inputs[i].dtype() == DType::Float32)
        std::copy(inputs[i].floats().begin(), inputs[i].floats().end(), s.owned.floats().begin());
      else
        std::copy(inputs[i].int64s().begin(), inputs[i].int64s().end(), s.owned.int64s().begin());
    } else {
      s.ref = &inputs[i];
    }
    s.present = s.has_plain = true;
  }
  for (const Step& step : *steps) {
    ForwardEnv env(*this, step);
    run_guarded(*this, step, [&] { step.kernel->forward(env); });
    if (m == Mode::Inference)
      for (int id : step.release) release_value(id);
  }
  std::vector<Tensor> out;
  out.reserve(output_ids.size());
  for (size_t i = 0; i < output_ids.size(); ++i) {
    const int id = output_ids[i];
    Slot& s = slots[id];
    if (!s.present) throw MalformedInput("graph output '" + names[id] + "' was not produced");
    const bool last_ref = std::count(output_ids.begin() + i + 1, output_ids.end(), id) == 0;
    const Tensor& value = plain(id);
    if (m == Mode::Inference && !s.ref && !s.taken_plain && last_ref) {
      out.push_back(std::move(s.owned));
      s.owned = Tensor();
      s.taken_plain = true;
    } else {
      out.push_back(value);
    }
  }
  if (m == Mode::Inference)
    for (size_t id = 0; id < slots.size(); ++id)
      if (kinds[id] == ValueKind::Input) release_value(static_cast<int>(id));
  have_training_forward = m == Mode::Training;
  return out;
}

void Runtime::backward(const std::vector<Tensor>& output_grads) {
  if (!have_training_forward)
    throw InvalidArgument("backward() needs a preceding forward() in Mode::Training");
  if (output_grads.size() != output_ids.size())
    throw InvalidArgument("backward() takes " + std::to_string(output_ids.size()) +
                          " output gradients, got " + std::to_string(output_grads.size()));
  ThreadScope threads(opts.threads);
  for (size_t id = 0; id < grads.size(); ++id)
    if (has_grad[id]) {
      pool.put(std::move(grads[id]));
      grads[id] = Tensor();
      has_grad[id] = false;
    }
  for (size_t i = 0; i < output_ids.size(); ++i) {
    const int id = output_ids[i];
    const Tensor& y = plain(id);
    const Tensor& gy = output_grads[i];
    if (gy.dtype() != DType::Float32 || gy.shape() != y.shape())
      throw InvalidArgument("gradient for output '" + names[id] + "' must be float32 " +
                            shape_to_string(y.shape()) + ", got " + shape_to_string(gy.shape()));
    if (!needs_grad[id]) continue;
    if (!has_grad[id]) {
      grads[id] = gy;
      has_grad[id] = true;
    } else {
      add_into(grads[id].data(), gy.data(), gy.numel());
    }
  }
  for (auto it = train_steps.rbegin(); it != train_steps.rend(); ++it) {
    const Step& step = *it;
    if (!step.differentiable) continue;
    bool any_in = false, any_out = false;
    for (int id : step.in) any_in = any_in || (id >= 0 && needs_grad[id]);
    for (int id : step.out) any_out = any_out || (id >= 0 && has_grad[id]);
    if (!any_in || !any_out) continue;
    pending.resize(std::max(pending.size(), step.in.size()));
    pending_set.assign(std::max(pending_set.size(), step.in.size()), false);
    BackwardEnv env(*this, step);
    run_guarded(*this, step, [&] { step.kernel->backward(env); });
    for (size_t i = 0; i < step.in.size(); ++i) {
      if (!pending_set[i]) continue;
      const int id = step.in[i];
      if (!has_grad[id]) {
        grads[id] = std::move(pending[i]);
        has_grad[id] = true;
      } else {
        add_into(grads[id].data(), pending[i].data(), pending[i].numel());
        pool.put(std::move(pending[i]));
      }
      pending[i] = Tensor();
      pending_set[i] = false;
    }
    for (int id : step.out)
      if (id >= 0 && has_grad[id]) {
        pool.put(std::move(grads[id]));
        grads[id] = Tensor();
        has_grad[id] = false;
      }
  }
  for (size_t k = 0; k < trainable_ids.size(); ++k) {
    const int id = trainable_ids[k];
    Tensor& dst = param_grads[trainable[k]];
    if (dst.numel() > 0) pool.put(std::move(dst));
    if (has_grad[id]) {
      dst = std::move(grads[id]);
      grads[id] = Tensor();
      has_grad[id] = false;
    } else {
      dst = Tensor(model.graph.initializers.at(trainable[k]).shape());
    }
  }
  input_grads.clear();
  if (opts.input_gradients)
    for (int id : input_ids) {
      if (has_grad[id]) {
        input_grads.push_back(std::move(grads[id]));
        grads[id] = Tensor();
        has_grad[id] = false;
      } else {
        input_grads.push_back(Tensor(plain(id).shape()));
      }
    }
}

}  // namespace detail

// ---- public API ---------------------------------------------------------------------------

struct Executor::Impl {
  detail::Runtime rt;
  Impl(model::Model& m, ExecutorOptions o) : rt(m, std::move(o)) {}
};

Executor::Executor(model::Model& model, ExecutorOptions options)
    : impl_(std::make_unique<Impl>(model, std::move(options))) {
  impl_->rt.build();
}

Executor::~Executor() = default;

std::vector<Tensor> Executor::forward(const std::vector<Tensor>& inputs, Mode mode) {
  return impl_->rt.forward(inputs, mode);
}

void Executor::backward(const std::vector<Tensor>& output_grads) {
  impl_->rt.backward(output_grads);
}

const TensorMap& Executor::param_grads() const { return impl_->rt.param_grads; }
const std::vector<Tensor>& Executor::input_grads() const { return impl_->rt.input_grads; }

void Executor::parameters_changed() {
  auto& rt = impl_->rt;
  for (size_t id = 0; id < rt.kinds.size(); ++id)
    if (rt.kinds[id] == detail::ValueKind::Initializer) rt.versions[id] = ++rt.epoch;
}

void Executor::parameter_changed(const std::string& initializer) {
  auto& rt = impl_->rt;
  auto it = rt.ids.find(initializer);
  if (it == rt.ids.end() || rt.kinds[it->second] != detail::ValueKind::Initializer)
    throw InvalidArgument("parameter_changed: '" + initializer + "' is not an initializer");
  rt.versions[it->second] = ++rt.epoch;
}

void Executor::set_hooks(NodeHooks hooks) { impl_->rt.hooks = std::move(hooks); }

const std::vector<std::string>& Executor::trainable() const { return impl_->rt.trainable; }

}  // namespace veil::nn
