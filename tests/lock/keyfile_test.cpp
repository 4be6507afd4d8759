#include "veil/lock/keyfile.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <filesystem>

#include "helpers.hpp"
#include "veil/core/error.hpp"
#include "veil/core/hex.hpp"
#include "veil/core/io.hpp"
#include "veil/core/random.hpp"

namespace veil::lock {
namespace {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() /
           ("veil_lock_" + std::to_string(::getpid()) + "_" + std::to_string(counter()++));
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  static int& counter() {
    static int c = 0;
    return c;
  }
};

KeySecret random_secret() {
  std::array<uint8_t, 32> b{};
  secure_random_bytes(b);
  return KeySecret::from_bytes(b);
}

// A small key bound to a small model.
LockKey small_key(const model::Model& m) {
  LockKey k;
  k.params.num = 2;
  k.params.dataset = "synthetic";
  const auto& w = m.graph.initializers.at("W1").floats();
  LayerKey l{"W1", "fc1", static_cast<uint64_t>(w.size()), {}};
  for (uint64_t i : {3ull, 7ull}) {
    float locked = w[i] + 0.2f;
    l.entries.push_back({i, std::bit_cast<uint32_t>(w[i]), std::bit_cast<uint32_t>(locked), 1});
  }
  k.layers.push_back(l);
  bind_fingerprints(k, m.graph);
  return k;
}

void expect_same(const LockKey& a, const LockKey& b) {
  EXPECT_EQ(a.plain_fingerprint, b.plain_fingerprint);
  EXPECT_EQ(a.locked_fingerprint, b.locked_fingerprint);
  EXPECT_EQ(a.params.num, b.params.num);
  EXPECT_EQ(a.params.mode, b.params.mode);
  EXPECT_EQ(a.params.incremental, b.params.incremental);
  EXPECT_EQ(std::bit_cast<uint32_t>(a.params.intensity),
            std::bit_cast<uint32_t>(b.params.intensity));
  EXPECT_EQ(a.params.dataset, b.params.dataset);
  EXPECT_EQ(a.params.intensity_mode, b.params.intensity_mode);
  EXPECT_EQ(a.params.objective, b.params.objective);
  EXPECT_EQ(a.params.target_class, b.params.target_class);
  EXPECT_EQ(a.params.per_round, b.params.per_round);
  ASSERT_EQ(a.layers.size(), b.layers.size());
  for (size_t i = 0; i < a.layers.size(); ++i) {
    EXPECT_EQ(a.layers[i].tensor, b.layers[i].tensor);
    EXPECT_EQ(a.layers[i].node, b.layers[i].node);
    EXPECT_EQ(a.layers[i].numel, b.layers[i].numel);
    ASSERT_EQ(a.layers[i].entries.size(), b.layers[i].entries.size());
    for (size_t j = 0; j < a.layers[i].entries.size(); ++j) {
      const auto &x = a.layers[i].entries[j], &y = b.layers[i].entries[j];
      EXPECT_EQ(x.index, y.index);
      EXPECT_EQ(x.original_bits, y.original_bits);
      EXPECT_EQ(x.locked_bits, y.locked_bits);
      EXPECT_EQ(x.sign, y.sign);
    }
  }
}

TEST(KeyFile, RoundTripWithSecretFile) {
  TempDir dir;
  auto m = testing::make_mlp(6, 5, 3, 1);
  LockKey key = small_key(m);
  key.params.incremental = true;
  key.params.mode = LockMode::Stealthy;
  key.params.intensity = 0.1f;
  fs::path secret_path = dir.path / "s.secret";
  KeySecret s = load_secret_file(secret_path, /*create_if_missing=*/true);
  struct stat st {};
  ASSERT_EQ(::stat(secret_path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(fs::file_size(secret_path), 32u);
  save_key_file(dir.path / "k.vkey", key, s);
  // Re-reading the secret (not re-creating it) opens the key.
  KeySecret again = load_secret_file(secret_path, true);
  expect_same(load_key_file(dir.path / "k.vkey", again), key);
  // The ciphertext does not contain the plaintext original weight bits.
  auto bytes = read_file(dir.path / "k.vkey", 1 << 20);
  auto payload = encode_key_payload(key);
  EXPECT_EQ(bytes.size(), kKeyFileHeaderSize + payload.size() + kKeyFileTagSize);
  EXPECT_EQ(std::search(bytes.begin(), bytes.end(), payload.begin() + 40, payload.begin() + 72),
            bytes.end());
}

TEST(KeyFile, SecretFileMustHave32Bytes) {
  TempDir dir;
  write_file_atomic(dir.path / "short", std::string(31, 'x'));
  EXPECT_THROW(load_secret_file(dir.path / "short", true), InvalidArgument);
  EXPECT_THROW(load_secret_file(dir.path / "missing", false), IoError);
}

TEST(KeyFile, PassphraseRoundTripAndWrongPassphrase) {
  TempDir dir;
  auto m = testing::make_mlp(6, 5, 3, 2);
  LockKey key = small_key(m);
  write_file_atomic(dir.path / "pw", std::string("correct horse battery staple\n"));
  ScryptParams cheap{10, 8, 1};
  KeySecret pw = load_passphrase_file(dir.path / "pw", cheap);
  auto file = seal_key(key, pw);
  auto h = parse_key_file_header(file);
  EXPECT_EQ(h.kdf, KeySecret::Kind::Passphrase);
  EXPECT_EQ(h.scrypt.log2_n, 10);
  expect_same(open_key(file, pw), key);
  // The trailing newline was not part of the passphrase.
  expect_same(open_key(file, KeySecret::from_passphrase("correct horse battery staple", cheap)),
              key);
  EXPECT_THROW(open_key(file, KeySecret::from_passphrase("correct horse battery stapler", cheap)),
               IntegrityError);
  // A secret file cannot open a passphrase key (and says so).
  EXPECT_THROW(open_key(file, random_secret()), IntegrityError);
  write_file_atomic(dir.path / "empty", std::string("\n"));
  EXPECT_THROW(load_passphrase_file(dir.path / "empty"), InvalidArgument);
  // Two sealings of one key differ (random salt and nonce).
  EXPECT_NE(seal_key(key, pw), file);
}

TEST(KeyFile, WrongSecretIsIntegrityError) {
  auto m = testing::make_mlp(6, 5, 3, 3);
  auto file = seal_key(small_key(m), random_secret());
  EXPECT_THROW(open_key(file, random_secret()), IntegrityError);
}

TEST(KeyFile, EveryTamperedByteAndEveryTruncationIsIntegrityError) {
  auto m = testing::make_mlp(6, 5, 3, 4);
  KeySecret s = random_secret();
  const auto file = seal_key(small_key(m), s);
  ASSERT_NO_THROW(open_key(file, s));
  for (size_t i = 0; i < file.size(); ++i) {
    for (uint8_t flip : {uint8_t{0x01}, uint8_t{0x80}}) {
      auto bad = file;
      bad[i] ^= flip;
      EXPECT_THROW(open_key(bad, s), IntegrityError) << "byte " << i << " flip " << int(flip);
    }
  }
  for (size_t n = 0; n < file.size(); ++n) {
    std::vector<uint8_t> cut(file.begin(), file.begin() + static_cast<long>(n));
    EXPECT_THROW(open_key(cut, s), IntegrityError) << "length " << n;
  }
  auto longer = file;
  longer.push_back(0);
  EXPECT_THROW(open_key(longer, s), IntegrityError);
}

TEST(KeyFile, PayloadParserRejectsTruncationAndGarbage) {
  auto m = testing::make_mlp(6, 5, 3, 5);
  auto payload = encode_key_payload(small_key(m));
  expect_same(decode_key_payload(payload), small_key(m));
  for (size_t n = 0; n < payload.size(); ++n)
    EXPECT_THROW(decode_key_payload(std::span(payload).first(n)), MalformedInput) << n;
  auto extra = payload;
  extra.push_back(0);
  EXPECT_THROW(decode_key_payload(extra), MalformedInput);
  // A huge entry count must be refused before allocating: find the count field and inflate it.
  LockKey k = small_key(m);
  k.layers[0].entries.clear();
  auto p = encode_key_payload(k);
  // The last 8 bytes are the (zero) entry count of the only layer.
  for (size_t i = p.size() - 8; i < p.size(); ++i) p[i] = 0xff;
  EXPECT_THROW(decode_key_payload(p), MalformedInput);
  p[p.size() - 8] = 0x30;  // 48 entries for a 30-weight tensor... or truncated: either refused
  for (size_t i = p.size() - 7; i < p.size(); ++i) p[i] = 0;
  EXPECT_THROW(decode_key_payload(p), MalformedInput);
}

TEST(KeyFile, ExtensionRoundTripsAndIsCanonical) {
  auto m = testing::make_mlp(6, 5, 3, 8);
  LockKey plain = small_key(m);
  auto base = encode_key_payload(plain);
  LockKey k = plain;
  k.params.intensity_mode = IntensityMode::Relative;
  k.params.objective = Objective::Collapse;
  k.params.target_class = 2;
  k.params.per_round = 3;
  auto ext = encode_key_payload(k);
  // A reference key is encoded as before; the extension is appended after the layers.
  ASSERT_EQ(ext.size(), base.size() + 15);
  EXPECT_TRUE(std::equal(base.begin(), base.end(), ext.begin()));
  expect_same(decode_key_payload(ext), k);
  for (size_t n = base.size() + 1; n < ext.size(); ++n)
    EXPECT_THROW(decode_key_payload(std::span(ext).first(n)), MalformedInput) << n;
  auto longer = ext;
  longer.push_back(0);
  EXPECT_THROW(decode_key_payload(longer), MalformedInput);
  // An extension that only repeats the defaults is refused (one encoding per key).
  auto redundant = base;
  const uint8_t defaults[15] = {0x58, 0, 0, 0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0, 0, 0, 0, 0};
  redundant.insert(redundant.end(), std::begin(defaults), std::end(defaults));
  EXPECT_THROW(decode_key_payload(redundant), MalformedInput);
  // Out-of-range fields are refused.
  for (size_t field : {1u, 2u}) {
    auto bad = ext;
    bad[base.size() + field] = 2;
    EXPECT_THROW(decode_key_payload(bad), MalformedInput) << field;
  }
  auto zero_round = ext;
  zero_round[base.size() + 7] = 0;
  EXPECT_THROW(decode_key_payload(zero_round), MalformedInput);
  // Sealed and opened like any other key.
  KeySecret s = random_secret();
  expect_same(open_key(seal_key(k, s), s), k);
}

TEST(KeyFile, KeyIsBoundToItsModel) {
  auto m = testing::make_mlp(6, 5, 3, 6);
  auto other = testing::make_mlp(6, 5, 3, 7);
  LockKey key = small_key(m);
  KeySecret s = random_secret();
  LockKey opened = open_key(seal_key(key, s), s);
  // Encrypting another model, or decrypting a model that is not the locked one, is refused and
  // leaves the model untouched.
  auto before = testing::hash_tensors(other.graph);
  EXPECT_THROW(encrypt_model(other, opened), IntegrityError);
  EXPECT_THROW(decrypt_model(other, opened), IntegrityError);
  EXPECT_EQ(testing::hash_tensors(other.graph), before);
  // The plaintext model is not the locked one either.
  EXPECT_THROW(decrypt_model(m, opened), IntegrityError);
  model::Model locked = testing::locked_copy(m, opened);
  EXPECT_THROW(encrypt_model(locked, opened), IntegrityError);  // already locked
  // A locked model with one more weight changed is refused.
  model::Model touched = locked;
  touched.graph.initializers.at("W2").floats()[0] += 1e-3f;
  EXPECT_THROW(decrypt_model(touched, opened), IntegrityError);
  decrypt_model(locked, opened);
  EXPECT_EQ(testing::hash_tensors(locked.graph), testing::hash_tensors(m.graph));
}

// Key files written before the sealed container moved to core (commit e951966), one per KDF:
// they must still open, and a file sealed now must have the same layout.
TEST(KeyFile, OpensKeyFilesWrittenByEarlierVersions) {
  auto m = testing::make_mlp(6, 5, 3, 9);
  const LockKey key = small_key(m);
  std::array<uint8_t, 32> b{};
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<uint8_t>(i * 7 + 1);
  const KeySecret secret = KeySecret::from_bytes(b);
  const KeySecret pass = KeySecret::from_passphrase("golden", ScryptParams{10, 8, 1});
  const auto by_secret = from_hex(
      "5645494c4c4f434b010001000000000000000000bdfbab0d9923f57504875ad0567121c3a0ad34ac"
      "dae4ee0b414bdad0bcbdae7d2cd4636ce6a74487234791f5bcef66030d3c3b65af5a0614d1ea45d5"
      "b6000000000000000286abb844fb8d665a5456643484c09afbd8e49749e1101f44d80828956ef224"
      "c5f9ee3907cb5878b7927179894edfcac6d1e5ecec50201d39fc1a7970275794470f897def57f735"
      "b6b42705a539d568deab2e4f2768b2136df78c065b75c4efb05fc9de4c7ca850f7d8311c9a82ab88"
      "1befcf45e9cb27f88280b459653bcc0aca0a1bb7c4d56eaf6c3c75be3fb22b028d4f928d7faa96e4"
      "8b8a592a713675ac25ac8d5118b48c20dbd32f0392097be40db38eff87680331e77d4f5c87e6fb48"
      "873eefe4dcf6",
      "secret-file key file");
  const auto by_pass = from_hex(
      "5645494c4c4f434b0100020a080000000100000010d83dcaa5f274669b131d487ea3da28d05ed6e4"
      "77f9712ebaaa5d65bcbdae7d2cd4636ce6a74487234791f5bcef66030d3c3b65af5a0614d1ea45d5"
      "b60000000000000055408900d308d09e061d295aa8a5c53f44c588bbe7b7c246849ba58a9b027899"
      "4c0776bbf723c02a36e77faa8da8482b0a34232a5634b00618292ac79324435a226b58565553bada"
      "ae990270a72fe14b85b2782f0f5fbd90bec1541032214dcae2f51bda4f15da7ca450208c0fa9ecbe"
      "c911f6703121a6b89933e2b1c985fd4192d7adf36ef1da41d1d6bfeddc98d4982dc3b349ee9e50eb"
      "70a173c48dfd903708118d8ecea07ad64e412160f267e3c7823e0d8d40e4cab96d093a4a67665680"
      "4b7ae1038459",
      "passphrase key file");
  EXPECT_EQ(encode_key_payload(open_key(by_secret, secret)), encode_key_payload(key));
  EXPECT_EQ(encode_key_payload(open_key(by_pass, pass)), encode_key_payload(key));
  EXPECT_THROW(open_key(by_secret, pass), IntegrityError);
  // A fresh seal differs only in salt (20..35), nonce (36..47), ciphertext and tag.
  for (const auto& [old, s] : {std::pair{by_secret, secret}, std::pair{by_pass, pass}}) {
    const auto now = seal_key(key, s);
    ASSERT_EQ(now.size(), old.size());
    EXPECT_TRUE(std::equal(old.begin(), old.begin() + 20, now.begin()));
    EXPECT_TRUE(std::equal(old.begin() + 48, old.begin() + kKeyFileHeaderSize, now.begin() + 48));
  }
}

}  // namespace
}  // namespace veil::lock
