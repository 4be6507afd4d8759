// Distortion extraction (Gorski & Avidan, arXiv 2304.10442, Sec. 4.1): for every ReLU layer,
// channel and candidate block size, the mean squared difference of the logits when only that
// channel's ReLU becomes that block ReLU, against the clean network.
//
// Only the part of the network after the layer is rerun: its graph (every node that depends on
// the ReLU's output, plus the constant nodes) becomes a model whose inputs are the ReLU's output
// and every other value it reads from before the layer (a residual shortcut), the latter fed
// with their clean values. Many (channel, size) variants run as one batch (variants x samples
// images), which is where the float engine's throughput is.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "veil/core/sha256.hpp"
#include "veil/core/tensor.hpp"
#include "veil/model/block_size.hpp"
#include "veil/model/graph.hpp"
#include "veil/mpc/block_relu/distortion_table.hpp"

namespace veil::mpc {

enum class CandidateSizes {
  Small,  // {1,1},{1,2},{2,1},{2,2},{2,3},{3,2},{3,3},{4,4},{8,8},{H,W},{0,0}
  Full,   // {1,1}, every h x w with h, w in 1..8 and h*w > 1, {H,W}, {0,0}
};

// The candidate sizes of an H x W map: {1, 1} first, the identity {0, 0} last. Sides larger
// than the map are left out ({H, W} is the whole map), and of sizes that tile the map the same
// way (same tiles, hence the same block count) only the first is kept.
std::vector<model::BlockSize> candidate_block_sizes(int64_t height, int64_t width,
                                                    CandidateSizes set);

// The model hash a table carries: SHA-256 of the ONNX file's bytes (a re-export of the same
// network is another model for the table, which is the safe side).
Sha256Digest distortion_model_hash(std::span<const uint8_t> onnx_bytes);

// A table for `model` with every Relu node in graph order (a rank-2 [N, C] ReLU counts as C
// channels of a 1 x 1 map), its candidate sizes, zero distortions and done = false. Throws
// Unsupported for a Relu whose input is not [N, C] or [N, C, H, W] with known C, H, W.
DistortionTable plan_distortion(const model::Model& model, CandidateSizes set);

// Throws InvalidArgument naming the first difference when `resumed` (read from a file) was
// measured for another plan: other layers, shapes or candidate sizes, sample count or seed, or
// another model hash.
void require_same_plan(const DistortionTable& resumed, const DistortionTable& plan);

struct DistortionOptions {
  // Images per executor batch: variants of one layer are grouped so that variants x samples
  // reaches about this many (at least one variant per batch).
  int64_t batch_images = 512;
  // Called with the number of variants measured so far in this call, and their total.
  std::function<void(int64_t done, int64_t total)> progress;
  // Called after each layer is finished (its `done` flag set): the caller checkpoints.
  std::function<void(const DistortionTable&)> layer_finished;
  // Stop after this many layers finished in this call (0 = all): a test's simulated kill.
  int64_t stop_after_layers = 0;
};

// Number of variants (channel x size, without the {1, 1} column) the unfinished layers hold.
int64_t pending_variants(const DistortionTable& table);

// Fills every layer of `table` (from plan_distortion, or resumed) that is not done. `images` are
// the samples, [samples, C, H, W], already normalized as the model expects. Deterministic: the
// same inputs and thread count give bit-identical tables, whether or not the run was resumed.
void measure_distortion(const model::Model& model, const Tensor& images, DistortionTable& table,
                        const DistortionOptions& options = {});

}  // namespace veil::mpc
