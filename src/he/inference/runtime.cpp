#include "veil/he/inference/runtime.hpp"

#include <algorithm>
#include <cmath>

#include "veil/core/error.hpp"
#include "veil/he/encryptor.hpp"

namespace veil::he {

namespace {

// v tiled with period `period` over all slots (v shorter than the period is zero-padded).
std::vector<double> tile(std::span<const double> v, size_t period, size_t slots) {
  std::vector<double> out(slots, 0.0);
  for (size_t k = 0; k < slots; ++k) {
    const size_t i = k % period;
    out[k] = i < v.size() ? v[i] : 0.0;
  }
  return out;
}

// Left rotation of a tiled vector.
std::vector<double> rotate_left(const std::vector<double>& v, size_t step) {
  std::vector<double> out(v.size());
  for (size_t k = 0; k < v.size(); ++k) out[k] = v[(k + step) % v.size()];
  return out;
}

}  // namespace

EncryptedProgram encrypt_program(const CompiledProgram& program, const ContextPtr& ctx,
                                 const SecretKey& secret) {
  CkksEncoder encoder(ctx);
  Encryptor enc(ctx, secret);
  EncryptedProgram out;
  out.layout = program.layout;
  const size_t slots = ctx->slots();
  size_t li = 0;
  for (const auto& layer : program.layout.layers) {
    const auto* l = std::get_if<LinearLayout>(&layer);
    if (!l) continue;
    const auto& w = program.weights.at(li++);
    EncryptedLinear e;
    const double wscale = static_cast<double>(ctx->prime_values()[l->level]);
    for (uint32_t t = 0; t < l->terms; ++t) {
      if (!l->present[t]) {
        e.terms.emplace_back();
        continue;
      }
      const auto v = tile(w.terms[t], l->period(), slots);
      e.terms.emplace_back(
          SeededCiphertext(*ctx, enc.encrypt_symmetric(encoder.encode(v, wscale, l->level))));
    }
    const auto b = tile(w.bias, l->rows, slots);
    e.bias = enc.encrypt_symmetric(encoder.encode(b, l->scale_out, l->level - 1));
    out.linears.push_back(std::move(e));
  }
  return out;
}

std::vector<Ciphertext> encrypt_features(const ProgramLayout& layout, const ContextPtr& ctx,
                                         const PublicKey& pub, std::span<const double> x) {
  CkksEncoder encoder(ctx);
  Encryptor enc(ctx, pub);
  std::vector<Ciphertext> out;
  for (const auto& v : layout_input(layout, x, ctx->slots()))
    out.push_back(enc.encrypt(encoder.encode(v, layout.scale, layout.first().level)));
  return out;
}

ProgramRunner::ProgramRunner(ContextPtr ctx, const EncryptedProgram& program,
                             const RelinKeys& relin, const GaloisKeys& galois)
    : ctx_(std::move(ctx)),
      program_(program),
      relin_(relin),
      galois_(galois),
      eval_(ctx_),
      encoder_(ctx_) {
  for (int step : program.layout.rotation_steps())
    if (!galois.has(ctx_->galois_element_for_step(step)))
      throw InvalidArgument("the evaluation keys have no rotation by " + std::to_string(step) +
                            ", which this model needs (keys made for another model?)");
  if (program.layout.first().level > ctx_->max_level())
    throw InvalidArgument("the model needs more levels than these keys have");
}

Ciphertext ProgramRunner::linear(size_t index, const std::vector<Ciphertext>* x_ct,
                                 std::span<const double> x_plain, RunStats& stats) const {
  size_t li = 0, pos = 0;
  for (; pos < program_.layout.layers.size(); ++pos)
    if (std::holds_alternative<LinearLayout>(program_.layout.layers[pos]) && li++ == index) break;
  const auto& l = std::get<LinearLayout>(program_.layout.layers[pos]);
  const auto& e = program_.linears.at(index);
  const size_t slots = ctx_->slots();
  const bool plain = x_ct == nullptr;
  const double in_scale = program_.layout.scale;

  Ciphertext w;  // scratch: the current term, expanded from its seed
  auto product = [&](const SeededCiphertext& seeded, const Ciphertext* xc, const Plaintext* xp) {
    ++stats.products;
    seeded.expand(*ctx_, w);
    return xc ? eval_.multiply(w, *xc) : eval_.multiply_plain(w, *xp);
  };
  auto encode = [&](const std::vector<double>& v) { return encoder_.encode(v, in_scale, l.level); };
  auto accumulate = [&](std::optional<Ciphertext>& acc, Ciphertext term) {
    if (acc)
      eval_.add_inplace(*acc, term);
    else
      acc = std::move(term);
  };
  auto relin = [&](Ciphertext c) {
    if (c.size() == 2) return c;
    ++stats.relinearizations;
    return eval_.relinearize(c, relin_);
  };

  std::optional<Ciphertext> acc;
  if (l.method == LinearMethod::Gather) {
    std::vector<Plaintext> xp;
    if (plain)
      for (const auto& v : layout_input(program_.layout, x_plain, slots)) xp.push_back(encode(v));
    for (uint32_t t = 0; t < l.terms; ++t) {
      if (!e.terms[t]) continue;
      accumulate(acc,
                 product(*e.terms[t], plain ? nullptr : &x_ct->at(t), plain ? &xp[t] : nullptr));
    }
    if (!acc) throw Error("he: a layer without weights");
    acc = relin(std::move(*acc));
  } else {
    const uint32_t g = l.baby, G = l.giant();
    std::vector<Ciphertext> baby_ct;
    std::vector<Plaintext> baby_pt;
    if (plain) {
      auto x = layout_input(program_.layout, x_plain, slots).at(0);
      for (uint32_t b = 0; b < g; ++b) baby_pt.push_back(encode(rotate_left(x, b)));
    } else {
      const Ciphertext& x = x_ct->at(0);
      baby_ct.push_back(x);
      std::vector<int> steps;
      for (uint32_t b = 1; b < g; ++b) steps.push_back(static_cast<int>(b));
      if (!steps.empty()) {
        auto r = eval_.rotate_hoisted(x, steps, galois_);
        stats.rotations += r.size();
        for (auto& c : r) baby_ct.push_back(std::move(c));
      }
    }
    for (uint32_t j = G; j-- > 0;) {
      std::optional<Ciphertext> inner;
      for (uint32_t b = 0; b < g; ++b) {
        const auto& w = e.terms[j * g + b];
        if (!w) continue;
        accumulate(inner,
                   product(*w, plain ? nullptr : &baby_ct[b], plain ? &baby_pt[b] : nullptr));
      }
      if (acc) {
        acc = eval_.rotate(*acc, static_cast<int>(g), galois_);
        ++stats.rotations;
      }
      if (inner) accumulate(acc, relin(std::move(*inner)));
    }
    if (!acc) throw Error("he: a layer without weights");
  }
  Ciphertext y = eval_.rescale(*acc);
  ++stats.rescales;
  for (int s : l.sum_steps) {
    eval_.add_inplace(y, eval_.rotate(y, s, galois_));
    ++stats.rotations;
  }
  eval_.add_inplace(y, e.bias);
  return y;
}

Ciphertext ProgramRunner::square(const SquareLayout& s, const Ciphertext& x,
                                 RunStats& stats) const {
  const auto shift = tile(s.shift, s.period, ctx_->slots());
  Ciphertext t = eval_.add_plain(x, encoder_.encode(shift, x.scale(), x.level()));
  Ciphertext z = eval_.multiply_relin(x, t, relin_);
  ++stats.products;
  ++stats.relinearizations;
  ++stats.rescales;
  return eval_.rescale(z);
}

Ciphertext ProgramRunner::run_from(size_t layer, Ciphertext x, RunStats& stats) const {
  size_t li = 0;
  for (size_t i = 0; i < layer; ++i)
    li += std::holds_alternative<LinearLayout>(program_.layout.layers[i]);
  for (size_t i = layer; i < program_.layout.layers.size(); ++i) {
    const auto& L = program_.layout.layers[i];
    if (const auto* s = std::get_if<SquareLayout>(&L)) {
      x = square(*s, x, stats);
    } else {
      std::vector<Ciphertext> in{std::move(x)};
      x = linear(li++, &in, {}, stats);
    }
  }
  return x;
}

Ciphertext ProgramRunner::run(const std::vector<Ciphertext>& input, RunStats* stats) const {
  RunStats local;
  RunStats& st = stats ? *stats : local;
  if (input.size() != program_.layout.input_vectors())
    throw InvalidArgument("the model takes " + std::to_string(program_.layout.input_vectors()) +
                          " ciphertexts per image, not " + std::to_string(input.size()));
  for (const auto& c : input)
    if (c.level() != program_.layout.first().level || c.size() != 2)
      throw InvalidArgument("an input ciphertext is not at the model's input level");
  Ciphertext y = linear(0, &input, {}, st);
  return run_from(1, std::move(y), st);
}

Ciphertext ProgramRunner::run_plain(std::span<const double> x, RunStats* stats) const {
  RunStats local;
  RunStats& st = stats ? *stats : local;
  Ciphertext y = linear(0, nullptr, x, st);
  return run_from(1, std::move(y), st);
}

std::vector<double> decrypt_output(const ContextPtr& ctx, const SecretKey& secret,
                                   const Ciphertext& ct, size_t count) {
  Decryptor dec(ctx, secret);
  CkksEncoder encoder(ctx);
  auto v = encoder.decode(dec.decrypt(ct));
  if (count > v.size()) throw InvalidArgument("output larger than the slot count");
  v.resize(count);
  // CKKS wraps silently: a result beyond the remaining modulus decrypts to a value spread over
  // +-Q/(2 scale). Outputs that reach a quarter of that range are not trusted (the chance that
  // ten wrapped values all stay below it is 4^-10).
  const double limit = std::ldexp(1.0, static_cast<int>(ctx->q_bits(ct.level()))) / ct.scale() / 8;
  for (double y : v)
    if (!std::isfinite(y) || std::fabs(y) > limit)
      throw IntegrityError("a decrypted output (" + std::to_string(y) +
                           ") is beyond what the remaining modulus holds reliably (|y| < " +
                           std::to_string(limit) + "): the encrypted computation overflowed");
  return v;
}

}  // namespace veil::he
