#include "veil/mpc/memory_plan.hpp"

#include <algorithm>
#include <cmath>

#include "veil/core/error.hpp"
#include "veil/core/memory_budget.hpp"
#include "veil/model/memory_plan.hpp"
#include "veil/mpc/client_input.hpp"
#include "veil/mpc/kernels/z67.hpp"

namespace veil::mpc {
namespace {

using model::OpKind;

// Saturating arithmetic: a hostile shape must not wrap around to a small plan.
constexpr uint64_t kCap = uint64_t{1} << 62;
uint64_t sat(uint64_t a, uint64_t b) { return a > kCap - std::min(b, kCap) ? kCap : a + b; }
uint64_t mul(uint64_t a, uint64_t b) { return b && a > kCap / b ? kCap : a * b; }
uint64_t words(uint64_t n) { return mul(n, 8); }  // one u64 share per element

// Bytes per role: [client, server, helper].
struct Cost {
  uint64_t c = 0, s = 0, h = 0;
  Cost& operator+=(const Cost& o) {
    c = sat(c, o.c), s = sat(s, o.s), h = sat(h, o.h);
    return *this;
  }
  friend Cost operator+(Cost a, const Cost& b) { return a += b; }
  friend Cost max(const Cost& a, const Cost& b) {
    return {std::max(a.c, b.c), std::max(a.s, b.s), std::max(a.h, b.h)};
  }
};
Cost data_parties(uint64_t bytes) { return {bytes, bytes, 0}; }  // the helper holds no shares

uint64_t numel(const Shape& s) {
  uint64_t n = 1;
  for (int64_t d : s) n = mul(n, static_cast<uint64_t>(std::max<int64_t>(d, 0)));
  return n;
}

// One step's buffers (its output included), its largest message (for the frame limit) and what
// the helper sends the server in it: the helper never waits for the server except inside a
// sign gate (for its digits), so it can run ahead through the steps in between, and the
// server's receiver thread queues whatever arrives early.
struct StepCost {
  Cost bytes;
  uint64_t message = 0;
  bool helper_waits = false;  // the helper receives in this step
  uint64_t before_wait = 0;   // helper -> server before its first receive
  uint64_t after_wait = 0;    // after its last one (everything, when it never waits)
};

// The gated sign protocol, detail::sign_gate (drelu.cpp) over n gates, k multiplicand elements
// (0: the DReLU bits are the output) of which e are opened separately (0 when fused with the
// gate, the exact ReLU). Phases at the client and server: the opening (c; the E values; the
// message out and the peer's in), PrivateCompare (c, beta, rotations, c mod 2^(L-1); at the
// server the helper's bits, sent without waiting for anything, can all be queued), the combine
// (w and A*w from the helper: at the server a message held as bytes and words, then copied; tp;
// the output). The helper: r0, r1, r mod 2^(L-1); then both peers' digits, which can all
// arrive while it is still sending its bits; then w0, w, the message, A (fused: -r) and A*w0,
// and the message's wire copy.
StepCost sign_gate(uint64_t n, uint64_t k, uint64_t e, const DreluParams& drelu) {
  const uint64_t m = static_cast<uint64_t>(drelu.ring_bits() - 1);
  const uint64_t ob = static_cast<uint64_t>((drelu.ring_bits() + 7) / 8);
  // Digits are packed 7 bytes per 9; per element the chunking rounds up at most once.
  const uint64_t digits = mul(n, z67_packed_size(static_cast<size_t>(m)));
  const bool product = k > 0;
  const bool fused = product && e == 0;
  const uint64_t out = words(product ? k : n);
  const uint64_t open_msg = sat(mul(n, ob), words(e));
  const uint64_t gate_msg = words(sat(n, k));
  const uint64_t c_e = sat(words(n), words(e));
  const uint64_t open = sat(c_e, mul(open_msg, 2));
  const uint64_t compare = sat(sat(c_e, mul(n, 2)), words(n));
  // Client: w and A*w from its PRG; server: the message as bytes and words, then w and A*w.
  const uint64_t tail = sat(sat(n, n), out);  // beta, tp, the output
  const uint64_t c_combine = sat(sat(c_e, words(n)), sat(words(k), tail));
  const uint64_t s_recv = sat(sat(c_e, n), mul(gate_msg, 2));
  const uint64_t s_combine = sat(sat(c_e, gate_msg), sat(sat(words(n), words(k)), tail));
  StepCost g;
  g.bytes.c = std::max({open, compare, c_combine});
  g.bytes.s = std::max({open, sat(compare, digits), s_recv, s_combine});
  const uint64_t r = words(mul(n, 3));
  const uint64_t h_digits = sat(sat(r, n), mul(digits, 2));
  const uint64_t h_base = sat(sat(r, n), sat(words(mul(n, 2)), gate_msg));  // + w0, w, message
  const uint64_t h_product =
      product ? sat(h_base, fused ? sat(words(n), words(k)) : words(mul(k, 3))) : 0;
  const uint64_t h_send = sat(sat(r, n), sat(words(n), mul(gate_msg, 2)));
  g.bytes.h = std::max({h_digits, h_product, h_send});
  g.message = std::max({open_msg, gate_msg, static_cast<uint64_t>(z67_packed_size(1u << 19))});
  g.helper_waits = true;
  g.before_wait = digits;
  g.after_wait = gate_msg;
  return g;
}

// ReLU over n elements: the gate is the input itself (fused in the exact mode).
StepCost relu(uint64_t n, const DreluParams& drelu) {
  return sign_gate(n, n, drelu.exact() ? 0 : n, drelu);
}

// X shared times W known to the server (bilinear_server, beaver.cpp), then the truncation and the
// bias, each a copy while its source lives. Client: y, A, E, E's wire copy, F (bytes and words),
// C0. Server: y, B - W and its wire copy, E (bytes and words), the helper's correction (bytes
// and words). Helper: y, A, B, C0 and the correction's wire copy.
StepCost bilinear(uint64_t nx, uint64_t ny, uint64_t nw) {
  StepCost b;
  b.bytes.c = words(sat(sat(mul(nx, 3), mul(ny, 2)), mul(nw, 2)));
  b.bytes.s = std::max(words(sat(sat(ny, mul(nw, 2)), mul(nx, 2))),
                       words(sat(sat(nx, mul(ny, 3)), mul(nw, 2))));
  b.bytes.h = words(sat(sat(nx, nw), mul(ny, 3)));
  b.bytes.c = std::max(b.bytes.c, words(mul(ny, 2)));
  b.bytes.s = std::max(b.bytes.s, words(mul(ny, 2)));
  b.message = words(std::max({nx, ny, nw}));
  b.after_wait = words(ny);  // the correction
  return b;
}

struct Planner {
  const SecureModel& model;
  const SecureMemoryOptions& o;
  const model::MemoryPlan shapes;

  const Shape& shape(int id) const { return shapes.shapes.at(static_cast<size_t>(id)); }
  // Elements of a shape; a dimension still unknown (it depends on tensor contents) counts as the
  // batch, as in the float plan.
  uint64_t count(Shape s) const {
    for (int64_t& d : s)
      if (d < 0) d = o.batch;
    return numel(s);
  }
  uint64_t in(const model::LoweredOp& op, size_t i = 0) const {
    return op.has_input(i) ? count(shape(op.input_ids[i])) : 0;
  }
  uint64_t out(const model::LoweredOp& op) const { return count(shape(op.output_ids.at(0))); }

  // The step's own buffers, its output included.
  StepCost op_cost(const model::LoweredOp& op) const {
    const uint64_t nx = in(op), ny = out(op);
    switch (op.kind) {
      case OpKind::Conv:
      case OpKind::Gemm:
      case OpKind::MatMul:
        return bilinear(nx, ny, in(op, 1));
      case OpKind::Relu:
        return relu(nx, o.drelu);
      case OpKind::BlockRelu:
        return block_relu(op);
      case OpKind::LeakyRelu: {
        // ReLU, then r, x - r, its product with alpha, the truncation and the sum: one expression.
        StepCost r = relu(nx, o.drelu);
        r.bytes = max(r.bytes, data_parties(words(mul(nx, 5))));
        return r;
      }
      case OpKind::PRelu: {
        // ReLU, then r and x - r live through a depthwise product with the slopes.
        StepCost r = relu(nx, o.drelu);
        const StepCost b = bilinear(nx, nx, in(op, 1));
        r.bytes = max(r.bytes, b.bytes + data_parties(words(mul(nx, 2))));
        r.message = std::max(r.message, b.message);
        r.after_wait = sat(r.after_wait, b.after_wait);
        return r;
      }
      case OpKind::Clip: {
        // One ReLU over x - lo and x - hi (those present), the gates kept beside it, then y.
        const auto& p = op.as<model::ClipParams>();
        const uint64_t bounds = (op.has_input(1) || std::isfinite(p.min) ? 1u : 0u) +
                                (op.has_input(2) || std::isfinite(p.max) ? 1u : 0u);
        const uint64_t g = mul(nx, bounds);
        StepCost r = relu(g, o.drelu);
        r.bytes = r.bytes + data_parties(words(g));
        r.bytes = max(r.bytes, data_parties(sat(words(mul(g, 2)), words(ny))));
        return r;
      }
      case OpKind::MaxPool: {
        // Every window's candidates (the helper fills zeros), then per level of the tournament the
        // differences and the partners of at most half of them and a ReLU; the first is largest.
        const auto& k = op.as<model::PoolParams>().spatial.kernel_shape;
        uint64_t kk = 1;
        for (int64_t d : k) kk = mul(kk, static_cast<uint64_t>(std::max<int64_t>(d, 1)));
        const uint64_t windows = sat(words(mul(ny, 2)), words(mul(ny, kk)));
        const uint64_t pairs = mul(ny, kk / 2);
        StepCost r = relu(pairs, o.drelu);
        r.bytes = r.bytes + Cost{sat(windows, words(mul(pairs, 2))),
                                 sat(windows, words(mul(pairs, 2))), windows};
        r.bytes = r.bytes + data_parties(words(ny));
        return r;
      }
      case OpKind::AveragePool:
      case OpKind::GlobalAveragePool:
        return {data_parties(words(mul(ny, 2))), 0};  // the sums and their truncation
      case OpKind::Add:
      case OpKind::Concat:
      case OpKind::Flatten:
      case OpKind::Reshape:
      case OpKind::Identity:
      case OpKind::Dropout:
        return {data_parties(words(ny)), 0};  // a copy (moved when the input dies)
      default:  // an op SecureModel learned to run needs its formula here
        throw Unsupported(op.describe() + ": no memory plan for it in three-party inference");
    }
  }

  // block_relu (relu.cpp): the gathered elements, their block and position (grown by
  // push_back: up to twice their size), the block sums; the gated sign over the blocks with
  // the g gathered elements opened; then the output, a copy of the input.
  StepCost block_relu(const model::LoweredOp& op) const {
    Shape x = shape(op.input_ids[0]);
    for (int64_t& d : x)
      if (d < 0) d = o.batch;
    const auto& blocks = op.as<model::BlockReluParams>().blocks;
    // A mismatch is refused by the engine itself, naming the node.
    if (x.size() != 4 || x[1] != static_cast<int64_t>(blocks.size())) return {};
    const uint64_t n = static_cast<uint64_t>(std::max<int64_t>(x[0], 0));
    const auto ceil_div = [](int64_t a, int64_t b) {
      return static_cast<uint64_t>(std::max<int64_t>((a + b - 1) / b, 0));
    };
    uint64_t gated = 0, tiles = 0;  // per image
    for (const auto& b : blocks)
      if (b.h > 0 && b.w > 0) {
        gated = sat(gated, numel({x[2], x[3]}));
        tiles = sat(tiles, mul(ceil_div(x[2], b.h), ceil_div(x[3], b.w)));
      }
    gated = mul(gated, n);
    tiles = mul(tiles, n);
    const uint64_t gather = mul(sat(mul(gated, 20), words(tiles)), 2);
    const uint64_t gather_h = mul(sat(mul(gated, 12), words(tiles)), 2);
    StepCost g = gated ? sign_gate(tiles, gated, gated, o.drelu) : StepCost{};
    g.bytes = max(g.bytes, data_parties(sat(words(gated), words(count(x)))));
    g.bytes = g.bytes + Cost{gather, gather, gather_h};
    return g;
  }

  // Weights (all three hold the graph; the server also its fixed-point copies and their
  // sources), GEMM packing and im2col scratch per thread, PrivateCompare's chunk buffers, TLS
  // buffers, the client's images and its batch copy.
  Cost fixed() const {
    const model::LoweredGraph& lowered = model.lowered();
    uint64_t params = 0, im2col = 0;
    for (size_t id = 0; id < lowered.values.size(); ++id)
      if (lowered.is_initializer[id]) params = sat(params, count(shapes.shapes[id]));
    for (const auto& op : lowered.ops)
      if (op.kind == OpKind::Conv && op.has_input(1)) {
        const Shape& w = shape(op.input_ids[1]);
        const Shape& y = shape(op.output_ids[0]);
        if (w.size() == 4 && y.size() == 4)
          im2col = std::max(im2col, words(mul(numel({w[1], w[2], w[3]}), numel({y[2], y[3]}))));
      }
    const uint64_t threads = static_cast<uint64_t>(std::max(o.threads, 1));
    const uint64_t scratch = mul(sat(uint64_t{2304} << 10, im2col), threads);
    const uint64_t chunks = uint64_t{5} << 20;  // four 2^19-digit buffers and a packed one
    // TLS encrypts and decrypts in pieces (tcp_channel.cpp): about 3 MiB per link.
    const uint64_t tls = uint64_t{6} << 20;
    Cost f{sat(mul(params, 4), scratch), sat(mul(params, 16), scratch),
           sat(mul(params, 4), scratch)};
    f += {chunks + tls, chunks + tls, chunks + tls};
    const uint64_t per_image = numel(model_input_shape(model.graph(), 1));
    f.c = sat(f.c, mul(mul(per_image, 4), sat(static_cast<uint64_t>(std::max<int64_t>(o.images, 0)),
                                              static_cast<uint64_t>(o.batch))));
    return f;
  }
};

}  // namespace

uint64_t SecureMemoryPlan::total() const { return sat(sat(peak[0], peak[1]), peak[2]); }

uint64_t SecureMemoryPlan::need(std::optional<Role> role) const {
  return role ? peak[static_cast<size_t>(*role)] : total();
}

SecureMemoryPlan plan_secure_memory(const SecureModel& model, const SecureMemoryOptions& o) {
  if (o.batch < 1) throw InvalidArgument("memory plan: the batch must be at least 1");
  const model::LoweredGraph& lowered = model.lowered();
  const Shape input = model_input_shape(model.graph(), o.batch);
  Planner p{model, o, model::plan_memory(lowered, model.graph(), {input})};
  SecureMemoryPlan plan;
  plan.batch = o.batch;
  const Cost fixed = p.fixed();
  plan.fixed = {fixed.c, fixed.s, fixed.h};

  const std::vector<size_t> last = model::last_readers(lowered);
  uint64_t live = 0;  // shares held by the client and by the server alike
  std::vector<bool> held(lowered.values.size(), false);
  std::vector<StepCost> costs;
  auto add_step = [&](const std::string& name, const StepCost& step) {
    const Cost during = data_parties(live) + step.bytes;
    costs.push_back(step);
    plan.steps.push_back(name);
    plan.during[0].push_back(during.c);
    plan.during[1].push_back(during.s);
    plan.during[2].push_back(during.h);
    if (step.message > plan.largest_message) {
      plan.largest_message = step.message;
      plan.largest_message_step = plan.steps.size() - 1;
    }
  };

  // Sharing the input (share.cpp): the client's float batch encoded, then masked in place; the
  // server draws the mask. No message.
  const uint64_t nin = numel(input);
  add_step("sharing the input", {{sat(mul(nin, 4), words(mul(nin, 2))), words(nin), 0}, 0});
  for (int id : lowered.inputs) held[static_cast<size_t>(id)] = true;
  live = words(nin);

  for (size_t i = 0; i < lowered.ops.size(); ++i) {
    const model::LoweredOp& op = lowered.ops[i];
    add_step(op.describe(), p.op_cost(op));
    for (int id : op.output_ids)
      if (id >= 0 && !held[static_cast<size_t>(id)]) {
        held[static_cast<size_t>(id)] = true;
        live = sat(live, words(p.count(p.shape(id))));
      }
    for (int id : op.input_ids)
      if (id >= 0 && last[static_cast<size_t>(id)] == i && held[static_cast<size_t>(id)]) {
        held[static_cast<size_t>(id)] = false;
        live -= std::min(live, words(p.count(p.shape(id))));
      }
  }
  // The reveal (share.cpp): the server's shares travel to the client (bytes and words), which
  // adds them to a copy of its own and decodes the floats.
  const uint64_t nout = lowered.outputs.empty() ? 0 : p.count(p.shape(lowered.outputs[0]));
  add_step("revealing the output",
           {{words(mul(nout, 3)) + mul(nout, 4), words(nout), 0}, words(nout)});

  // The server's queue while it runs step t: everything the helper can send before it has to
  // wait for the server again, i.e. the steps after t up to the next one it receives in.
  for (size_t t = 0; t < costs.size(); ++t) {
    uint64_t ahead = 0;
    for (size_t u = t + 1; u < costs.size(); ++u) {
      if (costs[u].helper_waits) {
        ahead = sat(ahead, costs[u].before_wait);
        break;
      }
      ahead = sat(ahead, costs[u].after_wait);
    }
    plan.during[1][t] = sat(plan.during[1][t], ahead);
  }
  for (size_t r = 0; r < 3; ++r) {
    const auto& d = plan.during[r];
    const auto top = std::max_element(d.begin(), d.end());
    plan.peak_step[r] = static_cast<size_t>(top - d.begin());
    plan.peak[r] = sat(plan.fixed[r], *top);
  }
  return plan;
}

namespace {

bool fits(const SecureMemoryPlan& plan, std::optional<Role> role, uint64_t budget,
          uint64_t max_frame) {
  return plan.need(role) <= budget && plan.largest_message <= max_frame;
}

}  // namespace

int64_t largest_batch_within(const SecureModel& model, const SecureMemoryOptions& options,
                             std::optional<Role> role, uint64_t budget, uint64_t max_frame,
                             int64_t limit) {
  SecureMemoryOptions o = options;
  auto ok = [&](int64_t b) {
    o.batch = b;
    return fits(plan_secure_memory(model, o), role, budget, max_frame);
  };
  if (limit < 1 || !ok(1)) return 0;
  int64_t lo = 1, hi = limit;  // ok(lo); the answer is in [lo, hi]
  if (ok(hi)) return hi;
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    (ok(mid) ? lo : hi) = mid;
  }
  return lo;
}

void require_secure_within(const SecureModel& model, const SecureMemoryOptions& options,
                           std::optional<Role> role, uint64_t budget, uint64_t max_frame) {
  const SecureMemoryPlan plan = plan_secure_memory(model, options);
  if (fits(plan, role, budget, max_frame)) return;
  const int64_t best =
      largest_batch_within(model, options, role, budget, max_frame, options.batch - 1);
  const std::string remedy = best > 0 ? "give --batch " + std::to_string(best) + " or less"
                                      : "not even a batch of one image fits";
  const std::string at = "three-party inference at batch " + std::to_string(options.batch);
  if (plan.largest_message > max_frame)
    throw InvalidArgument(plan.steps[plan.largest_message_step] + ": " + at +
                          " sends a message of " + human_bytes(plan.largest_message) +
                          ", over the frame limit of " + human_bytes(max_frame) + "; " + remedy);
  // The step named is the first where the parties' buffers (this role's, or the three
  // together) cross the budget.
  size_t step = 0;
  for (; step < plan.steps.size(); ++step) {
    uint64_t sum = 0;
    for (size_t r = 0; r < 3; ++r)
      if (!role || static_cast<size_t>(*role) == r)
        sum = sat(sum, sat(plan.fixed[r], plan.during[r][step]));
    if (sum > budget) break;
  }
  if (step == plan.steps.size()) step = plan.peak_step[role ? static_cast<size_t>(*role) : 0];
  const std::string who = role ? std::string("the ") + role_name(*role)
                               : "the three parties (client " + human_bytes(plan.peak[0]) +
                                     ", server " + human_bytes(plan.peak[1]) + ", helper " +
                                     human_bytes(plan.peak[2]) + ")";
  throw InvalidArgument(plan.steps[step] + ": " + at + " needs " + human_bytes(plan.need(role)) +
                        " at " + who + ", over the memory budget of " + human_bytes(budget) + "; " +
                        remedy + " (or raise --max-memory)");
}

}  // namespace veil::mpc
