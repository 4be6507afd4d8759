// Conv on oneDNN: forward (optionally with BatchNormalization folded into the weights and Relu
// as a post-op), backward data and backward weights. Primitives, memory objects and reordered
// weights are cached per input shape; weights are re-reordered only when an initializer's
// version changes.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>

#include "dnnl_port.hpp"
#include "kernel.hpp"

namespace veil::nn::detail {

namespace {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

struct Geometry {
  int64_t n, c, h, w, m, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr, oh, ow, g;
  bool one_d;
};

class ConvKernel final : public Kernel {
 public:
  ConvKernel(const model::LoweredOp& op, const ConvFusion* fusion)
      : Kernel(op), params_(op.as<model::ConvParams>()) {
    group_ = params_.group;
    if (group_ < 1) fail("group must be positive");
    if (op.input_ids.size() < 2 || op.input_ids.size() > 3) fail("takes 2 or 3 inputs");
    has_bias_ = op.has_input(2);
    if (fusion) fusion_ = *fusion;
    fused_ = fusion != nullptr;
  }

  std::vector<size_t> parameter_inputs() const override { return {1, 2}; }

  bool accepts_blocked(size_t input) const override { return input == 0; }

  void forward(ForwardEnv& env) override {
    const Shape& x_shape = env.input_shape(0);
    const memory::desc* blocked = env.input_blocked(0);
    const Tensor& w = env.input(1);
    const Tensor* b = has_bias_ && env.has_input(2) ? &env.input(2) : nullptr;
    State& st = state(env, x_shape, blocked, w, b != nullptr);
    auto& ctx = env.dnnl();
    refresh_weights(env, st, w, b);
    const Shape out_shape = st.geo.one_d ? Shape{st.geo.n, st.geo.m, st.geo.ow}
                                         : Shape{st.geo.n, st.geo.m, st.geo.oh, st.geo.ow};
    const float* src = blocked ? env.input_blocked_data(0) : env.input(0).data();
    std::unordered_map<int, memory> args;
    args[DNNL_ARG_SRC] = st.src.in(src, ctx.stream);
    args[DNNL_ARG_WEIGHTS] = st.w_prim;
    if (st.with_bias) args[DNNL_ARG_BIAS] = st.b_mem;
    // Keep oneDNN's output layout when every reader takes it; otherwise convert to plain.
    const bool keep = st.dst.reordered() && env.output_may_block(0);
    // A bound on |x| (the producer's, else a scan when the fused Relu needs one) gives one on
    // the output: max|x| * sum|w| + |b|.
    const int64_t n_src =
        blocked ? static_cast<int64_t>(blocked->get_size() / sizeof(float)) : shape_numel(x_shape);
    const bool relu = fused_ && fusion_.relu;
    const double in_bound = relu ? input_max_abs(env, 0, src, n_src) : env.input_bound(0);
    const double out_bound = in_bound * st.w_l1 + st.b_max;
    // The Relu post-op computes max(y, 0), which turns a NaN pre-activation into 0; it is exact
    // when every pre-activation is finite (bounded with headroom for rounding).
    if (relu && !(out_bound < 0.5 * std::numeric_limits<float>::max())) {
      // Run the same convolution without it and apply relu with PyTorch's NaN rule.
      const WrittenOutput y =
          execute_to_output(env, linear_primitive(env, st), args, st.dst, st.dst_direct, keep,
                            out_shape, st.fwd_pd.dst_desc(), ctx.stream);
      for (int64_t i = 0; i < y.size; ++i) y.data[i] = y.data[i] < 0.0f ? 0.0f : y.data[i];
    } else {
      execute_to_output(env, st.fwd, args, st.dst, st.dst_direct, keep, out_shape,
                        st.fwd_pd.dst_desc(), ctx.stream);
      env.set_output_bound(0, static_cast<float>(out_bound));
    }
    last_ = &st;
  }

  void backward(BackwardEnv& env) override {
    const Tensor* gy = env.grad_output(0);
    if (!gy || !last_) return;
    State& st = *last_;
    const Tensor& x = env.input(0);
    const Tensor& w = env.input(1);
    if (x.shape() != st.x_shape || !st.training) fail("backward without a matching forward");
    auto& ctx = env.dnnl();
    ensure_backward(env, st);
    const memory* dy_data = nullptr;
    if (env.wants_grad(0)) {
      // Weights in the backward-data layout, cached per weight version.
      const uint64_t ver = env.input_version(1);
      if (ver == kVolatile || ver != st.bwd_w_version) {
        st.bwd_w.in(w.data(), ctx.stream);
        st.bwd_w_version = ver;
      }
      Tensor& gx = env.grad_input(0);
      std::unordered_map<int, memory> args;
      dy_data = &st.bwd_dy_data.in(gy->data(), ctx.stream);
      args[DNNL_ARG_DIFF_DST] = *dy_data;
      args[DNNL_ARG_WEIGHTS] = st.bwd_w.prim();
      args[DNNL_ARG_DIFF_SRC] = st.bwd_dx.out(gx.data());
      st.bwd_data.execute(ctx.stream, args);
      st.bwd_dx.finish(ctx.stream);
    }
    const bool want_w = env.wants_grad(1);
    const bool want_b = st.with_bias && env.wants_grad(2);
    if (want_w || want_b) {
      float* gw = want_w ? env.grad_input(1).data() : st.scratch_w.get(w.numel());
      float* gb = want_b ? env.grad_input(2).data() : st.scratch_b.get(st.geo.m);
      std::unordered_map<int, memory> args;
      // Reuse the forward's reordered input and the backward-data reordered gradient when the
      // layouts agree, instead of converting the same tensors again.
      args[DNNL_ARG_SRC] = st.share_src ? st.src.prim() : st.bwd_x.in(x.data(), ctx.stream);
      args[DNNL_ARG_DIFF_DST] =
          st.share_dy && dy_data ? *dy_data : st.bwd_dy_weights.in(gy->data(), ctx.stream);
      args[DNNL_ARG_DIFF_WEIGHTS] = st.bwd_dw.out(gw);
      if (st.with_bias) {
        st.bwd_db.set_data_handle(gb);
        args[DNNL_ARG_DIFF_BIAS] = st.bwd_db;
      }
      st.bwd_weights.execute(ctx.stream, args);
      st.bwd_dw.finish(ctx.stream);
    }
    ctx.stream.wait();
  }

 private:
  struct State {
    Shape x_shape, w_shape;
    memory::desc src_blocked;  // zero when the input arrives plain
    bool training = false;
    bool with_bias = false;
    Geometry geo{};
    memory::desc src_md, w_plain_md, dst_md, b_md;
    dnnl::convolution_forward::primitive_desc fwd_pd;
    dnnl::convolution_forward fwd;
    Port src, dst;
    memory dst_direct;
    memory w_user, w_prim, b_mem;
    dnnl::reorder w_reorder;
    bool w_reordered = false;
    std::vector<uint64_t> versions;  // of inputs 1.. when the cached weights were built
    std::vector<float> folded_w, folded_b;
    // Bound on |pre-activation| per unit of max|x|: max over output channels of sum |w|, and
    // max |b| (of the folded weights); +inf when a weight is not finite.
    double w_l1 = 0, b_max = 0;
    // The fused forward without its Relu post-op, built on first need.
    std::optional<dnnl::convolution_forward> linear;
    // Backward, built on first use.
    bool bwd_ready = false;
    dnnl::convolution_backward_data bwd_data;
    dnnl::convolution_backward_weights bwd_weights;
    Port bwd_dy_data, bwd_dx, bwd_w, bwd_x, bwd_dy_weights, bwd_dw;
    memory bwd_db;
    uint64_t bwd_w_version = kVolatile;
    bool share_src = false, share_dy = false;
    Scratch scratch_w, scratch_b;
  };

  Geometry geometry(const Shape& xs, const Tensor& w) const {
    Geometry g{};
    const int64_t rank = static_cast<int64_t>(xs.size());
    if (rank != 3 && rank != 4)
      unsupported("only 1-D and 2-D convolutions are supported, input is " + shape_to_string(xs));
    if (w.dtype() != DType::Float32) fail("needs float32 tensors");
    if (w.rank() != rank) fail("weight rank differs from input rank");
    g.one_d = rank == 3;
    const size_t sp = g.one_d ? 1 : 2;
    g.n = xs[0];
    g.c = xs[1];
    g.h = g.one_d ? 1 : xs[2];
    g.w = xs.back();
    g.m = w.dim(0);
    g.kh = g.one_d ? 1 : w.dim(2);
    g.kw = w.dim(-1);
    g.g = group_;
    if (w.dim(1) * group_ != g.c || g.m % group_ != 0)
      fail("weight " + shape_to_string(w.shape()) + " does not match input " + shape_to_string(xs) +
           " with group " + std::to_string(group_));
    const auto& kernel_shape = params_.spatial.kernel_shape;
    if (!kernel_shape.empty()) {
      if (kernel_shape.size() != sp || kernel_shape.back() != g.kw ||
          (!g.one_d && kernel_shape[0] != g.kh))
        fail("kernel_shape does not match the weight");
    }
    const model::SpatialGeometry sg = model::spatial_geometry(
        params_.spatial, xs, Shape(w.shape().begin() + 2, w.shape().end()), describe());
    set_window(g, sg, g.one_d);
    if (g.oh < 1 || g.ow < 1 || g.n < 0)
      fail("output would be empty for input " + shape_to_string(xs));
    return g;
  }

  State& state(ForwardEnv& env, const Shape& x_shape, const memory::desc* blocked, const Tensor& w,
               bool bias) {
    const bool training = env.training();
    const memory::desc src_blocked = blocked ? *blocked : memory::desc();
    for (auto& s : states_)
      if (s->x_shape == x_shape && s->w_shape == w.shape() && s->training == training &&
          s->with_bias == (bias || (fused_ && fusion_.bn)) && s->src_blocked == src_blocked)
        return *s;
    if (states_.size() >= 8) {
      if (last_ == states_.front().get()) last_ = nullptr;
      states_.erase(states_.begin());
    }
    auto s = std::make_unique<State>();
    s->x_shape = x_shape;
    s->src_blocked = src_blocked;
    s->w_shape = w.shape();
    s->training = training;
    s->with_bias = bias || (fused_ && fusion_.bn);
    s->geo = geometry(x_shape, w);
    const Geometry& g = s->geo;
    auto& ctx = env.dnnl();
    const memory::dims src{g.n, g.c, g.h, g.w}, dst{g.n, g.m, g.oh, g.ow};
    const memory::dims wd = g.g > 1 ? memory::dims{g.g, g.m / g.g, g.c / g.g, g.kh, g.kw}
                                    : memory::dims{g.m, g.c, g.kh, g.kw};
    s->src_md = memory::desc(src, dt::f32, tag::nchw);
    s->dst_md = memory::desc(dst, dt::f32, tag::nchw);
    s->w_plain_md = memory::desc(wd, dt::f32, g.g > 1 ? tag::goihw : tag::oihw);
    s->b_md = memory::desc({g.m}, dt::f32, tag::x);
    const memory::dims strides{g.sh, g.sw}, dil{g.dh - 1, g.dw - 1}, pl{g.pt, g.pl}, pr{g.pb, g.pr};
    const auto any_src = memory::desc(src, dt::f32, tag::any);
    const auto any_dst = memory::desc(dst, dt::f32, tag::any);
    const auto any_w = memory::desc(wd, dt::f32, tag::any);
    const auto prop =
        training ? dnnl::prop_kind::forward_training : dnnl::prop_kind::forward_inference;
    dnnl::primitive_attr attr;
    if (fused_ && fusion_.relu) {
      dnnl::post_ops ops;
      ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
      attr.set_post_ops(ops);
    }
    auto make_pd = [&](const memory::desc& smd, const memory::desc& dmd) {
      if (s->with_bias) {
        dnnl::convolution_forward::desc d(prop, dnnl::algorithm::convolution_direct, smd, any_w,
                                          s->b_md, dmd, strides, dil, pl, pr);
        return dnnl::convolution_forward::primitive_desc(d, attr, ctx.engine);
      }
      dnnl::convolution_forward::desc d(prop, dnnl::algorithm::convolution_direct, smd, any_w, dmd,
                                        strides, dil, pl, pr);
      return dnnl::convolution_forward::primitive_desc(d, attr, ctx.engine);
    };
    // oneDNN picks the activation layouts (blocked formats are several times faster than plain
    // NCHW here); a blocked input is handed over as it is when the layouts agree.
    s->fwd_pd = make_pd(any_src, any_dst);
    s->fwd = dnnl::convolution_forward(s->fwd_pd);
    s->src = Port(blocked ? src_blocked : s->src_md, s->fwd_pd.src_desc(), ctx.engine);
    s->dst = Port(s->dst_md, s->fwd_pd.dst_desc(), ctx.engine);
    s->dst_direct = memory(s->fwd_pd.dst_desc(), ctx.engine, DNNL_MEMORY_NONE);
    s->w_user = memory(s->w_plain_md, ctx.engine, DNNL_MEMORY_NONE);
    if (s->fwd_pd.weights_desc() != s->w_plain_md) {
      s->w_reordered = true;
      s->w_prim = memory(s->fwd_pd.weights_desc(), ctx.engine);
      s->w_reorder = dnnl::reorder(s->w_user, s->w_prim);
    } else {
      s->w_prim = s->w_user;
    }
    s->b_mem = memory(s->b_md, ctx.engine, DNNL_MEMORY_NONE);
    states_.push_back(std::move(s));
    return *states_.back();
  }

  void refresh_weights(ForwardEnv& env, State& st, const Tensor& w, const Tensor* b) {
    const size_t deps = fused_ && fusion_.bn ? 7 : 3;
    bool stale = st.versions.size() != deps;
    if (!stale)
      for (size_t i = 1; i < deps; ++i) {
        if (!env.has_input(i)) continue;  // an omitted bias never changes
        const uint64_t v = env.input_version(i);
        stale = stale || v == kVolatile || v != st.versions[i];
      }
    const bool folded = fused_ && fusion_.bn;
    // Unfolded bias and plain weights are read in place: refresh their handles on every call.
    if (!folded && b) st.b_mem.set_data_handle(const_cast<float*>(b->data()));
    if (!st.w_reordered && !folded) st.w_user.set_data_handle(const_cast<float*>(w.data()));
    if (!stale) return;
    st.versions.assign(deps, 0);
    for (size_t i = 1; i < deps; ++i) st.versions[i] = env.input_version(i);
    const float* wsrc = w.data();
    const float* bsrc = b ? b->data() : nullptr;
    if (folded) {
      const auto scale = env.input(3).floats(), shift = env.input(4).floats();
      const auto mean = env.input(5).floats(), var = env.input(6).floats();
      const int64_t m = st.geo.m;
      if ((int64_t)scale.size() != m || (int64_t)shift.size() != m || (int64_t)mean.size() != m ||
          (int64_t)var.size() != m)
        fail("BatchNormalization parameters do not match the " + std::to_string(m) + " channels");
      const int64_t per = w.numel() / m;
      st.folded_w.resize(w.numel());
      st.folded_b.resize(m);
      for (int64_t o = 0; o < m; ++o) {
        const float k = scale[o] / std::sqrt(var[o] + fusion_.bn_epsilon);
        for (int64_t j = 0; j < per; ++j) st.folded_w[o * per + j] = wsrc[o * per + j] * k;
        st.folded_b[o] = ((bsrc ? bsrc[o] : 0.0f) - mean[o]) * k + shift[o];
      }
      wsrc = st.folded_w.data();
    }
    weight_bound(st, wsrc, folded ? st.folded_b.data() : bsrc);
    st.w_user.set_data_handle(const_cast<float*>(wsrc));
    if (st.w_reordered) {
      auto& ctx = env.dnnl();
      st.w_reorder.execute(ctx.stream, st.w_user, st.w_prim);
    }
    if (folded) st.b_mem.set_data_handle(st.folded_b.data());
  }

  void weight_bound(State& st, const float* w, const float* b) const {
    const int64_t m = st.geo.m, per = shape_numel(st.w_shape) / m;
    st.w_l1 = 0;
    st.b_max = 0;
    for (int64_t o = 0; o < m; ++o) {
      double l1 = 0;
      for (int64_t j = 0; j < per; ++j) l1 += std::fabs(double(w[o * per + j]));
      st.w_l1 = std::isfinite(l1) ? std::max(st.w_l1, l1) : INFINITY;
      if (b)
        st.b_max = std::isfinite(b[o]) ? std::max(st.b_max, std::fabs(double(b[o]))) : INFINITY;
    }
  }

  const dnnl::convolution_forward& linear_primitive(ForwardEnv& env, State& st) {
    if (!st.linear) {
      // Same layouts as the fused primitive, so that its reordered weights and ports serve.
      const Geometry& g = st.geo;
      const memory::dims strides{g.sh, g.sw}, dil{g.dh - 1, g.dw - 1}, pl{g.pt, g.pl},
          pr{g.pb, g.pr};
      const auto prop = dnnl::prop_kind::forward_inference;
      const auto alg = dnnl::algorithm::convolution_direct;
      const auto& pd = st.fwd_pd;
      auto d = st.with_bias
                   ? dnnl::convolution_forward::desc(prop, alg, pd.src_desc(), pd.weights_desc(),
                                                     st.b_md, pd.dst_desc(), strides, dil, pl, pr)
                   : dnnl::convolution_forward::desc(prop, alg, pd.src_desc(), pd.weights_desc(),
                                                     pd.dst_desc(), strides, dil, pl, pr);
      st.linear = dnnl::convolution_forward(
          dnnl::convolution_forward::primitive_desc(d, env.dnnl().engine));
    }
    return *st.linear;
  }

  void ensure_backward(BackwardEnv& env, State& st) {
    if (st.bwd_ready) return;
    const Geometry& g = st.geo;
    auto& ctx = env.dnnl();
    const memory::dims src{g.n, g.c, g.h, g.w}, dst{g.n, g.m, g.oh, g.ow};
    const memory::dims wd = g.g > 1 ? memory::dims{g.g, g.m / g.g, g.c / g.g, g.kh, g.kw}
                                    : memory::dims{g.m, g.c, g.kh, g.kw};
    const memory::dims strides{g.sh, g.sw}, dil{g.dh - 1, g.dw - 1}, pl{g.pt, g.pl}, pr{g.pb, g.pr};
    const auto any_src = memory::desc(src, dt::f32, tag::any);
    const auto any_dst = memory::desc(dst, dt::f32, tag::any);
    const auto any_w = memory::desc(wd, dt::f32, tag::any);
    const auto& smd = any_src;
    const auto& dmd = any_dst;
    dnnl::convolution_backward_data::desc dd(dnnl::algorithm::convolution_direct, smd, any_w, dmd,
                                             strides, dil, pl, pr);
    dnnl::convolution_backward_data::primitive_desc dpd(dd, ctx.engine, st.fwd_pd);
    st.bwd_data = dnnl::convolution_backward_data(dpd);
    st.bwd_dy_data = Port(st.dst_md, dpd.diff_dst_desc(), ctx.engine);
    st.bwd_dx = Port(st.src_md, dpd.diff_src_desc(), ctx.engine);
    st.bwd_w = Port(st.w_plain_md, dpd.weights_desc(), ctx.engine);
    auto wpd = [&] {
      if (st.with_bias) {
        dnnl::convolution_backward_weights::desc wdsc(dnnl::algorithm::convolution_direct, smd,
                                                      any_w, st.b_md, dmd, strides, dil, pl, pr);
        return dnnl::convolution_backward_weights::primitive_desc(wdsc, ctx.engine, st.fwd_pd);
      }
      dnnl::convolution_backward_weights::desc wdsc(dnnl::algorithm::convolution_direct, smd, any_w,
                                                    dmd, strides, dil, pl, pr);
      return dnnl::convolution_backward_weights::primitive_desc(wdsc, ctx.engine, st.fwd_pd);
    }();
    st.bwd_weights = dnnl::convolution_backward_weights(wpd);
    st.bwd_x = Port(st.src_md, wpd.src_desc(), ctx.engine);
    st.bwd_dy_weights = Port(st.dst_md, wpd.diff_dst_desc(), ctx.engine);
    st.bwd_dw = Port(st.w_plain_md, wpd.diff_weights_desc(), ctx.engine);
    st.bwd_db = memory(st.b_md, ctx.engine, DNNL_MEMORY_NONE);
    st.share_src = st.src.reordered() && wpd.src_desc() == st.fwd_pd.src_desc();
    st.share_dy = st.bwd_dy_data.reordered() && wpd.diff_dst_desc() == dpd.diff_dst_desc();
    st.bwd_ready = true;
  }

  model::ConvParams params_;
  int64_t group_ = 1;
  bool has_bias_ = false;
  bool fused_ = false;
  ConvFusion fusion_;
  std::vector<std::unique_ptr<State>> states_;
  State* last_ = nullptr;
};

}  // namespace

std::unique_ptr<Kernel> make_conv(const model::LoweredOp& op, const ConvFusion* fusion) {
  return std::make_unique<ConvKernel>(op, fusion);
}

std::unique_ptr<Kernel> make_fused_conv(const model::LoweredOp& conv, const ConvFusion& fusion) {
  return make_conv(conv, &fusion);
}

}  // namespace veil::nn::detail
