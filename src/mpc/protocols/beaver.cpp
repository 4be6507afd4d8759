#include "veil/mpc/protocols/beaver.hpp"

#include <functional>

#include "veil/core/error.hpp"

namespace veil::mpc {
namespace {

enum : uint32_t { kPrgA = 1, kPrgB = 2, kPrgC = 3 };

void require_data(const RingTensor& t, const char* what) {
  if (!t.has_data())
    throw InvalidArgument(std::string(what) + ": this party must pass the tensor's values");
}

using Bilinear = std::function<void(const uint64_t* x, const uint64_t* w, uint64_t* y)>;

// Shares of op(X, W) for X shared and W known to the server (see beaver.hpp).
RingTensor bilinear_server(Party& p, const RingTensor& x, const RingTensor& w, Shape out_shape,
                           const Bilinear& op) {
  p.begin_op();
  const size_t nx = static_cast<size_t>(x.numel()), nw = static_cast<size_t>(w.numel());
  const size_t ny = static_cast<size_t>(shape_numel(out_shape));
  RingTensor y = RingTensor::zeros(out_shape);
  switch (p.role()) {
    case Role::Helper: {
      std::vector<uint64_t> a = p.shared_words(Role::Client, kPrgA, nx);
      std::vector<uint64_t> b = p.shared_words(Role::Server, kPrgB, nw);
      std::vector<uint64_t> c0 = p.shared_words(Role::Client, kPrgC, ny);
      op(a.data(), b.data(), y.data.data());
      for (size_t i = 0; i < ny; ++i) y.data[i] -= c0[i];
      p.send_u64(Role::Server, Tag::LinearCorrection, y.data);
      return RingTensor::shape_only(out_shape);
    }
    case Role::Client: {
      require_data(x, "linear layer");
      std::vector<uint64_t> a = p.shared_words(Role::Helper, kPrgA, nx);
      std::vector<uint64_t> e(nx);
      for (size_t i = 0; i < nx; ++i) e[i] = x.data[i] - a[i];
      p.send_u64(Role::Server, Tag::LinearOpenX, e);
      std::vector<uint64_t> f = p.recv_u64(Role::Server, Tag::LinearOpenW, nw);
      op(a.data(), f.data(), y.data.data());
      std::vector<uint64_t> c0 = p.shared_words(Role::Helper, kPrgC, ny);
      for (size_t i = 0; i < ny; ++i) y.data[i] += c0[i];
      return y;
    }
    case Role::Server: {
      require_data(x, "linear layer");
      require_data(w, "linear layer weights");
      std::vector<uint64_t> b = p.shared_words(Role::Helper, kPrgB, nw);
      for (size_t i = 0; i < nw; ++i) b[i] = w.data[i] - b[i];
      p.send_u64(Role::Client, Tag::LinearOpenW, b);
      std::vector<uint64_t> e = p.recv_u64(Role::Client, Tag::LinearOpenX, nx);
      for (size_t i = 0; i < nx; ++i) e[i] += x.data[i];
      op(e.data(), w.data.data(), y.data.data());
      std::vector<uint64_t> c1 = p.recv_u64(Role::Helper, Tag::LinearCorrection, ny);
      for (size_t i = 0; i < ny; ++i) y.data[i] += c1[i];
      return y;
    }
  }
  throw InvalidArgument("mpc: bad role");
}

}  // namespace

RingTensor mul(Party& p, const RingTensor& x, const RingTensor& y) {
  if (x.shape != y.shape) throw InvalidArgument("mpc mul: shapes differ");
  p.begin_op();
  const size_t n = static_cast<size_t>(x.numel());
  if (p.is(Role::Helper)) {
    std::vector<uint64_t> a = p.shared_words(Role::Client, kPrgA, n);
    std::vector<uint64_t> b = p.shared_words(Role::Client, kPrgB, n);
    std::vector<uint64_t> c = p.shared_words(Role::Client, kPrgC, n);
    std::vector<uint64_t> a1 = p.shared_words(Role::Server, kPrgA, n);
    std::vector<uint64_t> b1 = p.shared_words(Role::Server, kPrgB, n);
    for (size_t i = 0; i < n; ++i) c[i] = (a[i] + a1[i]) * (b[i] + b1[i]) - c[i];
    p.send_u64(Role::Server, Tag::MulCorrection, c);
    return RingTensor::shape_only(x.shape);
  }
  require_data(x, "mpc mul");
  require_data(y, "mpc mul");
  const bool client = p.is(Role::Client);
  const Role other = client ? Role::Server : Role::Client;
  std::vector<uint64_t> a = p.shared_words(Role::Helper, kPrgA, n);
  std::vector<uint64_t> b = p.shared_words(Role::Helper, kPrgB, n);
  std::vector<uint64_t> ef(2 * n);
  for (size_t i = 0; i < n; ++i) {
    ef[i] = x.data[i] - a[i];
    ef[n + i] = y.data[i] - b[i];
  }
  p.send_u64(other, Tag::MulOpen, ef);
  std::vector<uint64_t> c = client ? p.shared_words(Role::Helper, kPrgC, n)
                                   : p.recv_u64(Role::Helper, Tag::MulCorrection, n);
  std::vector<uint64_t> theirs = p.recv_u64(other, Tag::MulOpen, 2 * n);
  RingTensor z = RingTensor::zeros(x.shape);
  for (size_t i = 0; i < n; ++i) {
    uint64_t e = ef[i] + theirs[i], f = ef[n + i] + theirs[n + i];
    z.data[i] = e * b[i] + a[i] * f + c[i] + (client ? e * f : 0);
  }
  return z;
}

RingTensor matmul_server_weights(Party& p, const RingTensor& x, const RingTensor& w, int threads) {
  if (x.shape.size() != 2 || w.shape.size() != 2 || x.shape[1] != w.shape[0])
    throw InvalidArgument("matmul: shapes " + shape_to_string(x.shape) + " x " +
                          shape_to_string(w.shape) + " do not chain");
  const int64_t m = x.shape[0], k = x.shape[1], n = w.shape[1];
  return bilinear_server(p, x, w, {m, n}, [&](const uint64_t* a, const uint64_t* b, uint64_t* c) {
    gemm_u64(m, n, k, a, k, b, n, c, n, false, threads);
  });
}

RingTensor conv2d_server_weights(Party& p, const RingTensor& x, const RingTensor& w,
                                 const Conv2dGeometry& g, int threads) {
  g.validate();
  if (x.shape != Shape{g.batch, g.in_channels, g.in_h, g.in_w})
    throw InvalidArgument("conv2d: input shape " + shape_to_string(x.shape) +
                          " does not match the geometry");
  if (w.shape != Shape{g.out_channels, g.in_channels / g.groups, g.kernel_h, g.kernel_w})
    throw InvalidArgument("conv2d: weight shape " + shape_to_string(w.shape) +
                          " does not match the geometry");
  return bilinear_server(
      p, x, w, {g.batch, g.out_channels, g.out_h(), g.out_w()},
      [&](const uint64_t* a, const uint64_t* b, uint64_t* c) { conv2d_u64(g, a, b, c, threads); });
}

}  // namespace veil::mpc
