// Block ReLU (Gorski & Avidan, arXiv 2304.10442, Sec. 3): every h x w tile of a channel's map
// keeps or zeroes its elements together, by the sign of the tile's sum (ceil tiling: an edge tile
// sums what it has). A sum of exactly zero keeps the tile, as the three-party DReLU does and as
// `x < 0 ? 0 : x` does for {1, 1}, so {1, 1} is Relu bit for bit; a NaN sum makes the whole tile
// NaN (no confident answer from a NaN), as relu(NaN) = NaN. Backward treats the mask as the
// constant it is almost everywhere: dx = mask * dy (the paper's fine-tuning).
#include "veil/nn/block_relu.hpp"

#include <cstring>
#include <vector>

#include "kernel.hpp"

namespace veil::nn::detail {

namespace {

// Calls f(i, s) for every element i of one H x W plane, s being the sum of i's tile. The sums of
// one row of tiles are taken before f sees any element of that row, so f may overwrite the plane
// in place. Within a tile the sum runs row by row, left to right (nn::reference does the same).
template <typename F>
void for_each_tile_sum(const float* x, int64_t height, int64_t width, model::BlockSize b,
                       std::vector<float>& sums, F f) {
  const int64_t tiles_w = (width + b.w - 1) / b.w;
  sums.resize(static_cast<size_t>(tiles_w));
  for (int64_t r0 = 0; r0 < height; r0 += b.h) {
    const int64_t r1 = std::min(height, r0 + b.h);
    std::fill(sums.begin(), sums.end(), 0.0f);
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t t = 0; t < tiles_w; ++t) {
        const int64_t c1 = std::min(width, (t + 1) * b.w);
        float s = sums[static_cast<size_t>(t)];
        for (int64_t c = t * b.w; c < c1; ++c) s += x[r * width + c];
        sums[static_cast<size_t>(t)] = s;
      }
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t t = 0; t < tiles_w; ++t) {
        const float s = sums[static_cast<size_t>(t)];
        const int64_t c1 = std::min(width, (t + 1) * b.w);
        for (int64_t c = t * b.w; c < c1; ++c) f(r * width + c, s);
      }
  }
}

class BlockReluKernel final : public Kernel {
 public:
  explicit BlockReluKernel(const model::LoweredOp& op)
      : Kernel(op), blocks_(op.as<model::BlockReluParams>().blocks) {
    if (op.input_ids.empty()) fail("needs an input");
  }

  void forward(ForwardEnv& env) override {
    const Tensor& x = env.input(0);
    check(x);
    const float bound = env.input_bound(0);
    Tensor* taken = env.take_input(0);
    Tensor& y = taken ? *taken : env.output(0, x.shape());
    const float* xs = x.data();
    float* ys = y.data();
    const auto [planes, height, width] = geometry(x.shape());
    for (int64_t p = 0; p < planes; ++p) {
      const model::BlockSize b = blocks_[static_cast<size_t>(p % channels_)];
      block_relu_plane(xs + p * height * width, ys + p * height * width, height, width, b);
    }
    if (taken) env.set_output(0, std::move(*taken));
    env.set_output_bound(0, bound);  // |y| <= |x| elementwise, or NaN where x has a NaN
  }

  void backward(BackwardEnv& env) override {
    const Tensor* gy = env.grad_output(0);
    if (!gy || !env.wants_grad(0)) return;
    const Tensor& x = env.input(0);
    check(x);
    const float* xs = x.data();
    const float* dy = gy->data();
    float* dx = env.grad_input(0).data();
    const auto [planes, height, width] = geometry(x.shape());
    for (int64_t p = 0; p < planes; ++p) {
      const model::BlockSize b = blocks_[static_cast<size_t>(p % channels_)];
      const int64_t off = p * height * width;
      if (b.identity()) {
        std::memcpy(dx + off, dy + off, sizeof(float) * static_cast<size_t>(height * width));
        continue;
      }
      const float* g = dy + off;
      float* d = dx + off;
      for_each_tile_sum(xs + off, height, width, b, sums_,
                        [g, d](int64_t i, float s) { d[i] = s >= 0.0f ? g[i] : 0.0f; });
    }
  }

 private:
  struct Geometry {
    int64_t planes, height, width;
  };

  void check(const Tensor& x) {
    if (x.dtype() != DType::Float32) fail("needs a float tensor");
    const Shape& s = x.shape();
    if (s.size() != 4) fail("input must be NCHW, got shape " + shape_to_string(s));
    if (s[1] != static_cast<int64_t>(blocks_.size()))
      fail("input has " + std::to_string(s[1]) + " channels, the block spec " +
           std::to_string(blocks_.size()));
    channels_ = s[1];
  }

  static Geometry geometry(const Shape& s) { return {s[0] * s[1], s[2], s[3]}; }

  std::vector<model::BlockSize> blocks_;
  int64_t channels_ = 1;
  std::vector<float> sums_;
};

}  // namespace

std::unique_ptr<Kernel> make_block_relu(const model::LoweredOp& op) {
  return std::make_unique<BlockReluKernel>(op);
}

}  // namespace veil::nn::detail

namespace veil::nn {

void block_relu_plane(const float* x, float* y, int64_t height, int64_t width,
                      model::BlockSize block) {
  if (block.identity()) {
    if (y != x) std::memcpy(y, x, sizeof(float) * static_cast<size_t>(height * width));
    return;
  }
  thread_local std::vector<float> sums;
  detail::for_each_tile_sum(x, height, width, block, sums, [x, y](int64_t i, float s) {
    y[i] = s < 0.0f ? 0.0f : (s == s ? x[i] : s);
  });
}

}  // namespace veil::nn
