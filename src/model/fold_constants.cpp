#include "veil/model/fold_constants.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "symbolic_shapes.hpp"
#include "veil/core/error.hpp"
#include "veil/model/lowered.hpp"
#include "veil/model/op_support.hpp"
#include "veil/model/shape_inference.hpp"

namespace veil::model {

namespace {

// Folded tensors are shape vectors and small constants; anything larger stays a run-time op.
constexpr int64_t kMaxFoldElements = int64_t{1} << 22;

[[noreturn]] void fail(const Node& node, const std::string& reason) {
  throw MalformedInput(node.describe() + ": " + reason);
}

// Fully known and at most kMaxFoldElements elements.
bool small_enough(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) {
    if (d < 0) return false;
    if (d == 0) return true;
  }
  for (int64_t d : s) {
    n *= d;
    if (n > kMaxFoldElements) return false;
  }
  return true;
}

std::vector<int64_t> strides_of(const Shape& s) {
  std::vector<int64_t> st(s.size(), 1);
  for (size_t i = s.size(); i-- > 1;) st[i - 1] = st[i] * s[i];
  return st;
}

// Values of either dtype handled uniformly as int64 or float.
template <typename T>
std::vector<T> values_of(const Tensor& t) {
  if constexpr (std::is_same_v<T, float>) {
    auto v = t.floats();
    return {v.begin(), v.end()};
  } else {
    auto v = t.int64s();
    return {v.begin(), v.end()};
  }
}

Tensor make_tensor(Shape shape, std::vector<float> v) {
  return Tensor::from_floats(std::move(shape), std::move(v));
}
Tensor make_tensor(Shape shape, std::vector<int64_t> v) {
  return Tensor::from_int64(std::move(shape), std::move(v));
}

template <typename T>
Tensor gather(const Node& node, int64_t axis, const Tensor& data, const Tensor& indices,
              const Shape& out_shape) {
  int64_t r = data.rank();
  if (axis < 0) axis += r;
  const Shape& ds = data.shape();
  int64_t outer = 1, inner = 1, n = ds[static_cast<size_t>(axis)];
  for (int64_t i = 0; i < axis; ++i) outer *= ds[static_cast<size_t>(i)];
  for (int64_t i = axis + 1; i < r; ++i) inner *= ds[static_cast<size_t>(i)];
  auto src = values_of<T>(data);
  auto idx = indices.to_int64s();
  std::vector<T> out;
  out.reserve(static_cast<size_t>(shape_numel(out_shape)));
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t k : idx) {
      if (k < -n || k >= n) fail(node, "index " + std::to_string(k) + " is out of range");
      if (k < 0) k += n;
      auto begin = src.begin() + (o * n + k) * inner;
      out.insert(out.end(), begin, begin + inner);
    }
  return make_tensor(out_shape, std::move(out));
}

template <typename T>
Tensor concat(int64_t axis, const std::vector<const Tensor*>& in, const Shape& out_shape) {
  int64_t r = static_cast<int64_t>(out_shape.size());
  if (axis < 0) axis += r;
  int64_t outer = 1;
  for (int64_t i = 0; i < axis; ++i) outer *= out_shape[static_cast<size_t>(i)];
  std::vector<std::vector<T>> vals;
  for (const Tensor* t : in) vals.push_back(values_of<T>(*t));
  std::vector<T> out;
  out.reserve(static_cast<size_t>(shape_numel(out_shape)));
  for (int64_t o = 0; o < outer; ++o)
    for (size_t i = 0; i < in.size(); ++i) {
      int64_t chunk = outer == 0 ? 0 : in[i]->numel() / outer;
      auto begin = vals[i].begin() + o * chunk;
      out.insert(out.end(), begin, begin + chunk);
    }
  return make_tensor(out_shape, std::move(out));
}

// Slice-13 with the parameters already validated by shape inference.
template <typename T>
Tensor slice(const Node& node, const SliceParams& p, const Graph& graph, const Tensor& data,
             const Shape& out_shape) {
  const Shape& ds = data.shape();
  size_t r = ds.size();
  if (shape_numel(out_shape) == 0) return make_tensor(out_shape, std::vector<T>{});
  std::vector<int64_t> start(r, 0), step(r, 1);
  std::vector<int64_t> starts, ends, axes, steps;
  auto ints = [&](size_t i) {
    auto v = graph.initializers.at(node.inputs[i]).int64s();
    return std::vector<int64_t>(v.begin(), v.end());
  };
  if (p.attributes) {
    starts = p.starts;
    ends = p.ends;
    axes = p.axes;
  } else {
    starts = ints(1);
    ends = ints(2);
    if (node.inputs.size() > 3 && !node.inputs[3].empty()) axes = ints(3);
    if (node.inputs.size() > 4 && !node.inputs[4].empty()) steps = ints(4);
  }
  if (axes.empty())
    for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
  if (steps.empty()) steps.assign(starts.size(), 1);
  for (size_t i = 0; i < axes.size(); ++i) {
    int64_t a = axes[i] < 0 ? axes[i] + static_cast<int64_t>(r) : axes[i];
    int64_t dim = ds[static_cast<size_t>(a)];
    int64_t s = starts[i];
    if (s < 0) s += dim;
    s = steps[i] > 0 ? std::clamp<int64_t>(s, 0, dim) : std::clamp<int64_t>(s, 0, dim - 1);
    start[static_cast<size_t>(a)] = s;
    step[static_cast<size_t>(a)] = steps[i];
  }
  auto src = values_of<T>(data);
  auto in_strides = strides_of(ds);
  int64_t total = shape_numel(out_shape);
  std::vector<T> out;
  out.reserve(static_cast<size_t>(total));
  std::vector<int64_t> idx(r, 0);
  for (int64_t n = 0; n < total; ++n) {
    int64_t off = 0;
    for (size_t d = 0; d < r; ++d) off += (start[d] + idx[d] * step[d]) * in_strides[d];
    out.push_back(src[static_cast<size_t>(off)]);
    for (size_t d = r; d-- > 0;) {
      if (++idx[d] < out_shape[d]) break;
      idx[d] = 0;
    }
  }
  return make_tensor(out_shape, std::move(out));
}

template <typename T>
std::optional<T> arith(OpKind op, T a, T b) {
  if constexpr (std::is_same_v<T, float>) {
    if (op == OpKind::Add) return a + b;
    if (op == OpKind::Sub) return a - b;
    if (op == OpKind::Mul) return a * b;
    return a / b;
  } else {
    // Wrap-around like the hardware does, without signed-overflow UB.
    auto ua = static_cast<uint64_t>(a), ub = static_cast<uint64_t>(b);
    if (op == OpKind::Add) return static_cast<int64_t>(ua + ub);
    if (op == OpKind::Sub) return static_cast<int64_t>(ua - ub);
    if (op == OpKind::Mul) return static_cast<int64_t>(ua * ub);
    if (b == 0 || (a == std::numeric_limits<int64_t>::min() && b == -1)) return std::nullopt;
    return a / b;
  }
}

template <typename T>
std::optional<Tensor> elementwise(OpKind op, const Tensor& a, const Tensor& b,
                                  const Shape& out_shape) {
  size_t r = out_shape.size();
  auto strides_for = [&](const Shape& s) {
    std::vector<int64_t> st(r, 0);
    auto own = strides_of(s);
    for (size_t i = 0; i < s.size(); ++i) {
      size_t d = r - s.size() + i;
      st[d] = s[i] == 1 ? 0 : own[i];
    }
    return st;
  };
  auto sa = strides_for(a.shape()), sb = strides_for(b.shape());
  auto va = values_of<T>(a), vb = values_of<T>(b);
  int64_t total = shape_numel(out_shape);
  std::vector<T> out;
  out.reserve(static_cast<size_t>(total));
  std::vector<int64_t> idx(r, 0);
  for (int64_t n = 0; n < total; ++n) {
    int64_t oa = 0, ob = 0;
    for (size_t d = 0; d < r; ++d) {
      oa += idx[d] * sa[d];
      ob += idx[d] * sb[d];
    }
    auto v = arith<T>(op, va[static_cast<size_t>(oa)], vb[static_cast<size_t>(ob)]);
    if (!v) return std::nullopt;
    out.push_back(*v);
    for (size_t d = r; d-- > 0;) {
      if (++idx[d] < out_shape[d]) break;
      idx[d] = 0;
    }
  }
  return make_tensor(out_shape, std::move(out));
}

std::optional<Tensor> cast(const CastParams& p, const Tensor& x) {
  const int64_t to = p.to;
  if (to == 1 || to == 11) return Tensor::from_floats(x.shape(), x.to_floats());
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(x.numel()));
  if (x.dtype() == DType::Int64) {
    out = x.to_int64s();
  } else {
    for (float f : x.floats()) {
      // Float-to-int of NaN or an out-of-range value is undefined: leave it to run time.
      if (!std::isfinite(f) || std::fabs(f) >= 9.2e18f) return std::nullopt;
      out.push_back(static_cast<int64_t>(f));
    }
  }
  if (to == 6)
    for (auto& v : out) v = static_cast<int32_t>(static_cast<uint32_t>(v));
  return Tensor::from_int64(x.shape(), std::move(out));
}

// Evaluates `node` on constant inputs; nullopt when it cannot be folded.
std::optional<Tensor> evaluate(const Node& node, OpKind kind, const OpParams& params,
                               const std::vector<const Tensor*>& in, const ValueInfo& out,
                               const Graph& graph) {
  if (kind == OpKind::Constant) return std::get<ConstantParams>(params).value;
  if (!small_enough(out.shape)) return std::nullopt;
  bool f = !in.empty() && in[0] && in[0]->dtype() == DType::Float32;
  switch (kind) {
    case OpKind::Identity:
    case OpKind::Reshape:
    case OpKind::Squeeze:
    case OpKind::Unsqueeze:
    case OpKind::Flatten:
      return in[0]->reshaped(out.shape);
    case OpKind::Cast:
      return cast(std::get<CastParams>(params), *in[0]);
    case OpKind::Gather: {
      const int64_t axis = std::get<GatherParams>(params).axis;
      return f ? gather<float>(node, axis, *in[0], *in[1], out.shape)
               : gather<int64_t>(node, axis, *in[0], *in[1], out.shape);
    }
    case OpKind::Concat: {
      for (const Tensor* t : in)
        if (t->dtype() != in[0]->dtype()) fail(node, "inputs have different types");
      const int64_t axis = std::get<ConcatParams>(params).axis;
      return f ? concat<float>(axis, in, out.shape) : concat<int64_t>(axis, in, out.shape);
    }
    case OpKind::Slice: {
      const auto& p = std::get<SliceParams>(params);
      return f ? slice<float>(node, p, graph, *in[0], out.shape)
               : slice<int64_t>(node, p, graph, *in[0], out.shape);
    }
    case OpKind::ConstantOfShape: {
      const Tensor& value = std::get<ConstantOfShapeParams>(params).value;
      if (value.numel() != 1) fail(node, "attribute 'value' must hold exactly one element");
      int64_t n = shape_numel(out.shape);
      if (value.dtype() == DType::Float32)
        return Tensor::from_floats(out.shape,
                                   std::vector<float>(static_cast<size_t>(n), value.floats()[0]));
      return Tensor::from_int64(out.shape,
                                std::vector<int64_t>(static_cast<size_t>(n), value.int64s()[0]));
    }
    case OpKind::Add:
    case OpKind::Sub:
    case OpKind::Mul:
    case OpKind::Div:
      if (in[0]->dtype() != in[1]->dtype()) fail(node, "inputs have different types");
      return f ? elementwise<float>(kind, *in[0], *in[1], out.shape)
               : elementwise<int64_t>(kind, *in[0], *in[1], out.shape);
    default:
      return std::nullopt;
  }
}

// A 0-D or 1-D int64 value whose entries are either known or symbolic dimensions.
struct SymDim {
  bool known;
  int64_t value;  // the value, or the dimension symbol (<= -1) when unknown
};
struct SymVec {
  bool scalar = false;
  std::vector<SymDim> dims;
  bool all_known() const {
    return std::all_of(dims.begin(), dims.end(), [](const SymDim& d) { return d.known; });
  }
};

std::optional<SymVec> sym_of_tensor(const Tensor& t) {
  if (t.dtype() != DType::Int64 || t.rank() > 1 || t.numel() > 64) return std::nullopt;
  SymVec v;
  v.scalar = t.rank() == 0;
  for (int64_t x : t.int64s()) v.dims.push_back({true, x});
  return v;
}

std::optional<std::vector<int64_t>> const_ints(const Node& node, size_t i, const Graph& g) {
  if (i >= node.inputs.size() || node.inputs[i].empty()) return std::vector<int64_t>{};
  auto it = g.initializers.find(node.inputs[i]);
  if (it == g.initializers.end() || it->second.dtype() != DType::Int64 || it->second.rank() > 1)
    return std::nullopt;
  auto v = it->second.int64s();
  return std::vector<int64_t>(v.begin(), v.end());
}

// Propagates partially known shape vectors through the ops exporters use to build reshape
// targets. Shape inference has already validated the node, so only the cases that matter are
// handled and everything else returns nullopt.
std::optional<SymVec> propagate(const Node& node, OpKind op, const OpParams& params,
                                const std::vector<std::optional<SymVec>>& in,
                                const std::vector<ValueInfo>& infos, const Graph& g) {
  auto has = [&](size_t i) { return i < in.size() && in[i].has_value(); };
  if (op == OpKind::Shape) {
    const auto& p = std::get<ShapeParams>(params);
    const Shape& s = infos[0].shape;
    int64_t r = static_cast<int64_t>(s.size());
    int64_t start = std::clamp<int64_t>(p.start, -r, r);
    int64_t end = std::clamp<int64_t>(p.end.value_or(r), -r, r);
    if (start < 0) start += r;
    if (end < 0) end += r;
    SymVec v;
    for (int64_t i = start; i < end; ++i) {
      int64_t d = s[static_cast<size_t>(i)];
      v.dims.push_back({d >= 0, d});
    }
    return v;
  }
  if (!has(0)) return std::nullopt;
  const SymVec& x = *in[0];
  if (op == OpKind::Identity) return x;
  if (op == OpKind::Cast) {
    if (std::get<CastParams>(params).dtype == DType::Int64) return x;
    return std::nullopt;
  }
  if (op == OpKind::Gather) {
    if (x.scalar) return std::nullopt;
    auto it = g.initializers.find(node.inputs[1]);
    if (it == g.initializers.end() || it->second.rank() > 1) return std::nullopt;
    SymVec v;
    v.scalar = it->second.rank() == 0;
    int64_t n = static_cast<int64_t>(x.dims.size());
    for (int64_t k : it->second.to_int64s()) {
      if (k < -n || k >= n) return std::nullopt;
      v.dims.push_back(x.dims[static_cast<size_t>(k < 0 ? k + n : k)]);
    }
    return v;
  }
  if (op == OpKind::Unsqueeze) {
    const auto& p = std::get<AxesParams>(params);
    auto axes = p.attribute ? std::optional(p.axes) : const_ints(node, 1, g);
    if (!x.scalar || !axes || axes->size() != 1 || ((*axes)[0] != 0 && (*axes)[0] != -1))
      return std::nullopt;
    SymVec v = x;
    v.scalar = false;
    return v;
  }
  if (op == OpKind::Squeeze) {
    if (x.scalar || x.dims.size() != 1) return std::nullopt;
    SymVec v = x;
    v.scalar = true;
    return v;
  }
  if (op == OpKind::Concat) {
    SymVec v;
    for (size_t i = 0; i < in.size(); ++i) {
      if (!has(i) || in[i]->scalar) return std::nullopt;
      v.dims.insert(v.dims.end(), in[i]->dims.begin(), in[i]->dims.end());
    }
    return v;
  }
  if (op == OpKind::Slice) {
    if (x.scalar) return std::nullopt;
    const auto& p = std::get<SliceParams>(params);
    std::vector<int64_t> starts, ends, axes, steps;
    if (p.attributes) {
      starts = p.starts;
      ends = p.ends;
      axes = p.axes;
    } else {
      auto s = const_ints(node, 1, g), e = const_ints(node, 2, g), a = const_ints(node, 3, g),
           st = const_ints(node, 4, g);
      if (!s || !e || !a || !st) return std::nullopt;
      starts = *s, ends = *e, axes = *a, steps = *st;
    }
    if (starts.size() != 1 || ends.size() != 1) return std::nullopt;
    if (!axes.empty() && axes[0] != 0 && axes[0] != -1) return std::nullopt;
    int64_t step = steps.empty() ? 1 : steps[0];
    if (step != 1) return std::nullopt;
    int64_t n = static_cast<int64_t>(x.dims.size());
    int64_t s = starts[0] < 0 ? starts[0] + n : starts[0];
    int64_t e = ends[0] < 0 ? ends[0] + n : ends[0];
    s = std::clamp<int64_t>(s, 0, n);
    e = std::clamp<int64_t>(e, 0, n);
    SymVec v;
    for (int64_t i = s; i < e; ++i) v.dims.push_back(x.dims[static_cast<size_t>(i)]);
    return v;
  }
  return std::nullopt;
}

std::string unique_name(const std::string& base, const std::unordered_set<std::string>& used) {
  if (!used.count(base)) return base;
  for (int i = 1;; ++i) {
    std::string n = base + "_" + std::to_string(i);
    if (!used.count(n)) return n;
  }
}

// A constant reshape target equivalent to `target` for `data`, using 0 ("copy the input
// dimension") for a symbol at the same position and -1 for one remaining symbol when the
// element counts prove it.
std::optional<std::vector<int64_t>> resolve_reshape_target(const Node& node, bool allowzero,
                                                           const SymVec& target,
                                                           const Shape& data) {
  std::vector<int64_t> out;
  int unresolved = -1;
  bool has_minus_one = false;
  for (size_t j = 0; j < target.dims.size(); ++j) {
    const SymDim& d = target.dims[j];
    if (d.known) {
      if (d.value == 0 && allowzero) return std::nullopt;
      if (d.value == -1) has_minus_one = true;
      out.push_back(d.value);
    } else if (!allowzero && d.value <= -2 && j < data.size() && data[j] == d.value) {
      out.push_back(0);
    } else {
      if (unresolved >= 0) return std::nullopt;
      unresolved = static_cast<int>(j);
      out.push_back(-1);
    }
  }
  if (unresolved < 0) return out;
  const SymDim& want = target.dims[static_cast<size_t>(unresolved)];
  if (has_minus_one || want.value > -2) return std::nullopt;
  // Check with shape inference that the -1 resolves to exactly that symbol.
  Graph probe;
  probe.initializers["shape"] = Tensor::from_int64({static_cast<int64_t>(out.size())}, out);
  Node n = node;
  n.inputs = {"data", "shape"};
  std::vector<ValueInfo> in = {{"data", DType::Float32, data},
                               {"shape", DType::Int64, {static_cast<int64_t>(out.size())}}};
  auto res = infer_node(n, in, probe);
  if (res.empty() || res[0].shape[static_cast<size_t>(unresolved)] != want.value)
    return std::nullopt;
  return out;
}

bool foldable(const Node& node, OpKind kind) {
  return shape_ops().count(node.op_type) || kind == OpKind::Add || kind == OpKind::Sub ||
         kind == OpKind::Mul || kind == OpKind::Div;
}

// Removes the shape computations nothing reads any more, then unreferenced initializers.
void remove_dead(Graph& g) {
  std::set<std::string> outputs;
  for (const auto& o : g.outputs) outputs.insert(o.name);
  // One backward sweep suffices: nodes are in topological order, so every reader of a value
  // is visited before its producer.
  std::unordered_map<std::string, size_t> uses;
  for (const auto& n : g.nodes)
    for (const auto& i : n.inputs) ++uses[i];
  std::vector<bool> dead(g.nodes.size(), false);
  for (size_t k = g.nodes.size(); k-- > 0;) {
    const Node& n = g.nodes[k];
    if (!shape_ops().count(n.op_type)) continue;
    bool unused = true;
    for (const auto& o : n.outputs)
      if (!o.empty() && (uses[o] > 0 || outputs.count(o))) unused = false;
    if (!unused) continue;
    dead[k] = true;
    for (const auto& i : n.inputs) --uses[i];
    for (const auto& o : n.outputs) g.value_info.erase(o);
  }
  std::vector<Node> live;
  for (size_t k = 0; k < g.nodes.size(); ++k)
    if (!dead[k]) live.push_back(std::move(g.nodes[k]));
  g.nodes = std::move(live);
  std::unordered_set<std::string> referenced(outputs.begin(), outputs.end());
  for (const auto& n : g.nodes)
    for (const auto& i : n.inputs) referenced.insert(i);
  for (auto it = g.initializers.begin(); it != g.initializers.end();) {
    if (!referenced.count(it->first))
      it = g.initializers.erase(it);
    else
      ++it;
  }
}

}  // namespace

size_t fold_constants(Model& model) {
  Graph& g = model.graph;
  auto known = symbolic_sources(g);
  std::unordered_map<std::string, SymVec> syms;
  std::unordered_set<std::string> used_names;
  for (const auto& in : g.inputs) used_names.insert(in.name);
  for (const auto& [name, t] : g.initializers) used_names.insert(name);
  for (const auto& n : g.nodes)
    for (const auto& o : n.outputs) used_names.insert(o);

  size_t before = g.nodes.size();
  std::vector<Node> kept;
  for (Node& node : g.nodes) {
    std::vector<ValueInfo> infos;
    std::vector<const Tensor*> consts;
    bool all_const = true;
    for (const auto& name : node.inputs) {
      if (name.empty()) {
        infos.emplace_back();
        consts.push_back(nullptr);
        continue;
      }
      auto it = known.find(name);
      if (it == known.end())
        fail(node,
             "input '" + name + "' is not produced by any earlier node, input or initializer");
      infos.push_back(it->second);
      auto c = g.initializers.find(name);
      consts.push_back(c == g.initializers.end() ? nullptr : &c->second);
      if (!consts.back()) all_const = false;
    }
    const OpKind kind = node_kind(node);
    const OpParams params = lower_node(node, model.opset);
    if (kind == OpKind::Reshape && node.inputs.size() == 2 && !consts[1]) {
      auto s = syms.find(node.inputs[1]);
      if (s != syms.end() && !s->second.scalar) {
        const bool allowzero = std::get<ReshapeParams>(params).allowzero;
        if (auto target = resolve_reshape_target(node, allowzero, s->second, infos[0].shape)) {
          std::string name = unique_name(node.name + "_shape", used_names);
          used_names.insert(name);
          g.initializers[name] =
              Tensor::from_int64({static_cast<int64_t>(target->size())}, *target);
          node.inputs[1] = name;
          infos[1] = {name, DType::Int64, {static_cast<int64_t>(target->size())}};
          known[name] = infos[1];
        }
      }
    }
    auto outs = infer_node(node, infos, g);
    for (const auto& vi : outs)
      if (!vi.name.empty()) known[vi.name] = vi;

    if (foldable(node, kind) && node.outputs.size() == 1) {
      std::optional<Tensor> value;
      if (all_const) value = evaluate(node, kind, params, consts, outs[0], g);
      std::optional<SymVec> sym;
      if (!value) {
        std::vector<std::optional<SymVec>> in_syms;
        for (size_t i = 0; i < node.inputs.size(); ++i) {
          auto s = syms.find(node.inputs[i]);
          if (s != syms.end())
            in_syms.emplace_back(s->second);
          else if (consts[i])
            in_syms.push_back(sym_of_tensor(*consts[i]));
          else
            in_syms.emplace_back();
        }
        sym = propagate(node, kind, params, in_syms, infos, g);
        if (sym && sym->all_known()) {
          std::vector<int64_t> v;
          for (const auto& d : sym->dims) v.push_back(d.value);
          Shape shape = sym->scalar ? Shape{} : Shape{static_cast<int64_t>(v.size())};
          value = Tensor::from_int64(shape, std::move(v));
        }
      }
      if (value) {
        g.initializers[node.outputs[0]] = std::move(*value);
        g.value_info.erase(node.outputs[0]);
        known[node.outputs[0]] = {node.outputs[0], g.initializers[node.outputs[0]].dtype(),
                                  g.initializers[node.outputs[0]].shape()};
        continue;
      }
      if (sym) syms[node.outputs[0]] = std::move(*sym);
    }
    kept.push_back(std::move(node));
  }
  g.nodes = std::move(kept);

  remove_dead(g);
  return before - g.nodes.size();
}

}  // namespace veil::model
