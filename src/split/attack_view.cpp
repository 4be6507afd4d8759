#include "attack_view.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <optional>
#include <set>

#include "veil/core/error.hpp"
#include "veil/nn/executor.hpp"
#include "veil/split/accelerator.hpp"
#include "veil/split/activation_pairing.hpp"
#include "veil/split/filter_calibration.hpp"

namespace veil::split::attack_detail {

// What crossed the channel as numbers: floats, or field elements as centred integers (a fixed
// point scale does not matter to cosines and correlations).
Values values_of(const std::variant<Tensor, FieldTensor>& p) {
  Values out;
  if (const auto* t = std::get_if<Tensor>(&p)) {
    out.shape = t->shape();
    const auto f = t->floats();
    out.v.assign(f.begin(), f.end());
  } else {
    const auto& f = std::get<FieldTensor>(p);
    out.shape = f.shape;
    out.v.reserve(f.values.size());
    for (uint64_t x : f.values) out.v.push_back(static_cast<double>(centred(x)));
  }
  return out;
}

// The first offloaded layer that reads what layer l wrote, through trusted steps only (their
// channel-wise ops carry channel n to channel n); nullopt when none does.
std::optional<size_t> next_linear(const Partition& p, size_t l) {
  std::set<std::string> reach{p.linear[l].output};
  bool after = false;
  for (const Step& s : p.order) {
    if (s.linear && s.index == l) {
      after = true;
      continue;
    }
    if (!after) continue;
    if (s.linear) {
      if (reach.count(p.linear[s.index].input)) return s.index;
      continue;
    }
    const TrustedStep& t = p.trusted[s.index];
    if (std::any_of(t.inputs.begin(), t.inputs.end(), [&](auto& v) { return reach.count(v); }))
      reach.insert(t.outputs.begin(), t.outputs.end());
  }
  return std::nullopt;
}

// The grid the next layer sees layer l's channels on: its own spatial size (conv) or, after a
// flatten, the square block of features each channel became. {1, 1} (per-image channel means)
// when the two grids do not divide.
std::pair<int64_t, int64_t> next_grid(const LinearLayer& layer, const LinearLayer& next,
                                      int64_t n) {
  const Shape& out = layer.output_shape;
  if (out.size() != 3) return {1, 1};
  int64_t h = 1, w = 1;
  if (next.input_shape.size() == 3) {
    h = next.input_shape[1], w = next.input_shape[2];
  } else {
    const int64_t block = next.input_shape.at(0) / n;
    const auto side = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(block))));
    if (side * side == block) h = w = side;
  }
  if (h < 1 || w < 1 || out[1] % h != 0 || out[2] % w != 0) return {1, 1};
  return {h, w};
}

// Samples for matching layer l's restored filters to the channels of the next layer's input:
// per image and per cell of the next layer's grid, each filter's estimated pre-activation
// s* Y'_a + Y'_b averaged over the cell (x), and each channel's input value averaged over its
// block (y), both centred per cell across images (ShadowNet's fixed mask is a constant per
// element: centring removes it). Returns the number of images (0 when the shapes do not fit).
int64_t activation_samples(const Transcript& view, size_t l, size_t next, const Recovery& r,
                           int64_t n, std::pair<int64_t, int64_t> grid, std::vector<double>& x,
                           std::vector<double>& y, std::optional<size_t> skip_layer,
                           std::vector<double>& skip, const Recovery* partner) {
  std::vector<const TranscriptQuery*> ql, qn, qs;
  for (const auto& q : view.queries) {
    if (q.layer == l) ql.push_back(&q);
    if (q.layer == next) qn.push_back(&q);
    if (skip_layer && q.layer == *skip_layer) qs.push_back(&q);
  }
  const int64_t cells = grid.first * grid.second;
  int64_t images = 0;
  for (size_t i = 0; i < std::min(ql.size(), qn.size()); ++i) {
    if (ql[i]->outputs.empty() || qn[i]->inputs.empty()) return 0;
    const Values out = values_of(ql[i]->outputs[0]);
    const Values in = values_of(qn[i]->inputs[0]);
    if (out.shape.size() < 2 || in.shape.size() < 2 || out.shape[0] != in.shape[0]) return 0;
    const int64_t b = out.shape[0], slots = out.shape[1];
    const int64_t oh = out.shape.size() == 4 ? out.shape[2] : 1;
    const int64_t ow = out.shape.size() == 4 ? out.shape[3] : 1;
    const int64_t features = static_cast<int64_t>(in.v.size()) / b;
    if (features % n != 0 || oh % grid.first != 0 || ow % grid.second != 0) return 0;
    const int64_t block = features / n, per_cell = block / cells;
    if (block % cells != 0) return 0;
    const int64_t fh = oh / grid.first, fw = ow / grid.second;
    Values res;  // the block's input, or (partner) the projection shortcut's outputs
    if (skip_layer) {
      if (i >= qs.size()) return 0;
      res = values_of(partner ? qs[i]->outputs.at(0) : qs[i]->inputs.at(0));
      const int64_t channels = partner ? res.shape.at(1) : n;
      if (static_cast<int64_t>(res.v.size()) != b * channels * oh * ow) return 0;
    }
    for (int64_t img = 0; img < b; ++img) {
      for (int64_t cell = 0; cell < cells; ++cell)
        for (const FilterPair& p : r.pairing.pairs) {
          if (p.real >= slots || p.fake >= slots) return 0;
          const double* ya = out.v.data() + (img * slots + p.real) * oh * ow;
          const double* yb = out.v.data() + (img * slots + p.fake) * oh * ow;
          const int64_t ci = cell / grid.second, cj = cell % grid.second;
          double s = 0;
          for (int64_t u = ci * fh; u < (ci + 1) * fh; ++u)
            for (int64_t v = cj * fw; v < (cj + 1) * fw; ++v)
              s += p.scale * ya[u * ow + v] + yb[u * ow + v];
          x.push_back(s / static_cast<double>(fh * fw));
        }
      if (skip_layer)  // the residual on the same cells, channel by channel
        for (int64_t cell = 0; cell < cells; ++cell)
          for (int64_t c = 0; c < n; ++c) {
            const int64_t ci = cell / grid.second, cj = cell % grid.second;
            double s = 0;
            if (partner) {  // the partner's estimated pre-activation at channel c
              const auto k2 = std::find(partner->channel.begin(), partner->channel.end(), c) -
                              partner->channel.begin();
              const FilterPair& q = partner->pairing.pairs.at(static_cast<size_t>(k2));
              const int64_t ps = res.shape.at(1);
              for (int64_t u = ci * fh; u < (ci + 1) * fh; ++u)
                for (int64_t v = cj * fw; v < (cj + 1) * fw; ++v)
                  s += q.scale * res.v[((img * ps + q.real) * oh + u) * ow + v] +
                       res.v[((img * ps + q.fake) * oh + u) * ow + v];
            } else {
              for (int64_t u = ci * fh; u < (ci + 1) * fh; ++u)
                for (int64_t v = cj * fw; v < (cj + 1) * fw; ++v)
                  s += res.v[((img * n + c) * oh + u) * ow + v];
            }
            skip.push_back(s / static_cast<double>(fh * fw));
          }
      for (int64_t cell = 0; cell < cells; ++cell)
        for (int64_t c = 0; c < n; ++c) {
          const double* f = in.v.data() + img * features + c * block + cell * per_cell;
          y.push_back(std::accumulate(f, f + per_cell, 0.0) / static_cast<double>(per_cell));
        }
    }
    images += b;
  }
  // Centre every (cell, column) across images.
  for (auto* m : {&x, &y, &skip})
    for (int64_t k = 0; k < cells * n && !m->empty(); ++k) {
      double mean = 0;
      for (int64_t img = 0; img < images; ++img) mean += (*m)[img * cells * n + k];
      mean /= static_cast<double>(std::max<int64_t>(images, 1));
      for (int64_t img = 0; img < images; ++img) (*m)[img * cells * n + k] -= mean;
    }
  return images;
}

// Per element, the smallest value layer l received over all recorded queries: ShadowNet's fixed
// mask wherever the trusted activation (a ReLU output, pooled or summed: never negative) was 0 for
// at least one image. Zero for the graph input, which is sent unmasked.
std::vector<double> estimated_mask(const Transcript& view, const Partition& part, size_t l) {
  std::vector<double> mask;
  if (part.linear[l].input == part.input) return mask;
  for (const auto& q : view.queries) {
    if (q.layer != l || q.inputs.empty()) continue;
    const Values in = values_of(q.inputs[0]);
    const int64_t b = in.shape.at(0), per = static_cast<int64_t>(in.v.size()) / b;
    if (mask.empty()) mask.assign(per, std::numeric_limits<double>::infinity());
    if (static_cast<int64_t>(mask.size()) != per) return {};
    for (int64_t i = 0; i < b; ++i)
      for (int64_t j = 0; j < per; ++j) mask[j] = std::min(mask[j], in.v[i * per + j]);
  }
  return mask;
}

// Re-pairs a layer from the activations (veil/split/activation_pairing.hpp) when the next layer
// receives its channels element by element (ReLU, no pooling, no residual add). Returns whether it
// did; the pairs then come in channel order (pair c feeds channel c).
bool pair_by_activations(const Transcript& view, const Partition& part, size_t l, size_t next,
                         Recovery& r) {
  const LinearLayer& layer = part.linear[l].layer;
  const LinearLayer& nl = part.linear[next].layer;
  const int64_t n = layer.out_channels(), dim = layer.weight.numel() / n;
  if (r.field || layer.output_shape.size() != 3 || nl.input_shape != layer.output_shape)
    return false;
  // Only a ReLU in between: the step that writes the next layer's input reads this layer's output
  // and holds nothing else.
  bool relu_only = false;
  for (const TrustedStep& t : part.trusted)
    if (std::count(t.outputs.begin(), t.outputs.end(), part.linear[next].input))
      relu_only = t.sub.graph.nodes.size() == 1 && t.sub.graph.nodes[0].op_type == "Relu" &&
                  t.inputs == std::vector<std::string>{part.linear[l].output};
  if (!relu_only) return false;
  const int64_t positions = layer.output_shape[1] * layer.output_shape[2];
  const int64_t slots = view.layers[l].output_shape.at(0);
  std::vector<const TranscriptQuery*> ql, qn;
  for (const auto& q : view.queries) {
    if (q.layer == l) ql.push_back(&q);
    if (q.layer == next) qn.push_back(&q);
  }
  int64_t total = 0;
  for (size_t i = 0; i < std::min(ql.size(), qn.size()); ++i)
    total +=
        std::get_if<Tensor>(&ql[i]->outputs.at(0)) ? std::get<Tensor>(ql[i]->outputs[0]).dim(0) : 0;
  if (total < 2) return false;
  // Every position of a few images would do as well as a few positions of every image; a stride
  // keeps the work near 50k samples per channel.
  const int64_t stride = std::max<int64_t>(1, total * positions / 50000);
  std::vector<std::vector<double>> outputs(n), target(n);
  std::vector<int64_t> element;
  for (size_t i = 0; i < std::min(ql.size(), qn.size()); ++i) {
    const Values out = values_of(ql[i]->outputs.at(0));
    const Values in = values_of(qn[i]->inputs.at(0));
    const int64_t batch = out.shape.at(0);
    if (static_cast<int64_t>(in.v.size()) != batch * n * positions) return false;
    for (int64_t img = 0; img < batch; ++img)
      for (int64_t pos = 0; pos < positions; pos += stride) {
        element.push_back(pos);
        for (int64_t m = 0; m < slots; ++m)
          outputs[0].push_back(out.v[(img * slots + m) * positions + pos]);
        for (int64_t c = 0; c < n; ++c) target[c].push_back(in.v[(img * n + c) * positions + pos]);
      }
  }
  LayerPairing pairing = r.pairing;
  pairing.pairs.clear();
  for (int64_t c = 0; c < n; ++c) {
    const auto src = explain_channel(outputs[0], target[c], element, slots, positions);
    if (src.real < 0 || src.fit < 0.9 || !(src.scale > 0)) return false;
    pairing.pairs.push_back({src.real, src.fake, 0, src.scale});
  }
  r.pairing = pairing;
  r.filters = estimate_filters(r.rows, dim, r.pairing);
  r.channel.resize(n);
  std::iota(r.channel.begin(), r.channel.end(), 0);
  return true;
}

// The residual the trusted part adds to layer l's output before the next layer, when the view
// shows it: the step writing the next layer's input is Add then Relu (then possibly pooling and a
// flatten: calibration needs them absent, matching does not), and the Add's other
// input is either what another offloaded layer reads (an identity shortcut: the block's input,
// which its first convolution receives masked) or what another offloaded layer writes (a
// projection shortcut: then both are fitted together).
std::optional<Residual> known_residual(const Partition& part, size_t l, size_t next) {
  for (const TrustedStep& t : part.trusted) {
    if (!std::count(t.outputs.begin(), t.outputs.end(), part.linear[next].input)) continue;
    const auto& nodes = t.sub.graph.nodes;
    // Add, Relu, then at most channel-wise pooling and a flatten (before a classifier).
    if (nodes.size() < 2 || nodes[0].op_type != "Add" || nodes[1].op_type != "Relu" ||
        nodes[0].inputs.size() != 2 || nodes[1].inputs.at(0) != nodes[0].outputs.at(0))
      return std::nullopt;
    for (size_t i = 2; i < nodes.size(); ++i)
      if (nodes[i].op_type != "GlobalAveragePool" && nodes[i].op_type != "AveragePool" &&
          nodes[i].op_type != "MaxPool" && nodes[i].op_type != "Flatten")
        return std::nullopt;
    const auto& in = nodes[0].inputs;
    const std::string& own = part.linear[l].output;
    if (in[0] != own && in[1] != own) return std::nullopt;
    const std::string& other = in[0] == own ? in[1] : in[0];
    for (size_t k = 0; k < part.linear.size(); ++k) {
      if (part.linear[k].input == other) return Residual{k, false};
      if (part.linear[k].output == other) return Residual{k, true};
    }
  }
  return std::nullopt;
}

// What the fixed mask of layer l's input contributes to each of its outsourced channels, per
// position (W' applied to the estimated mask; zeros for the unmasked graph input).
std::vector<double> mask_contribution(const Transcript& view, const Partition& part, size_t l) {
  const OutsourcedLayer& seen = view.layers[l];
  int64_t per = 1;
  for (size_t i = 1; i < seen.output_shape.size(); ++i) per *= seen.output_shape[i];
  std::vector<double> out(seen.output_shape.at(0) * per, 0);
  const auto mask = estimated_mask(view, part, l);
  if (mask.empty()) return out;
  Shape shape{1};
  shape.insert(shape.end(), seen.input_shape.begin(), seen.input_shape.end());
  Tensor m(shape);
  for (size_t j = 0; j < mask.size(); ++j) m.data()[j] = static_cast<float>(mask[j]);
  return values_of(apply_outsourced(seen, m)).v;
}

// Fits every paired filter's scale and bias (veil/split/filter_calibration.hpp) on what the next
// layer received, once the channels are matched. Filters whose fit is poor (a residual add in
// between, a channel that never fires) keep the pairing's estimate.
void calibrate_layer(const Transcript& view, const Partition& part, size_t l, size_t next,
                     std::pair<int64_t, int64_t> grid, std::vector<Recovery>& rec) {
  Recovery& r = rec[l];
  const LinearLayer& layer = part.linear[l].layer;
  const int64_t n = layer.out_channels();
  const OutsourcedLayer& seen = view.layers[l];
  if (r.field || (layer.output_shape.size() != 3 && layer.output_shape.size() != 1)) return;
  const int64_t oh = layer.output_shape.size() == 3 ? layer.output_shape[1] : 1;
  const int64_t ow = layer.output_shape.size() == 3 ? layer.output_shape[2] : 1;
  const int64_t cells = grid.first * grid.second, fh = oh / grid.first, fw = ow / grid.second;
  const int64_t slots = seen.output_shape.at(0), positions = oh * ow;
  const auto mask_next = estimated_mask(view, part, next);
  const auto residual = known_residual(part, l, next);
  if (residual && ((residual->is_output && cells != positions) ||
                   (residual->is_output
                        ? part.linear[residual->layer].layer.output_shape
                        : part.linear[residual->layer].layer.input_shape) != layer.output_shape))
    return;
  // A projection shortcut is fitted with its partner, once, from the lower of the two layers.
  Recovery* partner = residual && residual->is_output ? &rec[residual->layer] : nullptr;
  if (partner &&
      (residual->layer < l || partner->kind != "paired" || !partner->unpermuted || partner->field))
    return;
  const auto mask_skip = residual && !residual->is_output
                             ? estimated_mask(view, part, residual->layer)
                             : std::vector<double>{};
  const auto mask_out = mask_contribution(view, part, l);
  const auto partner_mask_out =
      partner ? mask_contribution(view, part, residual->layer) : std::vector<double>{};
  std::vector<int64_t> partner_pair(n, -1);  // channel -> the partner's pair
  if (partner)
    for (size_t k = 0; k < partner->channel.size(); ++k) partner_pair[partner->channel[k]] = k;
  const int64_t partner_slots = partner ? view.layers[residual->layer].output_shape.at(0) : 0;
  std::vector<std::vector<double>> a(n), rest(n), target(n), a2(n);
  int64_t images = 0;
  std::vector<const TranscriptQuery*> ql, qn, qs;
  for (const auto& q : view.queries) {
    if (q.layer == l) ql.push_back(&q);
    if (q.layer == next) qn.push_back(&q);
    if (residual && q.layer == residual->layer) qs.push_back(&q);
  }
  for (size_t i = 0; i < std::min(ql.size(), qn.size()); ++i) {
    const Values out = values_of(ql[i]->outputs.at(0));
    const Values in = values_of(qn[i]->inputs.at(0));
    Values res;  // the block's input (identity shortcut) or the partner's outputs
    if (residual) {
      if (i >= qs.size()) return;
      res = values_of(residual->is_output ? qs[i]->outputs.at(0) : qs[i]->inputs.at(0));
    }
    const int64_t batch = out.shape.at(0), features = static_cast<int64_t>(in.v.size()) / batch;
    if (features != n * cells) return;  // the next layer sees more than one value per cell
    for (int64_t img = 0; img < batch; ++img)
      for (size_t k = 0; k < r.pairing.pairs.size(); ++k) {
        const FilterPair& p = r.pairing.pairs[k];
        const int64_t c = r.channel[k];
        for (int64_t cell = 0; cell < cells; ++cell) {
          const int64_t ci = cell / grid.second, cj = cell % grid.second;
          for (int64_t u = ci * fh; u < (ci + 1) * fh; ++u)
            for (int64_t v = cj * fw; v < (cj + 1) * fw; ++v) {
              const int64_t pos = u * ow + v;
              a[k].push_back(out.v[(img * slots + p.real) * positions + pos] -
                             mask_out[p.real * positions + pos]);
              rest[k].push_back(out.v[(img * slots + p.fake) * positions + pos] -
                                mask_out[p.fake * positions + pos]);
              if (partner) {
                const FilterPair& q = partner->pairing.pairs.at(partner_pair[c]);
                auto seen2 = [&](int64_t slot) {
                  return res.v[(img * partner_slots + slot) * positions + pos] -
                         partner_mask_out[slot * positions + pos];
                };
                a2[k].push_back(seen2(q.real));
                rest[k].back() += seen2(q.fake);
              } else if (residual) {  // the block's input, position by position
                rest[k].back() += res.v[(img * n + c) * positions + pos] -
                                  (mask_skip.empty() ? 0 : mask_skip[c * positions + pos]);
              }
            }
          const int64_t e = c * cells + cell;
          target[k].push_back(in.v[img * features + e] - (mask_next.empty() ? 0 : mask_next[e]));
        }
      }
    images += batch;
  }
  if (images < 2) return;
  r.bias.assign(n, 0);
  if (partner && partner->bias.empty()) partner->bias.assign(n, 0);
  auto set_filter = [](Recovery& rr, size_t k, double scale) {  // rr's own filter length
    const FilterPair& p = rr.pairing.pairs[k];
    const size_t d = rr.filters.size() / rr.pairing.pairs.size();
    for (size_t j = 0; j < d; ++j)
      rr.filters[k * d + j] = scale * rr.rows[p.real * d + j] + rr.rows[p.fake * d + j];
  };
  std::vector<int64_t> element;
  for (int64_t img = 0; img < images && residual; ++img)
    for (int64_t cell = 0; cell < cells; ++cell) element.push_back(cell);
  for (size_t k = 0; k < r.pairing.pairs.size(); ++k) {
    if (residual && cells != positions) {  // pooled after the add: mean of the ReLU
      const auto fit = calibrate_mean_pooled_filter(a[k], rest[k], target[k], images * cells,
                                                    fh * fw, r.pairing.pairs[k].scale);
      if (fit.fit < 0.9) continue;
      set_filter(r, k, fit.scale);
      r.bias[r.channel[k]] = fit.bias;
      ++r.calibrated;
      continue;
    }
    if (residual) {
      if (partner && partner_pair[r.channel[k]] < 0) continue;
      const auto fit =
          partner ? calibrate_summed_filters({a[k], a2[k]}, rest[k], target[k], element, cells)
                  : calibrate_summed_filters({a[k]}, rest[k], target[k], element, cells);
      if (fit.fit < 0.9 || fit.scales.empty()) continue;
      set_filter(r, k, fit.scales[0]);
      r.bias[r.channel[k]] = fit.bias;  // the partner's share of the sum stays 0
      ++r.calibrated;
      if (partner) {
        set_filter(*partner, partner_pair[r.channel[k]], fit.scales[1]);
        ++partner->calibrated;
      }
      continue;
    }
    const auto fit = calibrate_filter(a[k], rest[k], target[k], images, cells, fh * fw,
                                      r.pairing.pairs[k].scale);
    if (fit.fit < 0.9) continue;
    set_filter(r, k, fit.scale);
    r.bias[r.channel[k]] = fit.bias;
    ++r.calibrated;
  }
}

// How well a candidate's logits on the recorded queries agree with what the accelerator saw of
// the victim's: the victim's logit n is s_n A_n + B_n + b_n, with A_n and B_n the two outsourced
// channels of its pair (input mask removed), so the candidate's logit n should lie in their span
// with a constant. Returns the mean R^2 over the classes (1: the victim's logits up to the
// per-class scale and bias the view cannot show), or -1 when the view does not allow it (the
// query images are the first layer's inputs, unmasked).
double transcript_agreement(model::Model& m, const Transcript& view, const Partition& part,
                            size_t out_layer, const Recovery& r, int threads) {
  if (r.kind != "paired" || part.linear[0].input != part.input) return -1;
  const auto mask = estimated_mask(view, part, out_layer);
  const OutsourcedLayer& seen = view.layers[out_layer];
  std::vector<double> mask_out(seen.output_shape.at(0), 0);
  if (!mask.empty()) {
    Tensor t(Shape{1, static_cast<int64_t>(mask.size())});
    for (size_t j = 0; j < mask.size(); ++j) t.data()[j] = static_cast<float>(mask[j]);
    if (seen.input_shape.size() != 1) return -1;
    mask_out = values_of(apply_outsourced(seen, t)).v;
  }
  std::vector<const TranscriptQuery*> q0, ql;
  for (const auto& q : view.queries) {
    if (q.layer == 0) q0.push_back(&q);
    if (q.layer == out_layer) ql.push_back(&q);
  }
  nn::ExecutorOptions eo;
  eo.threads = threads;
  nn::Executor exec(m, eo);
  const auto n = static_cast<int64_t>(r.pairing.pairs.size());
  std::vector<std::vector<double>> a(n), b(n), logit(n);
  for (size_t i = 0; i < std::min(q0.size(), ql.size()); ++i) {
    const auto* x = std::get_if<Tensor>(&q0[i]->inputs.at(0));
    if (x == nullptr) return -1;
    const Tensor y = exec.forward({*x})[0];
    const Values out = values_of(ql[i]->outputs.at(0));
    const int64_t batch = x->dim(0), slots = out.shape.at(1);
    if (out.shape.at(0) != batch || y.numel() != batch * n) return -1;
    for (int64_t img = 0; img < batch; ++img)
      for (int64_t k = 0; k < n; ++k) {
        const auto& p = r.pairing.pairs[k];
        a[k].push_back(out.v[img * slots + p.real] - mask_out[p.real]);
        b[k].push_back(out.v[img * slots + p.fake] - mask_out[p.fake]);
        logit[k].push_back(y.data()[img * n + r.channel[k]]);
      }
  }
  if (logit.empty() || logit[0].size() < 4) return -1;
  double total = 0;
  for (int64_t k = 0; k < n; ++k) {
    // least squares of logit on [a, b, 1] by the normal equations (3 x 3)
    const size_t m_ = logit[k].size();
    double g[3][3] = {}, h[3] = {}, yy = 0, ym = 0;
    for (size_t i = 0; i < m_; ++i) {
      const double f[3] = {a[k][i], b[k][i], 1.0};
      for (int u = 0; u < 3; ++u) {
        h[u] += f[u] * logit[k][i];
        for (int v = 0; v < 3; ++v) g[u][v] += f[u] * f[v];
      }
      yy += logit[k][i] * logit[k][i], ym += logit[k][i];
    }
    // solve g c = h (Gaussian elimination with partial pivoting)
    double c[3] = {};
    int idx[3] = {0, 1, 2};
    for (int col = 0; col < 3; ++col) {
      int piv = col;
      for (int row = col + 1; row < 3; ++row)
        if (std::abs(g[row][col]) > std::abs(g[piv][col])) piv = row;
      std::swap(g[col], g[piv]), std::swap(h[col], h[piv]);
      if (std::abs(g[col][col]) < 1e-300) return -1;
      for (int row = col + 1; row < 3; ++row) {
        const double f = g[row][col] / g[col][col];
        for (int v = col; v < 3; ++v) g[row][v] -= f * g[col][v];
        h[row] -= f * h[col];
      }
    }
    for (int row = 2; row >= 0; --row) {
      double sum = h[row];
      for (int v = row + 1; v < 3; ++v) sum -= g[row][v] * c[v];
      c[row] = sum / g[row][row];
    }
    (void)idx;
    double res = 0;
    for (size_t i = 0; i < m_; ++i) {
      const double e = logit[k][i] - (c[0] * a[k][i] + c[1] * b[k][i] + c[2]);
      res += e * e;
    }
    const double var = yy - ym * ym / static_cast<double>(m_);
    total += var > 0 ? std::max(0.0, 1 - res / var) : 0;
  }
  return total / static_cast<double>(n);
}

}  // namespace veil::split::attack_detail
