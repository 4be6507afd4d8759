// Internal: the comparison of encrypted with plaintext results and the report's totals, shared
// by the latency (pipeline.cpp) and batch (batch_eval.cpp) evaluation loops.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>

#include "veil/he/inference/pipeline.hpp"

namespace veil::he {

// Seconds on the monotonic clock (the evaluation loops' timer).
inline double now_seconds() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

struct EvalTally {
  int64_t images = 0, plain_hits = 0, enc_hits = 0, agree = 0;
  double t_enc = 0, t_inf = 0, t_dec = 0;  // seconds, summed over images
  double in_bytes = 0, out_bytes = 0, max_err = 0;

  // One image: the decrypted outputs, the double-precision stages' outputs, the float
  // engine's logits and the label.
  void add(std::span<const double> got, std::span<const double> want,
           std::span<const float> plain_logits, size_t label);
  // Top-1, agreement, per-image times and sizes, precision, peak RSS.
  void finish(HeEvalReport& rep) const;
};

}  // namespace veil::he
