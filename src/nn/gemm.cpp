// Gemm and MatMul on oneDNN's row-major sgemm (the JIT GEMM behind its inner-product and matmul
// primitives, without per-shape primitive creation — these layers are small and latency-bound).
#include <algorithm>
#include <cstring>

#include "kernel.hpp"
#include "veil/nn/reference.hpp"

namespace veil::nn::detail {

namespace {

// c[M,N] = alpha * op(a) * op(b) + beta * c, where a is stored [M,K] (or [K,M] when ta) and b
// is stored [K,N] (or [N,K] when tb).
void gemm_rm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
             const float* b, float beta, float* c) {
  if (m == 0 || n == 0) return;
  if (k == 0) {
    for (int64_t i = 0; i < m * n; ++i) c[i] = beta == 0.0f ? 0.0f : beta * c[i];
    return;
  }
  const auto st = dnnl::sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, alpha, a, ta ? m : k, b,
                              tb ? k : n, beta, c, n);
  if (st != dnnl::status::success) throw Unsupported("oneDNN sgemm failed");
}

class GemmKernel final : public Kernel {
 public:
  explicit GemmKernel(const model::LoweredOp& op) : GemmKernel(op, op.as<model::GemmParams>()) {}
  GemmKernel(const model::LoweredOp& op, const model::GemmParams& p)
      : Kernel(op), alpha_(p.alpha), beta_(p.beta), ta_(p.trans_a), tb_(p.trans_b) {
    if (op.input_ids.size() < 2 || op.input_ids.size() > 3) fail("takes 2 or 3 inputs");
  }
  std::vector<size_t> parameter_inputs() const override { return {1, 2}; }

  void forward(ForwardEnv& env) override {
    const Tensor& a = env.input(0);
    const Tensor& b = env.input(1);
    const Tensor* c = env.has_input(2) ? &env.input(2) : nullptr;
    int64_t m, n, k;
    dims(a, b, m, n, k);
    Tensor& y = env.output(0, {m, n});
    float beta = 0.0f;
    if (c && beta_ != 0.0f) {
      broadcast_c(*c, m, n, y.data());
      beta = 1.0f;
    }
    gemm_rm(ta_, tb_, m, n, k, alpha_, a.data(), b.data(), beta, y.data());
  }

  void backward(BackwardEnv& env) override {
    const Tensor* gy = env.grad_output(0);
    if (!gy) return;
    const Tensor& a = env.input(0);
    const Tensor& b = env.input(1);
    int64_t m, n, k;
    dims(a, b, m, n, k);
    const float* dy = gy->data();
    if (env.wants_grad(0)) {
      float* da = env.grad_input(0).data();
      if (!ta_)
        gemm_rm(false, !tb_, m, k, n, alpha_, dy, b.data(), 0.0f, da);
      else
        gemm_rm(tb_, true, k, m, n, alpha_, b.data(), dy, 0.0f, da);
    }
    if (env.wants_grad(1)) {
      float* db = env.grad_input(1).data();
      if (!tb_)
        gemm_rm(!ta_, false, k, n, m, alpha_, a.data(), dy, 0.0f, db);
      else
        gemm_rm(true, ta_, n, k, m, alpha_, dy, a.data(), 0.0f, db);
    }
    if (env.has_input(2) && env.wants_grad(2)) {
      const Tensor& c = env.input(2);
      reduce_to(dy, {m, n}, c.shape(), beta_, env.grad_input(2).data());
    }
  }

 private:
  void dims(const Tensor& a, const Tensor& b, int64_t& m, int64_t& n, int64_t& k) const {
    if (a.rank() != 2 || b.rank() != 2 || a.dtype() != DType::Float32 ||
        b.dtype() != DType::Float32)
      fail("A and B must be 2-D float tensors, got " + shape_to_string(a.shape()) + " and " +
           shape_to_string(b.shape()));
    m = ta_ ? a.dim(1) : a.dim(0);
    k = ta_ ? a.dim(0) : a.dim(1);
    n = tb_ ? b.dim(0) : b.dim(1);
    const int64_t kb = tb_ ? b.dim(1) : b.dim(0);
    if (k != kb)
      fail("inner dimensions differ: " + shape_to_string(a.shape()) + " and " +
           shape_to_string(b.shape()));
  }

  void broadcast_c(const Tensor& c, int64_t m, int64_t n, float* y) const {
    const Shape& s = c.shape();
    if (s.size() > 2) fail("C must have rank <= 2");
    const int64_t cm = s.size() == 2 ? s[0] : 1;
    const int64_t cn = s.empty() ? 1 : s.back();
    if ((cm != 1 && cm != m) || (cn != 1 && cn != n))
      fail("C " + shape_to_string(s) + " does not broadcast to [" + std::to_string(m) + ", " +
           std::to_string(n) + "]");
    const float* cv = c.data();
    for (int64_t i = 0; i < m; ++i) {
      const float* row = cv + (cm == 1 ? 0 : i * cn);
      float* yr = y + i * n;
      if (cn == 1)
        std::fill(yr, yr + n, beta_ * row[0]);
      else
        for (int64_t j = 0; j < n; ++j) yr[j] = beta_ * row[j];
    }
  }

  float alpha_, beta_;
  bool ta_, tb_;
};

// numpy.matmul with broadcast batch dimensions.
class MatMulKernel final : public Kernel {
 public:
  explicit MatMulKernel(const model::LoweredOp& op) : Kernel(op) {
    if (op.input_ids.size() != 2) fail("takes 2 inputs");
  }
  std::vector<size_t> parameter_inputs() const override { return {1}; }

  void forward(ForwardEnv& env) override {
    const Tensor& a = env.input(0);
    const Tensor& b = env.input(1);
    const Plan p = plan(a, b);
    Tensor& y = env.output(0, p.out_shape);
    if (p.b_batch == 1 && p.batch > 1) {
      // The common x @ W case: one GEMM over all rows of x (when x's batches are contiguous).
      if (p.a_batch == p.batch) {
        gemm_rm(false, false, p.batch * p.m, p.n, p.k, 1.0f, a.data(), b.data(), 0.0f, y.data());
        return;
      }
    }
    for (int64_t t = 0; t < p.batch; ++t)
      gemm_rm(false, false, p.m, p.n, p.k, 1.0f, a.data() + p.a_off[t] * p.m * p.k,
              b.data() + p.b_off[t] * p.k * p.n, 0.0f, y.data() + t * p.m * p.n);
  }

  void backward(BackwardEnv& env) override {
    const Tensor* gy = env.grad_output(0);
    if (!gy) return;
    const Tensor& a = env.input(0);
    const Tensor& b = env.input(1);
    const Plan p = plan(a, b);
    const float* dy = gy->data();
    if (env.wants_grad(0)) {
      float* da = env.grad_input(0).data();
      std::fill(da, da + a.numel(), 0.0f);
      for (int64_t t = 0; t < p.batch; ++t)
        gemm_rm(false, true, p.m, p.k, p.n, 1.0f, dy + t * p.m * p.n,
                b.data() + p.b_off[t] * p.k * p.n, 1.0f, da + p.a_off[t] * p.m * p.k);
    }
    if (env.wants_grad(1)) {
      float* db = env.grad_input(1).data();
      if (p.b_batch == 1 && p.a_batch == p.batch) {
        gemm_rm(true, false, p.k, p.n, p.batch * p.m, 1.0f, a.data(), dy, 0.0f, db);
      } else {
        std::fill(db, db + b.numel(), 0.0f);
        for (int64_t t = 0; t < p.batch; ++t)
          gemm_rm(true, false, p.k, p.n, p.m, 1.0f, a.data() + p.a_off[t] * p.m * p.k,
                  dy + t * p.m * p.n, 1.0f, db + p.b_off[t] * p.k * p.n);
      }
    }
  }

 private:
  struct Plan {
    int64_t m, n, k, batch, a_batch, b_batch;
    Shape out_shape;
    std::vector<int64_t> a_off, b_off;  // per output batch: the operand's batch index
  };

  Plan plan(const Tensor& a, const Tensor& b) const {
    if (a.dtype() != DType::Float32 || b.dtype() != DType::Float32) fail("needs float tensors");
    if (a.rank() < 1 || b.rank() < 1) fail("operands must have rank >= 1");
    Shape sa = a.shape(), sb = b.shape();
    const bool a1 = sa.size() == 1, b1 = sb.size() == 1;
    if (a1) sa.insert(sa.begin(), 1);
    if (b1) sb.push_back(1);
    Plan p;
    p.m = sa[sa.size() - 2];
    p.k = sa.back();
    p.n = sb.back();
    if (sb[sb.size() - 2] != p.k)
      fail("inner dimensions differ: " + shape_to_string(a.shape()) + " and " +
           shape_to_string(b.shape()));
    const Shape ba(sa.begin(), sa.end() - 2), bb(sb.begin(), sb.end() - 2);
    Shape batch;
    try {
      batch = reference::broadcast_shapes(ba, bb);
    } catch (const InvalidArgument&) {
      fail("batch dimensions of " + shape_to_string(a.shape()) + " and " +
           shape_to_string(b.shape()) + " do not broadcast");
    }
    p.batch = shape_numel(batch);
    p.a_batch = shape_numel(ba);
    p.b_batch = shape_numel(bb);
    p.out_shape = batch;
    if (!a1) p.out_shape.push_back(p.m);
    if (!b1) p.out_shape.push_back(p.n);
    p.a_off.resize(p.batch);
    p.b_off.resize(p.batch);
    const size_t r = batch.size();
    for (int64_t t = 0; t < p.batch; ++t) {
      int64_t rem = t, oa = 0, ob = 0, sa_acc = 1, sb_acc = 1;
      for (size_t d = r; d-- > 0;) {
        const int64_t i = rem % batch[d];
        rem /= batch[d];
        const int64_t da = static_cast<int64_t>(d) - static_cast<int64_t>(r - ba.size());
        const int64_t db = static_cast<int64_t>(d) - static_cast<int64_t>(r - bb.size());
        if (da >= 0) {
          if (ba[da] != 1) oa += i * sa_acc;
          sa_acc *= ba[da];
        }
        if (db >= 0) {
          if (bb[db] != 1) ob += i * sb_acc;
          sb_acc *= bb[db];
        }
      }
      p.a_off[t] = oa;
      p.b_off[t] = ob;
    }
    return p;
  }
};

}  // namespace

std::unique_ptr<Kernel> make_gemm(const model::LoweredOp& op) {
  return std::make_unique<GemmKernel>(op);
}
std::unique_ptr<Kernel> make_matmul(const model::LoweredOp& op) {
  return std::make_unique<MatMulKernel>(op);
}

}  // namespace veil::nn::detail
