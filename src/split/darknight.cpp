// DarkNight (Hashemi et al., MICRO 2021), section 4: a group of K quantised images X_0..X_{K-1}
// and one noise vector X_K = r uniform in Z_P^n are mixed by a secret invertible (K+1) x (K+1)
// matrix A: E_j = sum_i A_ji X_i. By linearity the accelerator's W E_j = sum_i A_ji W X_i, and
// the trusted part decodes W X_i = sum_j (A^-1)_ij (W E_j) mod P. A and r are fresh per group;
// a batch is cut into groups of at most 8 (kGroup).
// Each E_j alone is uniform (A_jK != 0 multiplies a one-time pad); two of them together cancel
// the noise, which is why the privacy argument needs accelerators that do not collude.
//
// Integrity (options.verify): per round t one redundant encoding E_R = sum_j c_j E_j, c_j secret
// and uniform in Z_P^*; the reply must satisfy W E_R = sum_j c_j (W E_j) mod P elementwise.
// Errors D_j on the K+1 replies and D_R on the redundant one pass an element iff
// sum_j c_j D_j = D_R. If some D_j != 0 and c is unknown to whoever chose the errors, c_j D_j is
// uniform on Z_P^*, so this holds with probability <= 1/(P-1); errors on the redundant reply
// alone are always caught. Independent rounds: <= (P-1)^-rounds. That premise fails for one
// accelerator that sees every encoding: E_R is a known combination of the E_j, so solving
// E_R = sum_j c_j E_j (n equations, K+1 unknowns) gives c, and then a consistent corruption
// (D_R = sum_j c_j D_j) always passes. The bound holds for faults that do not depend on c
// (injected faults, non-colluding accelerators), not against a malicious single accelerator.
#include "veil/split/darknight.hpp"

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>

#include "veil/core/error.hpp"
#include "veil/split/quantize.hpp"
#include "veil/split/restore.hpp"

namespace veil::split {
namespace {

constexpr int kMaxRounds = 16;
constexpr int64_t kMaxBatch = 1024;  // largest mixing matrix
// Images mixed together. Mixing costs O(K) per element and image, comparable to the layer
// itself for K ~ its terms per output; groups of at most 8 keep that small for any batch size.
constexpr int64_t kGroup = 8;

uint64_t nonzero(AesCtrPrg& prg) { return 1 + prg.uniform(kFieldPrime - 1); }

Shape image_shape(const Shape& image) {
  Shape s{1};
  s.insert(s.end(), image.begin(), image.end());
  return s;
}

// out = sum_i coef[i] src[i] mod P, elementwise over n values. Each product (< 2^62) is folded
// once to below 2^32 and the folds summed in uint64 (up to 1025 of them: < 2^43); one reduction
// at the end.
void combine(const std::vector<const uint64_t*>& src, const uint64_t* coef, int64_t n,
             uint64_t* out) {
  std::fill(out, out + n, 0);
  for (size_t i = 0; i < src.size(); ++i) {
    const uint64_t c = coef[i];
    const uint64_t* s = src[i];
    for (int64_t e = 0; e < n; ++e) {
      const uint64_t prod = c * s[e];
      out[e] += (prod & kFieldPrime) + (prod >> 31);
    }
  }
  for (int64_t e = 0; e < n; ++e) out[e] = field_reduce(out[e]);
}

class DarkNight final : public LayerScheme {
 public:
  DarkNight(const LinearLayer& layer, const SchemeOptions& options)
      : layer_(layer),
        options_(options),
        quant_(layer, options),
        rounds_(options.verify ? options.verify_rounds : 0),
        prg_(random_seed()),
        in_numel_(shape_numel(layer.input_shape)),
        out_numel_(shape_numel(layer.output_shape)) {
    if (options.verify && (rounds_ < 1 || rounds_ > kMaxRounds))
      throw InvalidArgument("split: darknight: verify_rounds must be in [1, 16]");
    if (layer.output_shape.empty() || layer.output_shape[0] != layer.out_channels())
      throw InvalidArgument("split: darknight: output shape does not match the weight");
  }

  OutsourcedLayer outsource() override {
    // The trusted part needs no weights to decode: the quantised copy is dropped once handed
    // over (and rebuilt, identically, should the accelerator need it again).
    if (quant_.weight().values.empty()) quant_ = LayerQuantizer(layer_, options_);
    OutsourcedLayer o = outsourced_geometry(layer_, quant_.weight());
    quant_.release_weight();
    return o;
  }

  std::vector<Payload> encode(const Tensor& x) override {
    QuantizedInput q = quant_.quantize(x);  // one scale for the whole batch
    const int64_t b = x.shape()[0];
    Pending p;
    p.batch = b;
    p.scale = std::move(q.scale);
    std::vector<Payload> out;
    out.reserve(static_cast<size_t>(b + ((b + kGroup - 1) / kGroup) * (1 + rounds_)));
    for (int64_t g0 = 0; g0 < b; g0 += kGroup) {
      const int64_t k = std::min(kGroup, b - g0);
      p.groups.push_back(encode_group(q.x.values.data() + g0 * in_numel_, k, out));
    }
    pending_ = std::move(p);
    return out;
  }

  Tensor decode(std::vector<Payload> replies) override {
    if (!pending_) throw InvalidArgument("split: darknight: decode without a pending encode");
    Pending p = std::move(*pending_);
    pending_.reset();
    int64_t expected = 0;
    for (const Group& g : p.groups) expected += g.k + 1 + rounds_;
    if (static_cast<int64_t>(replies.size()) != expected)
      throw ProtocolError("split: darknight: expected " + std::to_string(expected) +
                          " replies, got " + std::to_string(replies.size()));
    std::vector<const uint64_t*> y;
    for (const Payload& r : replies) {
      const FieldTensor& f = expect_field(r, image_shape(layer_.output_shape));
      for (uint64_t v : f.values)
        if (v >= kFieldPrime) throw IntegrityError("split: darknight: reply value not in Z_P");
      y.push_back(f.values.data());
    }
    FieldTensor out;
    out.shape = layer_.output_shape;
    out.shape.insert(out.shape.begin(), p.batch);
    out.values.resize(static_cast<size_t>(p.batch * out_numel_));
    uint64_t* dst = out.values.data();
    const uint64_t* const* src = y.data();
    for (const Group& g : p.groups) {
      decode_group(g, src, dst);
      src += g.k + 1 + rounds_;
      dst += g.k * out_numel_;
    }
    return quant_.dequantize(out, p.scale);
  }

  size_t trusted_bytes() const override {
    size_t pending = 0;
    if (pending_)
      for (const Group& g : pending_->groups) pending += (g.inverse.a.size() + g.checks.size()) * 8;
    return quant_.bytes() + pending + sizeof(Seed);
  }

  double false_accept_bound() const override {
    return rounds_ > 0 ? std::pow(1.0 / static_cast<double>(kFieldPrime - 1), rounds_) : 1.0;
  }

 private:
  // The secrets of one group of k images: A^-1 and the check coefficients.
  struct Group {
    int64_t k = 0;
    FieldMatrix inverse;           // A^-1
    std::vector<uint64_t> checks;  // c per round, [rounds, k+1]
  };
  struct Pending {
    int64_t batch = 0;
    InputScale scale;
    std::vector<Group> groups;
  };

  // Mixes k quantised images (consecutive in `images`) with a fresh noise vector under a fresh
  // A and appends the k+1 encodings and the redundant ones to `out`.
  Group encode_group(const uint64_t* images, int64_t k, std::vector<Payload>& out) {
    const int64_t n = in_numel_;
    Group g;
    g.k = k;
    const FieldMatrix a = darknight_mixing_matrix(prg_, k);
    g.inverse = *field_inverse(a);  // invertible by construction
    std::vector<uint64_t> noise(static_cast<size_t>(n));
    for (uint64_t& v : noise) v = prg_.uniform(kFieldPrime);
    std::vector<const uint64_t*> inputs;
    for (int64_t i = 0; i < k; ++i) inputs.push_back(images + i * n);
    inputs.push_back(noise.data());
    std::vector<const uint64_t*> encodings;  // into `out`, reserved by the caller
    FieldTensor e;
    e.shape = image_shape(layer_.input_shape);
    e.values.resize(static_cast<size_t>(n));
    for (int64_t j = 0; j <= k; ++j) {
      combine(inputs, a.a.data() + j * (k + 1), n, e.values.data());
      out.push_back(e);
      encodings.push_back(std::get<FieldTensor>(out.back()).values.data());
    }
    for (int t = 0; t < rounds_; ++t) {
      std::vector<uint64_t> c(static_cast<size_t>(k + 1));
      // The redundant encoding must carry noise too (sum_j c_j A_jk != 0), or it would be a
      // noise-free combination of the images.
      uint64_t noise_coef = 0;
      while (noise_coef == 0) {
        for (int64_t j = 0; j <= k; ++j) {
          c[j] = nonzero(prg_);
          noise_coef = field_add(noise_coef, field_mul(c[j], a.at(j, k)));
        }
      }
      combine(encodings, c.data(), n, e.values.data());
      out.push_back(e);
      g.checks.insert(g.checks.end(), c.begin(), c.end());
    }
    return g;
  }

  // Checks one group's k+1+rounds replies and writes its k decoded images to `out`.
  void decode_group(const Group& g, const uint64_t* const* y, uint64_t* out) const {
    const int64_t k = g.k, n = out_numel_;
    const std::vector<const uint64_t*> coded(y, y + k + 1);
    std::vector<uint64_t> buf(static_cast<size_t>(n));
    for (int t = 0; t < rounds_; ++t) {
      combine(coded, g.checks.data() + t * (k + 1), n, buf.data());
      if (!std::equal(buf.begin(), buf.end(), y[k + 1 + t]))
        throw IntegrityError("split: darknight: " + layer_.name +
                             ": the accelerator's replies fail the coded check");
    }
    for (int64_t i = 0; i < k; ++i)  // row k of A^-1 would give W r: not needed
      combine(coded, g.inverse.a.data() + i * (k + 1), n, out + i * n);
  }

  LinearLayer layer_;
  SchemeOptions options_;
  LayerQuantizer quant_;
  int rounds_;
  AesCtrPrg prg_;
  int64_t in_numel_, out_numel_;
  std::optional<Pending> pending_;
};

}  // namespace

FieldMatrix darknight_mixing_matrix(AesCtrPrg& prg, int64_t k) {
  if (k < 1 || k > kMaxBatch) throw InvalidArgument("split: darknight: batch must be in [1, 1024]");
  FieldMatrix a;
  a.n = k + 1;
  a.a.resize(static_cast<size_t>(a.n * a.n));
  for (;;) {  // rejection: uniform over the admissible matrices; a retry has probability < K/P
    for (int64_t i = 0; i < a.n; ++i)
      for (int64_t j = 0; j < a.n; ++j)
        a.at(i, j) = j == k ? nonzero(prg) : prg.uniform(kFieldPrime);
    if (field_inverse(a)) return a;
  }
}

std::unique_ptr<LayerScheme> make_darknight(const LinearLayer& layer,
                                            const SchemeOptions& options) {
  return std::make_unique<DarkNight>(layer, options);
}

}  // namespace veil::split
