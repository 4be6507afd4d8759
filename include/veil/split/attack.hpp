// Model stealing from the accelerator's view (veil/split/transcript.hpp). The attacker knows the
// architecture (it runs the layers), holds 1 % of the training data, and has recorded every
// byte that crossed the channel. Against ShadowNet it pairs each outsourced filter with its fake
// filter, solves the scale, un-permutes the channels by matching activations across queries,
// then fine-tunes on its data (TEESlice, S&P 2024; GroupCover, ICML 2024). Where the view does
// not give the weights away, what it can do is train from scratch on its data: the floor every
// protection should push the attack down to.
#pragma once

#include <cstdint>
#include <functional>
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
  double held_out = 0.2;   // of the attacker's images, kept to choose between its models
  // One line per long step (training epochs, layers), for a progress display; may be empty.
  std::function<void(const std::string&)> progress;
};

// The training images the attacker holds (indices into the training set): data_fraction of it,
// at least 20, drawn with `seed`. A victim run that produces the transcript should use others.
std::vector<int64_t> attacker_images(int64_t train_size, const AttackOptions& options);

struct LayerRecovery {
  std::string name;
  int64_t filters = 0;  // the layer's real output channels N
  int64_t slots = 0;    // the accelerator's output channels M
  // How clearly the outsourced weights show ShadowNet's pairing (veil/split/filter_pairing.hpp);
  // 0 for weights in the clear (M = N).
  double confidence = 0;
  // "clear" (the accelerator holds the weights), "paired" (ShadowNet structure found and used),
  // or "none" (nothing claimed: the surrogate's layer is used).
  std::string recovery = "none";
  bool unpermuted = false;  // the channel order was solved (next layer's activations, or labels)
  // Evaluation only (the victim's folded weights):
  double paired = 0;         // fraction of real filters the attack paired with their fake one
  double matched = 0;        // ... and put at the right output channel
  double weight_cosine = 0;  // mean cosine of recovered vs true filters, channel by channel
};

struct AttackReport {
  std::string scheme;
  double victim_accuracy = 0;
  double fidelity = 0;            // top-1 agreement of the attacker's model with the victim
  double accuracy = 0;            // the attacker's model's test top-1
  double surrogate_fidelity = 0;  // the from-scratch model, same data
  double surrogate_accuracy = 0;
  double recovered_fidelity = -1;  // the assembled, fine-tuned model (-1: nothing recovered)
  double recovered_accuracy = -1;
  std::string chosen;  // "recovered" or "surrogate": the better on the attacker's held-out images
  int64_t attacker_images = 0;
  int64_t transcript_images = 0;  // images in the recorded queries
  int64_t test_images = 0;
  std::vector<LayerRecovery> layers;
  double seconds = 0;
};

// `victim` is used for its architecture (graph, shapes, normalisation) and, only to score the
// result (fidelity, weight cosines), its weights. Throws InvalidArgument when the transcript does
// not belong to the model (layer count, shapes).
AttackReport steal_model(const model::Model& victim, const Transcript& view,
                         const data::Dataset& train, const data::Dataset& test,
                         const AttackOptions& options);

}  // namespace veil::split
