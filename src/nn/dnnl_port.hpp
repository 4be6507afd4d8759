// A tensor as a oneDNN primitive sees it: the executor's plain (row-major) buffer and, when the
// primitive prefers another layout (blocked formats chosen through format_tag::any), a private
// buffer plus the reorder between the two. Memory objects are created once per cached
// primitive; only the data handle changes between calls.
#pragma once

#include <oneapi/dnnl/dnnl.hpp>
#include <unordered_map>

#include "kernel.hpp"

namespace veil::nn::detail {

class Port {
 public:
  Port() = default;
  // `plain` describes the executor's buffer, `want` what the primitive was created with.
  Port(const dnnl::memory::desc& plain, const dnnl::memory::desc& want, const dnnl::engine& eng)
      : user_(plain, eng, DNNL_MEMORY_NONE) {
    if (want == plain || want.is_zero()) {
      prim_ = user_;
    } else {
      reordered_ = true;
      prim_ = dnnl::memory(want, eng);
      to_prim_ = dnnl::reorder(user_, prim_);
      to_user_ = dnnl::reorder(prim_, user_);
    }
  }
  bool reordered() const { return reordered_; }

  // Input: points the port at `data` and converts it into the primitive's layout.
  const dnnl::memory& in(const float* data, dnnl::stream& s) {
    user_.set_data_handle(const_cast<float*>(data));
    if (reordered_) to_prim_.execute(s, user_, prim_);
    return prim_;
  }
  // Output: the memory the primitive writes; call finish() afterwards.
  const dnnl::memory& out(float* data) {
    user_.set_data_handle(data);
    return prim_;
  }
  void finish(dnnl::stream& s) {
    if (reordered_) to_user_.execute(s, prim_, user_);
  }
  const dnnl::memory& prim() const { return prim_; }

 private:
  dnnl::memory user_, prim_;
  dnnl::reorder to_prim_, to_user_;
  bool reordered_ = false;
};

// Runs a forward primitive whose DST is the node's output 0: straight into a buffer in the
// primitive's own layout when `keep_blocked` (every reader of the output takes that layout;
// `direct` is a memory of `dst_desc` whose data handle is set here), otherwise through `dst`
// into the plain tensor. Waits for the stream. Returns the written buffer and its length in
// floats (a blocked buffer's padding included).
struct WrittenOutput {
  float* data;
  int64_t size;
};
inline WrittenOutput execute_to_output(ForwardEnv& env, const dnnl::primitive& prim,
                                       std::unordered_map<int, dnnl::memory>& args, Port& dst,
                                       dnnl::memory& direct, bool keep_blocked, const Shape& shape,
                                       const dnnl::memory::desc& dst_desc, dnnl::stream& stream) {
  WrittenOutput out{};
  if (keep_blocked) {
    out = {env.output_blocked(0, shape, dst_desc),
           static_cast<int64_t>(dst_desc.get_size() / sizeof(float))};
    direct.set_data_handle(out.data);
    args[DNNL_ARG_DST] = direct;
    prim.execute(stream, args);
  } else {
    out = {env.output(0, shape).data(), shape_numel(shape)};
    args[DNNL_ARG_DST] = dst.out(out.data);
    prim.execute(stream, args);
    dst.finish(stream);
  }
  stream.wait();
  return out;
}

}  // namespace veil::nn::detail
