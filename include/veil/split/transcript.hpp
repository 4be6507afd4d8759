// The adversary's view of a split run: everything the accelerator received and sent. It is the
// input of every attack (veil/split/attack.hpp); `veil split serve --role accelerator
// --transcript F` writes it.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "veil/split/scheme.hpp"

namespace veil::split {

struct TranscriptQuery {
  size_t layer = 0;
  std::vector<Payload> inputs;   // what the trusted part sent
  std::vector<Payload> outputs;  // what the accelerator replied
};

struct Transcript {
  std::string scheme;                    // scheme_name() of the run
  std::vector<OutsourcedLayer> layers;   // the setup
  std::vector<TranscriptQuery> queries;  // in arrival order
};

}  // namespace veil::split
