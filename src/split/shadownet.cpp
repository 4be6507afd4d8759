#include "veil/split/shadownet.hpp"

#include <algorithm>
#include <cmath>
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

// Scales are log-uniform in [1, 2]. A real slot (W_n - R) / s has norm about sqrt(2) sigma / s
// for fakes of the weights' own spread sigma, so s in [1, 2] keeps it within [0.7, 1.4] sigma,
// around the fakes' sigma: the norm does not single the real slots out. The restore multiplies
// the slot's result by s, so s <= 2 amplifies its float error at most twice.
constexpr double kMinScale = 1.0, kMaxScale = 2.0;
// The fixed mask of the layers after the first: standard normal, the order of magnitude of
// normalised activations. Larger masks hide more but cost float32 precision when C = Mask (*) W
// is subtracted (the restore cancels terms of the mask's size).
constexpr double kMaskStd = 1.0;

class ShadowNet final : public LayerScheme {
 public:
  ShadowNet(const LinearLayer& layer, const SchemeOptions& options)
      : layer_(layer), prg_(random_seed()) {
    n_ = layer_.out_channels();
    m_ = slot_count(n_, options.fake_ratio);
    const int64_t terms = layer_.weight.numel() / n_;

    const Tensor fakes = draw_fake_filters(layer_.weight, m_ - n_, prg_);
    secrets_.slot = prg_permutation(prg_, m_);
    secrets_.partner.resize(static_cast<size_t>(n_));
    secrets_.scale.resize(static_cast<size_t>(n_));
    for (int64_t n = 0; n < n_; ++n) {
      secrets_.partner[n] = static_cast<int64_t>(prg_.uniform(static_cast<uint64_t>(m_ - n_)));
      secrets_.scale[n] =
          static_cast<float>(std::exp(prg_uniform(prg_, std::log(kMinScale), std::log(kMaxScale))));
    }

    Shape shape = layer_.weight.shape();
    shape[0] = m_;
    outsourced_ = Tensor(shape);
    const float* w = layer_.weight.data();
    const float* r = fakes.data();
    float* o = outsourced_.data();
    for (int64_t n = 0; n < n_; ++n) {
      float* dst = o + secrets_.slot[n] * terms;
      const float* fake = r + secrets_.partner[n] * terms;
      for (int64_t t = 0; t < terms; ++t) dst[t] = (w[n * terms + t] - fake[t]) / secrets_.scale[n];
    }
    for (int64_t j = 0; j < m_ - n_; ++j)
      std::copy(r + j * terms, r + (j + 1) * terms, o + secrets_.slot[n_ + j] * terms);

    if (layer_.index > 0) {
      Shape one = layer_.input_shape;
      one.insert(one.begin(), 1);
      secrets_.mask = prg_gaussian_tensor(prg_, one, 0.0, kMaskStd);
      secrets_.mask_product =
          apply_linear(layer_, layer_.weight, secrets_.mask, detail::kSchemeThreads);
    }
    if (options.verify) check_.emplace(layer_, outsourced_, options.verify_rounds, prg_);
    layer_.weight = Tensor();  // the restore needs the secrets, the geometry and the bias only
  }

  OutsourcedLayer outsource() override {
    OutsourcedLayer o = outsourced_geometry(layer_, outsourced_);
    outsourced_ = Tensor();  // the trusted part keeps only the secrets (the checker its copy)
    return o;
  }

  std::vector<Payload> encode(const Tensor& x) override {
    batch_ = detail::batch_of(layer_, x);
    Tensor masked = x;
    if (!secrets_.mask.empty()) detail::add_scaled(masked, secrets_.mask, 1.0f);
    if (check_) sent_ = masked;
    return {std::move(masked)};
  }

  Tensor decode(std::vector<Payload> replies) override {
    if (!batch_) throw ProtocolError("split: shadownet decode without encode");
    if (replies.size() != 1) throw ProtocolError("split: shadownet expects one reply");
    Shape shape = layer_.output_shape;
    shape.insert(shape.begin(), *batch_);
    shape[1] = m_;
    const Tensor& yp = expect_tensor(replies[0], shape);
    const int64_t b = *batch_;
    batch_.reset();
    if (check_) check_->check(sent_, yp);

    shape[1] = n_;
    Tensor y(shape);
    const int64_t positions = y.numel() / (b * n_);
    const float* c = secrets_.mask_product.empty() ? nullptr : secrets_.mask_product.data();
    for (int64_t i = 0; i < b; ++i)
      for (int64_t n = 0; n < n_; ++n) {
        const float s = secrets_.scale[n];
        const float* real = yp.data() + (i * m_ + secrets_.slot[n]) * positions;
        const float* fake =
            yp.data() + (i * m_ + secrets_.slot[n_ + secrets_.partner[n]]) * positions;
        float* dst = y.data() + (i * n_ + n) * positions;
        for (int64_t p = 0; p < positions; ++p) dst[p] = s * real[p] + fake[p];
        if (c != nullptr)
          for (int64_t p = 0; p < positions; ++p) dst[p] -= c[n * positions + p];
      }
    add_bias(layer_, y);
    return y;
  }

  size_t trusted_bytes() const override {
    size_t bytes =
        sizeof(int64_t) * (secrets_.slot.size() + secrets_.partner.size()) +
        sizeof(float) * (secrets_.scale.size() +
                         static_cast<size_t>(secrets_.mask.numel() + secrets_.mask_product.numel() +
                                             outsourced_.numel()));
    if (check_) bytes += check_->bytes();
    return bytes;
  }

  double false_accept_bound() const override { return check_ ? check_->false_accept_bound() : 1.0; }

  const ShadowNetSecrets& secrets() const { return secrets_; }

 private:
  LinearLayer layer_;
  AesCtrPrg prg_;
  int64_t n_ = 0, m_ = 0;
  ShadowNetSecrets secrets_;
  Tensor outsourced_;  // until outsource() hands it over
  std::optional<FloatFreivalds> check_;
  std::optional<int64_t> batch_;  // of the encode awaiting its decode
  Tensor sent_;                   // what that encode sent (kept for the check)
};

}  // namespace

std::unique_ptr<LayerScheme> make_shadownet(const LinearLayer& layer,
                                            const SchemeOptions& options) {
  return std::make_unique<ShadowNet>(layer, options);
}

const ShadowNetSecrets& shadownet_secrets(const LayerScheme& scheme) {
  const auto* s = dynamic_cast<const ShadowNet*>(&scheme);
  if (s == nullptr) throw InvalidArgument("split: not a shadownet scheme");
  return s->secrets();
}

}  // namespace veil::split
