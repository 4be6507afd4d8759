// The float CPU engine: runs a model::Graph forward (inference or training mode) and backward.
// Kernels come from oneDNN where it has them (conv, inner product, pooling, batch norm,
// eltwise), each op also has a naive reference kernel (veil/nn/reference.hpp) for the tests.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "veil/core/tensor.hpp"
#include "veil/model/graph.hpp"

namespace veil::nn {

enum class Mode {
  Inference,  // BN uses running statistics, Dropout is the identity
  Training,   // BN uses batch statistics and updates the running ones; activations kept for backward
};

using TensorMap = std::unordered_map<std::string, Tensor>;

// Called around every node (e.g. the runtime encryption scheduler decrypts a layer's weights
// just before it runs and re-encrypts them right after). Also called around each node's
// backward kernel. A Conv+BatchNormalization+Relu group fused for inference calls every
// node's `before` (in graph order), runs, then every node's `after`. A weight changed inside
// `before` (with parameter_changed) is used by that very node.
struct NodeHooks {
  std::function<void(const model::Node&)> before;
  std::function<void(const model::Node&)> after;
};

struct ExecutorOptions {
  // Gradients are computed for these initializers only; empty = every float initializer that
  // is a Conv/Gemm/MatMul weight or bias or a BatchNormalization scale/bias.
  std::vector<std::string> trainable;
  // Also compute gradients with respect to the graph inputs (for attacks, finite differences).
  bool input_gradients = false;
  // Fuse Conv+BatchNormalization+Relu in inference mode where oneDNN allows.
  bool fuse = true;
  // Kernel threads for this executor's calls (set on the calling thread at every forward and
  // backward, see veil/nn/threads.hpp); 0 keeps the process-wide OpenMP setting.
  int threads = 0;
  // Training mode with BatchNormalization frozen: running statistics are used and left
  // untouched, and backward is the affine one (eval-mode gradients, e.g. for attacks).
  bool frozen_batch_norm = false;
};

class Executor {
 public:
  // The executor reads the weights from `model` (and writes BN running statistics back to it in
  // training mode); `model` must outlive it. Throws Unsupported / MalformedInput naming the node
  // for anything it cannot run.
  explicit Executor(model::Model& model, ExecutorOptions options = {});
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  // Binds `inputs` to the graph's inputs in order; returns the graph's outputs in order.
  std::vector<Tensor> forward(const std::vector<Tensor>& inputs, Mode mode = Mode::Inference);

  // After a forward(…, Mode::Training): back-propagates `output_grads` (one per graph output,
  // shaped like it) and fills param_grads() (and input_grads() if requested), overwriting the
  // previous values.
  void backward(const std::vector<Tensor>& output_grads);

  const TensorMap& param_grads() const;
  const std::vector<Tensor>& input_grads() const;

  // Must be called after the caller changed any initializer in the model (SGD step, key
  // encrypt/decrypt) so that cached, reordered weights are refreshed.
  void parameters_changed();
  // Same, for a single initializer (cheaper: only kernels that read it are refreshed).
  void parameter_changed(const std::string& initializer);

  void set_hooks(NodeHooks hooks);

  // Names of the initializers that get gradients.
  const std::vector<std::string>& trainable() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace veil::nn
