#include "eval_tally.hpp"

#include <algorithm>
#include <cmath>

#include "veil/core/peak_rss.hpp"

namespace veil::he {

namespace {

template <class Range>
size_t argmax(const Range& v) {
  return static_cast<size_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

}  // namespace

void EvalTally::add(std::span<const double> got, std::span<const double> want,
                    std::span<const float> plain_logits, size_t label) {
  ++images;
  for (size_t k = 0; k < got.size() && k < want.size(); ++k)
    max_err = std::max(max_err, std::fabs(got[k] - want[k]));
  const size_t pa = argmax(plain_logits), ea = argmax(got);
  plain_hits += pa == label && std::isfinite(plain_logits[pa]);
  enc_hits += ea == label && std::isfinite(got[ea]);
  agree += pa == ea;
}

void EvalTally::finish(HeEvalReport& rep) const {
  const double count = double(images);
  rep.images = images;
  rep.plain_top1 = double(plain_hits) / count;
  rep.encrypted_top1 = double(enc_hits) / count;
  rep.agreement = double(agree) / count;
  rep.encrypt_s_per_image = t_enc / count;
  rep.infer_s_per_image = t_inf / count;
  rep.decrypt_s_per_image = t_dec / count;
  rep.images_per_s = t_inf > 0 ? count / t_inf : 0;
  rep.input_kb_per_image = in_bytes / count / 1024;
  rep.output_kb_per_image = out_bytes / count / 1024;
  rep.max_abs_error = max_err;
  rep.precision_bits = max_err > 0 ? -std::log2(max_err) : 64;
  rep.peak_rss_mb = peak_rss_mb();
}

}  // namespace veil::he
