#include "veil/split/hardened.hpp"

#include <cmath>
#include <deque>
#include <optional>

#include "float_masking.hpp"
#include "veil/core/error.hpp"
#include "veil/core/random.hpp"
#include "veil/split/fake_filters.hpp"
#include "veil/split/float_check.hpp"
#include "veil/split/prg_floats.hpp"
#include "veil/split/restore.hpp"

namespace veil::split {
namespace {

// The mixing matrix is Q = U D V^T with U, V Haar-random orthogonal and D log-uniform in
// [1/2, 2]: its condition number is at most 4, so restoring through Q^-1 = V D^-1 U^T loses at
// most two bits of float32 precision, while D keeps Q from being orthogonal (an orthogonal Q
// would hand the accelerator W'^T W' = W^T W + R^T R, the real filters' Gram matrix up to the
// fakes' near-isotropic part).
constexpr double kMaxStretch = 2.0;
// Each query's mask is kMaskScale x rms(x) x a fresh standard normal tensor: as large as the
// activations it hides (twice their RMS), scaled with them so that layers with large activations
// are hidden as well as layers with small ones. Larger masks hide more and cost float32
// precision in the restore (and loosen the verification tolerance, which grows with |x + mask|).
constexpr double kMaskScale = 2.0;

// A Haar-random orthogonal m x m matrix (row-major): Gram-Schmidt on a Gaussian matrix, each
// column orthogonalised twice so that orthogonality holds to double precision.
std::vector<double> random_orthogonal(AesCtrPrg& prg, int64_t m) {
  std::vector<double> q(static_cast<size_t>(m * m));
  for (double& v : q) v = prg_gaussian(prg);
  // Columns of q are made orthonormal; q[i * m + j] is row i, column j.
  for (int64_t j = 0; j < m; ++j) {
    for (int pass = 0; pass < 2; ++pass)
      for (int64_t k = 0; k < j; ++k) {
        double dot = 0;
        for (int64_t i = 0; i < m; ++i) dot += q[i * m + k] * q[i * m + j];
        for (int64_t i = 0; i < m; ++i) q[i * m + j] -= dot * q[i * m + k];
      }
    double norm = 0;
    for (int64_t i = 0; i < m; ++i) norm += q[i * m + j] * q[i * m + j];
    norm = std::sqrt(norm);
    for (int64_t i = 0; i < m; ++i) q[i * m + j] /= norm;
  }
  return q;
}

struct Mask {
  Tensor noise;    // [B, input...], standard normal
  Tensor product;  // noise (*) W: [B, N, output...]
};

class Hardened final : public LayerScheme {
 public:
  Hardened(const LinearLayer& layer, const SchemeOptions& options)
      : layer_(layer), prg_(random_seed()) {
    n_ = layer_.out_channels();
    m_ = slot_count(n_, options.fake_ratio);
    const int64_t terms = layer_.weight.numel() / n_;

    const std::vector<double> u = random_orthogonal(prg_, m_), v = random_orthogonal(prg_, m_);
    std::vector<double> d(static_cast<size_t>(m_));
    for (double& s : d)
      s = std::exp(prg_uniform(prg_, -std::log(kMaxStretch), std::log(kMaxStretch)));
    // Q = U D V^T, and the rows of Q^-1 = V D^-1 U^T the restore needs.
    std::vector<double> q(static_cast<size_t>(m_ * m_), 0.0);
    unmix_.assign(static_cast<size_t>(n_ * m_), 0.0f);
    for (int64_t i = 0; i < m_; ++i)
      for (int64_t j = 0; j < m_; ++j) {
        double qij = 0, inv = 0;
        for (int64_t k = 0; k < m_; ++k) {
          qij += u[i * m_ + k] * d[k] * v[j * m_ + k];
          inv += v[i * m_ + k] / d[k] * u[j * m_ + k];
        }
        q[i * m_ + j] = qij;
        if (i < n_) unmix_[i * m_ + j] = static_cast<float>(inv);
      }

    // W' = Q [W; R], summed in double.
    const Tensor fakes = draw_fake_filters(layer_.weight, m_ - n_, prg_);
    Shape shape = layer_.weight.shape();
    shape[0] = m_;
    outsourced_ = Tensor(shape);
    std::vector<double> acc(static_cast<size_t>(terms));
    for (int64_t i = 0; i < m_; ++i) {
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t k = 0; k < m_; ++k) {
        const float* row =
            k < n_ ? layer_.weight.data() + k * terms : fakes.data() + (k - n_) * terms;
        const double c = q[i * m_ + k];
        for (int64_t t = 0; t < terms; ++t) acc[t] += c * row[t];
      }
      for (int64_t t = 0; t < terms; ++t)
        outsourced_.data()[i * terms + t] = static_cast<float>(acc[t]);
    }
    if (options.verify) check_.emplace(layer_, outsourced_, options.verify_rounds, prg_);
    product_.emplace(layer_, layer_.weight, detail::kSchemeThreads);
    unmix_engine_.emplace(unmix_layer(), unmix_tensor(), detail::kSchemeThreads);
    layer_.weight = Tensor();  // product_ has its own copy for the masks' products
  }

  OutsourcedLayer outsource() override {
    OutsourcedLayer o = outsourced_geometry(layer_, outsourced_);
    outsourced_ = Tensor();
    return o;
  }

  void precompute(int64_t batch, int64_t queries) override {
    if (batch <= 0 || queries < 0) throw InvalidArgument("split: precompute needs batch > 0");
    for (int64_t i = 0; i < queries; ++i) pool_.push_back(draw_mask(batch));
  }

  std::vector<Payload> encode(const Tensor& x) override {
    const int64_t b = detail::batch_of(layer_, x);
    if (!pool_.empty() && pool_.front().noise.shape()[0] == b) {
      current_ = std::move(pool_.front());
      pool_.pop_front();
    } else {
      current_ = draw_mask(b);
      ++drawn_online_;
    }
    double sq = 0;
    for (float v : x.floats()) sq += static_cast<double>(v) * v;
    const double rms = std::sqrt(sq / static_cast<double>(x.numel()));
    scale_ = static_cast<float>(kMaskScale * (rms > 0 && std::isfinite(rms) ? rms : 1.0));
    Tensor masked = x;
    detail::add_scaled(masked, current_->noise, scale_);
    if (check_) sent_ = masked;
    return {std::move(masked)};
  }

  Tensor decode(std::vector<Payload> replies) override {
    if (!current_) throw ProtocolError("split: hardened decode without encode");
    if (replies.size() != 1) throw ProtocolError("split: hardened expects one reply");
    Mask mask = std::move(*current_);
    current_.reset();
    const int64_t b = mask.noise.shape()[0];
    Shape shape = layer_.output_shape;
    shape.insert(shape.begin(), b);
    shape[1] = m_;
    const Tensor& yp = expect_tensor(replies[0], shape);
    if (check_) check_->check(sent_, yp);

    // y = rows 0..N-1 of Q^-1 Y' (a 1x1 conv, or a dense layer, of M inputs and N outputs: N x M
    // multiply-adds per output position), minus the mask's share, plus the bias.
    Tensor y = unmix_engine_->forward(yp);
    detail::add_scaled(y, mask.product, -scale_);
    add_bias(layer_, y);
    return y;
  }

  size_t trusted_bytes() const override {
    size_t floats = unmix_.size() + static_cast<size_t>(outsourced_.numel());
    for (const Mask& m : pool_) floats += static_cast<size_t>(m.noise.numel() + m.product.numel());
    return sizeof(float) * floats + (check_ ? check_->bytes() : 0);
  }

  double false_accept_bound() const override { return check_ ? check_->false_accept_bound() : 1.0; }

  HardenedState state() const {
    return {m_, unmix_, static_cast<int64_t>(pool_.size()), drawn_online_};
  }

 private:
  // The restore as a linear layer on the accelerator's output [M, ...]: 1x1 conv or dense.
  LinearLayer unmix_layer() const {
    LinearLayer l;
    l.name = layer_.name + "/unmix";
    l.kind = layer_.kind;
    l.input_shape = layer_.output_shape;
    l.input_shape[0] = m_;
    l.output_shape = layer_.output_shape;
    if (l.kind == LinearKind::Conv) l.conv = {{1, 1}, {0, 0, 0, 0}, {1, 1}, 1};
    return l;
  }
  Tensor unmix_tensor() const {
    Shape shape{n_, m_};
    if (layer_.kind == LinearKind::Conv) shape.insert(shape.end(), {1, 1});
    return Tensor::from_floats(shape, unmix_);
  }

  Mask draw_mask(int64_t batch) {
    Shape shape = layer_.input_shape;
    shape.insert(shape.begin(), batch);
    Mask m;
    m.noise = prg_gaussian_tensor(prg_, shape);
    m.product = product_->forward(m.noise);
    return m;
  }

  LinearLayer layer_;
  AesCtrPrg prg_;
  int64_t n_ = 0, m_ = 0;
  std::vector<float> unmix_;
  Tensor outsourced_;  // until outsource() hands it over
  std::optional<FloatFreivalds> check_;
  std::optional<LinearEngine> product_;       // mask (*) W
  std::optional<LinearEngine> unmix_engine_;  // Y' -> rows 0..N-1 of Q^-1 Y'
  std::deque<Mask> pool_;
  int64_t drawn_online_ = 0;
  std::optional<Mask> current_;  // the mask of the encode awaiting its decode
  float scale_ = 1;
  Tensor sent_;
};

}  // namespace

std::unique_ptr<LayerScheme> make_hardened(const LinearLayer& layer, const SchemeOptions& options) {
  return std::make_unique<Hardened>(layer, options);
}

HardenedState hardened_state(const LayerScheme& scheme) {
  const auto* s = dynamic_cast<const Hardened*>(&scheme);
  if (s == nullptr) throw InvalidArgument("split: not a hardened scheme");
  return s->state();
}

}  // namespace veil::split
