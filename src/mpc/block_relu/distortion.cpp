#include "veil/mpc/block_relu/distortion.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>
#include <string>
#include <utility>

#include "veil/core/error.hpp"
#include "veil/core/hex.hpp"
#include "veil/core/memory_budget.hpp"
#include "veil/model/shape_inference.hpp"
#include "veil/nn/block_relu.hpp"
#include "veil/nn/executor.hpp"

namespace veil::mpc {

using model::BlockSize;

std::vector<BlockSize> candidate_block_sizes(int64_t height, int64_t width, CandidateSizes set) {
  if (height < 1 || width < 1)
    throw InvalidArgument("a feature map of " + std::to_string(height) + " x " +
                          std::to_string(width) + " has no block sizes");
  std::vector<BlockSize> list = {{1, 1}};
  if (set == CandidateSizes::Small) {
    list.insert(list.end(), {{1, 2}, {2, 1}, {2, 2}, {2, 3}, {3, 2}, {3, 3}, {4, 4}, {8, 8}});
  } else {
    for (int64_t h = 1; h <= 8; ++h)
      for (int64_t w = 1; w <= 8; ++w)
        if (h * w > 1) list.push_back({h, w});
  }
  list.push_back({height, width});
  // With both sides within the map, two sizes tile it alike only when they are equal (the
  // first tile already differs), so dropping repeats leaves one size per tiling.
  std::vector<BlockSize> out;
  for (const BlockSize& b : list)
    if (b.h <= height && b.w <= width && std::find(out.begin(), out.end(), b) == out.end())
      out.push_back(b);
  out.push_back({0, 0});
  return out;
}

Sha256Digest distortion_model_hash(std::span<const uint8_t> onnx_bytes) {
  return sha256(onnx_bytes);
}

namespace {

bool is_relu(const model::Node& n) { return n.op_type == "Relu"; }

// Feature shape [C, H, W] of a ReLU's input: rank 4 as is, rank 2 as C x 1 x 1.
// The inferred shape of `value` (a graph input's declared one), empty when unknown.
Shape inferred_shape(const model::Model& shaped, const std::string& value) {
  if (auto it = shaped.graph.value_info.find(value); it != shaped.graph.value_info.end())
    return it->second.shape;
  for (const auto& in : shaped.graph.inputs)
    if (in.name == value) return in.shape;
  return {};
}

std::array<int64_t, 3> relu_map(const model::Model& shaped, const model::Node& relu) {
  const Shape s = inferred_shape(shaped, relu.inputs.at(0));
  std::array<int64_t, 3> m{};
  if (s.size() == 4)
    m = {s[1], s[2], s[3]};
  else if (s.size() == 2)
    m = {s[1], 1, 1};
  else
    throw Unsupported(relu.describe() + ": input of shape " + shape_to_string(s) +
                      " is neither [N, C] nor [N, C, H, W]");
  if (m[0] < 1 || m[1] < 1 || m[2] < 1)
    throw Unsupported(relu.describe() + ": input of shape " + shape_to_string(s) +
                      " is not known before run time");
  return m;
}

// Floats one sample of `value` holds (its inferred shape without the batch dimension), or -1
// when that is not known before run time; 2^50 stands for anything larger (no overflow).
int64_t floats_per_sample(const model::Model& shaped, const std::string& value) {
  const Shape s = inferred_shape(shaped, value);
  if (s.empty()) return -1;
  constexpr int64_t kHuge = int64_t{1} << 50;
  int64_t n = 1;
  for (size_t i = 1; i < s.size(); ++i) {
    if (s[i] < 1) return -1;
    n = s[i] > kHuge / n ? kHuge : n * s[i];
  }
  return n;
}

// For every node: whether it reads (transitively) one of `roots`.
std::vector<bool> depends_on(const model::Graph& g, std::set<std::string> roots) {
  std::vector<bool> out(g.nodes.size(), false);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    for (const auto& v : g.nodes[i].inputs) out[i] = out[i] || (!v.empty() && roots.count(v));
    if (out[i])
      for (const auto& o : g.nodes[i].outputs) roots.insert(o);
  }
  return out;
}

// The network after one ReLU, as a model of its own.
struct Suffix {
  model::Model model;                  // inputs: the ReLU's output, then `externals`
  std::vector<std::string> externals;  // values computed before the ReLU that the suffix reads
};

Suffix build_suffix(const model::Model& m, const model::Node& relu) {
  const auto& g = m.graph;
  const std::string& y = relu.outputs.at(0);
  std::set<std::string> graph_inputs;
  for (const auto& in : g.inputs) graph_inputs.insert(in.name);
  const auto live = depends_on(g, graph_inputs);
  const auto tainted = depends_on(g, {y});
  const std::string& logits = g.outputs.at(0).name;

  Suffix s;
  s.model = m;
  auto& sg = s.model.graph;
  sg.nodes.clear();
  std::set<std::string> inside = {y};  // values the suffix model defines itself
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (!tainted[i] && live[i]) continue;
    sg.nodes.push_back(g.nodes[i]);
    for (const auto& o : g.nodes[i].outputs) inside.insert(o);
  }
  if (!inside.count(logits) || logits == y)
    throw Unsupported(relu.describe() + ": the logits '" + logits +
                      "' are not computed after it, so it cannot be measured");
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (!tainted[i]) continue;
    for (const auto& v : g.nodes[i].inputs)
      if (!v.empty() && !inside.count(v) && !g.is_initializer(v) &&
          std::find(s.externals.begin(), s.externals.end(), v) == s.externals.end())
        s.externals.push_back(v);
  }
  sg.inputs = {{y, DType::Float32, {}}};  // shaped by the caller
  for (const auto& v : s.externals) {
    Shape shape;
    if (auto it = g.value_info.find(v); it != g.value_info.end()) shape = it->second.shape;
    for (const auto& in : g.inputs)
      if (in.name == v) shape = in.shape;
    if (!shape.empty()) shape[0] = -1;  // fed with variants x samples rows
    sg.inputs.push_back({v, DType::Float32, shape});
  }
  sg.outputs = {g.outputs.at(0)};
  sg.value_info.clear();
  return s;
}

// Rows [begin, begin + count) of a [N, ...] tensor.
Tensor rows(const Tensor& t, int64_t begin, int64_t count) {
  Shape shape = t.shape();
  const int64_t per = t.numel() / std::max<int64_t>(shape.at(0), 1);
  shape[0] = count;
  auto src = t.floats();
  return Tensor::from_floats(
      std::move(shape),
      std::vector<float>(src.begin() + begin * per, src.begin() + (begin + count) * per));
}

// `parts` (each [n_i, ...]) joined along the batch.
Tensor concat_rows(const std::vector<Tensor>& parts) {
  Shape shape = parts.at(0).shape();
  shape[0] = 0;
  std::vector<float> v;
  for (const auto& p : parts) {
    shape[0] += p.dim(0);
    v.insert(v.end(), p.floats().begin(), p.floats().end());
  }
  return Tensor::from_floats(std::move(shape), std::move(v));
}

// `t` ([N, ...]) repeated `times` along the batch.
Tensor tile_rows(const Tensor& t, int64_t times) {
  return concat_rows(std::vector<Tensor>(static_cast<size_t>(times), t));
}

// Runs `m` on `images` in slices of at most `batch` images and returns `outputs`, each joined
// over the slices.
std::vector<Tensor> run_in_slices(model::Model m, const std::vector<std::string>& outputs,
                                  const Tensor& images, int64_t batch) {
  m.graph.outputs.clear();
  for (const auto& o : outputs) m.graph.outputs.push_back({o, DType::Float32, {}});
  nn::Executor exec(m);
  std::vector<std::vector<Tensor>> parts(outputs.size());
  const int64_t n = images.dim(0);
  for (int64_t b = 0; b < n; b += batch) {
    auto ys = exec.forward({rows(images, b, std::min(batch, n - b))});
    for (size_t i = 0; i < ys.size(); ++i) parts[i].push_back(std::move(ys[i]));
  }
  std::vector<Tensor> out;
  for (auto& p : parts) out.push_back(concat_rows(p));
  return out;
}

int64_t variants_of(const LayerDistortion& l) {
  return l.channels * static_cast<int64_t>(l.sizes.size() - 1);
}

struct Variant {
  int64_t channel = -1;  // -1: the clean network (the baseline)
  size_t size = 0;       // index into the layer's sizes
};

// Measures one layer's row; `done` counts the variants measured so far in the run.
void measure_layer(const model::Model& m, const model::Node& relu, const Tensor& images,
                   LayerDistortion& layer, const DistortionOptions& o, int64_t& done,
                   int64_t total) {
  const int64_t n = images.dim(0), c_count = layer.channels, plane = layer.height * layer.width;
  Suffix suffix = build_suffix(m, relu);

  // The clean pass: the ReLU's input and the values the suffix reads from before it.
  std::vector<std::string> wanted = {relu.inputs.at(0)};
  for (const auto& e : suffix.externals)
    if (std::find(wanted.begin(), wanted.end(), e) == wanted.end()) wanted.push_back(e);

  // Slot 0 of the first batch is the clean network: the baseline comes from the same executor
  // and batch shape as every variant, so a variant that changes nothing measures exactly 0.
  std::vector<Variant> slots = {{}};
  for (int64_t c = 0; c < c_count; ++c)
    for (size_t s = 1; s < layer.sizes.size(); ++s) slots.push_back({c, s});
  // No larger than the layer needs: a batch beyond its variants would be padding only.
  const int64_t per_batch = std::min<int64_t>(
      std::max<int64_t>(1, o.batch_images / std::max<int64_t>(n, 1)), std::ssize(slots));
  // Every batch has the same shape (the last one padded with clean slots): the same kernels run
  // for every variant, so the values do not depend on where a variant falls.
  while (static_cast<int64_t>(slots.size()) % per_batch) slots.push_back({});

  // What this layer keeps, from the inferred shapes before anything is allocated (the engine
  // plans its own runs): the clean values for every sample (twice while the slices are joined),
  // and one batch of variants (built, then copied into a tensor) with the tiled values the
  // suffix reads. Too many --samples or too large a --batch is one line, not the OOM killer.
  int64_t clean_floats = 0, tiled_floats = 0;
  bool known = true;
  for (const auto& w : wanted) {
    const int64_t f = floats_per_sample(m, w);
    known = known && f >= 0;
    clean_floats += std::max<int64_t>(f, 0);
    if (w != wanted[0]) tiled_floats += std::max<int64_t>(f, 0);
  }
  if (known) {
    const double bytes = 4.0 * static_cast<double>(n) *
                         (2.0 * static_cast<double>(clean_floats) +
                          static_cast<double>(per_batch) *
                              (2.0 * static_cast<double>(c_count) * static_cast<double>(plane) +
                               static_cast<double>(tiled_floats)));
    if (bytes > static_cast<double>(memory_budget()))
      throw InvalidArgument(fmt::format(
          "{}: measuring it needs {} for {} samples at {} variant{} per batch, over the memory "
          "budget of {}; give fewer --samples or a smaller --batch (or raise --max-memory)",
          relu.describe(), human_bytes(bytes >= 0x1p62 ? uint64_t{1} << 62 : uint64_t(bytes)), n,
          per_batch, per_batch == 1 ? "" : "s", human_bytes(memory_budget())));
  }

  const auto clean = run_in_slices(m, wanted, images, std::max<int64_t>(o.batch_images, 1));
  const Tensor& x = clean[0];
  if (x.numel() != n * c_count * plane)
    throw MalformedInput(relu.describe() + ": its input holds " + std::to_string(x.numel()) +
                         " values, not " +
                         shape_to_string({n, c_count, layer.height, layer.width}));

  std::vector<Tensor> inputs(1 + suffix.externals.size());
  for (size_t e = 0; e < suffix.externals.size(); ++e) {
    const auto pos = std::find(wanted.begin(), wanted.end(), suffix.externals[e]) - wanted.begin();
    inputs[1 + e] = tile_rows(clean[pos], per_batch);
  }
  Shape in_shape = x.shape();  // [N, C, H, W] or [N, C]
  in_shape[0] = -1;
  suffix.model.graph.inputs[0].shape = in_shape;
  in_shape[0] = per_batch * n;

  // The clean ReLU output, once.
  std::vector<float> y(static_cast<size_t>(x.numel()));
  const float* xs = x.data();
  for (int64_t i = 0; i < n * c_count; ++i)
    nn::block_relu_plane(xs + i * plane, y.data() + i * plane, layer.height, layer.width, {1, 1});

  nn::Executor exec(suffix.model);
  std::vector<float> baseline;
  std::vector<float> batch(static_cast<size_t>(per_batch * n * c_count * plane));
  const size_t slot_floats = y.size();
  for (size_t first = 0; first < slots.size(); first += static_cast<size_t>(per_batch)) {
    for (int64_t j = 0; j < per_batch; ++j) {
      float* dst = batch.data() + j * slot_floats;
      std::memcpy(dst, y.data(), slot_floats * sizeof(float));
      const Variant& v = slots[first + j];
      if (v.channel < 0) continue;
      for (int64_t i = 0; i < n; ++i) {
        const int64_t off = (i * c_count + v.channel) * plane;
        nn::block_relu_plane(xs + off, dst + off, layer.height, layer.width, layer.sizes[v.size]);
      }
    }
    inputs[0] = Tensor::from_floats(in_shape, batch);
    const Tensor logits = exec.forward(inputs).at(0);
    const auto l = logits.floats();
    const size_t per_slot = l.size() / static_cast<size_t>(per_batch);
    if (first == 0) baseline.assign(l.begin(), l.begin() + per_slot);
    int64_t measured = 0;
    for (int64_t j = 0; j < per_batch; ++j) {
      const Variant& v = slots[first + j];
      if (v.channel < 0) continue;
      double sum = 0;
      for (size_t k = 0; k < per_slot; ++k) {
        const double d = double(l[j * per_slot + k]) - baseline[k];
        sum += d * d;
      }
      const double mse = sum / static_cast<double>(per_slot);
      if (!std::isfinite(mse))
        throw Unsupported(relu.describe() + ": channel " + std::to_string(v.channel) +
                          " with a block ReLU gives non-finite logits");
      layer.distortion[static_cast<size_t>(v.channel) * layer.sizes.size() + v.size] = mse;
      ++measured;
    }
    done += measured;
    if (o.progress) o.progress(done, total);
  }
}

}  // namespace

DistortionTable plan_distortion(const model::Model& model, CandidateSizes set) {
  model::Model shaped = model;
  model::infer_shapes(shaped);
  DistortionTable t;
  for (const auto& node : shaped.graph.nodes) {
    if (!is_relu(node)) continue;
    const auto [c, h, w] = relu_map(shaped, node);
    LayerDistortion l;
    l.node = node.name;
    l.channels = c;
    l.height = h;
    l.width = w;
    l.sizes = candidate_block_sizes(h, w, set);
    l.distortion.assign(static_cast<size_t>(c) * l.sizes.size(), 0.0);
    t.layers.push_back(std::move(l));
  }
  if (t.layers.empty()) throw InvalidArgument("the model has no Relu node to measure");
  return t;
}

void require_same_plan(const DistortionTable& resumed, const DistortionTable& plan) {
  auto differ = [](const std::string& what) {
    throw InvalidArgument("the table to resume was measured with another " + what);
  };
  if (resumed.model_hash != plan.model_hash)
    differ("model (hash " + to_hex(resumed.model_hash) + ")");
  if (resumed.samples != plan.samples)
    differ("--samples (" + std::to_string(resumed.samples) + ")");
  if (resumed.seed != plan.seed) differ("--seed (" + std::to_string(resumed.seed) + ")");
  if (resumed.layers.size() != plan.layers.size()) differ("set of ReLU layers");
  for (size_t i = 0; i < plan.layers.size(); ++i) {
    const auto &a = resumed.layers[i], &b = plan.layers[i];
    if (a.node != b.node || a.channels != b.channels || a.height != b.height || a.width != b.width)
      differ("set of ReLU layers (layer " + std::to_string(i) + ")");
    if (a.sizes != b.sizes) differ("--sizes (layer '" + b.node + "')");
    if (a.distortion.size() != b.distortion.size()) differ("table shape");
  }
}

int64_t pending_variants(const DistortionTable& table) {
  int64_t n = 0;
  for (const auto& l : table.layers)
    if (!l.done) n += variants_of(l);
  return n;
}

void measure_distortion(const model::Model& model, const Tensor& images, DistortionTable& table,
                        const DistortionOptions& options) {
  if (images.rank() < 1 || images.dim(0) < 1) throw InvalidArgument("no sample images");
  if (model.graph.inputs.size() != 1 || model.graph.outputs.empty())
    throw Unsupported("distortion needs a model with one input and the logits as first output");
  model::Model shaped = model;
  model::infer_shapes(shaped);
  const int64_t total = pending_variants(table);
  int64_t done = 0, finished = 0;
  for (auto& layer : table.layers) {
    if (layer.done) continue;
    const model::Node* relu = nullptr;
    for (const auto& node : shaped.graph.nodes)
      if (node.name == layer.node && is_relu(node)) relu = &node;
    if (!relu) throw InvalidArgument("the model has no Relu node '" + layer.node + "'");
    measure_layer(shaped, *relu, images, layer, options, done, total);
    layer.done = true;
    if (options.layer_finished) options.layer_finished(table);
    if (options.stop_after_layers > 0 && ++finished >= options.stop_after_layers) return;
  }
}

}  // namespace veil::mpc
