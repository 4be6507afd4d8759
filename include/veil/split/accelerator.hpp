// The untrusted accelerator: it holds the outsourced layers and applies them to whatever the
// trusted part sends. Local runs it in process (tests, the attack's simulations); the remote one
// (veil/split/remote.hpp) talks to `veil split serve --role accelerator` in another process.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "veil/split/scheme.hpp"

namespace veil::split {

struct Transcript;

struct AcceleratorOptions {
  int threads = 1;
  // Corrupt this many replies: reply k (counting every compute() call from 0) is corrupted when
  // k % fault_stride == 0 and fewer than inject_faults were corrupted so far. One element of
  // each payload of that reply gets a large random error.
  int64_t inject_faults = 0;
  int64_t fault_stride = 1;
  // Record everything received and sent (the adversary's view); not owned, may be null.
  Transcript* record = nullptr;
};

class Accelerator {
 public:
  virtual ~Accelerator() = default;
  // Setup: the outsourced layers, in layer order.
  virtual void load(std::vector<OutsourcedLayer> layers) = 0;
  // The linear map of layer `layer` (no bias) applied to each payload, in the arithmetic of its
  // weight (float or Z_P). Throws InvalidArgument on a payload that does not fit the layer.
  virtual std::vector<Payload> compute(size_t layer, std::vector<Payload> inputs) = 0;
  // Faults injected so far.
  virtual int64_t faults_injected() const = 0;
};

std::unique_ptr<Accelerator> make_local_accelerator(const AcceleratorOptions& options);

// Applies one outsourced layer to one payload (what every accelerator does per payload).
Payload apply_outsourced(const OutsourcedLayer& layer, const Payload& input, int threads = 1);

// The shape and kind of an outsourced layer as a LinearLayer (no weight): what apply_linear and
// LinearEngine take.
LinearLayer linear_geometry(const OutsourcedLayer& layer);

}  // namespace veil::split
