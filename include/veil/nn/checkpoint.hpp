// The `.vckpt` file: a training run stopped between two steps, written by `veil train
// --checkpoint` and read back by `--resume`, so that a run of many hours can span interruptions
// and still end with the weights an uninterrupted run would have (TrainState in trainer.hpp).
// Little-endian, no padding:
//
//   "VCKP"  u32 version (1)
//   str run                      what run this is (the CLI's record of options and input digests)
//   i32 epoch  i64 step  str rng
//   u64 order count, count x i64
//   f64 loss_sum  i64 correct  i64 seen  f64 seconds
//   u32 history count, per epoch: i32 epoch, f64 lr, train_loss, train_top1, test_top1,
//                                 test_top5, seconds, images_per_s
//   u32 weight count, per tensor: str name, u32 rank, rank x i64 dims, numel x f32
//   u32 velocity count, per buffer: str name, u64 count, count x f32
//   32 bytes SHA-256 of everything before
//
// (str = u32 length + bytes.) The file is untrusted input: the digest is checked first
// (IntegrityError: a torn or damaged file), then every count against its bound and against the
// bytes that remain before anything is allocated (MalformedInput). Whether the checkpoint fits
// the run that reads it (same options, same model, same data) is the reader's check: `run`,
// restore_weights() and train()'s own check of the state.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "veil/core/tensor.hpp"
#include "veil/model/graph.hpp"
#include "veil/nn/trainer.hpp"

namespace veil::nn {

inline constexpr uint32_t kCheckpointVersion = 1;
inline constexpr uint64_t kCheckpointMaxBytes = uint64_t{6} << 30;
inline constexpr uint32_t kCheckpointMaxRunText = 1 << 16;
inline constexpr uint32_t kCheckpointMaxRngText = 1 << 14;
inline constexpr uint64_t kCheckpointMaxImages = uint64_t{1} << 31;
inline constexpr uint32_t kCheckpointMaxEpochs = 100000;  // `veil train --epochs`' bound
inline constexpr uint32_t kCheckpointMaxTensors = 1 << 20;
inline constexpr uint32_t kCheckpointMaxName = 4096;
inline constexpr uint32_t kCheckpointMaxRank = 8;

struct Checkpoint {
  std::string run;
  TrainState state;
  // The model's float initializers at that moment, by name in the model's (sorted) order:
  // weights, biases and batch-norm running statistics.
  std::vector<std::pair<std::string, Tensor>> weights;
};

std::vector<uint8_t> serialize_checkpoint(const Checkpoint& checkpoint);
// Checked parser (see above). Beyond the counts: names non-empty and distinct, the order a
// permutation of 0..count-1, the history numbered 1..epoch, step and the running totals
// consistent, the generator state canonical, every float outside the weights finite. Throws
// IntegrityError for a digest mismatch, MalformedInput naming the field otherwise.
Checkpoint parse_checkpoint(std::span<const uint8_t> bytes);

// read_file + parse, and serialize + write_file_atomic.
Checkpoint read_checkpoint(const std::filesystem::path& path);
void write_checkpoint(const std::filesystem::path& path, const Checkpoint& checkpoint);

// The model's float initializers (Checkpoint::weights).
std::vector<std::pair<std::string, Tensor>> float_initializers(const model::Model& model);
// Puts `weights` back into `model`. Throws InvalidArgument unless they are exactly the model's
// float initializers with their shapes (a checkpoint of another model); the model is unchanged
// then.
void restore_weights(model::Model& model,
                     const std::vector<std::pair<std::string, Tensor>>& weights);

// The run record: one `key=value` line per option or input digest. The lines of `saved` (from a
// checkpoint) that differ from `current`, as "key: <saved> in the checkpoint, <current> now"
// (values made printable); empty when the records are the same. Keys in `not_compared` are
// skipped: lines a run records for its reader (the thread count) without being another run.
std::vector<std::string> run_differences(const std::string& saved, const std::string& current,
                                         const std::set<std::string>& not_compared = {});
// The value of `key` in a run record (the last line of that key), or nullopt.
std::optional<std::string> run_value(const std::string& record, const std::string& key);

}  // namespace veil::nn
