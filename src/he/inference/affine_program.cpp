#include "veil/he/inference/affine_program.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <set>

#include "veil/core/error.hpp"
#include "veil/model/lowered.hpp"
#include "veil/model/shape_inference.hpp"
#include "veil/nn/executor.hpp"

namespace veil::he {

namespace {

using model::Model;
using model::Node;
using model::OpKind;

// Largest vector a stage may take or produce: a dense matrix of this side is 128 MiB of doubles,
// and the CKKS layouts need a power-of-two period no larger than the slot count (2^15).
constexpr int64_t kMaxDim = 1 << 14;

// Ops that map their (non-constant) input linearly (plus a constant): the float engine measures
// them, the probe check confirms it.
bool linear_kind(OpKind k) {
  switch (k) {
    case OpKind::Conv:
    case OpKind::Gemm:
    case OpKind::MatMul:
    case OpKind::Flatten:
    case OpKind::Reshape:
    case OpKind::Identity:
    case OpKind::Dropout:
    case OpKind::Squeeze:
    case OpKind::Unsqueeze:
    case OpKind::Pad:
    case OpKind::BatchNormalization:
    case OpKind::AveragePool:
    case OpKind::GlobalAveragePool:
    case OpKind::ReduceMean:
    case OpKind::Add:
    case OpKind::Sub:
    case OpKind::Mul:
    case OpKind::Div:
    case OpKind::Concat:
    case OpKind::Slice:
      return true;
    default:
      return false;
  }
}

bool weight_kind(OpKind k) { return k == OpKind::Conv || k == OpKind::Gemm || k == OpKind::MatMul; }

// The feature extractor ends with the last of these; the classifier is what follows.
bool spatial_kind(OpKind k) {
  return k == OpKind::Conv || k == OpKind::MaxPool || k == OpKind::AveragePool ||
         k == OpKind::GlobalAveragePool || k == OpKind::GlobalMaxPool;
}

bool is_square(const Node& n) {
  return model::node_kind(n) == OpKind::Mul && n.inputs.size() == 2 && !n.inputs[0].empty() &&
         n.inputs[0] == n.inputs[1];
}

std::string describe(const Node& n) { return "node '" + n.name + "' (" + n.op_type + ")"; }

Shape value_shape(const Model& m, const std::string& value) {
  for (const auto& vi : m.graph.inputs)
    if (vi.name == value) return vi.shape;
  auto it = m.graph.value_info.find(value);
  if (it != m.graph.value_info.end()) return it->second.shape;
  for (const auto& vi : m.graph.outputs)
    if (vi.name == value) return vi.shape;
  throw InvalidArgument("the shape of value '" + value + "' is unknown");
}

// Shape without the batch dimension; every other dimension must be known.
Shape feature_shape(const Model& m, const std::string& value) {
  Shape s = value_shape(m, value);
  if (s.empty()) throw Unsupported("value '" + value + "' has no batch dimension");
  s.erase(s.begin());
  for (int64_t d : s)
    if (d <= 0) throw Unsupported("value '" + value + "' has a dimension unknown before run time");
  return s;
}

int64_t numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

// A model that computes `out` from `in` with the given nodes (plus every node that does not
// depend on the graph input: constants and shape arithmetic).
Model sub_model(const Model& m, const std::vector<size_t>& nodes, const std::vector<bool>& live,
                const std::string& in, const Shape& in_shape, const std::string& out,
                int64_t batch) {
  Model s;
  s.opset = m.opset;
  s.ir_version = m.ir_version;
  s.graph.name = m.graph.name + ".part";
  s.graph.initializers = m.graph.initializers;
  std::set<size_t> keep(nodes.begin(), nodes.end());
  for (size_t i = 0; i < m.graph.nodes.size(); ++i)
    if (!live[i]) keep.insert(i);
  for (size_t i : keep) s.graph.nodes.push_back(m.graph.nodes[i]);
  Shape shape = in_shape;
  shape.insert(shape.begin(), batch);
  s.graph.inputs.push_back({in, DType::Float32, shape});
  s.graph.outputs.push_back({out, DType::Float32, {}});
  return s;
}

std::vector<float> run(Model& sub, const Shape& in_shape, int64_t batch, std::vector<float> x) {
  Shape shape = in_shape;
  shape.insert(shape.begin(), batch);
  nn::ExecutorOptions opts;
  opts.fuse = false;
  nn::Executor exec(sub, opts);
  auto out = exec.forward({Tensor::from_floats(shape, std::move(x))});
  auto f = out.at(0).floats();
  return {f.begin(), f.end()};
}

struct Segment {
  std::string start, end;
  std::vector<size_t> nodes;
  bool activation = false;
};

AffineStage measure_affine(const Model& m, const std::vector<bool>& live, const Segment& seg,
                           const Shape& in_shape) {
  const int64_t n = numel(in_shape);
  if (n > kMaxDim)
    throw Unsupported("'" + seg.start + "' has " + std::to_string(n) +
                      " elements; the encrypted part takes at most 16384");
  AffineStage st;
  st.in_dim = static_cast<size_t>(n);
  if (seg.nodes.empty()) {  // identity
    st.name = seg.start;
    st.out_dim = st.in_dim;
    st.weight.assign(st.in_dim * st.in_dim, 0.0);
    for (size_t i = 0; i < st.in_dim; ++i) st.weight[i * st.in_dim + i] = 1.0;
    st.bias.assign(st.in_dim, 0.0);
    return st;
  }
  st.name = m.graph.nodes[seg.nodes.front()].name;
  if (seg.nodes.size() > 1) st.name += ".." + m.graph.nodes[seg.nodes.back()].name;
  // Columns in chunks: row 0 of a chunk is the zero vector (the bias), row 1 + j is e_j.
  const int64_t chunk = 512;
  std::vector<float> f0;
  for (int64_t c0 = 0; c0 < n; c0 += chunk) {
    const int64_t cols = std::min(chunk, n - c0);
    std::vector<float> x(static_cast<size_t>((cols + 1) * n), 0.0f);
    for (int64_t j = 0; j < cols; ++j) x[static_cast<size_t>((1 + j) * n + c0 + j)] = 1.0f;
    Model sub = sub_model(m, seg.nodes, live, seg.start, in_shape, seg.end, cols + 1);
    auto y = run(sub, in_shape, cols + 1, std::move(x));
    const size_t out = y.size() / static_cast<size_t>(cols + 1);
    if (c0 == 0) {
      if (out == 0 || out > static_cast<size_t>(kMaxDim))
        throw Unsupported("'" + seg.end + "' has " + std::to_string(out) +
                          " elements; the encrypted part takes at most 16384");
      st.out_dim = out;
      st.weight.assign(out * st.in_dim, 0.0);
      f0.assign(y.begin(), y.begin() + static_cast<std::ptrdiff_t>(out));
      st.bias.assign(f0.begin(), f0.end());
    }
    for (int64_t j = 0; j < cols; ++j)
      for (size_t r = 0; r < out; ++r)
        st.weight[r * st.in_dim + static_cast<size_t>(c0 + j)] =
            double(y[static_cast<size_t>(1 + j) * out + r]) - double(f0[r]);
  }
  // A random probe: an op that is not affine (a misuse of Mul, an unexpected op) shows here.
  std::mt19937 gen(12345);  // not secret: a test vector
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> probe(static_cast<size_t>(n));
  for (auto& v : probe) v = nd(gen);
  Model sub = sub_model(m, seg.nodes, live, seg.start, in_shape, seg.end, 1);
  auto y = run(sub, in_shape, 1, probe);
  std::vector<double> xd(probe.begin(), probe.end());
  double err = 0, mag = 1e-6;
  for (size_t r = 0; r < st.out_dim; ++r) {
    double acc = st.bias[r];
    for (size_t c = 0; c < st.in_dim; ++c) acc += st.weight[r * st.in_dim + c] * xd[c];
    err = std::max(err, std::fabs(acc - y[r]));
    mag = std::max(mag, std::fabs(acc));
  }
  if (!(err <= 1e-3 * mag))
    throw Unsupported("nodes " + st.name + " are not an affine map of '" + seg.start +
                      "' (probe error " + std::to_string(err) + "); CKKS cannot run them");
  return st;
}

PolyStage measure_poly(const Model& m, const std::vector<bool>& live, const Segment& seg,
                       const Shape& in_shape) {
  const int64_t n = numel(in_shape);
  PolyStage p;
  p.name = m.graph.nodes[seg.nodes.front()].name;
  if (seg.nodes.size() > 1) p.name += ".." + m.graph.nodes[seg.nodes.back()].name;
  const float xs[4] = {-1.0f, 0.0f, 1.0f, 2.0f};
  std::vector<float> x(static_cast<size_t>(4 * n));
  for (int r = 0; r < 4; ++r) std::fill(x.begin() + r * n, x.begin() + (r + 1) * n, xs[r]);
  Model sub = sub_model(m, seg.nodes, live, seg.start, in_shape, seg.end, 4);
  auto y = run(sub, in_shape, 4, std::move(x));
  if (y.size() != static_cast<size_t>(4 * n))
    throw Unsupported("activation " + p.name + " changes the number of elements");
  p.p0.resize(static_cast<size_t>(n));
  p.p1.resize(p.p0.size());
  p.p2.resize(p.p0.size());
  for (size_t i = 0; i < p.p0.size(); ++i) {
    const double fm = y[i], f0 = y[n + i], f1 = y[2 * n + i], f2 = y[3 * n + i];
    p.p0[i] = f0;
    p.p1[i] = (f1 - fm) / 2;
    p.p2[i] = (f1 + fm) / 2 - f0;
    const double pred = p.p0[i] + 2 * p.p1[i] + 4 * p.p2[i];
    if (!(std::fabs(pred - f2) <= 1e-4 * std::max(1.0, std::fabs(f2))))
      throw Unsupported("activation " + p.name + " is not a polynomial of degree 2 or less");
  }
  return p;
}

// y = A2 (A1 x + b1) + b2.
AffineStage compose(const AffineStage& a1, const AffineStage& a2) {
  if (a2.in_dim != a1.out_dim) throw Error("he: affine stages do not chain");
  AffineStage r;
  r.in_dim = a1.in_dim;
  r.out_dim = a2.out_dim;
  r.weight.assign(r.out_dim * r.in_dim, 0.0);
  r.bias = a2.bias;
  for (size_t i = 0; i < r.out_dim; ++i) {
    double* row = &r.weight[i * r.in_dim];
    for (size_t k = 0; k < a1.out_dim; ++k) {
      const double w = a2.weight[i * a2.in_dim + k];
      if (w == 0) continue;
      const double* src = &a1.weight[k * a1.in_dim];
      for (size_t j = 0; j < r.in_dim; ++j) row[j] += w * src[j];
      r.bias[i] += w * a1.bias[k];
    }
  }
  return r;
}

AffineStage poly_as_affine(const PolyStage& p) {
  AffineStage a;
  a.name = p.name;
  a.in_dim = a.out_dim = p.p0.size();
  a.weight.assign(a.in_dim * a.in_dim, 0.0);
  for (size_t i = 0; i < a.in_dim; ++i) a.weight[i * a.in_dim + i] = p.p1[i];
  a.bias = p.p0;
  return a;
}

}  // namespace

Part parse_part(const std::string& name) {
  if (name == "last") return Part::Last;
  if (name == "classifier") return Part::Classifier;
  if (name == "all") return Part::All;
  throw InvalidArgument("the encrypted part must be last, classifier or all, not '" + name + "'");
}

std::string part_name(Part part) {
  switch (part) {
    case Part::Last:
      return "last";
    case Part::Classifier:
      return "classifier";
    case Part::All:
      return "all";
  }
  return "?";
}

namespace {

// The graph as split_model reads it: shapes inferred, the kind of every node, and which nodes
// depend on the model input (the others compute constants).
struct GraphView {
  Model m;
  std::vector<OpKind> kinds;
  std::vector<bool> live;
  std::string input, output;

  const std::vector<Node>& nodes() const { return m.graph.nodes; }
  // The first input of node i that is not an initializer (the data it transforms).
  std::string data_input(size_t i) const {
    for (const auto& v : nodes()[i].inputs)
      if (!v.empty() && !m.graph.is_initializer(v)) return v;
    return nodes()[i].inputs.at(0);
  }
  bool computed_from_input(const std::string& value) const {
    for (size_t j = 0; j < nodes().size(); ++j)
      for (const auto& o : nodes()[j].outputs)
        if (o == value && live[j]) return true;
    return false;
  }
};

// Which nodes depend on `value`, directly or through other nodes.
std::vector<bool> depends_on(const std::vector<Node>& nodes, const std::string& value) {
  std::vector<bool> out(nodes.size(), false);
  std::set<std::string> vals = {value};
  for (size_t i = 0; i < nodes.size(); ++i)
    for (const auto& v : nodes[i].inputs)
      if (vals.count(v)) {
        out[i] = true;
        for (const auto& o : nodes[i].outputs) vals.insert(o);
        break;
      }
  return out;
}

GraphView view_of(const Model& original) {
  GraphView g{original, {}, {}, {}, {}};
  if (g.m.graph.inputs.size() != 1 || g.m.graph.outputs.size() != 1)
    throw Unsupported("homomorphic inference takes models with one input and one output");
  model::infer_shapes(g.m);
  for (const auto& n : g.nodes()) g.kinds.push_back(model::node_kind(n));
  g.input = g.m.graph.inputs[0].name;
  g.output = g.m.graph.outputs[0].name;
  g.live = depends_on(g.nodes(), g.input);
  return g;
}

// The value where encryption starts (see Part).
std::string find_cut(const GraphView& g, Part part) {
  const size_t count = g.nodes().size();
  if (part == Part::All) return g.input;
  if (part == Part::Last) {
    for (size_t i = count; i-- > 0;)
      if (g.live[i] && weight_kind(g.kinds[i])) return g.data_input(i);
    throw InvalidArgument("the model has no weight layer to encrypt");
  }
  size_t after = 0;
  for (size_t i = 0; i < count; ++i)
    if (g.live[i] && spatial_kind(g.kinds[i])) after = i + 1;
  for (size_t i = after; i < count; ++i)
    if (g.live[i] && (g.kinds[i] == OpKind::Gemm || g.kinds[i] == OpKind::MatMul))
      return g.data_input(i);
  throw InvalidArgument("the model has no dense classifier after its last convolution");
}

// The plaintext layers: the nodes `cut` needs, with only their initializers.
Model prefix_model(const Model& original, const GraphView& g, const std::string& cut) {
  const auto& nodes = g.nodes();
  std::set<std::string> need = {cut};
  std::vector<bool> keep(nodes.size(), false);
  for (size_t i = nodes.size(); i-- > 0;) {
    bool produces = false;
    for (const auto& o : nodes[i].outputs) produces |= need.count(o) != 0;
    if (!produces) continue;
    keep[i] = true;
    for (const auto& v : nodes[i].inputs) need.insert(v);
  }
  Model prefix = original;
  prefix.graph.nodes.clear();
  for (size_t i = 0; i < nodes.size(); ++i)
    if (keep[i]) prefix.graph.nodes.push_back(nodes[i]);
  prefix.graph.outputs = {{cut, DType::Float32, value_shape(g.m, cut)}};
  prefix.graph.value_info.clear();
  std::map<std::string, Tensor> inits;
  for (const auto& [k, v] : original.graph.initializers)
    if (need.count(k)) inits.emplace(k, v);
  prefix.graph.initializers = std::move(inits);
  return prefix;
}

// The nodes after the cut, each one CKKS can evaluate (Unsupported naming the first that is not).
std::vector<size_t> suffix_nodes(const GraphView& g, const std::string& cut) {
  const auto tainted = depends_on(g.nodes(), cut);
  std::vector<size_t> suffix;
  bool reaches_output = cut == g.output;
  for (size_t i = 0; i < g.nodes().size(); ++i) {
    if (!tainted[i]) continue;
    if (!linear_kind(g.kinds[i]))
      throw Unsupported(describe(g.nodes()[i]) +
                        ": cannot be evaluated under CKKS (only linear layers and polynomial "
                        "activations such as the square can); encrypt a smaller part or train "
                        "with a square activation");
    suffix.push_back(i);
    for (const auto& o : g.nodes()[i].outputs) reaches_output |= o == g.output;
  }
  if (!reaches_output) throw Unsupported("the model output does not depend on '" + cut + "'");
  return suffix;
}

// The activation that starts at the input x of the square node `sq`: the element-wise nodes
// from x to the value where every path from x has re-joined.
Segment activation_region(const GraphView& g, const std::vector<size_t>& suffix, size_t sq) {
  const auto& nodes = g.nodes();
  const std::string x = nodes[sq].inputs[0];
  auto consumers = [&](const std::string& v) {
    int c = 0;
    for (size_t i : suffix)
      for (const auto& in : nodes[i].inputs) c += in == v;
    return c + (v == g.output ? 1 : 0);
  };
  std::map<std::string, int> pending = {{x, consumers(x)}};  // value -> consumers not yet seen
  Segment act;
  act.activation = true;
  act.start = x;
  bool seen_square = false;
  for (size_t i : suffix) {
    bool uses = false;
    for (const auto& in : nodes[i].inputs) uses |= pending.count(in) != 0;
    if (!uses) continue;
    const OpKind k = g.kinds[i];
    if (k != OpKind::Mul && k != OpKind::Add && k != OpKind::Sub && k != OpKind::Div)
      throw Unsupported(describe(nodes[i]) + ": inside the activation that starts at '" + x +
                        "'; an activation is element-wise Mul/Add/Sub/Div only");
    act.nodes.push_back(i);
    seen_square |= i == sq;
    for (const auto& in : nodes[i].inputs) {
      auto it = pending.find(in);
      if (it != pending.end() && --it->second <= 0) pending.erase(it);
    }
    for (const auto& o : nodes[i].outputs) pending[o] = consumers(o);
    if (seen_square && pending.size() == 1 && pending.begin()->first != x) {
      act.end = pending.begin()->first;
      return act;
    }
  }
  throw Unsupported("the activation that starts at '" + x + "' does not end in one value");
}

// The suffix as segments in order: linear runs and activations. Without merge_linear a linear
// run also ends after each weight layer.
std::vector<Segment> segments(const GraphView& g, const std::vector<size_t>& suffix,
                              const std::string& cut, bool merge_linear) {
  const auto& nodes = g.nodes();
  std::vector<Segment> acts;
  std::vector<bool> in_act(nodes.size(), false);
  for (size_t i : suffix) {
    if (!is_square(nodes[i]) || in_act[i]) continue;
    acts.push_back(activation_region(g, suffix, i));
    for (size_t j : acts.back().nodes) in_act[j] = true;
  }
  std::vector<Segment> segs;
  size_t a = 0;
  std::set<std::string> seg_values = {cut};
  Segment cur;
  cur.start = cut;
  auto close = [&](const std::string& end) {
    cur.end = end;
    segs.push_back(cur);
    cur = Segment{};
    cur.start = end;
    seg_values = {end};
  };
  for (size_t i : suffix) {
    if (in_act[i]) {
      if (a < acts.size() && acts[a].nodes.front() == i) {
        close(acts[a].start);
        segs.push_back(acts[a]);
        cur.start = acts[a].end;
        seg_values = {acts[a].end};
        ++a;
      }
      continue;
    }
    for (const auto& in : nodes[i].inputs)
      if (!in.empty() && !seg_values.count(in) && !g.m.graph.is_initializer(in) &&
          g.computed_from_input(in))
        throw Unsupported(describe(nodes[i]) +
                          ": joins values across an activation; the encrypted part must be a "
                          "chain of linear layers and activations");
    cur.nodes.push_back(i);
    for (const auto& o : nodes[i].outputs) seg_values.insert(o);
    if (!merge_linear && weight_kind(g.kinds[i]) && nodes[i].outputs[0] != g.output)
      close(nodes[i].outputs[0]);
  }
  cur.end = g.output;
  segs.push_back(cur);
  return segs;
}

// Affine activations become affine stages; adjacent affine stages compose (always when one of
// them is trivial: an identity or an affine activation; two weight layers only with
// merge_linear).
std::vector<Stage> merge_stages(std::vector<Stage> stages, const std::vector<bool>& trivial_in,
                                bool merge_linear) {
  std::vector<Stage> merged;
  std::vector<bool> trivial;
  for (size_t i = 0; i < stages.size(); ++i) {
    Stage st = std::move(stages[i]);
    bool triv = trivial_in[i];
    if (auto* p = std::get_if<PolyStage>(&st)) {
      if (std::all_of(p->p2.begin(), p->p2.end(), [](double v) { return v == 0; })) {
        st = poly_as_affine(*p);
        triv = true;
      }
    }
    if (auto* af = std::get_if<AffineStage>(&st); af && !merged.empty()) {
      if (auto* prev = std::get_if<AffineStage>(&merged.back());
          prev && (merge_linear || triv || trivial.back())) {
        const std::string name = trivial.back() ? af->name
                                 : triv         ? prev->name
                                                : prev->name + "+" + af->name;
        AffineStage c = compose(*prev, *af);
        c.name = name;
        merged.back() = std::move(c);
        trivial.back() = triv && trivial.back();
        continue;
      }
    }
    merged.push_back(std::move(st));
    trivial.push_back(triv);
  }
  if (merged.empty() || !std::holds_alternative<AffineStage>(merged.front()))
    throw Unsupported("the encrypted part must start with a linear layer");
  if (!std::holds_alternative<AffineStage>(merged.back()))
    throw Unsupported("the encrypted part must end with a linear layer, not an activation");
  return merged;
}

}  // namespace

SplitModel split_model(const Model& original, Part part, const SplitOptions& options) {
  const GraphView g = view_of(original);
  SplitModel out;
  out.cut = find_cut(g, part);
  out.cut_shape = feature_shape(g.m, out.cut);
  out.prefix_empty = out.cut == g.input;
  out.prefix = out.prefix_empty ? original : prefix_model(original, g, out.cut);
  const auto suffix = suffix_nodes(g, out.cut);
  for (size_t i : suffix) out.encrypted_nodes.push_back(g.nodes()[i].name);

  std::vector<Stage> stages;
  std::vector<bool> trivial;
  for (const auto& s : segments(g, suffix, out.cut, options.merge_linear)) {
    const Shape shape = feature_shape(g.m, s.start);
    if (s.activation)
      stages.push_back(measure_poly(g.m, g.live, s, shape));
    else
      stages.push_back(measure_affine(g.m, g.live, s, shape));
    trivial.push_back(!s.activation && s.nodes.empty());
  }
  out.stages = merge_stages(std::move(stages), trivial, options.merge_linear);
  return out;
}

std::vector<double> apply_stages(const std::vector<Stage>& stages, std::span<const double> x) {
  std::vector<double> v(x.begin(), x.end());
  for (const auto& st : stages) {
    if (const auto* a = std::get_if<AffineStage>(&st)) {
      if (v.size() != a->in_dim) throw InvalidArgument("apply_stages: input size mismatch");
      std::vector<double> y(a->bias);
      for (size_t r = 0; r < a->out_dim; ++r) {
        const double* row = &a->weight[r * a->in_dim];
        double acc = 0;
        for (size_t c = 0; c < a->in_dim; ++c) acc += row[c] * v[c];
        y[r] += acc;
      }
      v = std::move(y);
    } else {
      const auto& p = std::get<PolyStage>(st);
      if (v.size() != p.p0.size()) throw InvalidArgument("apply_stages: input size mismatch");
      for (size_t i = 0; i < v.size(); ++i) v[i] = p.p0[i] + v[i] * (p.p1[i] + v[i] * p.p2[i]);
    }
  }
  return v;
}

}  // namespace veil::he
