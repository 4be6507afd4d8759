// libFuzzer target for the encrypted-inference files: the encrypted model (.vhe, parse_model,
// with its layout parser and the plaintext-prefix bytes) and the ciphertext batch (.vct,
// parse_batch, checked against that model). Any input must load or throw a veil::Error, never
// crash or allocate without bound; an accepted file must serialize to the same bytes.
//
// Byte 0 chooses the loader (bit 0) and the mode (bits 1-7 mod 2): 0 = the input as it is;
// 1 = a patch to a valid file: u16 cut from the end, then 4-byte records (u24 offset mod size,
// u8 xor mask), which is how mutations get past the magic, the hashes and the residue checks.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "he_fuzz_inputs.hpp"
#include "veil/core/byte_io.hpp"
#include "veil/core/error.hpp"
#include "veil/he/he.hpp"
#include "veil/he/inference/model_file.hpp"

namespace {

using Bytes = std::vector<uint8_t>;
namespace he = veil::he;

struct Fixture {
  he::ContextPtr ctx;
  he::EncryptedModel model;
  Bytes model_bytes, batch_bytes;
};

he::AffineStage affine(size_t out, size_t in, double seed) {
  he::AffineStage a;
  a.name = "fc";
  a.in_dim = in;
  a.out_dim = out;
  for (size_t i = 0; i < out * in; ++i) a.weight.push_back(((i * 7 + 3) % 11) / 10.0 - seed);
  a.bias.assign(out, 0.25);
  return a;
}

const Fixture& fixture() {
  static const Fixture f = [] {
    he::CkksParameters p;
    p.poly_degree = 1024;
    p.coeff_bits = {40, 30, 30, 30, 40};  // three levels: affine, square, affine
    p.default_scale = 1 << 30;
    p.insecure_allow_for_testing_only = true;  // a small ring keeps each run fast
    Fixture x;
    x.ctx = he::HeContext::create(p);
    he::KeyGenerator kg(x.ctx);
    he::PolyStage sq{"sq", {0, 0, 0, 0}, {1, 1, 1, 1}, {0.5, 0.5, 0.5, 0.5}};
    std::vector<he::Stage> stages = {affine(4, 8, 0.3), sq, affine(3, 4, 0.1)};
    auto prog = he::compile_program(stages, {8}, *x.ctx);
    x.model.part = "all";
    x.model.metadata["k"] = "v";
    x.model.key_id = he::key_set_id(*x.ctx, kg.create_public_key());
    x.model.program = he::encrypt_program(prog, x.ctx, kg.secret_key());
    x.model_bytes = he::serialize_model(*x.ctx, x.model);
    he::CiphertextBatch b;
    b.kind = he::BatchKind::EncryptedInput;
    b.key_id = x.model.key_id;
    b.program = he::program_id(x.model.program.layout);
    b.values = 8;
    std::vector<double> in(8, 0.5);
    b.cts = he::encrypt_features(x.model.program.layout, x.ctx, kg.create_public_key(), in);
    x.batch_bytes = he::serialize_batch(*x.ctx, b);
    return x;
  }();
  return f;
}

Bytes load_and_serialize(int kind, std::span<const uint8_t> in) {
  const Fixture& f = fixture();
  if (kind == 0) return he::serialize_model(*f.ctx, he::parse_model(in, *f.ctx, &f.model.key_id));
  return he::serialize_batch(*f.ctx, he::parse_batch(in, *f.ctx, &f.model));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const Fixture& f = fixture();
  const int kind = data[0] % 2;
  const int mode = (data[0] / 2) % 2;
  std::span<const uint8_t> rest(data + 1, size - 1);
  Bytes input;
  if (mode == 0) {
    input.assign(rest.begin(), rest.end());
  } else {
    input = veil::fuzz::apply_patch(kind == 0 ? f.model_bytes : f.batch_bytes, rest);
  }
  veil::fuzz::check_round_trip(
      [&](std::span<const uint8_t> in) { return load_and_serialize(kind, in); }, input);
  return 0;
}
