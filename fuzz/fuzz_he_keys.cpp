// libFuzzer target for the CKKS loaders other than load_ciphertext's raw-bytes target: the
// parameters, plaintexts, secret/public/relinearization/Galois keys, and ciphertexts again.
// Any input must load into a valid object or throw a veil::Error, never crash or allocate
// without bound; an object that loads must serialize, load again and serialize to the same bytes.
//
// Byte 0 chooses the loader (bits 0-2) and how the rest of the input is used (bits 3-7 mod 3):
//   0: the input as it is;
//   1: the input after the valid 48-byte header (magic, kind, parameter hash) of that object,
//      so mutations reach the body without first matching a SHA-256;
//   2: a patch applied to a valid serialized object: u16 cut (bytes removed from the end), then
//      4-byte records (u24 offset mod size, u8 xor mask). Random bytes almost never pass the
//      per-residue "below its prime" checks, so this is how the fuzzer gets past them.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "he_fuzz_inputs.hpp"
#include "veil/core/error.hpp"
#include "veil/he/he.hpp"

namespace {

using Bytes = std::vector<uint8_t>;
namespace he = veil::he;

constexpr int kKinds = 8;

struct Fixture {
  he::ContextPtr ctx;
  std::vector<Bytes> valid;  // one serialized object per kind
};

const Fixture& fixture() {
  static const Fixture f = [] {
    Fixture x;
    x.ctx = he::HeContext::create(veil::fuzz::tiny_ckks_params());
    const he::HeContext& c = *x.ctx;
    he::KeyGenerator kg(x.ctx);
    he::CkksEncoder enc(x.ctx);
    const std::vector<double> values = {0.5, -1.25, 3.0};
    const he::Plaintext pt = enc.encode(values);
    const he::PublicKey pk = kg.create_public_key();
    const int steps[] = {1, -2};
    x.valid = {
        he::serialize_parameters(c),
        he::serialize(c, pt),
        he::serialize(c, kg.secret_key()),
        he::serialize(c, pk),
        he::serialize(c, kg.create_relin_keys()),
        he::serialize(c, kg.create_galois_keys(steps, false)),
        he::serialize(c, he::Encryptor(x.ctx, kg.secret_key()).encrypt_symmetric(pt)),
        he::serialize(c, he::Encryptor(x.ctx, pk).encrypt(pt)),
    };
    return x;
  }();
  return f;
}

// Loads `in` as object `kind` and serializes the result again.
Bytes load_and_serialize(int kind, std::span<const uint8_t> in) {
  const he::HeContext& c = *fixture().ctx;
  switch (kind) {
    case 0:
      return he::serialize_parameters(*he::load_context(in, /*allow_insecure=*/true));
    case 1:
      return he::serialize(c, he::load_plaintext(c, in));
    case 2:
      return he::serialize(c, he::load_secret_key(c, in));
    case 3:
      return he::serialize(c, he::load_public_key(c, in));
    case 4:
      return he::serialize(c, he::load_relin_keys(c, in));
    case 5:
      return he::serialize(c, he::load_galois_keys(c, in));
    default:
      return he::serialize(c, he::load_ciphertext(c, in));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const Fixture& f = fixture();
  const int kind = data[0] % kKinds;
  const int mode = (data[0] / kKinds) % 3;
  std::span<const uint8_t> rest(data + 1, size - 1);
  const Bytes& valid = f.valid[static_cast<size_t>(kind)];
  Bytes input;
  if (mode == 0) {
    input.assign(rest.begin(), rest.end());
  } else if (mode == 1) {
    input.assign(valid.begin(), valid.begin() + 48);
    input.insert(input.end(), rest.begin(), rest.end());
  } else {
    input = veil::fuzz::apply_patch(valid, rest);
  }
  veil::fuzz::check_round_trip(
      [&](std::span<const uint8_t> in) { return load_and_serialize(kind, in); }, input);
  return 0;
}
