#include "veil/he/inference/program.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <set>

#include "veil/core/error.hpp"
#include "veil/he/inference/folded_stages.hpp"

namespace veil::he {

namespace {

constexpr int kMaxScaleBits = 36;

uint32_t pow2_at_least(size_t v) {
  return static_cast<uint32_t>(std::bit_ceil(std::max<size_t>(v, 1)));
}

}  // namespace

uint32_t ProgramLayout::input_vectors() const {
  const auto& f = first();
  return f.method == LinearMethod::Gather ? f.terms : 1;
}

std::vector<int> ProgramLayout::rotation_steps() const {
  std::set<int> s;
  for (const auto& l : layers) {
    const auto* lin = std::get_if<LinearLayout>(&l);
    if (!lin || lin->method != LinearMethod::Diagonal) continue;
    for (uint32_t b = 1; b < lin->baby; ++b) s.insert(static_cast<int>(b));
    if (lin->giant() > 1) s.insert(static_cast<int>(lin->baby));
    for (int st : lin->sum_steps) s.insert(st);
  }
  return {s.begin(), s.end()};
}

uint32_t ProgramLayout::max_period() const {
  uint32_t p = 1;
  for (const auto& l : layers) {
    if (const auto* lin = std::get_if<LinearLayout>(&l))
      p = std::max(p, lin->period());
    else
      p = std::max(p, std::get<SquareLayout>(l).period);
  }
  return p;
}

ProgramNeeds program_needs(const std::vector<Stage>& stages) {
  ProgramNeeds needs;
  for (const auto& st : stages) {
    ++needs.depth;
    if (const auto* a = std::get_if<AffineStage>(&st))
      needs.max_period =
          std::max({needs.max_period, pow2_at_least(a->in_dim), pow2_at_least(a->out_dim)});
  }
  return needs;
}

CkksParameters choose_parameters(uint32_t depth, uint32_t min_slots, SecurityLevel security,
                                 int min_scale_bits) {
  if (depth == 0) throw InvalidArgument("a program of depth 0 needs no encryption");
  if (min_scale_bits <= 0) min_scale_bits = static_cast<int>(std::min<uint32_t>(25 + depth, 28));
  for (size_t n = 4096; n <= 32768; n *= 2) {
    if (n / 2 < min_slots) continue;
    const int budget = max_modulus_bits(n, security);
    // At most 36 bits: then q0 = s + 14 <= 50 and every prime is below 2^50, where the kernels
    // use IFMA52 products (src/he/kernels_avx512.cpp). Measured on he-cnn's batch packing at
    // N = 16384: 2,497 images/s with 43-bit primes against 1,386 with 54-bit ones.
    for (int s = kMaxScaleBits; s >= min_scale_bits; --s) {
      // The output's integer part: |y| < 2^13 at scale 2^s. Decryption trusts |y| < 2^11 only
      // (runtime.cpp): he-cnn's logits reach 73, so 10 bits (|y| < 2^9, trusted < 64) were
      // too few.
      const int q0 = s + 14;
      if (2 * q0 + static_cast<int>(depth) * s > budget) continue;
      CkksParameters p;
      p.poly_degree = n;
      p.coeff_bits.clear();
      p.coeff_bits.push_back(q0);
      for (uint32_t i = 0; i < depth; ++i) p.coeff_bits.push_back(s);
      p.coeff_bits.push_back(q0);  // special prime, as large as the largest q prime
      p.special_primes = 1;
      p.default_scale = std::ldexp(1.0, s);
      p.security = security;
      return p;
    }
  }
  throw InvalidArgument(
      "no CKKS ring up to N = 32768 holds a program of depth " + std::to_string(depth) + " at " +
      std::to_string(static_cast<int>(security)) + "-bit security with a scale of at least 2^" +
      std::to_string(min_scale_bits));
}

CompiledProgram compile_program(const std::vector<Stage>& stages,
                                const std::vector<int64_t>& input_shape, const HeContext& ctx,
                                const CompileOptions& options) {
  const auto folded = fold_stages(stages);
  CompiledProgram prog;
  ProgramLayout& lay = prog.layout;
  lay.input_shape = input_shape;
  lay.depth = static_cast<uint32_t>(folded.size());
  if (lay.depth > ctx.max_level())
    throw InvalidArgument("the encrypted part needs " + std::to_string(lay.depth) +
                          " levels; these keys have " + std::to_string(ctx.max_level()) +
                          " (make keys for this model with `veil he keygen --model`)");
  const size_t slots = ctx.slots();
  double scale = ctx.parameters().default_scale;
  lay.scale = scale;
  uint32_t level = static_cast<uint32_t>(ctx.max_level());
  bool first = true;
  for (const auto& op : folded) {
    if (const auto* sq = std::get_if<FoldedSquare>(&op)) {
      SquareLayout s;
      s.name = sq->name;
      s.dim = static_cast<uint32_t>(sq->shift.size());
      s.period = pow2_at_least(s.dim);
      s.shift = sq->shift;
      s.level = level;
      const double q = static_cast<double>(ctx.prime_values()[level]);
      scale = (scale * scale) / q;
      --level;
      lay.layers.push_back(std::move(s));
      continue;
    }
    const auto& f = std::get<FoldedLinear>(op);
    LinearLayout l;
    l.name = f.name;
    l.m = static_cast<uint32_t>(f.m);
    l.n = static_cast<uint32_t>(f.n);
    l.rows = pow2_at_least(f.m);
    l.cols = pow2_at_least(f.n);
    l.level = level;
    if (first) lay.input_dim = l.n;
    LinearWeights w;
    w.bias.assign(l.rows, 0.0);
    for (size_t r = 0; r < f.m; ++r) w.bias[r] = f.b[r];

    // Diagonal plan.
    const uint32_t T = std::min(l.rows, l.cols);
    const uint32_t g = 1u << ((std::bit_width(T) - 1 + 1) / 2);
    std::vector<int32_t> sum_steps;
    for (uint32_t s = l.cols / 2; l.rows < l.cols && s >= l.rows; s /= 2)
      sum_steps.push_back(static_cast<int32_t>(s));
    // Gather plan (first layer only): K = most inputs any output reads.
    size_t K = 0;
    if (first && options.allow_gather) {
      for (size_t r = 0; r < f.m; ++r) {
        size_t nz = 0;
        for (size_t c = 0; c < f.n; ++c) nz += f.w[r * f.n + c] != 0;
        K = std::max(K, nz);
      }
    }
    const size_t diag_cost = T + 8 * ((g - 1) + (T / g - 1) + sum_steps.size());
    if (first && options.allow_gather && K > 0 && K <= 64 && K < diag_cost) {
      l.method = LinearMethod::Gather;
      l.cols = l.rows;  // gathered vectors have the output's layout
      l.terms = static_cast<uint32_t>(K);
      l.gather.assign(K * l.rows, -1);
      w.terms.assign(K, std::vector<double>(l.rows, 0.0));
      for (size_t r = 0; r < f.m; ++r) {
        size_t t = 0;
        for (size_t c = 0; c < f.n; ++c) {
          const double v = f.w[r * f.n + c];
          if (v == 0) continue;
          l.gather[t * l.rows + r] = static_cast<int32_t>(c);
          w.terms[t][r] = v;
          ++t;
        }
      }
      l.present.assign(K, 1);
    } else {
      l.method = LinearMethod::Diagonal;
      l.terms = T;
      l.baby = std::min(g, T);
      l.sum_steps = sum_steps;
      const uint32_t L = l.period();
      if (L > slots)
        throw InvalidArgument("layer " + l.name + " needs " + std::to_string(L) +
                              " slots; these keys have " + std::to_string(slots));
      w.terms.resize(T);
      l.present.assign(T, 0);
      for (uint32_t i = 0; i < T; ++i) {
        std::vector<double> d(L, 0.0);
        bool any = false;
        for (uint32_t k = 0; k < L; ++k) {
          const uint32_t r = k % l.rows, c = (k + i) % l.cols;
          if (r < f.m && c < f.n) {
            d[k] = f.w[r * f.n + c];
            any |= d[k] != 0;
          }
        }
        if (!any) continue;
        // Pre-rotate by -j g for the Horner giant steps: D[k] = d[(k - j g) mod L].
        const uint32_t shift = (i / l.baby) * l.baby % L;
        std::vector<double> rd(L);
        for (uint32_t k = 0; k < L; ++k) rd[k] = d[(k + L - shift) % L];
        w.terms[i] = std::move(rd);
        l.present[i] = 1;
      }
    }
    if (l.period() > slots)
      throw InvalidArgument("layer " + l.name + " needs more slots than these keys have");
    const double q = static_cast<double>(ctx.prime_values()[level]);
    scale = (scale * q) / q;
    l.scale_out = scale;
    --level;
    lay.output_dim = l.m;
    lay.layers.push_back(std::move(l));
    prog.weights.push_back(std::move(w));
    first = false;
  }
  return prog;
}

std::vector<std::vector<double>> layout_input(const ProgramLayout& layout,
                                              std::span<const double> x, size_t slots) {
  const auto& f = layout.first();
  if (x.size() != layout.input_dim)
    throw InvalidArgument("the encrypted part takes " + std::to_string(layout.input_dim) +
                          " values per image, not " + std::to_string(x.size()));
  std::vector<std::vector<double>> out;
  if (f.method == LinearMethod::Diagonal) {
    std::vector<double> v(slots, 0.0);
    for (size_t k = 0; k < slots; ++k) {
      const size_t i = k % f.cols;
      v[k] = i < x.size() ? x[i] : 0.0;
    }
    out.push_back(std::move(v));
    return out;
  }
  for (uint32_t t = 0; t < f.terms; ++t) {
    std::vector<double> v(slots, 0.0);
    for (size_t k = 0; k < slots; ++k) {
      const int32_t src = f.gather[t * f.rows + k % f.rows];
      v[k] = src >= 0 ? x[static_cast<size_t>(src)] : 0.0;
    }
    out.push_back(std::move(v));
  }
  return out;
}

}  // namespace veil::he
