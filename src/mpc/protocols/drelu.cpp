// The DReLU engine: masked opening + PrivateCompare (see nonlinear.hpp and docs/MPC.md).
#include <algorithm>
#include <cstring>
#include <optional>
#include <string>

#include "sign_gate.hpp"
#include "veil/core/default_init.hpp"
#include "veil/core/error.hpp"
#include "veil/mpc/kernels/z67.hpp"
#include "veil/mpc/protocols/nonlinear.hpp"
#include "veil/mpc/protocols/private_compare.hpp"

namespace veil::mpc {
namespace detail {
namespace {

// PRG streams of one sign_gate op. Helper-client / helper-server: kR (mask r), kBits (client's
// Z_67 bit shares), kW (client's share of w), kMask (Beaver mask of the multiplicand), kProd
// (client's share of mask * w). Client-server: kCoins (beta, multipliers, zero-sharing,
// rotations).
enum : uint32_t { kR = 1, kBits = 2, kW = 3, kMask = 4, kProd = 5, kCoins = 6 };

// Digit buffers and the per-element temporaries below are written in full before they are read,
// so they are Bytes and Words (not zero-filled; the fill was a visible share of a secure
// ResNet-20 inference under `perf record`).

void recv_z67(Party& p, Role from, Tag tag, uint8_t* out, size_t n) {
  unpack_z67(p.recv(from, tag, z67_packed_size(n)), std::span<uint8_t>(out, n));
}

// PrivateCompare runs over chunks of about kChunkDigits digits (whole elements), one message per
// chunk and round. Its digits (m per element, 63 in the exact mode) would otherwise need several n
// x m buffers at once: at batch 64 a ResNet-20 layer has 8e5 elements, i.e. 50 MB buffers that live
// in DRAM and are page-faulted in afresh for every layer. Chunks keep them cache-sized and reused,
// and let the helper unpack chunk k while the others compute chunk k+1. Rounds are unchanged: chunk
// k's messages depend only on chunk k's earlier ones. All three parties chunk identically.
constexpr size_t kChunkDigits = size_t{1} << 19;

struct ChunkPlan {
  size_t n, m;  // elements of the op, digits per element
  size_t per_chunk() const { return std::max<size_t>(1, kChunkDigits / m); }
  size_t elements(size_t e0) const { return std::min(per_chunk(), n - e0); }
  size_t max_digits() const { return std::min(per_chunk(), n) * m; }
};

struct Params {
  int l, m, s;
  uint64_t mask_l, mask_m;
  size_t open_bytes;  // bytes of one opened L-bit value
};

Params params_of(const DreluParams& dp) {
  Params q;
  q.l = dp.ring_bits();
  q.m = q.l - 1;
  q.s = dp.num_lsb_to_ignore;
  q.mask_l = q.l == 64 ? ~uint64_t{0} : (uint64_t{1} << q.l) - 1;
  q.mask_m = (uint64_t{1} << q.m) - 1;
  q.open_bytes = static_cast<size_t>((q.l + 7) / 8);
  return q;
}

// One sign_gate call's public shape, as every party derives it from the arguments.
struct GateOp {
  Params q;
  size_t n = 0, m = 0;                          // gates (elements compared), digits per element
  const std::vector<uint64_t>* mult = nullptr;  // multiplicand shares (gated ReLU), or none
  size_t n_mult = 0;
  std::span<const uint32_t> gate_of;  // gate of each multiplicand element; empty = identity
  bool product = false;  // a multiplicand is gated (else the DReLU bits are the output)
  bool fused = false;    // the multiplicand is the gate's own input: reuse c, no second opening
  size_t n_open_x = 0;   // multiplicand values to open (E = x - A)
  size_t gate_index(size_t k) const { return gate_of.empty() ? k : gate_of[k]; }
};

// The helper's side: Z_67 bit shares of r to the server, the digits of both parties in, and
// shares of w = [r' > c'] xor r[L-1] (and of mask * w) out to the server.
void helper_gate(Party& p, const GateOp& op) {
  const Params& q = op.q;
  const size_t n = op.n, m = op.m, n_mult = op.n_mult;
  const bool product = op.product, fused = op.fused;
  std::vector<uint64_t> r0 = p.shared_words(Role::Client, kR, n),
                        r1 = p.shared_words(Role::Server, kR, n);
  Words rm(n);
  for (size_t e = 0; e < n; ++e) rm[e] = (r0[e] + r1[e]) & q.mask_m;
  const ChunkPlan chunks{n, m};
  {
    ByteSampler client_bits(p.shared_prg(Role::Client, kBits));
    Bytes bits(chunks.max_digits());
    for (size_t e0 = 0; e0 < n; e0 += chunks.per_chunk()) {
      const size_t ne = chunks.elements(e0), nd_k = ne * m;
      client_bits.fill_below(kP, bits.data(), nd_k);
      private_compare_bit_shares(q.m, ne, rm.data() + e0, bits.data());
      p.send(Role::Server, Tag::CompareBits, pack_z67(std::span<const uint8_t>(bits.data(), nd_k)));
    }
  }
  Bytes any_zero(n);
  {
    Bytes dc(chunks.max_digits());
    Bytes ds(chunks.max_digits());
    for (size_t e0 = 0; e0 < n; e0 += chunks.per_chunk()) {
      const size_t ne = chunks.elements(e0);
      recv_z67(p, Role::Client, Tag::CompareDigits, dc.data(), ne * m);
      recv_z67(p, Role::Server, Tag::CompareDigits, ds.data(), ne * m);
      private_compare_any_zero(q.m, ne, dc.data(), ds.data(), any_zero.data() + e0);
    }
  }
  std::vector<uint64_t> w0 = p.shared_words(Role::Client, kW, n);
  Words w(n);
  std::vector<uint64_t> msg(n + (product ? n_mult : 0));
  for (size_t e = 0; e < n; ++e) {
    const bool zero = any_zero[e] != 0;
    uint64_t r = (r0[e] + r1[e]) & q.mask_l;
    w[e] = static_cast<uint64_t>(zero) ^ ((r >> (q.l - 1)) & 1);
    msg[e] = w[e] - w0[e];
  }
  if (product) {
    std::vector<uint64_t> a;
    if (fused) {
      a.resize(n);
      for (size_t e = 0; e < n; ++e) a[e] = -(r0[e] + r1[e]);
    } else {
      a = p.shared_words(Role::Client, kMask, n_mult);
      std::vector<uint64_t> a1 = p.shared_words(Role::Server, kMask, n_mult);
      for (size_t k = 0; k < n_mult; ++k) a[k] += a1[k];
    }
    std::vector<uint64_t> aw0 = p.shared_words(Role::Client, kProd, n_mult);
    for (size_t k = 0; k < n_mult; ++k) msg[n + k] = a[k] * w[op.gate_index(k)] - aw0[k];
  }
  p.send_u64(Role::Server, Tag::GateShares, msg);
}

// Round 1 (client and server): open c = v + r (mod 2^L) and, unless fused, E = x - A for the
// multiplicand. Returns c; `eopen` receives E.
std::vector<uint64_t> open_masked(Party& p, const GateOp& op, Role other,
                                  const std::vector<uint64_t>& gate, std::vector<uint64_t>& eopen) {
  const Params& q = op.q;
  const size_t n = op.n, n_open_x = op.n_open_x;
  const std::vector<uint64_t>* mult = op.mult;
  std::vector<uint64_t> c = p.shared_words(Role::Helper, kR, n);
  for (size_t e = 0; e < n; ++e) c[e] = ((gate[e] >> q.s) + c[e]) & q.mask_l;
  if (n_open_x) {
    eopen = p.shared_words(Role::Helper, kMask, n_open_x);
    for (size_t k = 0; k < n_open_x; ++k) eopen[k] = (*mult)[k] - eopen[k];
  }
  // Each opened value is its low open_bytes bytes, little-endian (x86-64). Whole 8-byte
  // stores that the next value partly overwrites, and whole 8-byte loads masked to the value's
  // bytes, instead of byte loops; the message has 8 bytes of slack while it is written.
  const size_t ob = q.open_bytes, open_size = n * ob + 8 * n_open_x;
  const uint64_t byte_mask = ob == 8 ? ~uint64_t{0} : (uint64_t{1} << (8 * ob)) - 1;
  Bytes msg(open_size + 8);
  uint8_t* o = msg.data();
  for (size_t e = 0; e < n; ++e) std::memcpy(o + e * ob, &c[e], 8);
  if (n_open_x) std::memcpy(o + n * ob, eopen.data(), 8 * n_open_x);
  msg.resize(open_size);
  p.send(other, Tag::CompareOpen, std::move(msg));
  const Bytes in = p.recv(other, Tag::CompareOpen, open_size);
  const uint8_t* ip = in.data();
  for (size_t e = 0; e < n; ++e) {
    uint64_t v = 0;
    if (e * ob + 8 <= open_size) {
      std::memcpy(&v, ip + e * ob, 8);
      v &= byte_mask;
    } else {
      std::memcpy(&v, ip + e * ob, ob);
    }
    c[e] = (c[e] + v) & q.mask_l;
  }
  ip += n * ob;
  for (size_t k = 0; k < n_open_x; ++k) {
    uint64_t v;
    std::memcpy(&v, ip + 8 * k, 8);
    eopen[k] += v;
  }
  return c;
}

// Round 2 (client and server): PrivateCompare digits to the helper, chunk by chunk. Returns the
// client-server coin beta of each element.
Bytes compare_digits_to_helper(Party& p, const GateOp& op, Role other, bool client,
                               const std::vector<uint64_t>& c) {
  const Params& q = op.q;
  const size_t n = op.n, m = op.m;
  Bytes beta(n);
  // The client-server coins of the whole op, drawn in this order (both parties must draw
  // identically): beta bits and rotations of every element, then per chunk the multipliers
  // and the masks.
  ByteSampler coins(p.shared_prg(other, kCoins));
  Bytes rot(n);
  coins.fill_below(2, beta.data(), n);
  coins.fill_below(static_cast<unsigned>(m), rot.data(), n);
  Words rp(n);
  for (size_t e = 0; e < n; ++e) rp[e] = c[e] & q.mask_m;
  std::optional<ByteSampler> helper_bits;
  if (client) helper_bits.emplace(p.shared_prg(Role::Helper, kBits));
  const ChunkPlan chunks{n, m};
  Bytes xs(chunks.max_digits());
  Bytes sv(chunks.max_digits());
  Bytes uv(chunks.max_digits());
  Bytes digits(chunks.max_digits());
  for (size_t e0 = 0; e0 < n; e0 += chunks.per_chunk()) {
    const size_t ne = chunks.elements(e0), nd_k = ne * m;
    if (client)
      helper_bits->fill_below(kP, xs.data(), nd_k);
    else
      recv_z67(p, Role::Helper, Tag::CompareBits, xs.data(), nd_k);
    coins.fill_below(kP - 1, sv.data(), nd_k);
    for (size_t i = 0; i < nd_k; ++i) ++sv[i];
    coins.fill_below(kP, uv.data(), nd_k);
    private_compare_digits(q.m, client, ne, rp.data() + e0, beta.data() + e0, xs.data(), sv.data(),
                           uv.data(), rot.data() + e0, digits.data());
    p.send(Role::Helper, Tag::CompareDigits,
           pack_z67(std::span<const uint8_t>(digits.data(), nd_k)));
  }
  return beta;
}

// Round 3 (client and server): the helper's shares of w (and of mask * w). DReLU = (1 - t) xor w
// with t = c[L-1] xor beta public to client and server.
std::vector<uint64_t> combine(Party& p, const GateOp& op, bool client,
                              const std::vector<uint64_t>& c, const std::vector<uint64_t>& eopen,
                              const Bytes& beta) {
  const Params& q = op.q;
  const size_t n = op.n, n_mult = op.n_mult;
  const bool product = op.product, fused = op.fused;
  const std::vector<uint64_t>* mult = op.mult;
  std::vector<uint64_t> w, aw;
  if (client) {
    w = p.shared_words(Role::Helper, kW, n);
    if (product) aw = p.shared_words(Role::Helper, kProd, n_mult);
  } else {
    std::vector<uint64_t> msg =
        p.recv_u64(Role::Helper, Tag::GateShares, n + (product ? n_mult : 0));
    w.assign(msg.begin(), msg.begin() + static_cast<std::ptrdiff_t>(n));
    aw.assign(msg.begin() + static_cast<std::ptrdiff_t>(n), msg.end());
  }
  Bytes tp(n);
  for (size_t e = 0; e < n; ++e) tp[e] = 1 ^ ((c[e] >> (q.l - 1)) & 1) ^ beta[e];
  if (!product) {
    std::vector<uint64_t> out(n);
    for (size_t e = 0; e < n; ++e) {
      const uint64_t flip = uint64_t{0} - tp[e];  // all ones iff tp: w -> -w, branch-free
      out[e] = (client ? tp[e] : 0) + ((w[e] ^ flip) - flip);
    }
    return out;
  }
  // x * (tp xor w) = tp*x + (1 - 2 tp) * x*w, with x*w = E*w + A*w (fused: E = c, A = -r).
  // Branch-free: tp is a uniformly random bit, so a branch on it mispredicts half the time.
  std::vector<uint64_t> out(n_mult);
  for (size_t k = 0; k < n_mult; ++k) {
    size_t g = op.gate_index(k);
    uint64_t e_open = fused ? c[k] : eopen[k];
    uint64_t xw = e_open * w[g] + aw[k];
    const uint64_t flip = uint64_t{0} - tp[g];  // all ones iff tp
    out[k] = xw + (((*mult)[k] - 2 * xw) & flip);
  }
  return out;
}

}  // namespace

std::vector<uint64_t> sign_gate(Party& p, const std::vector<uint64_t>& gate, size_t n,
                                const std::vector<uint64_t>* mult, size_t n_mult,
                                std::span<const uint32_t> gate_of, bool mult_is_gate) {
  p.begin_op();
  p.count_drelus(n);
  GateOp op;
  op.q = params_of(p.params().drelu);
  op.n = n;
  op.m = static_cast<size_t>(op.q.m);
  op.mult = mult;
  op.n_mult = n_mult;
  op.gate_of = gate_of;
  op.product = mult != nullptr;
  if (!gate_of.empty()) {
    if (gate_of.size() != n_mult) throw InvalidArgument("gated ReLU: gate_of has wrong size");
    for (uint32_t g : gate_of)
      if (g >= n) throw InvalidArgument("gated ReLU: gate index out of range");
  } else if (op.product && n_mult != n) {
    throw InvalidArgument("gated ReLU: without gate_of the multiplicand must match the gate");
  }
  op.fused = op.product && mult_is_gate && gate_of.empty() && p.params().drelu.exact();
  op.n_open_x = op.product && !op.fused ? n_mult : 0;

  if (p.is(Role::Helper)) {
    helper_gate(p, op);
    return {};
  }
  if (gate.size() != n) throw InvalidArgument("DReLU: this party must pass its shares");
  if (op.product && mult->size() != n_mult)
    throw InvalidArgument("gated ReLU: this party must pass its multiplicand shares");
  const bool client = p.is(Role::Client);
  const Role other = client ? Role::Server : Role::Client;
  std::vector<uint64_t> eopen;
  const std::vector<uint64_t> c = open_masked(p, op, other, gate, eopen);
  const Bytes beta = compare_digits_to_helper(p, op, other, client, c);
  return combine(p, op, client, c, eopen, beta);
}

}  // namespace detail

RingTensor drelu(Party& p, const RingTensor& x) {
  const size_t n = static_cast<size_t>(x.numel());
  std::vector<uint64_t> out = detail::sign_gate(p, x.data, n, nullptr, 0, {}, false);
  if (p.is(Role::Helper)) return RingTensor::shape_only(x.shape);
  return RingTensor(x.shape, std::move(out));
}

RingTensor relu(Party& p, const RingTensor& x) {
  const size_t n = static_cast<size_t>(x.numel());
  static const std::vector<uint64_t> kNone;
  const std::vector<uint64_t>* mult = p.is(Role::Helper) ? &kNone : &x.data;
  std::vector<uint64_t> out = detail::sign_gate(p, x.data, n, mult, n, {}, true);
  if (p.is(Role::Helper)) return RingTensor::shape_only(x.shape);
  return RingTensor(x.shape, std::move(out));
}

RingTensor gated_relu(Party& p, const RingTensor& x, const RingTensor& gate,
                      std::span<const uint32_t> gate_of) {
  const size_t nx = static_cast<size_t>(x.numel()), ng = static_cast<size_t>(gate.numel());
  if (gate_of.size() != nx) throw InvalidArgument("gated_relu: one gate index per element");
  static const std::vector<uint64_t> kNone;
  const std::vector<uint64_t>* mult = p.is(Role::Helper) ? &kNone : &x.data;
  std::vector<uint64_t> out = detail::sign_gate(p, gate.data, ng, mult, nx, gate_of, false);
  if (p.is(Role::Helper)) return RingTensor::shape_only(x.shape);
  return RingTensor(x.shape, std::move(out));
}

}  // namespace veil::mpc
