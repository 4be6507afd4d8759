// Block ReLU on top of the gated sign protocol.
#include <string>

#include "sign_gate.hpp"
#include "veil/core/error.hpp"
#include "veil/mpc/protocols/nonlinear.hpp"

namespace veil::mpc {
namespace {

void check_blocks(const Shape& s, std::span<const BlockSize> blocks) {
  if (s.size() != 4) throw InvalidArgument("block_relu: input must be NCHW");
  if (static_cast<int64_t>(blocks.size()) != s[1])
    throw InvalidArgument("block_relu: " + std::to_string(blocks.size()) + " block sizes for " +
                          std::to_string(s[1]) + " channels");
  for (const BlockSize& b : blocks)
    if (!model::valid_block_size(b)) throw InvalidArgument("block_relu: bad block size");
}

int64_t blocks_in(int64_t extent, int64_t block) { return (extent + block - 1) / block; }

}  // namespace

int64_t block_relu_count(const Shape& s, std::span<const BlockSize> blocks) {
  check_blocks(s, blocks);
  int64_t total = 0;
  for (const BlockSize& b : blocks)
    if (b.h > 0) total += blocks_in(s[2], b.h) * blocks_in(s[3], b.w);
  return total * s[0];
}

RingTensor block_relu(Party& p, const RingTensor& x, std::span<const BlockSize> blocks) {
  check_blocks(x.shape, blocks);
  const int64_t n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3];
  const bool helper = p.is(Role::Helper);
  if (!helper && !x.has_data()) throw InvalidArgument("block_relu: this party must pass shares");
  // Elements of gated channels, gathered; their block index; and block sums (local on shares).
  std::vector<uint64_t> gathered, sums;
  std::vector<uint32_t> gate_of;
  std::vector<int64_t> where;  // position of each gathered element in x
  for (int64_t b = 0; b < n; ++b)
    for (int64_t ch = 0; ch < c; ++ch) {
      const BlockSize bs = blocks[static_cast<size_t>(ch)];
      if (bs.h == 0) continue;
      const int64_t bw = blocks_in(w, bs.w), first = static_cast<int64_t>(sums.size());
      sums.resize(sums.size() + static_cast<size_t>(blocks_in(h, bs.h) * bw), 0);
      const int64_t base = (b * c + ch) * h * w;
      for (int64_t y = 0; y < h; ++y)
        for (int64_t xx = 0; xx < w; ++xx) {
          int64_t blk = first + (y / bs.h) * bw + xx / bs.w;
          if (blk >= (int64_t{1} << 32)) throw InvalidArgument("block_relu: too many blocks");
          gate_of.push_back(static_cast<uint32_t>(blk));
          where.push_back(base + y * w + xx);
          if (!helper) {
            uint64_t v = x.data[static_cast<size_t>(base + y * w + xx)];
            gathered.push_back(v);
            sums[static_cast<size_t>(blk)] += v;
          }
        }
    }
  static const std::vector<uint64_t> kNone;
  std::vector<uint64_t> gated =
      detail::sign_gate(p, helper ? kNone : sums, sums.size(), helper ? &kNone : &gathered,
                        gate_of.size(), gate_of, false);
  if (helper) return RingTensor::shape_only(x.shape);
  RingTensor out = x;  // identity channels keep their shares
  for (size_t i = 0; i < where.size(); ++i) out.data[static_cast<size_t>(where[i])] = gated[i];
  return out;
}

}  // namespace veil::mpc
