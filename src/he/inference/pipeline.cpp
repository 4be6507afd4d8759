#include "veil/he/inference/pipeline.hpp"

#include <algorithm>
#include <cmath>
#include <set>

#include "eval_tally.hpp"
#include "veil/core/error.hpp"
#include "veil/core/progress.hpp"
#include "veil/he/encryptor.hpp"
#include "veil/he/serialization.hpp"
#include "veil/model/onnx.hpp"
#include "veil/nn/executor.hpp"
#include "veil/nn/preprocess.hpp"

namespace veil::he {

namespace {

std::string describe(const LayerLayout& layer) {
  if (const auto* s = std::get_if<SquareLayout>(&layer))
    return s->name + ": square x(x+c), " + std::to_string(s->dim) + " values";
  const auto& l = std::get<LinearLayout>(layer);
  size_t present = 0;
  for (uint8_t p : l.present) present += p;
  std::string s = l.name + ": " + std::to_string(l.m) + "x" + std::to_string(l.n) + " ";
  if (l.method == LinearMethod::Gather)
    return s + "gather, " + std::to_string(l.terms) + " input vectors";
  return s + "diagonals, " + std::to_string(present) + " of " + std::to_string(l.terms) +
         " (baby " + std::to_string(l.baby) + ", giant " + std::to_string(l.giant()) + ")" +
         (l.sum_steps.empty() ? "" : ", " + std::to_string(l.sum_steps.size()) + " folds");
}

bool has_activation(const SplitModel& s) {
  for (const auto& st : s.stages)
    if (std::holds_alternative<PolyStage>(st)) return true;
  return false;
}

}  // namespace

KeyPlan plan_keys(const model::Model& model, const std::vector<Part>& parts, SecurityLevel security,
                  const SplitOptions& split, int min_scale_bits) {
  KeyPlan plan;
  std::vector<SplitModel> splits;
  std::string why;
  ProgramNeeds needs;
  for (Part p : parts) {
    try {
      splits.push_back(split_model(model, p, split));
    } catch (const Error& e) {
      if (parts.size() == 1) throw;
      why = e.what();
      continue;
    }
    plan.parts.push_back(p);
    auto n = program_needs(splits.back().stages);
    needs.depth = std::max(needs.depth, n.depth);
    needs.max_period = std::max(needs.max_period, n.max_period);
  }
  if (splits.empty()) throw Unsupported("no part of this model can run under CKKS: " + why);
  plan.depth = needs.depth;
  plan.params = choose_parameters(needs.depth, needs.max_period, security, min_scale_bits);
  auto ctx = HeContext::create(plan.params, 1);
  std::set<int> steps;
  for (const auto& s : splits) {
    auto prog = compile_program(s.stages, s.cut_shape, *ctx);
    for (int st : prog.layout.rotation_steps()) steps.insert(st);
  }
  plan.rotation_steps.assign(steps.begin(), steps.end());
  return plan;
}

EncryptedModel encrypt_model(const model::Model& model, Part part, const ContextPtr& ctx,
                             const SecretKey& secret, const PublicKey& pub,
                             const std::vector<int>& available_steps, const SplitOptions& split,
                             const CompileOptions& compile) {
  auto s = split_model(model, part, split);
  auto prog = compile_program(s.stages, s.cut_shape, *ctx, compile);
  for (int step : prog.layout.rotation_steps())
    if (std::find(available_steps.begin(), available_steps.end(), step) == available_steps.end())
      throw InvalidArgument("the keys hold no rotation by " + std::to_string(step) +
                            ", which this part of the model needs (make keys with `veil he "
                            "keygen --model` for this model)");
  EncryptedModel m;
  m.key_id = key_set_id(*ctx, pub);
  m.part = part_name(part);
  m.metadata = model.metadata;
  m.has_prefix = !s.prefix_empty;
  if (m.has_prefix) m.prefix_onnx = model::serialize_onnx(s.prefix);
  m.program = encrypt_program(prog, ctx, secret);
  return m;
}

FeatureExtractor::FeatureExtractor(const EncryptedModel& m) {
  const auto& lay = m.program.layout;
  feature_dim_ = lay.input_dim;
  features_shape_ = lay.input_shape;
  if (!m.has_prefix) {
    input_shape_ = lay.input_shape;
    return;
  }
  if (m.prefix_onnx.empty()) throw Error("he: the model's plaintext layers were not loaded");
  prefix_ = std::make_unique<model::Model>(
      model::parse_onnx(reinterpret_cast<const uint8_t*>(m.prefix_onnx.data()),
                        m.prefix_onnx.size(), "the encrypted model's plaintext layers"));
  if (prefix_->graph.inputs.size() != 1 || prefix_->graph.outputs.size() != 1)
    throw MalformedInput("encrypted model: the plaintext layers must have one input and output");
  input_shape_ = prefix_->graph.inputs[0].shape;
  if (input_shape_.empty()) throw MalformedInput("encrypted model: a prefix input without batch");
  input_shape_.erase(input_shape_.begin());
  for (int64_t d : input_shape_)
    if (d <= 0) throw MalformedInput("encrypted model: a prefix input of unknown size");
}

FeatureExtractor::~FeatureExtractor() = default;

std::vector<std::vector<double>> FeatureExtractor::run(const Tensor& inputs) {
  int64_t per = 1;
  for (int64_t d : input_shape_) per *= d;
  if (inputs.rank() < 1 || inputs.numel() % per != 0 || inputs.numel() / per != inputs.dim(0))
    throw InvalidArgument("inputs of shape " + shape_to_string(inputs.shape()) +
                          " do not match the model input " + shape_to_string(input_shape_));
  const int64_t b = inputs.dim(0);
  Tensor feats = inputs;
  if (prefix_) {
    Shape s = input_shape_;
    s.insert(s.begin(), b);
    nn::Executor exec(*prefix_);
    feats = exec.forward({inputs.reshaped(s)}).at(0);
  }
  if (feats.numel() != b * feature_dim_)
    throw MalformedInput("encrypted model: the plaintext layers give " +
                         std::to_string(feats.numel() / std::max<int64_t>(b, 1)) +
                         " features per image, the encrypted part takes " +
                         std::to_string(feature_dim_));
  auto f = feats.floats();
  std::vector<std::vector<double>> out(static_cast<size_t>(b));
  for (int64_t i = 0; i < b; ++i)
    out[static_cast<size_t>(i)].assign(f.begin() + i * feature_dim_,
                                       f.begin() + (i + 1) * feature_dim_);
  return out;
}

void check_required_activation(const SplitModel& split, const HeEvalOptions& o) {
  if (o.require_activation && *o.require_activation != has_activation(split))
    throw InvalidArgument(*o.require_activation
                              ? "this model's encrypted classifier has no square activation "
                                "(train with --classifier-activation square, or use --mode "
                                "classifier)"
                              : "this model's encrypted classifier has an activation (use --mode "
                                "classifier-square)");
}

HeEvalReport evaluate(const model::Model& model, const data::Dataset& data,
                      const HeEvalOptions& o) {
  HeEvalReport rep;
  rep.part = part_name(o.part);
  rep.features = o.features_encrypted ? "encrypted" : "plain";
  rep.security = static_cast<int>(o.security);
  auto split = split_model(model, o.part, o.split);
  check_required_activation(split, o);
  rep.encrypted_nodes = split.encrypted_nodes;
  const auto needs = program_needs(split.stages);
  const int threads = o.threads > 0 ? o.threads : default_thread_count();
  rep.threads = threads;

  // Owner: keys for this part and the encrypted model, through its file format as the commands
  // do. The data source gets the public key only, the edge the evaluation keys only.
  double t0 = now_seconds();
  const auto plan = plan_keys(model, {o.part}, o.security, o.split);
  OwnerKeys owner = generate_owner_keys(plan.params, plan.rotation_steps, threads);
  const PublicKeys source = public_keys_of(owner);
  // The evaluation keys move to the edge (the owner keeps its secret and public key only).
  const EvalKeys edge{
      owner.ctx, owner.id, owner.pub, std::move(owner.relin), std::move(owner.galois), owner.steps};
  rep.keygen_s = now_seconds() - t0;
  const ContextPtr& ctx = owner.ctx;
  rep.poly_degree = ctx->n();
  rep.coeff_bits = plan.params.coeff_bits;
  rep.slots = ctx->slots();
  // The size of eval.vkey, one key at a time (serializing the whole set at once would add its
  // size to the peak memory this report measures).
  double eval_bytes = double(serialize(*ctx, edge.relin).size());
  for (const auto& [g, key] : edge.galois.keys()) {
    GaloisKeys one;
    one.insert(g, key);
    eval_bytes += double(serialize(*ctx, one).size());
  }
  rep.eval_keys_mb = eval_bytes / (1 << 20);
  rep.public_key_mb = double(encode_public_file(source).size()) / (1 << 20);
  t0 = now_seconds();
  std::vector<uint8_t> bytes;
  {
    const auto enc =
        encrypt_model(model, o.part, ctx, owner.secret, owner.pub, edge.steps, o.split);
    bytes = serialize_model(*ctx, enc);
  }
  rep.encrypt_model_s = now_seconds() - t0;
  rep.encrypted_model_mb = double(bytes.size()) / (1 << 20);
  const EncryptedModel em = parse_model(bytes, *ctx, &edge.id);
  std::vector<uint8_t>().swap(bytes);
  const auto& lay = em.program.layout;
  rep.depth = lay.depth;
  rep.levels_left = lay.first().level - lay.depth;
  for (const auto& l : lay.layers) rep.layers.push_back(describe(l));

  // Edge: evaluation keys only.
  ProgramRunner runner(ctx, em.program, edge.relin, edge.galois);
  FeatureExtractor features(em);
  model::Model plain_model = model;
  nn::Executor plain(plain_model);
  const auto norm = nn::normalization_of(model);

  const int64_t total = o.limit > 0 ? std::min<int64_t>(o.limit, data.size()) : data.size();
  if (total <= 0) throw InvalidArgument("no test images");
  EvalTally tally;
  RunStats ops;
  ProgressBar bar("he eval", total);
  bar.set_quiet(!o.progress || ProgressBar::default_quiet());
  const int64_t chunk = 32;
  for (int64_t b0 = 0; b0 < total; b0 += chunk) {
    const int64_t n = std::min(chunk, total - b0);
    Tensor x = data.batch(b0, n);
    norm.apply(x);
    const auto labels = data.batch_labels(b0, n);
    auto logits = plain.forward({x}).at(0);
    const int64_t classes = logits.numel() / n;
    const double t_feat0 = now_seconds();
    auto feats = features.run(x);
    const double t_feat = (now_seconds() - t_feat0) / double(n);
    for (int64_t i = 0; i < n; ++i) {
      const auto& f = feats[static_cast<size_t>(i)];
      const auto want = apply_stages(split.stages, f);
      double ta = now_seconds();
      Ciphertext y;
      RunStats st;
      if (o.features_encrypted) {
        auto in = encrypt_features(lay, ctx, source.pub, f);  // data source: public key only
        double tb = now_seconds();
        tally.t_enc += tb - ta + t_feat;
        for (const auto& c : in) tally.in_bytes += double(serialize(*ctx, c).size());
        tb = now_seconds();
        y = runner.run(in, &st);
        tally.t_inf += now_seconds() - tb;
      } else {
        y = runner.run_plain(f, &st);  // the edge runs the prefix (t_feat) and the product
        tally.t_inf += now_seconds() - ta + t_feat;
        tally.in_bytes += double(f.size() * 4);
      }
      tally.out_bytes += double(serialize(*ctx, y).size());
      ta = now_seconds();
      auto got = decrypt_output(ctx, owner.secret, y, lay.output_dim);
      tally.t_dec += now_seconds() - ta;
      if (i == 0 && b0 == 0) ops = st;
      tally.add(
          got, want,
          logits.floats().subspan(static_cast<size_t>(i * classes), static_cast<size_t>(classes)),
          static_cast<size_t>(labels[static_cast<size_t>(i)]));
    }
    bar.update(b0 + n);
  }
  bar.finish();
  tally.finish(rep);
  rep.ops_per_image = ops;
  return rep;
}

}  // namespace veil::he
