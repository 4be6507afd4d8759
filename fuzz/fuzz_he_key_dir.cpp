// libFuzzer target for the HE key-directory loaders (he/key_set.hpp): public.vkey alone, eval.vkey
// with a valid public.vkey, and secret.vkey with valid public.vkey and eval.vkey under a fixed
// secret. Any input must load or throw a veil::Error, never crash or allocate without bound; a
// public or eval file that loads must encode back to the same bytes.
//
// Byte 0 chooses the loader (bits 0-1, mod 3) and how the rest of the input is used (bits 2-7,
// mod 3):
//   0: the input as it is;
//   1: a patch applied to the valid file: u16 cut (bytes removed from the end), then 4-byte
//      records (u24 offset mod size, u8 xor mask);
//   2: as 1, then the trailing content digest of a public or eval file is recomputed, so that
//      mutations reach the parsers behind it (the digest only catches corruption).
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "he_fuzz_inputs.hpp"
#include "veil/core/error.hpp"
#include "veil/core/sha256.hpp"
#include "veil/he/key_set.hpp"

namespace {

using Bytes = std::vector<uint8_t>;
namespace he = veil::he;

constexpr bool kTestOnly = true;

struct Fixture {
  veil::KeySecret secret = veil::KeySecret::from_bytes(std::array<uint8_t, 32>{});
  he::KeyDirBytes files;
};

const Fixture& fixture() {
  static const Fixture f = [] {
    Fixture x;
    const int steps[] = {1, -2};
    x.files = he::encode_key_dir(he::generate_owner_keys(veil::fuzz::tiny_ckks_params(), steps, 1),
                                 x.secret);
    return x;
  }();
  return f;
}

// The valid file patched; with fix_digest, its trailing content digest recomputed.
Bytes patched(const Bytes& valid, std::span<const uint8_t> rest, bool fix_digest) {
  Bytes input = veil::fuzz::apply_patch(valid, rest);
  if (fix_digest && input.size() >= 32) {
    const auto d = veil::sha256(std::span(input).first(input.size() - 32));
    std::copy(d.begin(), d.end(), input.end() - 32);
  }
  return input;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const Fixture& f = fixture();
  const int kind = data[0] % 4 % 3;
  const int mode = (data[0] / 4) % 3;
  std::span<const uint8_t> rest(data + 1, size - 1);
  const Bytes& valid = kind == 0 ? f.files.pub : kind == 1 ? f.files.eval : f.files.secret;
  const Bytes input =
      mode == 0 ? Bytes(rest.begin(), rest.end()) : patched(valid, rest, mode == 2 && kind != 2);
  Bytes once;
  try {
    switch (kind) {
      case 0:
        once = he::encode_public_file(he::load_public_keys_bytes(input, 1, kTestOnly));
        break;
      case 1:
        once = he::encode_eval_file(he::load_eval_keys_bytes(f.files.pub, input, 1, kTestOnly));
        break;
      default:
        he::load_owner_keys_bytes(input, f.files.pub, f.files.eval, f.secret, 1, kTestOnly);
        return 0;
    }
  } catch (const veil::Error&) {
    return 0;
  }
  // Accepted: the file is the canonical encoding of what it holds.
  if (once != input) __builtin_trap();
  return 0;
}
