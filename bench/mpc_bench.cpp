// Three-party secure inference micro-benchmarks: DReLU/ReLU throughput and bytes per DReLU
// (exact and approximate), and the uint64 ring GEMM against oneDNN's float GEMM on the same
// shapes. The three parties run as threads over in-memory links, so the numbers are compute
// plus copying; bytes and rounds are what a network would carry.
#include <benchmark/benchmark.h>
#include <malloc.h>
#include <oneapi/dnnl/dnnl.h>

#include <algorithm>
#include <chrono>
#include <oneapi/dnnl/dnnl.hpp>
#include <optional>
#include <vector>

#include "veil/core/aligned.hpp"
#include "veil/core/random.hpp"
#include "veil/mpc/kernels/ring_kernels.hpp"
#include "veil/mpc/kernels/z67.hpp"
#include "veil/mpc/local_session.hpp"
#include "veil/mpc/protocols/nonlinear.hpp"
#include "veil/mpc/protocols/private_compare.hpp"
#include "veil/nn/threads.hpp"

namespace {

using namespace veil;
using namespace veil::mpc;

std::vector<uint64_t> random_u64(size_t n) {
  std::vector<uint64_t> v(n);
  AesCtrPrg(random_seed()).fill(std::span<uint64_t>(v));
  return v;
}

// state.range(0): elements; range(1): 0 exact, 1 approximate (s = 5, k = 48, f = 16);
// range(2): 0 DReLU, 1 ReLU. The kernels are those of VEIL_KERNELS (scalar|avx2|avx512). Items
// per second are per wall-clock second; the CPU column is the three parties' CPU time together
// (process CPU time), the steadier figure on a shared machine.
void BM_SignProtocol(benchmark::State& state) {
  const int64_t n = state.range(0);
  SessionParams sp;
  if (state.range(1)) {
    sp.frac_bits = 16;
    sp.drelu = {5, 48};
  }
  const bool full_relu = state.range(2) != 0;
  RingTensor c({n}, random_u64(n)), s({n}, random_u64(n));
  LocalSessionReport rep;
  for (auto _ : state) {
    rep = run_local_session(sp, [&](Party& p) {
      RingTensor mine = p.is(Role::Client)   ? c
                        : p.is(Role::Server) ? s
                                             : RingTensor::shape_only(c.shape);
      benchmark::DoNotOptimize(full_relu ? relu(p, mine) : drelu(p, mine));
    });
  }
  state.SetItemsProcessed(state.iterations() * n);
  state.counters["bytes_per_elem"] =
      static_cast<double>(rep.total_bytes()) / static_cast<double>(n);
  state.counters["rounds"] = rep.rounds;
}
BENCHMARK(BM_SignProtocol)
    ->ArgNames({"n", "approx", "relu"})
    ->Args({1 << 16, 0, 0})
    ->Args({1 << 16, 1, 0})
    ->Args({1 << 16, 0, 1})
    ->Args({1 << 16, 1, 1})
    ->Args({1 << 18, 0, 0})
    ->Unit(benchmark::kMillisecond)
    ->MeasureProcessCPUTime()
    ->UseRealTime();

// Conv GEMM shapes (M = out channels, N = output pixels, K = in channels * 3 * 3): the three
// stages of ResNet-20 on 28 x 28 Fashion-MNIST for one image, then wider VGG-like layers; last,
// LeNet-5's fully connected layers at batch 1 and 10 (too small for AMX: the vector kernel runs).
#define GEMM_SHAPES            \
  Args({16, 784, 144})         \
      ->Args({32, 196, 288})   \
      ->Args({64, 49, 576})    \
      ->Args({64, 1024, 576})  \
      ->Args({128, 256, 1152}) \
      ->Args({256, 64, 2304})  \
      ->Args({512, 49, 4608})  \
      ->Args({1, 10, 84})      \
      ->Args({10, 120, 400})   \
      ->ArgNames({"M", "N", "K"})

void BM_RingGemm(benchmark::State& state) {
  const int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  auto a = random_u64(m * k), b = random_u64(k * n);
  std::vector<uint64_t> c(m * n);
  for (auto _ : state) {
    gemm_u64(m, n, k, a.data(), k, b.data(), n, c.data(), n);
    benchmark::DoNotOptimize(c.data());
  }
  state.SetItemsProcessed(state.iterations() * m * n * k);
  state.SetLabel(gemm_u64_kernel_name(m, n, k));
}
BENCHMARK(BM_RingGemm)->GEMM_SHAPES->Unit(benchmark::kMillisecond);

// Every ring GEMM kernel side by side on each shape (the last argument: 1 portable, 2 avx2,
// 3 avx512dq, 4 amx-int8, as RingGemmKernel), skipped where the CPU lacks it: what machines
// without AMX or AVX-512 run. GEMM_SHAPES' shapes, then LeNet-5's: its convolutions per image
// (6 x 784 x 25, 16 x 100 x 150) and its first fully connected layer at batch 1 and 64.
constexpr RingGemmKernel kRingKernels[] = {RingGemmKernel::Portable, RingGemmKernel::Avx2,
                                           RingGemmKernel::Avx512, RingGemmKernel::Amx};

void ring_gemm_kernel_args(benchmark::internal::Benchmark* b) {
  const int64_t shapes[][3] = {{16, 784, 144},   {32, 196, 288},  {64, 49, 576},   {64, 1024, 576},
                               {128, 256, 1152}, {256, 64, 2304}, {512, 49, 4608}, {1, 10, 84},
                               {10, 120, 400},   {6, 784, 25},    {16, 100, 150},  {1, 120, 400},
                               {64, 120, 400}};
  for (const auto& s : shapes)
    for (RingGemmKernel kernel : kRingKernels)
      b->Args({s[0], s[1], s[2], static_cast<int64_t>(kernel)});
  b->ArgNames({"M", "N", "K", "kernel"});
}

// The kernel the state's argument `arg` names; nullopt (and the benchmark skipped) when this CPU
// lacks it.
std::optional<RingGemmKernel> ring_kernel_of(benchmark::State& state, int arg) {
  const auto kernel = static_cast<RingGemmKernel>(state.range(arg));
  state.SetLabel(ring_gemm_kernel_name(kernel));
  if (ring_gemm_kernel_available(kernel)) return kernel;
  state.SkipWithError("kernel not available on this CPU");
  return std::nullopt;
}

void BM_RingGemmKernel(benchmark::State& state) {
  const int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  const auto kernel = ring_kernel_of(state, 3);
  if (!kernel) return;
  auto a = random_u64(m * k), b = random_u64(k * n);
  std::vector<uint64_t> c(m * n);
  for (auto _ : state) {
    gemm_u64_with(*kernel, m, n, k, a.data(), k, b.data(), n, c.data(), n);
    benchmark::DoNotOptimize(c.data());
  }
  state.SetItemsProcessed(state.iterations() * m * n * k);
}
BENCHMARK(BM_RingGemmKernel)->Apply(ring_gemm_kernel_args)->Unit(benchmark::kMillisecond);

// One thread for oneDNN while it lives, as the ring kernels have: it would otherwise take every
// core.
class OneThread {
 public:
  OneThread() { nn::set_num_threads(1); }
  ~OneThread() { nn::set_num_threads(saved_); }
  OneThread(const OneThread&) = delete;
  OneThread& operator=(const OneThread&) = delete;

 private:
  int saved_ = nn::num_threads();
};

// oneDNN's float GEMM of an M x K by a K x N matrix on one thread, its operands owned and
// cache-line aligned (as oneDNN's own memory objects and the ring kernels' packing buffers
// are); each call runs one product.
class FloatGemm {
 public:
  FloatGemm(int64_t m, int64_t n, int64_t k)
      : m_(m), n_(n), k_(k), a_(m * k, 0.5f), b_(k * n, 0.25f), c_(m * n) {}
  void operator()() {
    dnnl_sgemm('N', 'N', m_, n_, k_, 1.0f, a_.data(), k_, b_.data(), n_, 0.0f, c_.data(), n_);
    benchmark::DoNotOptimize(c_.data());
  }

 private:
  OneThread one_thread_;
  int64_t m_, n_, k_;
  AlignedVector<float> a_, b_, c_;
};

// The float GEMM timed over the state's iterations.
void time_float_gemm(benchmark::State& state, int64_t m, int64_t n, int64_t k) {
  FloatGemm gemm(m, n, k);
  for (auto _ : state) gemm();
}

void BM_FloatGemmOneDnn(benchmark::State& state) {
  const int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  time_float_gemm(state, m, n, k);
  state.SetItemsProcessed(state.iterations() * m * n * k);
}
BENCHMARK(BM_FloatGemmOneDnn)->GEMM_SHAPES->Unit(benchmark::kMillisecond);

// ResNet-20's 3 x 3 convolutions (pad 1) for one 28 x 28 Fashion-MNIST image: input channels,
// output channels, input height = width, stride. The ring convolution against oneDNN's float
// convolution and against its float GEMM on the im2col shape (M = out channels, N = output
// pixels, K = 9 x input channels), one thread each.
#define CONV_SHAPES           \
  Args({16, 16, 28, 1})       \
      ->Args({16, 32, 28, 2}) \
      ->Args({32, 32, 14, 1}) \
      ->Args({32, 64, 14, 2}) \
      ->Args({64, 64, 7, 1})  \
      ->ArgNames({"C", "OC", "HW", "stride"})

Conv2dGeometry conv_shape(const benchmark::State& state) {
  Conv2dGeometry g;
  g.in_channels = state.range(0), g.out_channels = state.range(1);
  g.in_h = g.in_w = state.range(2);
  g.stride_h = g.stride_w = state.range(3);
  g.kernel_h = g.kernel_w = 3;
  g.pad_top = g.pad_left = g.pad_bottom = g.pad_right = 1;
  return g;
}

void set_conv_items(benchmark::State& state, const Conv2dGeometry& g) {
  state.SetItemsProcessed(state.iterations() * g.out_channels * g.out_h() * g.out_w() *
                          g.in_channels * 9);
}

void BM_RingConv2d(benchmark::State& state) {
  const Conv2dGeometry g = conv_shape(state);
  auto x = random_u64(g.input_numel()), w = random_u64(g.weight_numel());
  std::vector<uint64_t> y(g.output_numel());
  for (auto _ : state) {
    conv2d_u64(g, x.data(), w.data(), y.data());
    benchmark::DoNotOptimize(y.data());
  }
  set_conv_items(state, g);
  state.SetLabel(gemm_u64_kernel_name(g.out_channels, g.out_h() * g.out_w(), g.in_channels * 9));
}
BENCHMARK(BM_RingConv2d)->CONV_SHAPES->Unit(benchmark::kMillisecond);

// Each kernel on ResNet-20's convolutions (conv_shape) and LeNet-5's two at batch 1 (C, OC, HW,
// stride = 1, 6, 28 with pad 2 and 6, 16, 14 unpadded, both 5 x 5; kernel_hw = 5 marks them),
// the last argument the kernel as in BM_RingGemmKernel.
void ring_conv_kernel_args(benchmark::internal::Benchmark* b) {
  const int64_t shapes[][5] = {{16, 16, 28, 1, 3}, {16, 32, 28, 2, 3}, {32, 32, 14, 1, 3},
                               {64, 64, 7, 1, 3},  {1, 6, 28, 1, 5},   {6, 16, 14, 1, 5}};
  for (const auto& s : shapes)
    for (RingGemmKernel kernel : kRingKernels)
      b->Args({s[0], s[1], s[2], s[3], s[4], static_cast<int64_t>(kernel)});
  b->ArgNames({"C", "OC", "HW", "stride", "khw", "kernel"});
}

void BM_RingConv2dKernel(benchmark::State& state) {
  Conv2dGeometry g = conv_shape(state);
  g.kernel_h = g.kernel_w = state.range(4);
  // LeNet-5: conv1 pads 2 (28 -> 28), conv2 none (14 -> 10).
  const int64_t pad = g.kernel_h == 3 ? 1 : g.in_channels == 1 ? 2 : 0;
  g.pad_top = g.pad_left = g.pad_bottom = g.pad_right = pad;
  const auto kernel = ring_kernel_of(state, 5);
  if (!kernel) return;
  auto x = random_u64(g.input_numel()), w = random_u64(g.weight_numel());
  std::vector<uint64_t> y(g.output_numel());
  for (auto _ : state) {
    conv2d_u64_with(*kernel, g, x.data(), w.data(), y.data());
    benchmark::DoNotOptimize(y.data());
  }
  state.SetItemsProcessed(state.iterations() * g.out_channels * g.out_h() * g.out_w() *
                          g.in_channels * g.kernel_h * g.kernel_w);
}
BENCHMARK(BM_RingConv2dKernel)->Apply(ring_conv_kernel_args)->Unit(benchmark::kMicrosecond);

void BM_FloatConv2dOneDnn(benchmark::State& state) {
  const Conv2dGeometry g = conv_shape(state);
  using tag = dnnl::memory::format_tag;
  using dt = dnnl::memory::data_type;
  const OneThread one_thread;
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream strm(eng);
  const dnnl::memory::dims src{1, g.in_channels, g.in_h, g.in_w},
      wei{g.out_channels, g.in_channels, 3, 3}, dst{1, g.out_channels, g.out_h(), g.out_w()},
      strides{g.stride_h, g.stride_w}, pad{1, 1};
  // The layouts oneDNN picks (blocked), as a float network runs between layers.
  const dnnl::convolution_forward::desc desc(
      dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
      dnnl::memory::desc(src, dt::f32, tag::any), dnnl::memory::desc(wei, dt::f32, tag::any),
      dnnl::memory::desc(dst, dt::f32, tag::any), strides, pad, pad);
  const dnnl::convolution_forward::primitive_desc pd(desc, eng);
  dnnl::memory s(pd.src_desc(), eng), wm(pd.weights_desc(), eng), d(pd.dst_desc(), eng);
  std::fill_n(static_cast<float*>(s.get_data_handle()), pd.src_desc().get_size() / 4, 0.5f);
  std::fill_n(static_cast<float*>(wm.get_data_handle()), pd.weights_desc().get_size() / 4, 0.25f);
  dnnl::convolution_forward conv(pd);
  for (auto _ : state) {
    conv.execute(strm, {{DNNL_ARG_SRC, s}, {DNNL_ARG_WEIGHTS, wm}, {DNNL_ARG_DST, d}});
    strm.wait();
  }
  set_conv_items(state, g);
}
BENCHMARK(BM_FloatConv2dOneDnn)->CONV_SHAPES->Unit(benchmark::kMillisecond);

void BM_FloatConvGemmOneDnn(benchmark::State& state) {
  const Conv2dGeometry g = conv_shape(state);
  time_float_gemm(state, g.out_channels, g.out_h() * g.out_w(), g.in_channels * 9);
  set_conv_items(state, g);
}
BENCHMARK(BM_FloatConvGemmOneDnn)->CONV_SHAPES->Unit(benchmark::kMillisecond);

// The ring side's operands, cache-line aligned as the float side's (FloatGemm).
AlignedVector<uint64_t> aligned(const std::vector<uint64_t>& v) {
  return AlignedVector<uint64_t>(v.begin(), v.end());
}

// Ring against float, timed in alternating slices of ~0.5 ms each (one benchmark iteration =
// one pair of slices), so that both sides see the same machine: on this shared VM a slow
// stretch otherwise lands on whichever side happens to run then, and the ring / float ratio of
// two separately timed benchmarks moved by more than a third between runs (10 x 120 x 400: 3.0x
// to 4.15x). Reports each side's median time per call and the median of the per-pair ratios.
template <class Ring, class Float>
void time_paired(benchmark::State& state, Ring&& ring, Float&& flt) {
  using clock = std::chrono::steady_clock;
  const auto seconds_per_call = [](auto& f, int calls) {
    const auto t0 = clock::now();
    for (int i = 0; i < calls; ++i) f();
    return std::chrono::duration<double>(clock::now() - t0).count() / calls;
  };
  // Warm both (caches, oneDNN's JIT), then size the slices.
  seconds_per_call(ring, 3);
  seconds_per_call(flt, 3);
  const auto calls_for = [](double per_call) {
    return std::max(1, static_cast<int>(5e-4 / std::max(per_call, 1e-9)));
  };
  const int ring_calls = calls_for(seconds_per_call(ring, 5));
  const int float_calls = calls_for(seconds_per_call(flt, 5));
  std::vector<double> ring_s, float_s, ratio;
  for (auto _ : state) {
    const double r = seconds_per_call(ring, ring_calls);
    const double f = seconds_per_call(flt, float_calls);
    ring_s.push_back(r), float_s.push_back(f), ratio.push_back(r / f);
  }
  const auto median = [](std::vector<double> v) {
    std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
    return v[v.size() / 2];
  };
  state.counters["ring_us"] = median(ring_s) * 1e6;
  state.counters["float_us"] = median(float_s) * 1e6;
  state.counters["ratio"] = median(ratio);
}

// `ring` paired with oneDNN's float GEMM of an M x K by a K x N matrix (one thread).
template <class Ring>
void time_paired_with_float_gemm(benchmark::State& state, Ring&& ring, int64_t m, int64_t n,
                                 int64_t k) {
  FloatGemm gemm(m, n, k);
  time_paired(state, ring, gemm);
}

void BM_PairedGemm(benchmark::State& state) {
  const int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  const auto a = aligned(random_u64(m * k)), b = aligned(random_u64(k * n));
  AlignedVector<uint64_t> c(m * n);
  time_paired_with_float_gemm(
      state,
      [&] {
        gemm_u64(m, n, k, a.data(), k, b.data(), n, c.data(), n);
        benchmark::DoNotOptimize(c.data());
      },
      m, n, k);
  state.SetLabel(gemm_u64_kernel_name(m, n, k));
}
BENCHMARK(BM_PairedGemm)->GEMM_SHAPES->Unit(benchmark::kMillisecond);

// The ring convolution against the float GEMM on its im2col shape.
void BM_PairedConvGemm(benchmark::State& state) {
  const Conv2dGeometry g = conv_shape(state);
  const auto x = aligned(random_u64(g.input_numel())), w = aligned(random_u64(g.weight_numel()));
  AlignedVector<uint64_t> y(g.output_numel());
  time_paired_with_float_gemm(
      state,
      [&] {
        conv2d_u64(g, x.data(), w.data(), y.data());
        benchmark::DoNotOptimize(y.data());
      },
      g.out_channels, g.out_h() * g.out_w(), g.in_channels * 9);
}
BENCHMARK(BM_PairedConvGemm)->CONV_SHAPES->Unit(benchmark::kMillisecond);

// The kernels of the DReLU's hot loops side by side: range(0) = 0 scalar, 1 AVX2, 2 AVX-512
// (skipped when this CPU lacks it). Z_67 digit packing, which PrivateCompare runs on 63 digits
// per compared element, on 1 << 20 digits per call; fill_below on the DReLU's bounds; the
// PrivateCompare steps on 8192 elements of 63 digits (one exact-DReLU chunk).
std::vector<uint8_t> random_z67_digits(size_t n) {
  std::vector<uint8_t> d(n);
  ByteSampler(AesCtrPrg(random_seed())).fill_below(kP, d.data(), n);
  return d;
}

constexpr const char* kKernelNames[] = {"scalar", "avx2", "avx512"};

// The kernel range(0) names; nullopt (and the benchmark skipped) when this CPU lacks it.
std::optional<Z67Kernel> z67_kernel_of(benchmark::State& state) {
  const Z67Kernel kernels[] = {Z67Kernel::Scalar, Z67Kernel::Avx2, Z67Kernel::Avx512};
  const Z67Kernel kernel = kernels[state.range(0)];
  state.SetLabel(kKernelNames[state.range(0)]);
  if (z67_kernel_available(kernel)) return kernel;
  state.SkipWithError("kernel not available on this CPU");
  return std::nullopt;
}

std::optional<CompareKernel> compare_kernel_of(benchmark::State& state) {
  const CompareKernel kernels[] = {CompareKernel::Scalar, CompareKernel::Avx2,
                                   CompareKernel::Avx512};
  const CompareKernel kernel = kernels[state.range(0)];
  state.SetLabel(kKernelNames[state.range(0)]);
  if (compare_kernel_available(kernel)) return kernel;
  state.SkipWithError("kernel not available on this CPU");
  return std::nullopt;
}

#define KERNEL_ARGS ArgName("kernel")->Arg(0)->Arg(1)->Arg(2)

void BM_Z67Pack(benchmark::State& state) {
  const auto kernel = z67_kernel_of(state);
  if (!kernel) return;
  const auto digits = random_z67_digits(size_t{1} << 20);
  for (auto _ : state) benchmark::DoNotOptimize(pack_z67_with(*kernel, digits));
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(digits.size()));
}
BENCHMARK(BM_Z67Pack)->KERNEL_ARGS->Unit(benchmark::kMicrosecond);

void BM_Z67Unpack(benchmark::State& state) {
  const auto kernel = z67_kernel_of(state);
  if (!kernel) return;
  const auto digits = random_z67_digits(size_t{1} << 20);
  const auto bytes = pack_z67_with(Z67Kernel::Scalar, digits);
  std::vector<uint8_t> out(digits.size());
  for (auto _ : state) {
    unpack_z67_with(*kernel, bytes, std::span<uint8_t>(out));
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(digits.size()));
}
BENCHMARK(BM_Z67Unpack)->KERNEL_ARGS->Unit(benchmark::kMicrosecond);

// range(1): the bound (67 for bit shares and masks, 66 for multipliers, 2 for coins).
void BM_FillBelow(benchmark::State& state) {
  const auto kernel = z67_kernel_of(state);
  if (!kernel) return;
  const unsigned bound = static_cast<unsigned>(state.range(1));
  ByteSampler sampler{AesCtrPrg(random_seed())};
  std::vector<uint8_t> out(size_t{1} << 20);
  for (auto _ : state) {
    sampler.fill_below(bound, out.data(), out.size(), *kernel);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(out.size()));
}
BENCHMARK(BM_FillBelow)
    ->ArgNames({"kernel", "bound"})
    ->ArgsProduct({{0, 1, 2}, {2, 67}})
    ->Unit(benchmark::kMicrosecond);

struct CompareInputs {
  static constexpr int kM = 63;
  static constexpr size_t kN = 8192, kDigits = kN * kM;
  std::vector<uint64_t> r = random_u64(kN);
  std::vector<uint8_t> beta = std::vector<uint8_t>(kN), rot = std::vector<uint8_t>(kN);
  std::vector<uint8_t> xs = random_z67_digits(kDigits), sv = random_z67_digits(kDigits),
                       uv = random_z67_digits(kDigits), out = std::vector<uint8_t>(kDigits);
  CompareInputs() {
    ByteSampler coins{AesCtrPrg(random_seed())};
    coins.fill_below(2, beta.data(), kN);
    coins.fill_below(kM, rot.data(), kN);
    for (auto& v : r) v &= (uint64_t{1} << kM) - 1;
    for (auto& v : sv) v = static_cast<uint8_t>(v % (kP - 1) + 1);
  }
};

// range(1): 0 the client's digits, 1 the server's.
void BM_PrivateCompareDigits(benchmark::State& state) {
  const auto kernel = compare_kernel_of(state);
  if (!kernel) return;
  CompareInputs in;
  for (auto _ : state) {
    private_compare_digits(in.kM, state.range(1) == 0, in.kN, in.r.data(), in.beta.data(),
                           in.xs.data(), in.sv.data(), in.uv.data(), in.rot.data(), in.out.data(),
                           *kernel);
    benchmark::DoNotOptimize(in.out.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(in.kN));
}
BENCHMARK(BM_PrivateCompareDigits)
    ->ArgNames({"kernel", "server"})
    ->ArgsProduct({{0, 1, 2}, {0, 1}})
    ->Unit(benchmark::kMicrosecond);

// The helper's two steps: bit shares and the zero test.
void BM_PrivateCompareHelper(benchmark::State& state) {
  const auto kernel = compare_kernel_of(state);
  if (!kernel) return;
  CompareInputs in;
  for (auto _ : state) {
    private_compare_bit_shares(in.kM, in.kN, in.r.data(), in.xs.data(), *kernel);
    private_compare_any_zero(in.kM, in.kN, in.sv.data(), in.uv.data(), in.out.data(), *kernel);
    benchmark::DoNotOptimize(in.out.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(in.kN));
}
BENCHMARK(BM_PrivateCompareHelper)->KERNEL_ARGS->Unit(benchmark::kMicrosecond);

}  // namespace

int main(int argc, char** argv) {
  // The allocator settings of the veil CLI (src/cli/main.cpp), so that the protocol rows measure
  // what `veil mpc` runs: glibc's defaults serve the multi-megabyte share and digit buffers
  // with mmap/munmap (and trim the parties' arenas), page-faulting them in afresh every op.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
