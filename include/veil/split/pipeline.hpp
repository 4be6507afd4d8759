// The trusted part of a split run: it partitions the model, protects every offloaded layer with
// the chosen scheme, gives the accelerator its view once, then for each batch runs the trusted
// steps itself and sends each linear layer through encode -> accelerator -> decode.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "veil/core/tensor.hpp"
#include "veil/model/graph.hpp"
#include "veil/split/accelerator.hpp"
#include "veil/split/partition.hpp"
#include "veil/split/scheme.hpp"

namespace veil::split {

struct PipelineOptions {
  SchemeKind scheme = SchemeKind::ShadowNet;
  SchemeOptions scheme_options;
  int threads = 1;  // the trusted part's float engine and restore work
};

struct LayerStats {
  std::string name;
  int64_t macs_per_image = 0;
  int64_t bytes_sent = 0;      // payload bytes to the accelerator (4 per element)
  int64_t bytes_received = 0;  // payload bytes back
  double encode_s = 0, accelerator_s = 0, decode_s = 0;
  int64_t faults_detected = 0;  // replies decode refused (then recomputed in the trusted part)
};

struct PipelineStats {
  int64_t images = 0;
  double trusted_steps_s = 0;  // the non-linear steps
  double offline_s = 0;        // precompute
  std::vector<LayerStats> layers;
  int64_t faults_detected() const;
  int64_t bytes_sent() const;
  int64_t bytes_received() const;
};

class Pipeline {
 public:
  // Partitions `model` (a copy is kept), creates one LayerScheme per offloaded layer and loads the
  // accelerator with their outsourced layers. `accelerator` must outlive the pipeline.
  Pipeline(const model::Model& model, const PipelineOptions& options, Accelerator& accelerator);
  ~Pipeline();
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  // The offline phase for `queries` batches of `batch` images.
  void precompute(int64_t batch, int64_t queries);
  // x [B, ...] (the model's input, normalised) -> the model's first output [B, ...]. A reply that
  // fails verification is counted in the stats and the layer is recomputed in the trusted part.
  Tensor infer(const Tensor& x);

  const Partition& partition() const;
  const PipelineStats& stats() const;
  // Bytes the trusted part holds: the model's weights plus every scheme's secrets.
  size_t trusted_bytes() const;
  // The schemes' false-accept bound for one verified result (max over layers).
  double false_accept_bound() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace veil::split
