#include "veil/he/inference/batch_program.hpp"

#include <algorithm>
#include <cmath>

#include "he/kernels.hpp"
#include "he/thread_pool.hpp"
#include "veil/core/error.hpp"
#include "veil/he/encoder.hpp"
#include "veil/he/encryptor.hpp"
#include "veil/he/evaluator.hpp"
#include "veil/he/inference/folded_stages.hpp"
#include "veil/he/inference/program.hpp"

namespace veil::he {

namespace {

// Coefficients per kernel task: enough tasks for the pool (limbs x components x n / kSpan) and
// long enough runs for the kernel's 64-coefficient blocks.
constexpr size_t kSpan = 1024;

// An integral double (|v| < 2^63) modulo m.
uint64_t signed_residue(double v, const Modulus& m) {
  const uint64_t r = reduce64(static_cast<uint64_t>(std::fabs(v)), m);
  return v < 0 ? neg_mod(r, m.value) : r;
}

}  // namespace

SparseRows SparseRows::from_dense(std::span<const double> w, size_t rows, size_t cols) {
  if (w.size() != rows * cols) throw InvalidArgument("SparseRows: matrix size mismatch");
  if (rows * cols >= (size_t{1} << 32)) throw InvalidArgument("SparseRows: matrix too large");
  SparseRows s;
  s.rows = rows;
  s.cols = cols;
  s.start.reserve(rows + 1);
  s.start.push_back(0);
  for (size_t r = 0; r < rows; ++r) {
    for (size_t c = 0; c < cols; ++c) {
      const double v = w[r * cols + c];
      if (v == 0) continue;  // convolutions read 25 of 784 inputs per output
      s.col.push_back(static_cast<uint32_t>(c));
      s.value.push_back(v);
    }
    s.start.push_back(static_cast<uint32_t>(s.col.size()));
  }
  return s;
}

CkksParameters choose_batch_parameters(const std::vector<Stage>& stages, SecurityLevel security) {
  // One image per slot: any ring holds any layer, and the cost per image is about the number
  // of limbs whatever N, so the smallest ring that holds the depth wins (least memory).
  return choose_parameters(program_needs(stages).depth, 1, security);
}

BatchProgram compile_batch_program(const std::vector<Stage>& stages, const HeContext& ctx) {
  const auto folded = fold_stages(stages);
  BatchProgram p;
  p.depth = static_cast<uint32_t>(folded.size());
  if (p.depth > ctx.max_level())
    throw InvalidArgument("the encrypted part needs " + std::to_string(p.depth) +
                          " levels; these parameters have " + std::to_string(ctx.max_level()));
  uint32_t level = static_cast<uint32_t>(ctx.max_level());
  for (const auto& op : folded) {
    if (const auto* sq = std::get_if<FoldedSquare>(&op)) {
      p.layers.push_back(BatchSquare{sq->name, sq->shift, level--});
      continue;
    }
    const auto& f = std::get<FoldedLinear>(op);
    if (p.layers.empty()) p.input_dim = static_cast<uint32_t>(f.n);
    p.output_dim = static_cast<uint32_t>(f.m);
    p.layers.push_back(BatchLinear{f.name, SparseRows::from_dense(f.w, f.m, f.n), f.b, level--});
  }
  if (p.layers.empty() || !std::holds_alternative<BatchLinear>(p.layers.front()) ||
      !std::holds_alternative<BatchLinear>(p.layers.back()))
    throw InvalidArgument("an encrypted part must start and end with a linear layer");
  return p;
}

std::vector<Ciphertext> multiply_plain_weights(const HeContext& ctx, const SparseRows& w,
                                               double weight_scale,
                                               const std::vector<Ciphertext>& x,
                                               std::span<const double> bias) {
  if (x.size() != w.cols)
    throw InvalidArgument("linear layer takes " + std::to_string(w.cols) + " ciphertexts, not " +
                          std::to_string(x.size()));
  if (x.empty()) throw InvalidArgument("linear layer without inputs");
  if (!bias.empty() && bias.size() != w.rows)
    throw InvalidArgument("linear layer: " + std::to_string(bias.size()) + " biases for " +
                          std::to_string(w.rows) + " outputs");
  const size_t level = x[0].level(), size = x[0].size(), n = ctx.n();
  for (const auto& c : x) {
    check_ciphertext(ctx, c);
    if (c.level() != level || c.size() != size ||
        std::fabs(c.scale() - x[0].scale()) > x[0].scale() * 1e-9)
      throw InvalidArgument("linear layer: inputs at different levels, sizes or scales");
  }
  const double scale = x[0].scale() * weight_scale;
  if (!(weight_scale >= 1.0) || std::log2(scale) >= ctx.q_bits(level) - 1)
    throw InvalidArgument("linear layer: the result scale exceeds the modulus");

  // The bias is one more column, against a noiseless encryption of 1 (c0 = round(scale), the
  // rest zero): it costs one term per row instead of a pass over every output.
  SparseRows aug;
  const SparseRows* rows = &w;
  if (!bias.empty()) {
    aug.rows = w.rows;
    aug.cols = w.cols + 1;
    aug.start.push_back(0);
    for (size_t r = 0; r < w.rows; ++r) {
      aug.col.insert(aug.col.end(), w.col.begin() + w.start[r], w.col.begin() + w.start[r + 1]);
      aug.value.insert(aug.value.end(), w.value.begin() + w.start[r],
                       w.value.begin() + w.start[r + 1]);
      if (bias[r] != 0) {
        aug.col.push_back(static_cast<uint32_t>(w.cols));
        aug.value.push_back(bias[r]);
      }
      aug.start.push_back(static_cast<uint32_t>(aug.col.size()));
    }
    rows = &aug;
  }
  const size_t nnz = rows->nonzeros();
  std::vector<double> wi(nnz);
  for (size_t t = 0; t < nnz; ++t) {
    wi[t] = std::nearbyint(rows->value[t] * weight_scale);
    if (!(std::fabs(wi[t]) < 9.2e18))
      throw InvalidArgument("linear layer: weight * scale out of range");
  }
  // Residues of the integer weights, limb by limb.
  std::vector<uint64_t> res((level + 1) * nnz);
  for (size_t i = 0; i <= level; ++i)
    for (size_t t = 0; t < nnz; ++t) res[i * nnz + t] = signed_residue(wi[t], ctx.prime(i));
  Ciphertext one;
  if (!bias.empty()) {
    one = Ciphertext(ctx.id(), n, size, level, x[0].scale());  // zero
    const double s = std::nearbyint(x[0].scale());
    for (size_t i = 0; i <= level; ++i)
      std::fill(one.limb(0, i), one.limb(0, i) + n, signed_residue(s, ctx.prime(i)));
  }

  std::vector<Ciphertext> out;
  out.reserve(w.rows);
  for (size_t r = 0; r < w.rows; ++r) {
    out.emplace_back(ctx.id(), n, size, level, scale, kNoInit);
    double var = 0;  // exact products: the error is the inputs', weighted
    for (uint32_t t = w.start[r]; t < w.start[r + 1]; ++t) {
      const double e = std::nearbyint(w.value[t] * weight_scale) * x[w.col[t]].noise();
      var += e * e;
    }
    out.back().set_noise(std::sqrt(var));
  }
  const Isa isa = active_isa();
  const size_t span = std::min(n, kSpan), spans = n / span;
  ctx.pool().parallel_for(size * (level + 1) * spans, [&](size_t task) {
    const size_t k = task / ((level + 1) * spans);
    const size_t i = task / spans % (level + 1);
    const size_t c0 = task % spans * span;
    std::vector<const uint64_t*> xp(rows->cols);
    std::vector<uint64_t*> op(out.size());
    for (size_t j = 0; j < x.size(); ++j) xp[j] = x[j].limb(k, i) + c0;
    if (!bias.empty()) xp[x.size()] = one.limb(k, i) + c0;
    for (size_t j = 0; j < out.size(); ++j) op[j] = out[j].limb(k, i) + c0;
    kernels::sparse_matmul(isa, op.data(), xp.data(), rows->start.data(), rows->col.data(),
                           res.data() + i * nnz, rows->rows, ctx.prime(i), span);
  });
  return out;
}

std::vector<Ciphertext> encrypt_batch(const BatchProgram& program, const ContextPtr& ctx,
                                      const PublicKey& pub,
                                      const std::vector<std::vector<double>>& images) {
  if (images.size() > ctx->slots())
    throw InvalidArgument(std::to_string(images.size()) + " images do not fit in " +
                          std::to_string(ctx->slots()) + " slots");
  for (const auto& im : images)
    if (im.size() != program.input_dim)
      throw InvalidArgument("the encrypted part takes " + std::to_string(program.input_dim) +
                            " values per image, not " + std::to_string(im.size()));
  CkksEncoder encoder(ctx);
  Encryptor enc(ctx, pub);
  std::vector<Ciphertext> out(program.input_dim);
  ctx->pool().parallel_for(program.input_dim, [&](size_t k) {
    std::vector<double> v(images.size());
    for (size_t i = 0; i < images.size(); ++i) v[i] = images[i][k];
    out[k] = enc.encrypt(encoder.encode(v, ctx->parameters().default_scale, ctx->max_level()));
  });
  return out;
}

BatchRunner::BatchRunner(ContextPtr ctx, const BatchProgram& program, const RelinKeys& relin)
    : ctx_(std::move(ctx)), program_(program), relin_(relin) {}

std::vector<Ciphertext> BatchRunner::run(std::vector<Ciphertext> x, RunStats* stats) const {
  RunStats st;
  if (x.size() != program_.input_dim)
    throw InvalidArgument("the encrypted part takes " + std::to_string(program_.input_dim) +
                          " ciphertexts, not " + std::to_string(x.size()));
  for (const auto& c : x)
    if (c.size() != 2 || c.level() != ctx_->max_level())
      throw InvalidArgument("batch inputs must be fresh encryptions at the top level");
  for (const auto& layer : program_.layers) {
    if (const auto* l = std::get_if<BatchLinear>(&layer))
      x = linear(*l, x, st);
    else
      x = square(std::get<BatchSquare>(layer), x, st);
  }
  if (stats) *stats = st;
  return x;
}

std::vector<Ciphertext> BatchRunner::linear(const BatchLinear& l, const std::vector<Ciphertext>& x,
                                            RunStats& st) const {
  if (x.at(0).level() != l.level) throw Error("batch program: layer " + l.name + " level mismatch");
  // Weights at scale q_l: the rescale gives the input scale back.
  const double q = static_cast<double>(ctx_->prime_values()[l.level]);
  auto out = multiply_plain_weights(*ctx_, l.weights, q, x, l.bias);
  st.products += l.weights.nonzeros() * x[0].size();
  const bool relin = x[0].size() == 3;
  Evaluator eval(ctx_);
  // One ciphertext per task: the evaluator's own limb loops run serially inside.
  ctx_->pool().parallel_for(out.size(), [&](size_t j) {
    out[j] = eval.rescale(relin ? eval.relinearize(out[j], relin_) : out[j]);
  });
  st.relinearizations += relin ? out.size() : 0;
  st.rescales += out.size();
  return out;
}

std::vector<Ciphertext> BatchRunner::square(const BatchSquare& s, const std::vector<Ciphertext>& x,
                                            RunStats& st) const {
  if (x.size() != s.shift.size() || x.at(0).level() != s.level)
    throw Error("batch program: activation " + s.name + " does not match its input");
  Evaluator eval(ctx_);
  std::vector<Ciphertext> out(x.size());
  ctx_->pool().parallel_for(
      x.size(), [&](size_t k) { out[k] = eval.rescale(square_shifted(*ctx_, x[k], s.shift[k])); });
  st.products += x.size();
  st.rescales += x.size();
  return out;
}

Ciphertext square_shifted(const HeContext& ctx, const Ciphertext& x, double c) {
  check_ciphertext(ctx, x);
  if (x.size() != 2) throw InvalidArgument("square_shifted: relinearize the input first");
  const double scale = x.scale() * x.scale();
  const double shift = std::nearbyint(c * x.scale());
  if (std::log2(scale) >= ctx.q_bits(x.level()) - 1 || !(std::fabs(shift) < 9.2e18))
    throw InvalidArgument("square_shifted: result scale exceeds the modulus");
  const size_t n = ctx.n(), level = x.level();
  Ciphertext out(x.context_id(), n, 3, level, scale, kNoInit);
  const Isa isa = active_isa();
  ctx.pool().parallel_for(level + 1, 3 * n, [&](size_t i) {
    const Modulus& m = ctx.prime(i);
    const uint64_t r = signed_residue(shift, m);
    const uint64_t *a0 = x.limb(0, i), *a1 = x.limb(1, i);
    thread_local std::vector<uint64_t> t;  // t0 = a0 + r, s = a0 + t0
    t.resize(2 * n);
    uint64_t *t0 = t.data(), *s = t.data() + n;
    for (size_t k = 0; k < n; ++k) {
      t0[k] = add_mod(a0[k], r, m.value);
      s[k] = add_mod(a0[k], t0[k], m.value);
    }
    const uint64_t *t0c = t0, *sc = s;
    kernels::dot2(isa, out.limb(0, i), nullptr, &a0, &t0c, nullptr, 1, nullptr, m, n);
    kernels::dot2(isa, out.limb(1, i), nullptr, &a1, &sc, nullptr, 1, nullptr, m, n);
    kernels::dot2(isa, out.limb(2, i), nullptr, &a1, &a1, nullptr, 1, nullptr, m, n);
  });
  // As Evaluator::multiply for operands x and x + c of equal noise.
  const double e = x.noise();
  out.set_noise(std::sqrt(2 * std::pow(x.scale() * e, 2) + std::pow(e, 4)));
  return out;
}

std::vector<std::vector<double>> decrypt_batch(const ContextPtr& ctx, const SecretKey& secret,
                                               const std::vector<Ciphertext>& outputs,
                                               size_t count) {
  if (count > ctx->slots()) throw InvalidArgument("more images than slots");
  Decryptor dec(ctx, secret);
  CkksEncoder encoder(ctx);
  std::vector<std::vector<double>> out(count, std::vector<double>(outputs.size()));
  for (size_t j = 0; j < outputs.size(); ++j) {
    const auto v = encoder.decode(dec.decrypt(outputs[j]));
    for (size_t i = 0; i < count; ++i) out[i][j] = v[i];
  }
  return out;
}

}  // namespace veil::he
