// Slalom (Tramer & Boneh, ICLR 2019), section 3-4: the trusted part sends x_q + r mod P, where r
// is a one-time pad uniform in Z_P, and removes u = W r (precomputed offline) from the reply.
// Every x_q + r is uniform and independent of x, so the accelerator learns nothing about the
// inputs; the weights it multiplies by are the layer's own, quantised, in the clear.
//
// Integrity (options.verify): Freivalds' check over Z_P (section 3.1). At setup the trusted part
// draws `rounds` secret vectors s uniform in Z_P^M and keeps the folded filters
// w_s = sum_m s_m W_m. For an honest reply Y = W e (e the blinded payload),
// sum_m s_m Y_m = w_s (*) e at every output position; the check runs on the blinded payload, so
// it never needs the pad. A wrong reply Y = W e + D with D != 0 at some position passes there
// only if sum_m s_m D_m = 0 mod P: for a fixed nonzero D that is a nonzero degree-1 polynomial
// in s, zero with probability exactly 1/P per round (Schwartz-Zippel over the field Z_P), and
// the rounds are independent: false accept <= P^-rounds. The accelerator never sees s (only
// payloads go out), so its D cannot depend on s; across q corrupted replies the union bound
// gives q P^-rounds.
#include "veil/split/slalom.hpp"

#include <cmath>
#include <deque>
#include <optional>

#include "veil/core/error.hpp"
#include "veil/core/random.hpp"
#include "veil/split/quantize.hpp"
#include "veil/split/restore.hpp"

namespace veil::split {
namespace {

constexpr int kMaxRounds = 16;
constexpr int64_t kMaxPads = int64_t{1} << 24;  // images precomputed at once

Shape batched(int64_t batch, const Shape& image) {
  Shape s{batch};
  s.insert(s.end(), image.begin(), image.end());
  return s;
}

class Slalom final : public LayerScheme {
 public:
  Slalom(const LinearLayer& layer, const SchemeOptions& options)
      : layer_(layer),
        quant_(layer, options),
        verify_(options.verify),
        rounds_(options.verify ? options.verify_rounds : 0),
        seed_(random_seed()),
        pad_prg_(seed_, 0),
        in_numel_(shape_numel(layer.input_shape)),
        out_numel_(shape_numel(layer.output_shape)) {
    if (verify_ && (rounds_ < 1 || rounds_ > kMaxRounds))
      throw InvalidArgument("split: slalom: verify_rounds must be in [1, 16]");
    if (layer.output_shape.empty() || layer.output_shape[0] != layer.out_channels())
      throw InvalidArgument("split: slalom: output shape does not match the weight");
    if (verify_) draw_check();
  }

  OutsourcedLayer outsource() override { return outsourced_geometry(layer_, quant_.weight()); }

  void precompute(int64_t batch, int64_t queries) override {
    if (batch < 1 || queries < 0 || (queries > 0 && batch > kMaxPads / queries))
      throw InvalidArgument("split: slalom: precompute wants batch >= 1 and at most 2^24 pads");
    const int64_t chunk = std::max<int64_t>(batch, 16);
    for (int64_t left = batch * queries; left > 0; left -= chunk) {
      make_pads(std::min(left, chunk));
      stats_.precomputed += std::min(left, chunk);
    }
  }

  std::vector<Payload> encode(const Tensor& x) override {
    QuantizedInput q = quant_.quantize(x);
    const int64_t b = x.shape()[0];
    if (static_cast<int64_t>(pool_.size()) < b) {
      const int64_t missing = b - static_cast<int64_t>(pool_.size());
      make_pads(missing);
      stats_.on_the_fly += missing;
    }
    Pending p;
    p.batch = b;
    p.scale = std::move(q.scale);
    p.u.reserve(static_cast<size_t>(b * out_numel_));
    for (int64_t i = 0; i < b; ++i) {
      Pad pad = std::move(pool_.front());
      pool_.pop_front();  // each pad leaves the pool for good: used exactly once
      uint64_t* xi = q.x.values.data() + i * in_numel_;
      for (int64_t k = 0; k < in_numel_; ++k) xi[k] = field_add(xi[k], pad.r[k]);
      p.u.insert(p.u.end(), pad.u.begin(), pad.u.end());
    }
    stats_.used += b;
    if (verify_) p.sent = q.x;
    pending_ = std::move(p);
    return {std::move(q.x)};
  }

  Tensor decode(std::vector<Payload> replies) override {
    if (!pending_) throw InvalidArgument("split: slalom: decode without a pending encode");
    Pending p = std::move(*pending_);
    pending_.reset();
    if (replies.size() != 1) throw ProtocolError("split: slalom expects one reply");
    expect_field(replies[0], batched(p.batch, layer_.output_shape));
    FieldTensor y = std::move(std::get<FieldTensor>(replies[0]));
    for (uint64_t v : y.values)
      if (v >= kFieldPrime) throw IntegrityError("split: slalom: reply value not in Z_P");
    if (verify_) check(p.sent, y);
    for (size_t i = 0; i < y.values.size(); ++i) y.values[i] = field_sub(y.values[i], p.u[i]);
    return quant_.dequantize(y, p.scale);
  }

  size_t trusted_bytes() const override {
    size_t pads = 0;
    for (const Pad& pad : pool_) pads += (pad.r.size() + pad.u.size()) * sizeof(uint32_t);
    size_t pending = 0;
    if (pending_) pending = (pending_->u.size() + pending_->sent.values.size()) * sizeof(uint64_t);
    return quant_.bytes() + pads + pending + sizeof(seed_) +
           (s_.size() + folded_.values.size()) * sizeof(uint64_t);
  }

  double false_accept_bound() const override {
    return verify_ ? std::pow(1.0 / static_cast<double>(kFieldPrime), rounds_) : 1.0;
  }

  SlalomPads pads() const {
    SlalomPads p = stats_;
    p.pooled = static_cast<int64_t>(pool_.size());
    return p;
  }

 private:
  // One image's pad r (uniform in Z_P) and its product u = W r. Field elements fit 32 bits.
  struct Pad {
    std::vector<uint32_t> r, u;
  };
  struct Pending {
    int64_t batch = 0;
    InputScale scale;
    std::vector<uint64_t> u;  // the pads' products, [B, output...]
    FieldTensor sent;         // the blinded payload (kept only to verify)
  };

  void make_pads(int64_t count) {
    FieldTensor r;
    r.shape = batched(count, layer_.input_shape);
    r.values.resize(static_cast<size_t>(count * in_numel_));
    for (uint64_t& v : r.values) v = pad_prg_.uniform(kFieldPrime);
    // The trusted part multiplies with its own copy of the quantised weights (offline).
    const FieldTensor u = apply_linear_field(layer_, quant_.weight(), r);
    for (int64_t i = 0; i < count; ++i) {
      Pad pad;
      pad.r.assign(r.values.begin() + i * in_numel_, r.values.begin() + (i + 1) * in_numel_);
      pad.u.assign(u.values.begin() + i * out_numel_, u.values.begin() + (i + 1) * out_numel_);
      pool_.push_back(std::move(pad));
    }
  }

  // Freivalds' secrets: s [rounds, M] and the folded filters w_s [rounds, C, ...] (their own
  // PRG stream under the layer's seed).
  void draw_check() {
    AesCtrPrg prg(seed_, 1);
    const int64_t m = layer_.out_channels();
    const FieldTensor& w = quant_.weight();
    const int64_t terms = w.numel() / m;
    s_.resize(static_cast<size_t>(rounds_ * m));
    for (uint64_t& v : s_) v = prg.uniform(kFieldPrime);
    folded_.shape = w.shape;
    folded_.shape[0] = rounds_;
    folded_.values.assign(static_cast<size_t>(rounds_ * terms), 0);
    for (int t = 0; t < rounds_; ++t)
      for (int64_t o = 0; o < m; ++o)
        for (int64_t k = 0; k < terms; ++k) {
          uint64_t& acc = folded_.values[t * terms + k];
          acc = field_add(acc, field_mul(s_[t * m + o], w.values[o * terms + k]));
        }
  }

  // sum_m s_m reply_m == w_s (*) sent at every output position of every image and round.
  void check(const FieldTensor& sent, const FieldTensor& reply) const {
    const FieldTensor expect = apply_linear_field_wide(layer_, folded_, sent);
    const int64_t m = layer_.out_channels(), b = reply.shape[0];
    const int64_t inner = out_numel_ / m;
    std::vector<uint64_t> acc(static_cast<size_t>(inner));
    for (int64_t i = 0; i < b; ++i)
      for (int t = 0; t < rounds_; ++t) {
        std::fill(acc.begin(), acc.end(), 0);
        for (int64_t o = 0; o < m; ++o) {
          const uint64_t s = s_[t * m + o];
          const uint64_t* y = reply.values.data() + (i * m + o) * inner;
          for (int64_t j = 0; j < inner; ++j) acc[j] = field_add(acc[j], field_mul(s, y[j]));
        }
        const uint64_t* e = expect.values.data() + (i * rounds_ + t) * inner;
        for (int64_t j = 0; j < inner; ++j)
          if (acc[j] != e[j])
            throw IntegrityError("split: slalom: " + layer_.name +
                                 ": the accelerator's reply fails Freivalds' check");
      }
  }

  LinearLayer layer_;
  LayerQuantizer quant_;
  bool verify_;
  int rounds_;
  Seed seed_;
  AesCtrPrg pad_prg_;
  int64_t in_numel_, out_numel_;
  std::deque<Pad> pool_;
  std::optional<Pending> pending_;
  std::vector<uint64_t> s_;
  FieldTensor folded_;
  SlalomPads stats_;
};

}  // namespace

std::unique_ptr<LayerScheme> make_slalom(const LinearLayer& layer, const SchemeOptions& options) {
  return std::make_unique<Slalom>(layer, options);
}

SlalomPads slalom_pads(const LayerScheme& scheme) {
  const auto* s = dynamic_cast<const Slalom*>(&scheme);
  if (s == nullptr) throw InvalidArgument("split: not a slalom scheme");
  return s->pads();
}

}  // namespace veil::split
