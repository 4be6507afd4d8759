// Shape inference following the ONNX operator specifications (onnx/docs/Operators.md, opsets
// 9-17). Internally a negative dimension is symbolic: -1 is "unknown", and values <= -2 name a
// particular unknown size (the batch), which ops that copy a dimension carry through unchanged.
// This is what lets Flatten/Reshape after a dynamic batch keep "the batch" instead of "unknown",
// and lets fold_constants() rewrite batch-dependent reshape targets.
#include "veil/model/shape_inference.hpp"

#include <algorithm>
#include <limits>
#include <set>
#include <unordered_map>

#include "op_registry.hpp"
#include "symbolic_shapes.hpp"
#include "veil/core/error.hpp"

namespace veil::model {

namespace {

constexpr int64_t kUnknown = -1;
constexpr int64_t kBatchSymbol = -2;
constexpr size_t kMaxRank = 64;

bool known(int64_t d) { return d >= 0; }
bool symbolic(int64_t d) { return d <= -2; }

// `who` is "node 'x' (Op)", the prefix of every message.
[[noreturn]] void fail(const std::string& who, const std::string& reason) {
  throw MalformedInput(who + ": " + reason);
}
[[noreturn]] void fail(const Node& node, const std::string& reason) {
  fail(node.describe(), reason);
}

// `who` is a Node or its describe() string.
template <typename Who>
int64_t checked_mul(const Who& who, int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) fail(who, "dimension product overflows");
  return r;
}

template <typename Who>
int64_t checked_add(const Who& who, int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) fail(who, "dimension sum overflows");
  return r;
}

// Normalizes an axis in [-rank, rank) (or [-rank, rank] when `inclusive`).
int64_t norm_axis(const Node& node, int64_t axis, int64_t rank, bool inclusive = false) {
  int64_t hi = inclusive ? rank : rank - 1;
  if (axis < -rank || axis > hi)
    fail(node,
         "axis " + std::to_string(axis) + " is out of range for rank " + std::to_string(rank));
  return axis < 0 ? axis + rank : axis;
}

// Two sizes that must be equal: returns the more specific one.
int64_t unify(const Node& node, int64_t a, int64_t b, const std::string& what) {
  if (known(a) && known(b) && a != b)
    fail(node, what + ": " + std::to_string(a) + " vs " + std::to_string(b));
  if (known(a)) return a;
  if (known(b)) return b;
  return symbolic(a) ? a : b;
}

// Numpy-style multidirectional broadcasting of two dimensions.
int64_t broadcast_dim(const Node& node, int64_t a, int64_t b) {
  if (a == b) return a;
  if (a == 1) return b;
  if (b == 1) return a;
  if (known(a) && known(b))
    fail(node,
         "shapes are not broadcastable (" + std::to_string(a) + " vs " + std::to_string(b) + ")");
  if (known(a)) return a;  // the unknown side must be 1 or equal at run time
  if (known(b)) return b;
  return kUnknown;
}

Shape broadcast(const Node& node, const Shape& a, const Shape& b) {
  size_t r = std::max(a.size(), b.size());
  Shape out(r);
  for (size_t i = 0; i < r; ++i) {
    int64_t da = i < r - a.size() ? 1 : a[i - (r - a.size())];
    int64_t db = i < r - b.size() ? 1 : b[i - (r - b.size())];
    out[i] = broadcast_dim(node, da, db);
  }
  return out;
}

// Product of a group of dimensions: known, a lone symbol, or unknown.
int64_t group_product(const Node& node, const Shape& s, size_t begin, size_t end) {
  int64_t prod = 1;
  int unknowns = 0;
  int64_t sym = kUnknown;
  for (size_t i = begin; i < end; ++i) {
    if (known(s[i])) {
      prod = checked_mul(node, prod, s[i]);
    } else {
      ++unknowns;
      sym = s[i];
    }
  }
  if (unknowns == 0) return prod;
  if (prod == 0) return 0;
  if (unknowns == 1 && prod == 1) return sym;
  return kUnknown;
}

const Tensor* constant_input(const Node& node, size_t i, const Graph& graph) {
  if (i >= node.inputs.size() || node.inputs[i].empty()) return nullptr;
  auto it = graph.initializers.find(node.inputs[i]);
  return it == graph.initializers.end() ? nullptr : &it->second;
}

std::vector<int64_t> int_vector(const Node& node, const Tensor& t, const char* what) {
  if (t.dtype() != DType::Int64) fail(node, std::string(what) + " must be an int64 tensor");
  if (t.rank() > 1) fail(node, std::string(what) + " must be a 1-D tensor");
  auto v = t.int64s();
  return {v.begin(), v.end()};
}

bool present(const Node& node, size_t i) {
  return i < node.inputs.size() && !node.inputs[i].empty();
}

const ValueInfo& input_info(const Node& node, const std::vector<ValueInfo>& inputs, size_t i) {
  if (i >= inputs.size()) fail(node, "missing input " + std::to_string(i));
  return inputs[i];
}

void require_rank_at_least(const Node& node, const Shape& s, size_t r, const char* what) {
  if (s.size() < r)
    fail(node, std::string(what) + " must have rank >= " + std::to_string(r) + ", got shape " +
                   shape_to_string(s));
}

using Ctx = detail::InferContext;

Shape conv_shape(const Ctx& c) {
  c.require_float(0);
  c.require_float(1);
  const Shape& x = c.shape(0);
  const Shape& w = c.shape(1);
  require_rank_at_least(c.node, x, 3, "input X");
  if (w.size() != x.size())
    fail(c.node, "weight shape " + shape_to_string(w) + " does not match input shape " +
                     shape_to_string(x));
  int64_t group = c.node.attr_int("group", 1);
  if (group < 1) fail(c.node, "group must be positive");
  if (known(w[1]) && known(x[1]) && checked_mul(c.node, w[1], group) != x[1])
    fail(c.node, "input has " + std::to_string(x[1]) + " channels but weight expects " +
                     std::to_string(w[1]) + " x group " + std::to_string(group));
  if (known(w[0]) && w[0] % group != 0)
    fail(c.node, "output channels " + std::to_string(w[0]) + " not divisible by group");
  if (present(c.node, 2)) {
    c.require_float(2);
    const Shape& b = c.shape(2);
    if (b.size() != 1) fail(c.node, "bias must be 1-D, got " + shape_to_string(b));
    unify(c.node, b[0], w[0], "bias size does not match output channels");
  }
  std::vector<int64_t> kernel(w.begin() + 2, w.end());
  if (c.node.has("kernel_shape")) {
    auto ks = c.node.attr_ints("kernel_shape", {});
    if (ks.size() != kernel.size()) fail(c.node, "kernel_shape rank does not match the weight");
    for (size_t i = 0; i < ks.size(); ++i)
      kernel[i] = unify(c.node, kernel[i], ks[i], "kernel_shape does not match the weight");
  }
  SpatialGeometry g = spatial_geometry(c.node, x, kernel);
  Shape out = {x[0], w[0]};
  out.insert(out.end(), g.output.begin(), g.output.end());
  return out;
}

Shape pool_shape(const Ctx& c) {
  c.require_float(0);
  const Shape& x = c.shape(0);
  require_rank_at_least(c.node, x, 3, "input X");
  auto kernel = c.node.attr_ints("kernel_shape", {});
  if (kernel.size() + 2 != x.size())
    fail(c.node, "kernel_shape has " + std::to_string(kernel.size()) + " dims for input shape " +
                     shape_to_string(x));
  SpatialGeometry g = spatial_geometry(c.node, x, kernel);
  Shape out = {x[0], x[1]};
  out.insert(out.end(), g.output.begin(), g.output.end());
  return out;
}

Shape gemm_shape(const Ctx& c) {
  for (size_t i = 0; i < 2; ++i) c.require_float(i);
  Shape a = c.shape(0), b = c.shape(1);
  if (a.size() != 2 || b.size() != 2)
    fail(c.node, "inputs must be 2-D, got " + shape_to_string(a) + " and " + shape_to_string(b));
  if (c.node.attr_int("transA", 0)) std::swap(a[0], a[1]);
  if (c.node.attr_int("transB", 0)) std::swap(b[0], b[1]);
  unify(c.node, a[1], b[0], "inner dimensions do not match");
  Shape out = {a[0], b[1]};
  if (present(c.node, 2)) {
    c.require_float(2);
    const Shape& bias = c.shape(2);
    if (bias.size() > 2) fail(c.node, "C must have rank <= 2, got " + shape_to_string(bias));
    // C broadcasts unidirectionally to [M, N].
    for (size_t i = 0; i < bias.size(); ++i) {
      int64_t d = bias[bias.size() - 1 - i];
      int64_t o = out[1 - i];
      if (known(d) && d != 1 && known(o) && d != o)
        fail(c.node, "C of shape " + shape_to_string(bias) + " does not broadcast to " +
                         shape_to_string(out));
      if (known(d) && d != 1 && !known(o)) out[1 - i] = d;
    }
  }
  return out;
}

Shape matmul_shape(const Ctx& c) {
  c.require_float(0);
  c.require_float(1);
  Shape a = c.shape(0), b = c.shape(1);
  if (a.empty() || b.empty()) fail(c.node, "inputs must have rank >= 1");
  bool a_vec = a.size() == 1, b_vec = b.size() == 1;
  if (a_vec) a.insert(a.begin(), 1);
  if (b_vec) b.push_back(1);
  unify(c.node, a.back(), b[b.size() - 2], "inner dimensions do not match");
  Shape batch = broadcast(c.node, Shape(a.begin(), a.end() - 2), Shape(b.begin(), b.end() - 2));
  Shape out = batch;
  if (!a_vec) out.push_back(a[a.size() - 2]);
  if (!b_vec) out.push_back(b.back());
  return out;
}

Shape batch_norm_shape(const Ctx& c) {
  for (size_t i = 0; i < 5; ++i) c.require_float(i);
  const Shape& x = c.shape(0);
  require_rank_at_least(c.node, x, 2, "input X");
  const char* names[] = {"", "scale", "B", "mean", "var"};
  for (size_t i = 1; i < 5; ++i) {
    const Shape& p = c.shape(i);
    if (p.size() != 1) fail(c.node, std::string(names[i]) + " must be 1-D");
    unify(c.node, p[0], x[1], std::string(names[i]) + " size does not match the channels");
  }
  return x;
}

Shape flatten_shape(const Ctx& c) {
  const Shape& x = c.shape(0);
  int64_t r = static_cast<int64_t>(x.size());
  size_t axis = static_cast<size_t>(norm_axis(c.node, c.node.attr_int("axis", 1), r, true));
  return {group_product(c.node, x, 0, axis), group_product(c.node, x, axis, x.size())};
}

Shape reshape_shape(const Ctx& c) {
  const Shape& x = c.shape(1);
  if (x.size() != 1) fail(c.node, "shape input must be 1-D, got " + shape_to_string(x));
  const Shape& data = c.shape(0);
  const Tensor* t = constant_input(c.node, 1, c.graph);
  if (!t) {
    if (!known(x[0])) fail(c.node, "target shape has unknown rank");
    if (x[0] > 64) fail(c.node, "target shape has rank " + std::to_string(x[0]));
    return Shape(static_cast<size_t>(x[0]), kUnknown);
  }
  auto target = int_vector(c.node, *t, "shape");
  return reshape_output(data, target, c.node.attr_int("allowzero", 0) != 0, c.node.describe());
}

Shape concat_shape(const Ctx& c, DType& dtype) {
  const Shape& first = c.shape(0);
  int64_t r = static_cast<int64_t>(first.size());
  if (r == 0) fail(c.node, "cannot concatenate scalars");
  size_t axis = static_cast<size_t>(norm_axis(c.node, c.node.attr_int("axis", 0), r));
  Shape out = first;
  dtype = c.dtype(0);
  for (size_t i = 1; i < c.node.inputs.size(); ++i) {
    const Shape& s = c.shape(i);
    if (s.size() != first.size())
      fail(c.node, "input " + std::to_string(i) + " has shape " + shape_to_string(s) +
                       ", expected rank " + std::to_string(r));
    if (c.check_dtypes && c.dtype(i) != dtype) fail(c.node, "inputs have different types");
    for (size_t d = 0; d < s.size(); ++d) {
      if (d == axis) {
        out[d] = known(out[d]) && known(s[d]) ? checked_add(c.node, out[d], s[d]) : kUnknown;
      } else {
        out[d] = unify(c.node, out[d], s[d], "dimension " + std::to_string(d) + " differs");
      }
    }
  }
  return out;
}

Shape pad_shape(const Ctx& c) {
  const Shape& x = c.shape(0);
  std::vector<int64_t> pads;
  if (c.node.has("pads")) {
    pads = c.node.attr_ints("pads", {});
  } else {
    const Tensor* t = constant_input(c.node, 1, c.graph);
    if (!t) return Shape(x.size(), kUnknown);
    pads = int_vector(c.node, *t, "pads");
  }
  if (pads.size() != 2 * x.size())
    fail(c.node, "pads has " + std::to_string(pads.size()) + " values for rank " +
                     std::to_string(x.size()));
  Shape out = x;
  for (size_t i = 0; i < x.size(); ++i) {
    int64_t b = pads[i], e = pads[i + x.size()];
    if (b == 0 && e == 0) continue;
    if (!known(x[i])) {
      out[i] = kUnknown;
      continue;
    }
    int64_t v = checked_add(c.node, checked_add(c.node, x[i], b), e);
    if (v < 0) fail(c.node, "pads remove more than dimension " + std::to_string(i));
    out[i] = v;
  }
  return out;
}

std::vector<int64_t> axes_of(const Ctx& c, size_t input_index, bool& given) {
  given = false;
  if (c.node.has("axes")) {
    given = true;
    return c.node.attr_ints("axes", {});
  }
  if (!present(c.node, input_index)) return {};
  const Tensor* t = constant_input(c.node, input_index, c.graph);
  if (!t) throw Unsupported(c.node.describe() + ": axes must be a constant");
  given = true;
  return int_vector(c.node, *t, "axes");
}

Shape unsqueeze_shape(const Ctx& c) {
  const Shape& x = c.shape(0);
  bool given;
  auto axes = axes_of(c, 1, given);
  if (axes.empty()) fail(c.node, "axes must not be empty");
  int64_t r = static_cast<int64_t>(x.size() + axes.size());
  std::vector<bool> inserted(static_cast<size_t>(r), false);
  for (int64_t a : axes) {
    size_t n = static_cast<size_t>(norm_axis(c.node, a, r));
    if (inserted[n]) fail(c.node, "axes contains a duplicate");
    inserted[n] = true;
  }
  Shape out;
  size_t k = 0;
  for (size_t i = 0; i < static_cast<size_t>(r); ++i) out.push_back(inserted[i] ? 1 : x[k++]);
  return out;
}

Shape squeeze_shape(const Ctx& c) {
  const Shape& x = c.shape(0);
  bool given;
  auto axes = axes_of(c, 1, given);
  int64_t r = static_cast<int64_t>(x.size());
  std::vector<bool> drop(x.size(), false);
  if (!given) {
    for (size_t i = 0; i < x.size(); ++i) drop[i] = x[i] == 1;
  } else {
    for (int64_t a : axes) {
      size_t n = static_cast<size_t>(norm_axis(c.node, a, r));
      if (drop[n]) fail(c.node, "axes contains a duplicate");
      if (known(x[n]) && x[n] != 1)
        fail(c.node,
             "cannot squeeze dimension " + std::to_string(n) + " of size " + std::to_string(x[n]));
      drop[n] = true;
    }
  }
  Shape out;
  for (size_t i = 0; i < x.size(); ++i)
    if (!drop[i]) out.push_back(x[i]);
  return out;
}

Shape gather_shape(const Ctx& c) {
  const Shape& data = c.shape(0);
  const Shape& idx = c.shape(1);
  if (c.check_dtypes && c.dtype(1) != DType::Int64) fail(c.node, "indices must be integers");
  int64_t r = static_cast<int64_t>(data.size());
  if (r == 0) fail(c.node, "data must have rank >= 1");
  size_t axis = static_cast<size_t>(norm_axis(c.node, c.node.attr_int("axis", 0), r));
  if (const Tensor* t = constant_input(c.node, 1, c.graph); t && known(data[axis])) {
    for (int64_t i : t->to_int64s())
      if (i < -data[axis] || i >= data[axis])
        fail(c.node, "index " + std::to_string(i) + " is out of range for dimension of size " +
                         std::to_string(data[axis]));
  }
  Shape out(data.begin(), data.begin() + static_cast<std::ptrdiff_t>(axis));
  out.insert(out.end(), idx.begin(), idx.end());
  out.insert(out.end(), data.begin() + static_cast<std::ptrdiff_t>(axis) + 1, data.end());
  return out;
}

// ONNX Slice clamping rules (Slice-13).
int64_t slice_length(int64_t dim, int64_t start, int64_t end, int64_t step) {
  if (dim == 0) return 0;
  if (start < 0) start += dim;
  if (end < 0) end += dim;
  if (step > 0) {
    start = std::clamp<int64_t>(start, 0, dim);
    end = std::clamp<int64_t>(end, 0, dim);
    return end > start ? (end - start - 1) / step + 1 : 0;
  }
  start = std::clamp<int64_t>(start, 0, dim - 1);
  end = std::clamp<int64_t>(end, -1, dim - 1);
  return start > end ? (start - end - 1) / (-step) + 1 : 0;
}

struct ResolvedSlice {
  std::vector<int64_t> starts, ends, axes, steps;
  bool constant = true;
};

ResolvedSlice slice_params(const Node& node, const Graph& graph, int64_t rank) {
  ResolvedSlice p;
  if (node.has("starts")) {
    p.starts = node.attr_ints("starts", {});
    p.ends = node.attr_ints("ends", {});
    p.axes = node.attr_ints("axes", {});
  } else {
    const Tensor* s = constant_input(node, 1, graph);
    const Tensor* e = constant_input(node, 2, graph);
    const Tensor* a = constant_input(node, 3, graph);
    const Tensor* st = constant_input(node, 4, graph);
    if (!s || !e || (present(node, 3) && !a) || (present(node, 4) && !st)) {
      p.constant = false;
      return p;
    }
    p.starts = int_vector(node, *s, "starts");
    p.ends = int_vector(node, *e, "ends");
    if (a) p.axes = int_vector(node, *a, "axes");
    if (st) p.steps = int_vector(node, *st, "steps");
  }
  if (p.ends.size() != p.starts.size()) fail(node, "starts and ends differ in length");
  if (p.axes.empty())
    for (size_t i = 0; i < p.starts.size(); ++i) p.axes.push_back(static_cast<int64_t>(i));
  if (p.steps.empty()) p.steps.assign(p.starts.size(), 1);
  if (p.axes.size() != p.starts.size() || p.steps.size() != p.starts.size())
    fail(node, "starts, ends, axes and steps differ in length");
  std::vector<bool> seen(static_cast<size_t>(rank), false);
  for (auto& a : p.axes) {
    a = norm_axis(node, a, rank);
    if (seen[static_cast<size_t>(a)]) fail(node, "axes contains a duplicate");
    seen[static_cast<size_t>(a)] = true;
  }
  for (int64_t s : p.steps)
    if (s == 0 || s == std::numeric_limits<int64_t>::min()) fail(node, "invalid slice step");
  return p;
}

Shape slice_shape(const Ctx& c) {
  const Shape& x = c.shape(0);
  int64_t r = static_cast<int64_t>(x.size());
  ResolvedSlice p = slice_params(c.node, c.graph, r);
  if (!p.constant) return Shape(x.size(), kUnknown);
  Shape out = x;
  for (size_t i = 0; i < p.axes.size(); ++i) {
    size_t a = static_cast<size_t>(p.axes[i]);
    if (known(x[a])) {
      out[a] = slice_length(x[a], p.starts[i], p.ends[i], p.steps[i]);
    } else if (!(p.starts[i] == 0 && p.steps[i] == 1 &&
                 p.ends[i] >= std::numeric_limits<int32_t>::max())) {
      out[a] = kUnknown;
    }
  }
  return out;
}

Shape reduce_mean_shape(const Ctx& c) {
  c.require_float(0);
  const Shape& x = c.shape(0);
  int64_t r = static_cast<int64_t>(x.size());
  auto axes = c.node.attr_ints("axes", {});
  bool keep = c.node.attr_int("keepdims", 1) != 0;
  std::vector<bool> reduce(x.size(), axes.empty());
  for (int64_t a : axes) {
    size_t n = static_cast<size_t>(norm_axis(c.node, a, r));
    if (reduce[n]) fail(c.node, "axes contains a duplicate");
    reduce[n] = true;
  }
  Shape out;
  for (size_t i = 0; i < x.size(); ++i) {
    if (!reduce[i])
      out.push_back(x[i]);
    else if (keep)
      out.push_back(1);
  }
  return out;
}

ValueInfo constant_info(const Node& node) {
  if (node.has("value")) {
    const Tensor& t = node.attr_tensor("value");
    return {"", t.dtype(), t.shape()};
  }
  if (node.has("value_float")) return {"", DType::Float32, {}};
  if (node.has("value_int")) return {"", DType::Int64, {}};
  if (node.has("value_floats"))
    return {
        "", DType::Float32, {static_cast<int64_t>(node.attr_floats("value_floats", {}).size())}};
  if (node.has("value_ints"))
    return {"", DType::Int64, {static_cast<int64_t>(node.attr_ints("value_ints", {}).size())}};
  fail(node, "has no value attribute");
}

}  // namespace

// ---- the per-op inference functions of the registry -----------------------------------------

namespace detail {

const Shape& InferContext::shape(size_t i) const { return input_info(node, in, i).shape; }
DType InferContext::dtype(size_t i) const { return input_info(node, in, i).dtype; }
void InferContext::require_float(size_t i) const {
  if (check_dtypes && dtype(i) != DType::Float32)
    fail(node, "input " + std::to_string(i) + " must be float32");
}

void infer_conv(const InferContext& c, InferResult& r) { r.out.shape = conv_shape(c); }

void infer_pool(const InferContext& c, InferResult& r) {
  r.out.shape = pool_shape(c);
  if (c.node.outputs.size() > 1) r.extra.push_back({"", DType::Int64, r.out.shape});
}

void infer_global_pool(const InferContext& c, InferResult& r) {
  c.require_float(0);
  const Shape& x = c.shape(0);
  require_rank_at_least(c.node, x, 3, "input X");
  r.out.shape = x;
  std::fill(r.out.shape.begin() + 2, r.out.shape.end(), 1);
}

void infer_gemm(const InferContext& c, InferResult& r) { r.out.shape = gemm_shape(c); }
void infer_matmul(const InferContext& c, InferResult& r) { r.out.shape = matmul_shape(c); }

void infer_binary(const InferContext& c, InferResult& r) {
  if (c.check_dtypes && c.dtype(0) != c.dtype(1)) fail(c.node, "inputs have different types");
  r.out.shape = broadcast(c.node, c.shape(0), c.shape(1));
}

void infer_activation(const InferContext& c, InferResult& r) {
  c.require_float(0);
  r.out.shape = c.shape(0);
}

void infer_block_relu(const InferContext& c, InferResult& r) {
  c.require_float(0);
  const Shape& x = c.shape(0);
  if (x.size() != 4) fail(c.node, "input must be NCHW (rank 4), got shape " + shape_to_string(x));
  // check_node has made 'blocks' an INTS attribute with h, w per channel.
  const auto& blocks = std::get<std::vector<int64_t>>(c.node.attributes.at("blocks"));
  const int64_t channels = static_cast<int64_t>(blocks.size() / 2);
  if (known(x[1]) && x[1] != channels)
    fail(c.node, "input has " + std::to_string(x[1]) + " channels, attribute 'blocks' gives " +
                     std::to_string(channels));
  r.out.shape = x;
}

void infer_prelu(const InferContext& c, InferResult& r) {
  c.require_float(0);
  c.require_float(1);
  r.out.shape = c.shape(0);
  if (broadcast(c.node, c.shape(0), c.shape(1)) != r.out.shape)
    fail(c.node, "slope " + shape_to_string(c.shape(1)) + " does not broadcast to the input " +
                     shape_to_string(c.shape(0)));
}

void infer_softmax(const InferContext& c, InferResult& r) {
  infer_activation(c, r);
  norm_axis(c.node, c.node.attr_int("axis", -1), static_cast<int64_t>(r.out.shape.size()));
}

void infer_identity(const InferContext& c, InferResult& r) { r.out.shape = c.shape(0); }

void infer_dropout(const InferContext& c, InferResult& r) {
  c.require_float(0);
  r.out.shape = c.shape(0);
  // The mask is boolean in ONNX; veil has no boolean values and never computes it.
  if (c.node.outputs.size() > 1) r.extra.push_back({"", DType::Float32, r.out.shape});
}

void infer_batch_norm(const InferContext& c, InferResult& r) { r.out.shape = batch_norm_shape(c); }
void infer_flatten(const InferContext& c, InferResult& r) { r.out.shape = flatten_shape(c); }
void infer_reshape(const InferContext& c, InferResult& r) { r.out.shape = reshape_shape(c); }
void infer_concat(const InferContext& c, InferResult& r) {
  r.out.shape = concat_shape(c, r.out.dtype);
}
void infer_pad(const InferContext& c, InferResult& r) { r.out.shape = pad_shape(c); }
void infer_constant(const InferContext& c, InferResult& r) { r.out = constant_info(c.node); }

void infer_shape(const InferContext& c, InferResult& r) {
  int64_t rank = static_cast<int64_t>(c.shape(0).size());
  int64_t start = std::clamp<int64_t>(c.node.attr_int("start", 0), -rank, rank);
  int64_t end = std::clamp<int64_t>(c.node.attr_int("end", rank), -rank, rank);
  if (start < 0) start += rank;
  if (end < 0) end += rank;
  r.out.dtype = DType::Int64;
  r.out.shape = {std::max<int64_t>(0, end - start)};
}

void infer_gather(const InferContext& c, InferResult& r) { r.out.shape = gather_shape(c); }
void infer_unsqueeze(const InferContext& c, InferResult& r) { r.out.shape = unsqueeze_shape(c); }
void infer_squeeze(const InferContext& c, InferResult& r) { r.out.shape = squeeze_shape(c); }

void infer_cast(const InferContext& c, InferResult& r) {
  r.out.shape = c.shape(0);
  r.out.dtype = std::get<CastParams>(lower_cast(c.node, 0)).dtype;
}

void infer_constant_of_shape(const InferContext& c, InferResult& r) {
  const Node& node = c.node;
  const Shape& s = c.shape(0);
  if (s.size() != 1) fail(node, "input must be 1-D");
  r.out.dtype = node.has("value") ? node.attr_tensor("value").dtype() : DType::Float32;
  if (const Tensor* t = constant_input(node, 0, c.graph)) {
    r.out.shape = int_vector(node, *t, "shape");
    for (int64_t d : r.out.shape)
      if (d < 0) fail(node, "shape has a negative dimension");
  } else {
    if (!known(s[0]) || s[0] > 64) fail(node, "output rank is unknown");
    r.out.shape.assign(static_cast<size_t>(s[0]), kUnknown);
  }
}

void infer_slice(const InferContext& c, InferResult& r) { r.out.shape = slice_shape(c); }
void infer_reduce_mean(const InferContext& c, InferResult& r) {
  r.out.shape = reduce_mean_shape(c);
}

}  // namespace detail

namespace {

std::vector<ValueInfo> infer_impl(const Node& node, const std::vector<ValueInfo>& in,
                                  const Graph& graph, bool check_dtypes) {
  detail::InferContext c{node, in, graph, check_dtypes};
  if (in.size() < node.inputs.size()) fail(node, "missing input shapes");
  const detail::OpEntry* op = detail::find_op(node.op_type);
  if (!op) throw Unsupported(node.describe() + ": no shape inference for this operator");
  detail::InferResult res;
  res.out.dtype = node.inputs.empty() ? DType::Float32 : c.dtype(0);
  op->infer(c, res);
  ValueInfo& out = res.out;
  std::vector<ValueInfo>& extra = res.extra;
  if (out.shape.size() > kMaxRank)
    fail(node, "output rank " + std::to_string(out.shape.size()) + " exceeds " +
                   std::to_string(kMaxRank));
  for (int64_t d : out.shape)
    if (d > kMaxDimension)
      fail(node,
           "output dimension " + std::to_string(d) + " exceeds " + std::to_string(kMaxDimension));
  std::vector<ValueInfo> result;
  for (size_t i = 0; i < node.outputs.size(); ++i) {
    ValueInfo vi;
    if (i == 0)
      vi = out;
    else if (i - 1 < extra.size())
      vi = extra[i - 1];
    else if (!node.outputs[i].empty())
      fail(node, "output " + std::to_string(i) + " is not supported");
    vi.name = node.outputs[i];
    result.push_back(std::move(vi));
  }
  return result;
}

Shape normalized(Shape s) {
  for (auto& d : s)
    if (d < 0) d = kUnknown;
  return s;
}

void check_declared(const Node* node, const std::string& value, const Shape& declared,
                    const Shape& inferred) {
  bool ok = declared.size() == inferred.size();
  for (size_t i = 0; ok && i < declared.size(); ++i)
    if (known(declared[i]) && known(inferred[i]) && declared[i] != inferred[i]) ok = false;
  if (!ok)
    throw MalformedInput((node ? node->describe() + ": " : std::string()) + "value '" + value +
                         "' is declared with shape " + shape_to_string(declared) +
                         " but has shape " + shape_to_string(inferred));
}

}  // namespace

std::unordered_map<std::string, ValueInfo> symbolic_sources(const Graph& g) {
  std::unordered_map<std::string, ValueInfo> values;
  // Unknown dimensions of the inputs become symbols; dimension 0 (the batch by convention) shares
  // one symbol across inputs so that e.g. Add(x, y) keeps the batch.
  int64_t next_symbol = kBatchSymbol - 1;
  for (const auto& in : g.inputs) {
    ValueInfo vi = in;
    for (size_t i = 0; i < vi.shape.size(); ++i)
      if (vi.shape[i] < 0) vi.shape[i] = i == 0 ? kBatchSymbol : next_symbol--;
    values[in.name] = vi;
  }
  for (const auto& [name, t] : g.initializers) values[name] = {name, t.dtype(), t.shape()};
  return values;
}

SpatialGeometry spatial_geometry(const SpatialParams& p, const Shape& input,
                                 const std::vector<int64_t>& kernel, const std::string& who) {
  size_t n = kernel.size();
  if (input.size() != n + 2)
    fail(who, "input shape " + shape_to_string(input) + " does not match a " + std::to_string(n) +
                  "-D kernel");
  SpatialGeometry g;
  g.kernel = kernel;
  // Assigned in two steps: GCC 12 misreads `empty() ? vector(n, 1) : v` (-Wfree-nonheap-object).
  g.strides = p.strides;
  if (g.strides.empty()) g.strides.assign(n, 1);
  g.dilations = p.dilations;
  if (g.dilations.empty()) g.dilations.assign(n, 1);
  std::vector<int64_t> pads = p.pads;
  if (pads.empty()) pads.assign(2 * n, 0);
  if (g.strides.size() != n) fail(who, "strides has the wrong number of values");
  if (g.dilations.size() != n) fail(who, "dilations has the wrong number of values");
  if (pads.size() != 2 * n) fail(who, "pads has the wrong number of values");
  g.pads_begin.assign(pads.begin(), pads.begin() + static_cast<std::ptrdiff_t>(n));
  g.pads_end.assign(pads.begin() + static_cast<std::ptrdiff_t>(n), pads.end());
  const AutoPad auto_pad = p.auto_pad;
  const bool same = auto_pad == AutoPad::SameUpper || auto_pad == AutoPad::SameLower;
  const bool ceil_mode = p.ceil_mode;
  g.output.assign(n, kUnknown);
  g.pads_end_floor = g.pads_end;
  for (size_t i = 0; i < n; ++i) {
    int64_t s = g.strides[i], d = g.dilations[i], k = kernel[i];
    if (s < 1 || d < 1) fail(who, "strides and dilations must be positive");
    if (g.pads_begin[i] < 0 || g.pads_end[i] < 0) fail(who, "pads must be non-negative");
    if (known(k) && k < 1) fail(who, "kernel size must be positive");
    if (auto_pad == AutoPad::Valid) g.pads_begin[i] = g.pads_end[i] = 0;
    int64_t in = input[i + 2];
    if (!known(in) || !known(k)) continue;
    int64_t ek = checked_add(who, checked_mul(who, k - 1, d), 1);  // effective kernel extent
    if (same) {
      int64_t out = in == 0 ? 0 : (in - 1) / s + 1;
      int64_t total = std::max<int64_t>(
          0, checked_add(who, checked_mul(who, std::max<int64_t>(out - 1, 0), s), ek) - in);
      int64_t small = total / 2, big = total - total / 2;
      g.pads_begin[i] = auto_pad == AutoPad::SameUpper ? small : big;
      g.pads_end[i] = auto_pad == AutoPad::SameUpper ? big : small;
      g.output[i] = out;
      g.pads_end_floor[i] = g.pads_end[i];
      continue;
    }
    int64_t span = checked_add(who, checked_add(who, in, g.pads_begin[i]), g.pads_end[i]) - ek;
    if (span < 0)
      fail(who, "kernel extent " + std::to_string(ek) + " exceeds the padded input size " +
                    std::to_string(span + ek) + " in spatial dimension " + std::to_string(i));
    int64_t out = span / s + 1;
    if (ceil_mode && auto_pad == AutoPad::NotSet && span % s != 0) {
      ++out;
      // As in PyTorch (and ONNX since 1.16): the last window must start inside the input or the
      // left padding, otherwise it is dropped.
      if ((out - 1) * s >= in + g.pads_begin[i]) --out;
    }
    g.output[i] = out;
    g.pads_end_floor[i] = std::max(g.pads_end[i], (out - 1) * s + ek - in - g.pads_begin[i]);
  }
  return g;
}

SpatialGeometry spatial_geometry(const Node& node, const Shape& input,
                                 const std::vector<int64_t>& kernel) {
  return spatial_geometry(detail::lower_spatial(node), input, kernel, node.describe());
}

Shape reshape_output(const Shape& data, const std::vector<int64_t>& target, bool allowzero,
                     const std::string& who) {
  Shape out(target.size());
  int infer_at = -1;
  for (size_t j = 0; j < target.size(); ++j) {
    int64_t v = target[j];
    if (v == 0 && !allowzero) {
      if (j >= data.size())
        fail(who, "target copies dimension " + std::to_string(j) + " of a rank-" +
                      std::to_string(data.size()) + " input");
      out[j] = data[j];
    } else if (v == -1) {
      if (infer_at >= 0) fail(who, "target shape has more than one -1");
      infer_at = static_cast<int>(j);
      out[j] = kUnknown;
    } else if (v < -1) {
      fail(who, "target shape has invalid dimension " + std::to_string(v));
    } else {
      out[j] = v;
    }
  }
  // Compare element counts, cancelling the symbols present on both sides.
  std::multiset<int64_t> sym_in, sym_out;
  int anon_in = 0, anon_out = 0;
  int64_t p_in = 1, p_out = 1;
  // Product of the known dimensions, the symbols and the count of anonymous unknowns.
  auto tally = [&](const Shape& dims, int skip, int64_t& p, std::multiset<int64_t>& syms,
                   int& anon) {
    for (size_t j = 0; j < dims.size(); ++j) {
      const int64_t d = dims[j];
      if (static_cast<int>(j) == skip) continue;
      if (known(d))
        p = checked_mul(who, p, d);
      else if (symbolic(d))
        syms.insert(d);
      else
        ++anon;
    }
  };
  tally(data, -1, p_in, sym_in, anon_in);
  tally(out, infer_at, p_out, sym_out, anon_out);
  for (auto it = sym_out.begin(); it != sym_out.end();) {
    auto f = sym_in.find(*it);
    if (f != sym_in.end()) {
      sym_in.erase(f);
      it = sym_out.erase(it);
    } else {
      ++it;
    }
  }
  bool determined = anon_in == 0 && anon_out == 0 && sym_out.empty();
  if (infer_at < 0) {
    if (determined && sym_in.empty() && p_in != p_out)
      fail(who, "cannot reshape " + shape_to_string(data) + " (" + std::to_string(p_in) +
                    " elements) to " + shape_to_string(out));
    return out;
  }
  if (!determined) return out;
  if (p_out == 0) {
    if (p_in != 0 && sym_in.empty()) fail(who, "cannot infer -1 next to a zero dimension");
    return out;
  }
  if (sym_in.empty()) {
    if (p_in % p_out != 0)
      fail(who, "cannot reshape " + shape_to_string(data) + " (" + std::to_string(p_in) +
                    " elements) to " + shape_to_string(target));
    out[static_cast<size_t>(infer_at)] = p_in / p_out;
  } else if (sym_in.size() == 1 && p_in == p_out) {
    out[static_cast<size_t>(infer_at)] = *sym_in.begin();
  }
  return out;
}

std::vector<ValueInfo> infer_node(const Node& node, const std::vector<ValueInfo>& inputs,
                                  const Graph& graph) {
  return infer_impl(node, inputs, graph, true);
}

Shape output_shape(const Node& node, const std::vector<Shape>& input_shapes, const Graph& graph) {
  std::vector<ValueInfo> in(input_shapes.size());
  for (size_t i = 0; i < input_shapes.size(); ++i) {
    in[i].shape = input_shapes[i];
    // As in infer_shapes: an unknown leading dimension is the batch, the same in every input.
    for (size_t k = 0; k < in[i].shape.size(); ++k)
      if (in[i].shape[k] < 0) in[i].shape[k] = k == 0 ? kBatchSymbol : kUnknown;
  }
  auto out = infer_impl(node, in, graph, false);
  if (out.empty()) fail(node, "has no output");
  return normalized(out[0].shape);
}

void infer_shapes(Model& model) {
  Graph& g = model.graph;
  auto known_values = symbolic_sources(g);
  for (const auto& node : g.nodes) {
    std::vector<ValueInfo> in;
    for (const auto& name : node.inputs) {
      if (name.empty()) {
        in.emplace_back();
        continue;
      }
      auto it = known_values.find(name);
      if (it == known_values.end())
        throw MalformedInput(node.describe() + ": input '" + name +
                             "' is not produced by any earlier node, input or initializer");
      in.push_back(it->second);
    }
    auto outs = infer_node(node, in, g);
    for (auto& vi : outs) {
      if (vi.name.empty()) continue;
      ValueInfo stored{vi.name, vi.dtype, normalized(vi.shape)};
      auto declared = g.value_info.find(vi.name);
      if (declared != g.value_info.end())
        check_declared(&node, vi.name, declared->second.shape, stored.shape);
      g.value_info[vi.name] = stored;
      known_values[vi.name] = std::move(vi);
    }
  }
  for (auto& out : g.outputs) {
    auto it = known_values.find(out.name);
    if (it == known_values.end())
      throw MalformedInput("graph output '" + out.name + "' is never produced");
    Shape inferred = normalized(it->second.shape);
    // An empty declared shape may mean "not declared".
    if (!out.shape.empty()) check_declared(nullptr, out.name, out.shape, inferred);
    if (out.dtype != it->second.dtype && !out.shape.empty())
      throw MalformedInput("graph output '" + out.name + "' is declared as " +
                           to_string(out.dtype) + " but is " + to_string(it->second.dtype));
    // Keep a declared size where inference only knows "unknown" (e.g. a fixed batch).
    if (out.shape.size() == inferred.size())
      for (size_t i = 0; i < inferred.size(); ++i)
        if (!known(inferred[i])) inferred[i] = out.shape[i];
    out.shape = inferred;
    out.dtype = it->second.dtype;
  }
}

}  // namespace veil::model
