// Model stealing from the accelerator's view (veil/split/transcript.hpp). The attacker knows the
// architecture (it runs the layers), holds 1 % of the training data, and has recorded every
// byte that crossed the channel. Against ShadowNet it pairs each outsourced filter with its fake
// filter, solves the scale, un-permutes the channels by matching activations across queries,
// then fine-tunes on its data (TEESlice, S&P 2024; GroupCover, ICML 2024). Where the view does
// not give the weights away, what it can do is train from scratch on its data: the floor every
// protection should push the attack down to.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "veil/data/dataset.hpp"
#include "veil/model/graph.hpp"
#include "veil/split/transcript.hpp"

namespace veil::split {

struct AttackOptions {
  double data_fraction = 0.01;  // of the training set the attacker holds (labelled)
  int surrogate_epochs = 10;    // the from-scratch model
  int finetune_epochs = 5;      // the recovered model
  int threads = 1;
  uint64_t seed = 1;       // which images the attacker holds, its shuffling
  int64_t test_limit = 0;  // test images for fidelity / accuracy (0 = all)
};

struct LayerRecovery {
  std::string name;
  double paired = 0;         // fraction of real filters the attack paired with a fake one
  double weight_cosine = 0;  // mean cosine of recovered vs true filters (evaluation only)
};

struct AttackReport {
  std::string scheme;
  double victim_accuracy = 0;
  double fidelity = 0;            // top-1 agreement of the attacker's model with the victim
  double accuracy = 0;            // the attacker's model's test top-1
  double surrogate_fidelity = 0;  // the from-scratch model, same data
  double surrogate_accuracy = 0;
  std::vector<LayerRecovery> layers;
  double seconds = 0;
};

// `victim` is used only to score the result (fidelity, weight cosines), never by the attack.
AttackReport steal_model(const model::Model& victim, const Transcript& view,
                         const data::Dataset& train, const data::Dataset& test,
                         const AttackOptions& options);

}  // namespace veil::split
