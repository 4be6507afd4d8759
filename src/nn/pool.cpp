// MaxPool / AveragePool on oneDNN's pooling_v2 (dilation support), GlobalAveragePool and
// GlobalMaxPool as plain loops. oneDNN's max pooling keeps the first maximum it met and so drops
// a NaN that is not first in its window; PyTorch's gives NaN for any window holding one. A
// vectorised scan of the input (finite_max_abs) sends the rare input with a non-finite value to
// a direct loop with PyTorch's rule. ceil_mode is expressed to oneDNN as extra end padding; the one
// case oneDNN cannot express (count_include_pad with a ceil_mode overhang, whose divisor must
// not count the overhang) runs on a direct loop.
#include <algorithm>
#include <cmath>
#include <limits>

#include "dnnl_port.hpp"
#include "kernel.hpp"

namespace veil::nn::detail {

namespace {

using dnnl::memory;
using dt = memory::data_type;

struct PoolGeo {
  int64_t n, c, h, w, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr, oh, ow;
  int64_t xb, xr;  // extra end padding (ceil_mode overhang) for H and W
  bool one_d;
};

class PoolKernel final : public Kernel {
 public:
  explicit PoolKernel(const model::LoweredOp& op)
      : Kernel(op), params_(op.as<model::PoolParams>()) {
    global_ = params_.global;
    max_ = params_.max;
    include_pad_ = params_.count_include_pad;
    if (op.output_ids.size() > 1 && op.output_ids[1] >= 0)
      unsupported("the Indices output is not supported");
    if (global_) return;
    if (params_.spatial.kernel_shape.empty()) fail("kernel_shape is required");
    if (params_.storage_order != 0) unsupported("storage_order=1 is not supported");
  }

  bool accepts_blocked(size_t input) const override { return input == 0 && !global_; }

  void forward(ForwardEnv& env) override {
    if (global_) {
      const Tensor& x = env.input(0);
      if (x.dtype() != DType::Float32 || x.rank() < 3) fail("needs a float tensor of rank >= 3");
      return global_forward(env, x);
    }
    const Shape& xs = env.input_shape(0);
    const memory::desc* blocked = env.input_blocked(0);
    State& st = state(env, xs, blocked, env.output_may_block(0));
    const PoolGeo& g = st.geo;
    const Shape out = g.one_d ? Shape{g.n, g.c, g.ow} : Shape{g.n, g.c, g.oh, g.ow};
    if (st.direct) {
      const Tensor& x = env.input(0);
      direct_avg_forward(g, x.data(), env.output(0, out).data());
      last_ = &st;
      return;
    }
    // A pooled value is bounded by its window's, so the input's bound carries over.
    float bound = env.input_bound(0);
    if (max_ && !env.training()) {
      const float* data = blocked ? env.input_blocked_data(0) : env.input(0).data();
      const int64_t n =
          blocked ? static_cast<int64_t>(blocked->get_size() / sizeof(float)) : shape_numel(xs);
      bound = input_max_abs(env, 0, data, n);
      if (!std::isfinite(bound)) {
        direct_max_forward(g, env.input(0).data(), env.output(0, out).data());
        last_ = &st;
        return;
      }
    }
    auto& ctx = env.dnnl();
    std::unordered_map<int, memory> args;
    args[DNNL_ARG_SRC] =
        st.src.in(blocked ? env.input_blocked_data(0) : env.input(0).data(), ctx.stream);
    if (st.ws_valid) args[DNNL_ARG_WORKSPACE] = st.ws;
    execute_to_output(env, st.fwd, args, st.dst, st.dst_direct, st.keep_blocked, out,
                      st.fwd_pd.dst_desc(), ctx.stream);
    env.set_output_bound(0, bound);
    last_ = &st;
  }

  void backward(BackwardEnv& env) override {
    const Tensor* gy = env.grad_output(0);
    if (!gy || !env.wants_grad(0)) return;
    const Tensor& x = env.input(0);
    Tensor& gx = env.grad_input(0);
    if (global_) return global_backward(x, env.output(0), *gy, gx);
    if (!last_ || last_->x_shape != x.shape() || !last_->training)
      fail("backward without a matching forward");
    State& st = *last_;
    if (st.direct) return direct_avg_backward(st.geo, gy->data(), gx.data());
    auto& ctx = env.dnnl();
    if (!st.bwd_ready) {
      dnnl::pooling_v2_backward::desc d(alg(), st.diff_src_any, st.diff_dst_any, st.strides,
                                        st.kernel, st.dil, st.pl, st.pr);
      dnnl::pooling_v2_backward::primitive_desc pd(d, ctx.engine, st.fwd_pd);
      st.bwd = dnnl::pooling_v2_backward(pd);
      st.bwd_dy = Port(st.dst_md, pd.diff_dst_desc(), ctx.engine);
      st.bwd_dx = Port(st.src_md, pd.diff_src_desc(), ctx.engine);
      st.bwd_ready = true;
    }
    std::unordered_map<int, memory> args;
    args[DNNL_ARG_DIFF_DST] = st.bwd_dy.in(gy->data(), ctx.stream);
    args[DNNL_ARG_DIFF_SRC] = st.bwd_dx.out(gx.data());
    if (st.ws_valid) args[DNNL_ARG_WORKSPACE] = st.ws;
    st.bwd.execute(ctx.stream, args);
    st.bwd_dx.finish(ctx.stream);
    ctx.stream.wait();
  }

 private:
  struct State {
    Shape x_shape;
    memory::desc src_blocked;
    bool keep_blocked = false;
    bool training = false;
    PoolGeo geo{};
    bool direct = false;
    memory::desc src_md, dst_md, diff_src_any, diff_dst_any;
    memory::dims strides, kernel, dil, pl, pr;
    dnnl::pooling_v2_forward::primitive_desc fwd_pd;
    dnnl::pooling_v2_forward fwd;
    Port src, dst;
    memory dst_direct;
    memory ws;
    bool ws_valid = false;
    bool bwd_ready = false;
    dnnl::pooling_v2_backward bwd;
    Port bwd_dy, bwd_dx;
  };

  dnnl::algorithm alg() const {
    if (max_) return dnnl::algorithm::pooling_max;
    return include_pad_ ? dnnl::algorithm::pooling_avg_include_padding
                        : dnnl::algorithm::pooling_avg_exclude_padding;
  }

  PoolGeo geometry(const Shape& xs) const {
    PoolGeo g{};
    if (xs.size() != 3 && xs.size() != 4)
      unsupported("only 1-D and 2-D pooling is supported, input is " + shape_to_string(xs));
    g.one_d = xs.size() == 3;
    const size_t sp = g.one_d ? 1 : 2;
    const auto& kernel = params_.spatial.kernel_shape;
    if (kernel.size() != sp) fail("kernel_shape length does not match the input rank");
    const model::SpatialGeometry sg =
        model::spatial_geometry(params_.spatial, xs, kernel, describe());
    g.n = xs[0];
    g.c = xs[1];
    g.h = g.one_d ? 1 : xs[2];
    g.w = xs.back();
    g.kh = g.one_d ? 1 : kernel[0];
    g.kw = kernel.back();
    set_window(g, sg, g.one_d);
    if (g.oh < 1 || g.ow < 1) fail("output would be empty for input " + shape_to_string(xs));
    // oneDNN derives the output size with floor division: pad the end so that it gets ours.
    g.xb = g.one_d ? 0 : sg.pads_end_floor[0] - sg.pads_end[0];
    g.xr = sg.pads_end_floor.back() - sg.pads_end.back();
    return g;
  }

  State& state(ForwardEnv& env, const Shape& xs, const memory::desc* blocked, bool may_block) {
    const bool training = env.training();
    const memory::desc src_blocked = blocked ? *blocked : memory::desc();
    for (auto& s : states_)
      if (s->x_shape == xs && s->training == training && s->src_blocked == src_blocked &&
          s->keep_blocked == (may_block && blocked != nullptr))
        return *s;
    if (states_.size() >= 8) {
      if (last_ == states_.front().get()) last_ = nullptr;
      states_.erase(states_.begin());
    }
    auto s = std::make_unique<State>();
    s->x_shape = xs;
    s->src_blocked = src_blocked;
    s->training = training;
    s->geo = geometry(xs);
    const PoolGeo& g = s->geo;
    s->direct = !max_ && include_pad_ && (g.xb > 0 || g.xr > 0);
    if (!s->direct) {
      auto& ctx = env.dnnl();
      const memory::dims src{g.n, g.c, g.h, g.w}, dst{g.n, g.c, g.oh, g.ow};
      s->src_md = memory::desc(src, dt::f32, memory::format_tag::nchw);
      s->dst_md = memory::desc(dst, dt::f32, memory::format_tag::nchw);
      s->diff_src_any = s->src_md;
      s->diff_dst_any = s->dst_md;
      s->strides = {g.sh, g.sw};
      s->kernel = {g.kh, g.kw};
      s->dil = {g.dh - 1, g.dw - 1};
      s->pl = {g.pt, g.pl};
      s->pr = {g.pb + g.xb, g.pr + g.xr};
      const auto prop =
          training ? dnnl::prop_kind::forward_training : dnnl::prop_kind::forward_inference;
      // A blocked input is pooled in its own layout (and the result stays blocked when every
      // reader takes that); plain inputs give plain outputs.
      s->keep_blocked = blocked && may_block;
      const memory::desc src_md = blocked ? src_blocked : s->src_md;
      const memory::desc dst_md =
          blocked ? memory::desc(dst, dt::f32, memory::format_tag::any) : s->dst_md;
      dnnl::pooling_v2_forward::desc d(prop, alg(), src_md, dst_md, s->strides, s->kernel, s->dil,
                                       s->pl, s->pr);
      s->fwd_pd = dnnl::pooling_v2_forward::primitive_desc(d, ctx.engine);
      s->fwd = dnnl::pooling_v2_forward(s->fwd_pd);
      s->src = Port(src_md, s->fwd_pd.src_desc(), ctx.engine);
      s->dst = Port(s->dst_md, s->fwd_pd.dst_desc(), ctx.engine);
      s->dst_direct = memory(s->fwd_pd.dst_desc(), ctx.engine, DNNL_MEMORY_NONE);
      const auto ws_md = s->fwd_pd.workspace_desc();
      s->ws_valid = !ws_md.is_zero() && ws_md.get_size() > 0;
      if (s->ws_valid) s->ws = memory(ws_md, ctx.engine);
    }
    states_.push_back(std::move(s));
    return *states_.back();
  }

  // Divisor of output (oy, ox) under count_include_pad: the window clipped to the padded extent.
  static int64_t include_pad_divisor(const PoolGeo& g, int64_t oy, int64_t ox) {
    const int64_t y0 = oy * g.sh - g.pt, x0 = ox * g.sw - g.pl;
    const int64_t y1 = std::min(y0 + (g.kh - 1) * g.dh + 1, g.h + g.pb);
    const int64_t x1 = std::min(x0 + (g.kw - 1) * g.dw + 1, g.w + g.pr);
    return ((y1 - y0 + g.dh - 1) / g.dh) * ((x1 - x0 + g.dw - 1) / g.dw);
  }

  static void direct_avg_forward(const PoolGeo& g, const float* x, float* y) {
    for (int64_t nc = 0; nc < g.n * g.c; ++nc)
      for (int64_t oy = 0; oy < g.oh; ++oy)
        for (int64_t ox = 0; ox < g.ow; ++ox) {
          float acc = 0;
          for (int64_t ky = 0; ky < g.kh; ++ky) {
            const int64_t iy = oy * g.sh - g.pt + ky * g.dh;
            if (iy < 0 || iy >= g.h) continue;
            for (int64_t kx = 0; kx < g.kw; ++kx) {
              const int64_t ix = ox * g.sw - g.pl + kx * g.dw;
              if (ix >= 0 && ix < g.w) acc += x[(nc * g.h + iy) * g.w + ix];
            }
          }
          y[(nc * g.oh + oy) * g.ow + ox] =
              acc / static_cast<float>(include_pad_divisor(g, oy, ox));
        }
  }

  // Max pooling with PyTorch's NaN rule (a NaN anywhere in the window is the result).
  static void direct_max_forward(const PoolGeo& g, const float* x, float* y) {
    for (int64_t nc = 0; nc < g.n * g.c; ++nc)
      for (int64_t oy = 0; oy < g.oh; ++oy)
        for (int64_t ox = 0; ox < g.ow; ++ox) {
          float acc = -std::numeric_limits<float>::infinity();
          for (int64_t ky = 0; ky < g.kh; ++ky) {
            const int64_t iy = oy * g.sh - g.pt + ky * g.dh;
            if (iy < 0 || iy >= g.h) continue;
            for (int64_t kx = 0; kx < g.kw; ++kx) {
              const int64_t ix = ox * g.sw - g.pl + kx * g.dw;
              if (ix < 0 || ix >= g.w) continue;
              const float v = x[(nc * g.h + iy) * g.w + ix];
              if (v > acc || std::isnan(v)) acc = v;
            }
          }
          y[(nc * g.oh + oy) * g.ow + ox] = acc;
        }
  }

  static void direct_avg_backward(const PoolGeo& g, const float* dy, float* dx) {
    std::fill(dx, dx + g.n * g.c * g.h * g.w, 0.0f);
    for (int64_t nc = 0; nc < g.n * g.c; ++nc)
      for (int64_t oy = 0; oy < g.oh; ++oy)
        for (int64_t ox = 0; ox < g.ow; ++ox) {
          const float v =
              dy[(nc * g.oh + oy) * g.ow + ox] / static_cast<float>(include_pad_divisor(g, oy, ox));
          for (int64_t ky = 0; ky < g.kh; ++ky) {
            const int64_t iy = oy * g.sh - g.pt + ky * g.dh;
            if (iy < 0 || iy >= g.h) continue;
            for (int64_t kx = 0; kx < g.kw; ++kx) {
              const int64_t ix = ox * g.sw - g.pl + kx * g.dw;
              if (ix >= 0 && ix < g.w) dx[(nc * g.h + iy) * g.w + ix] += v;
            }
          }
        }
  }

  void global_forward(ForwardEnv& env, const Tensor& x) {
    Shape out = x.shape();
    int64_t s = 1;
    for (size_t i = 2; i < out.size(); ++i) {
      s *= out[i];
      out[i] = 1;
    }
    if (s == 0) fail("empty spatial extent");
    const int64_t nc = x.dim(0) * x.dim(1);
    Tensor& y = env.output(0, out);
    const float* xs = x.data();
    float* ys = y.data();
    for (int64_t i = 0; i < nc; ++i) {
      const float* p = xs + i * s;
      if (max_) {
        float m = p[0];
        for (int64_t j = 1; j < s && !std::isnan(m); ++j)
          if (p[j] > m || std::isnan(p[j])) m = p[j];
        ys[i] = m;
      } else {
        ys[i] = lane_sum(p, s) / static_cast<float>(s);
      }
    }
  }

  void global_backward(const Tensor& x, const Tensor& y, const Tensor& gy, Tensor& gx) {
    const int64_t nc = x.dim(0) * x.dim(1);
    const int64_t s = x.numel() / std::max<int64_t>(nc, 1);
    const float* xs = x.data();
    float* g = gx.data();
    for (int64_t i = 0; i < nc; ++i) {
      const float d = gy.data()[i];
      if (max_) {
        std::fill(g + i * s, g + (i + 1) * s, 0.0f);
        const float* p = xs + i * s;
        g[i * s + (std::max_element(p, p + s) - p)] = d;
      } else {
        std::fill(g + i * s, g + (i + 1) * s, d / static_cast<float>(s));
      }
    }
  }

  model::PoolParams params_;
  bool global_ = false, max_ = false, include_pad_ = false;
  std::vector<std::unique_ptr<State>> states_;
  State* last_ = nullptr;
};

}  // namespace

std::unique_ptr<Kernel> make_pool(const model::LoweredOp& op) {
  return std::make_unique<PoolKernel>(op);
}

}  // namespace veil::nn::detail
