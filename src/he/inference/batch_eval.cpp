// `veil he eval --packing batch`: the evaluation loop of pipeline.cpp's evaluate() over batches
// of images packed one per slot (batch_program.hpp).
#include <algorithm>
#include <cmath>

#include "eval_tally.hpp"
#include "veil/core/error.hpp"
#include "veil/core/progress.hpp"
#include "veil/he/inference/batch_program.hpp"
#include "veil/he/keys.hpp"
#include "veil/he/serialization.hpp"
#include "veil/nn/executor.hpp"
#include "veil/nn/preprocess.hpp"

namespace veil::he {

namespace {

std::string describe(const BatchLayer& layer) {
  if (const auto* s = std::get_if<BatchSquare>(&layer))
    return s->name + ": square x(x+c), " + std::to_string(s->shift.size()) +
           " ciphertexts, level " + std::to_string(s->level);
  const auto& l = std::get<BatchLinear>(layer);
  return l.name + ": " + std::to_string(l.weights.rows) + "x" + std::to_string(l.weights.cols) +
         " plaintext weights, " + std::to_string(l.weights.nonzeros()) + " nonzero, level " +
         std::to_string(l.level);
}

}  // namespace

HeEvalReport evaluate_batched(const model::Model& model, const data::Dataset& data,
                              const HeEvalOptions& o, size_t batch) {
  if (!o.features_encrypted)
    throw InvalidArgument(
        "--packing batch keeps the weights in plaintext and encrypts the data; with --features "
        "plain nothing would be encrypted");
  HeEvalReport rep;
  rep.part = part_name(o.part);
  rep.features = "encrypted";
  rep.weights = "plain";
  rep.packing = "batch";
  rep.security = static_cast<int>(o.security);
  auto split = split_model(model, o.part, o.split);
  check_required_activation(split, o);
  rep.encrypted_nodes = split.encrypted_nodes;
  const auto params = choose_batch_parameters(split.stages, o.security);
  const int threads = o.threads > 0 ? o.threads : default_thread_count();
  rep.threads = threads;
  auto ctx = HeContext::create(params, threads);
  rep.poly_degree = ctx->n();
  rep.coeff_bits = params.coeff_bits;
  rep.slots = ctx->slots();
  const size_t per = batch == 0 ? ctx->slots() : batch;
  if (per > ctx->slots())
    throw InvalidArgument("--batch " + std::to_string(per) + " exceeds the " +
                          std::to_string(ctx->slots()) +
                          " slots of N = " + std::to_string(ctx->n()) + " at " +
                          std::to_string(rep.security) + "-bit security (one image per slot)");
  rep.batch = per;

  // Owner: keys (no Galois keys: batch packing never rotates). The model is not encrypted.
  double t0 = now_seconds();
  KeyGenerator kg(ctx);
  PublicKey pub = kg.create_public_key();
  RelinKeys relin = kg.create_relin_keys();
  rep.keygen_s = now_seconds() - t0;
  rep.eval_keys_mb = double(serialize(*ctx, relin).size()) / (1 << 20);
  rep.public_key_mb = double(serialize(*ctx, pub).size()) / (1 << 20);
  const BatchProgram prog = compile_batch_program(split.stages, *ctx);
  rep.depth = prog.depth;
  rep.levels_left = ctx->max_level() - prog.depth;
  for (const auto& l : prog.layers) rep.layers.push_back(describe(l));

  // Edge: the relinearisation key and the plaintext model.
  BatchRunner runner(ctx, prog, relin);
  model::Model plain_model = model;
  nn::Executor plain(plain_model);
  model::Model prefix_model = split.prefix;
  std::unique_ptr<nn::Executor> prefix;
  if (!split.prefix_empty) prefix = std::make_unique<nn::Executor>(prefix_model);
  const auto norm = nn::normalization_of(model);

  const int64_t total = o.limit > 0 ? std::min<int64_t>(o.limit, data.size()) : data.size();
  if (total <= 0) throw InvalidArgument("no test images");
  EvalTally tally;
  RunStats ops;
  ProgressBar bar("he eval", total);
  bar.set_quiet(!o.progress || ProgressBar::default_quiet());
  for (int64_t b0 = 0; b0 < total; b0 += static_cast<int64_t>(per)) {
    const int64_t n = std::min(static_cast<int64_t>(per), total - b0);
    Tensor x = data.batch(b0, n);
    norm.apply(x);
    const auto labels = data.batch_labels(b0, n);
    auto logits = plain.forward({x}).at(0);
    const int64_t classes = logits.numel() / n;
    double ta = now_seconds();
    // Data source: the plaintext layers before the encrypted part, then encryption.
    const Tensor feats_t = prefix ? prefix->forward({x}).at(0) : x;
    const auto ff = feats_t.floats();
    if (ff.size() != static_cast<size_t>(n) * prog.input_dim)
      throw Error("he eval: the plaintext layers give the wrong number of features");
    std::vector<std::vector<double>> feats(static_cast<size_t>(n));
    for (size_t i = 0; i < feats.size(); ++i)
      feats[i].assign(ff.begin() + i * prog.input_dim, ff.begin() + (i + 1) * prog.input_dim);
    auto in = encrypt_batch(prog, ctx, pub, feats);
    tally.t_enc += now_seconds() - ta;
    tally.in_bytes += double(serialize(*ctx, in.front()).size()) * double(in.size());
    ta = now_seconds();
    RunStats st;
    auto out = runner.run(std::move(in), &st);
    tally.t_inf += now_seconds() - ta;
    if (b0 == 0) ops = st;
    tally.out_bytes += double(serialize(*ctx, out.front()).size()) * double(out.size());
    ta = now_seconds();
    const auto got = decrypt_batch(ctx, kg.secret_key(), out, static_cast<size_t>(n));
    tally.t_dec += now_seconds() - ta;
    for (int64_t i = 0; i < n; ++i)
      tally.add(
          got[static_cast<size_t>(i)], apply_stages(split.stages, feats[static_cast<size_t>(i)]),
          logits.floats().subspan(static_cast<size_t>(i * classes), static_cast<size_t>(classes)),
          static_cast<size_t>(labels[static_cast<size_t>(i)]));
    bar.update(b0 + n);
  }
  bar.finish();
  tally.finish(rep);
  rep.ops_per_image = ops;
  return rep;
}

}  // namespace veil::he
