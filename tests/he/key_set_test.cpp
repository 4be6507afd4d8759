#include "veil/he/key_set.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>

#include "he_test_util.hpp"
#include "temp_dir.hpp"
#include "veil/core/error.hpp"
#include "veil/core/io.hpp"
#include "veil/core/random.hpp"

namespace veil::he {
namespace {

namespace fs = std::filesystem;
using test::cd;
using veil::testing::TempDir;

constexpr bool kTestOnly = true;  // the loaders must be told to accept the test parameters

// N = 1024, the smallest ring HeContext accepts (test-only), so loops over every byte stay fast.
CkksParameters tiny_params(std::vector<int> bits = {40, 30, 40}) {
  CkksParameters p;
  p.poly_degree = 1024;
  p.coeff_bits = std::move(bits);
  p.default_scale = 1 << 30;
  p.insecure_allow_for_testing_only = true;
  return p;
}

KeySecret random_secret() {
  std::array<uint8_t, 32> b{};
  secure_random_bytes(b);
  return KeySecret::from_bytes(b);
}

std::vector<cd> rotate_left(const std::vector<cd>& v, int step) {
  const int n = static_cast<int>(v.size());
  std::vector<cd> out(v.size());
  for (int j = 0; j < n; ++j) out[j] = v[((j + step) % n + n) % n];
  return out;
}

// A ciphertext crosses from one party's context to another's as bytes, as it does in practice.
Ciphertext transfer(const Ciphertext& ct, const HeContext& from, const HeContext& to) {
  return load_ciphertext(to, serialize(from, ct));
}

// Loading any of these images must throw one of the two errors a bad file may give.
template <typename F>
void expect_refused(F&& load, const std::string& what) {
  try {
    load();
    ADD_FAILURE() << what << ": accepted";
  } catch (const IntegrityError&) {
  } catch (const MalformedInput&) {
  } catch (const std::exception& e) {
    ADD_FAILURE() << what << ": unexpected " << e.what();
  }
}

class KeySetTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const int steps[] = {1, -2, 5};
    keys_ = new OwnerKeys(generate_owner_keys(tiny_params(), steps, 1));
    secret_ = new KeySecret(random_secret());
    files_ = new KeyDirBytes(encode_key_dir(*keys_, *secret_));
  }
  static void TearDownTestSuite() {
    delete keys_;
    delete secret_;
    delete files_;
  }
  static OwnerKeys* keys_;
  static KeySecret* secret_;
  static KeyDirBytes* files_;
};
OwnerKeys* KeySetTest::keys_ = nullptr;
KeySecret* KeySetTest::secret_ = nullptr;
KeyDirBytes* KeySetTest::files_ = nullptr;

TEST_F(KeySetTest, SavedKeysEncryptRotateMultiplyAndDecryptAsBefore) {
  TempDir tmp;
  const fs::path dir = tmp / "keys";  // created by save_key_dir
  save_key_dir(dir, *keys_, *secret_);
  for (const char* f : {"secret.vkey", "public.vkey", "eval.vkey"})
    EXPECT_TRUE(fs::is_regular_file(dir / f)) << f;
  struct stat st {};
  ASSERT_EQ(::stat((dir / "secret.vkey").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  const PublicKeys source = load_public_keys(dir, 1, kTestOnly);
  const EvalKeys edge = load_eval_keys(dir, 1, kTestOnly);
  const OwnerKeys owner = load_owner_keys(dir, *secret_, 1, kTestOnly);
  EXPECT_EQ(source.id, keys_->id);
  EXPECT_EQ(edge.id, keys_->id);
  EXPECT_EQ(owner.id, keys_->id);
  EXPECT_EQ(owner.secret.data(), keys_->secret.data());
  EXPECT_EQ(owner.pub.b(), keys_->pub.b());
  EXPECT_EQ(rotation_steps(edge), (std::vector<int>{-2, 1, 5}));
  EXPECT_EQ(owner.steps, keys_->steps);

  // Data source encrypts with the loaded public key; the edge rotates and squares with the
  // loaded evaluation keys; the owner decrypts with the loaded secret key.
  const size_t slots = source.ctx->slots();
  const auto x = test::random_values(slots, 7);
  CkksEncoder enc(source.ctx);
  const Ciphertext ct =
      Encryptor(source.ctx, source.pub)
          .encrypt(enc.encode(x, source.ctx->parameters().default_scale, source.ctx->max_level()));
  Evaluator ev(edge.ctx);
  const Ciphertext at_edge = transfer(ct, *source.ctx, *edge.ctx);
  const Ciphertext rotated = ev.rotate(at_edge, -2, edge.galois);
  const Ciphertext squared = ev.rescale(ev.relinearize(ev.multiply(at_edge, at_edge), edge.relin));
  CkksEncoder owner_enc(owner.ctx);
  Decryptor dec(owner.ctx, owner.secret);
  const auto got_rot =
      owner_enc.decode_complex(dec.decrypt(transfer(rotated, *edge.ctx, *owner.ctx)));
  const auto got_sq =
      owner_enc.decode_complex(dec.decrypt(transfer(squared, *edge.ctx, *owner.ctx)));
  std::vector<cd> sq(slots);
  for (size_t i = 0; i < slots; ++i) sq[i] = x[i] * x[i];
  EXPECT_LT(test::max_error(got_rot, rotate_left(x, -2)), 1e-4);
  EXPECT_LT(test::max_error(got_sq, sq), 1e-3);
  // The same ciphertext decrypted with a key that is not the owner's is noise.
  const OwnerKeys stranger = generate_owner_keys(tiny_params(), {}, 1);
  const auto wrong = CkksEncoder(stranger.ctx)
                         .decode_complex(Decryptor(stranger.ctx, stranger.secret)
                                             .decrypt(transfer(ct, *source.ctx, *stranger.ctx)));
  EXPECT_GT(test::max_error(wrong, x), 1.0);
}

TEST_F(KeySetTest, GaloisKeysAreExactlyTheRequestedRotations) {
  const int slots = static_cast<int>(keys_->ctx->slots());
  // 0 and slots are the identity; slots - 1 is the same rotation as -1; 3 is repeated.
  const int steps[] = {3, -1, 3, 0, slots - 1};
  const OwnerKeys k = generate_owner_keys(tiny_params(), steps, 1);
  EXPECT_EQ(k.steps, (std::vector<int>{-1, 3}));
  EXPECT_EQ(k.galois.keys().size(), 2u);
  EXPECT_TRUE(k.galois.has(k.ctx->galois_element_for_step(-1)));
  EXPECT_TRUE(k.galois.has(k.ctx->galois_element_for_step(3)));
  EXPECT_FALSE(k.galois.has(k.ctx->galois_element_conjugate()));
  EXPECT_FALSE(k.galois.has(k.ctx->galois_element_for_step(1)));
  const int out_of_range[] = {slots};
  EXPECT_THROW(generate_owner_keys(tiny_params(), out_of_range, 1), InvalidArgument);
  // What eval.vkey holds is what was asked, after a round trip.
  const KeyDirBytes f = encode_key_dir(k, *secret_);
  EXPECT_EQ(rotation_steps(load_eval_keys_bytes(f.pub, f.eval, 1, kTestOnly)),
            (std::vector<int>{-1, 3}));
  // A key set whose Galois keys are not those of its steps is not written.
  OwnerKeys bad = k;
  bad.steps = {-1, 4};
  EXPECT_THROW(encode_key_dir(bad, *secret_), InvalidArgument);
}

TEST_F(KeySetTest, EdgeDirectoryWithoutSecretKeyWorks) {
  TempDir tmp;
  save_key_dir(tmp.path(), *keys_, *secret_);
  const fs::path edge_dir = tmp / "edge";
  fs::create_directories(edge_dir);
  fs::copy_file(tmp / "public.vkey", edge_dir / "public.vkey");
  fs::copy_file(tmp / "eval.vkey", edge_dir / "eval.vkey");
  const EvalKeys e = load_eval_keys(edge_dir, 1, kTestOnly);
  EXPECT_EQ(e.id, keys_->id);
  EXPECT_EQ(e.galois.keys().size(), 3u);
  const fs::path source_dir = tmp / "source";
  fs::create_directories(source_dir);
  fs::copy_file(tmp / "public.vkey", source_dir / "public.vkey");
  EXPECT_EQ(load_public_keys(source_dir, 1, kTestOnly).id, keys_->id);
  EXPECT_THROW(load_eval_keys(source_dir, 1, kTestOnly), IoError);
  EXPECT_THROW(load_owner_keys(edge_dir, *secret_, 1, kTestOnly), IoError);
}

TEST_F(KeySetTest, PublicAndEvalFilesEncodeBackToTheSameBytes) {
  const auto& f = *files_;
  EXPECT_EQ(encode_public_file(load_public_keys_bytes(f.pub, 1, kTestOnly)), f.pub);
  EXPECT_EQ(encode_eval_file(load_eval_keys_bytes(f.pub, f.eval, 1, kTestOnly)), f.eval);
  // The in-memory parts encode to the same files as the owner's key set.
  EXPECT_EQ(encode_public_file(public_keys_of(*keys_)), f.pub);
  EXPECT_EQ(encode_eval_file(eval_keys_of(*keys_)), f.eval);
  EXPECT_EQ(rotation_steps(eval_keys_of(*keys_)), (std::vector<int>{-2, 1, 5}));
  // The secret file is sealed afresh each time (new salt and nonce) but opens to the same keys.
  const KeyDirBytes again = encode_key_dir(
      load_owner_keys_bytes(f.secret, f.pub, f.eval, *secret_, 1, kTestOnly), *secret_);
  EXPECT_EQ(again.pub, f.pub);
  EXPECT_EQ(again.eval, f.eval);
  EXPECT_NE(again.secret, f.secret);
  EXPECT_EQ(again.secret.size(), f.secret.size());
}

TEST_F(KeySetTest, TestOnlyParametersNeedTheFlag) {
  EXPECT_THROW(load_public_keys_bytes(files_->pub, 1), InvalidArgument);
  EXPECT_THROW(load_eval_keys_bytes(files_->pub, files_->eval, 1), InvalidArgument);
  EXPECT_THROW(load_owner_keys_bytes(files_->secret, files_->pub, files_->eval, *secret_, 1),
               InvalidArgument);
}

TEST_F(KeySetTest, MixedKeySetsAreRefused) {
  // Same parameters, other keys; and other parameters.
  const int steps[] = {1, -2, 5};
  const OwnerKeys same_params = generate_owner_keys(tiny_params(), steps, 1);
  const OwnerKeys other_params = generate_owner_keys(tiny_params({40, 35, 40}), steps, 1);
  for (const OwnerKeys* other : {&same_params, &other_params}) {
    const KeyDirBytes o = encode_key_dir(*other, *secret_);
    const auto& f = *files_;
    EXPECT_THROW(load_eval_keys_bytes(f.pub, o.eval, 1, kTestOnly), IntegrityError);
    EXPECT_THROW(load_eval_keys_bytes(o.pub, f.eval, 1, kTestOnly), IntegrityError);
    EXPECT_THROW(load_owner_keys_bytes(o.secret, f.pub, f.eval, *secret_, 1, kTestOnly),
                 IntegrityError);
    EXPECT_THROW(load_owner_keys_bytes(f.secret, o.pub, o.eval, *secret_, 1, kTestOnly),
                 IntegrityError);
    EXPECT_THROW(load_owner_keys_bytes(f.secret, f.pub, o.eval, *secret_, 1, kTestOnly),
                 IntegrityError);
  }
  // In a directory: one file of another key set among the others.
  TempDir tmp;
  save_key_dir(tmp / "a", *keys_, *secret_);
  save_key_dir(tmp / "b", same_params, *secret_);
  fs::copy_file(tmp / "b" / "eval.vkey", tmp / "a" / "eval.vkey",
                fs::copy_options::overwrite_existing);
  EXPECT_THROW(load_eval_keys(tmp / "a", 1, kTestOnly), IntegrityError);
  try {
    load_owner_keys(tmp / "a", *secret_, 1, kTestOnly);
    ADD_FAILURE() << "mixed directory accepted";
  } catch (const IntegrityError& e) {
    EXPECT_NE(std::string(e.what()).find("different key sets"), std::string::npos) << e.what();
  }
}

TEST_F(KeySetTest, WrongSecretOrPassphraseIsRefused) {
  const auto& f = *files_;
  EXPECT_THROW(load_owner_keys_bytes(f.secret, f.pub, f.eval, random_secret(), 1, kTestOnly),
               IntegrityError);
  const ScryptParams cheap{10, 8, 1};
  const KeyDirBytes p = encode_key_dir(*keys_, KeySecret::from_passphrase("right", cheap));
  EXPECT_EQ(load_owner_keys_bytes(p.secret, p.pub, p.eval,
                                  KeySecret::from_passphrase("right", cheap), 1, kTestOnly)
                .secret.data(),
            keys_->secret.data());
  EXPECT_THROW(load_owner_keys_bytes(p.secret, p.pub, p.eval,
                                     KeySecret::from_passphrase("wrong", cheap), 1, kTestOnly),
               IntegrityError);
  EXPECT_THROW(load_owner_keys_bytes(p.secret, p.pub, p.eval, *secret_, 1, kTestOnly),
               IntegrityError);
  // The secret key is not in clear in secret.vkey, nor anywhere in the other two files.
  const auto sk = serialize(*keys_->ctx, keys_->secret);
  const std::span<const uint8_t> needle(sk.data() + 48, 64);
  for (const auto* file : {&f.secret, &f.pub, &f.eval})
    EXPECT_EQ(std::search(file->begin(), file->end(), needle.begin(), needle.end()), file->end());
}

// Every bit-flipped byte and every truncation of each file is refused (positions sampled with a
// stride inside the long key bodies, every position elsewhere; see kDense).
TEST_F(KeySetTest, EveryFlippedByteAndTruncationIsRefused) {
  const auto& f = *files_;
  // Headers, section lengths and trailers sit within this many bytes of a file's ends; the
  // middle is residues behind a digest or GCM tag, sampled every 61st byte (a prime, so
  // the flipped bit moves through the words).
  constexpr size_t kDense = 512;
  auto positions = [](size_t size) {
    std::vector<size_t> at;
    for (size_t i = 0; i < size; i += (i < kDense || i + kDense >= size) ? 1 : 61) at.push_back(i);
    return at;
  };
  enum Which { kSecret, kPublic, kEval };
  auto load = [&](Which which, std::span<const uint8_t> bytes) {
    const std::span<const uint8_t> s = which == kSecret ? bytes : f.secret;
    const std::span<const uint8_t> p = which == kPublic ? bytes : f.pub;
    const std::span<const uint8_t> e = which == kEval ? bytes : f.eval;
    if (which == kSecret) return (void)load_owner_keys_bytes(s, p, e, *secret_, 1, kTestOnly);
    (void)load_eval_keys_bytes(p, e, 1, kTestOnly);
  };
  ASSERT_NO_THROW(load(kSecret, f.secret));
  ASSERT_NO_THROW(load(kEval, f.eval));
  size_t tried = 0;
  for (Which which : {kSecret, kPublic, kEval}) {
    const std::vector<uint8_t>& file = which == kSecret   ? f.secret
                                       : which == kPublic ? f.pub
                                                          : f.eval;
    const std::string name = which == kSecret ? "secret" : which == kPublic ? "public" : "eval";
    for (size_t i : positions(file.size())) {
      auto bad = file;
      bad[i] ^= static_cast<uint8_t>(1u << (i % 8));
      expect_refused([&] { load(which, bad); }, name + " flip at " + std::to_string(i));
      expect_refused([&] { load(which, std::span(file).first(i)); },
                     name + " cut to " + std::to_string(i));
      tried += 2;
    }
    auto longer = file;
    longer.push_back(0);
    expect_refused([&] { load(which, longer); }, name + " extended");
  }
  EXPECT_GT(tried, 5000u);
  // The public key file alone, as a data source loads it.
  for (size_t i : positions(f.pub.size())) {
    auto bad = f.pub;
    bad[i] ^= 0x80;
    expect_refused([&] { load_public_keys_bytes(bad, 1, kTestOnly); },
                   "public alone flip at " + std::to_string(i));
  }
}

TEST_F(KeySetTest, FilesOfTheWrongKindAreRefused) {
  const auto& f = *files_;
  EXPECT_THROW(load_public_keys_bytes(f.eval, 1, kTestOnly), MalformedInput);
  EXPECT_THROW(load_eval_keys_bytes(f.pub, f.pub, 1, kTestOnly), MalformedInput);
  EXPECT_THROW(load_public_keys_bytes(f.secret, 1, kTestOnly), MalformedInput);
  EXPECT_THROW(load_owner_keys_bytes(f.pub, f.pub, f.eval, *secret_, 1, kTestOnly), IntegrityError);
}

TEST_F(KeySetTest, OversizedFileIsRefusedBeforeReading) {
  TempDir tmp;
  save_key_dir(tmp.path(), *keys_, *secret_);
  // A sparse file one byte over the bound: refused by its size, no memory is taken.
  fs::resize_file(tmp / "public.vkey", kMaxPublicKeyFileBytes + 1);
  EXPECT_THROW(load_public_keys(tmp.path(), 1, kTestOnly), MalformedInput);
}

TEST_F(KeySetTest, FailedSaveLeavesNoNewFiles) {
  TempDir tmp;
  const fs::path dir = tmp / "keys";
  fs::create_directories(dir / "eval.vkey");  // a directory where the last file goes
  EXPECT_THROW(save_key_dir(dir, *keys_, *secret_), IoError);
  EXPECT_FALSE(fs::exists(dir / "secret.vkey"));
  EXPECT_FALSE(fs::exists(dir / "public.vkey"));
  size_t entries = 0;
  for (const auto& e : fs::directory_iterator(dir)) entries += e.path().filename() != "eval.vkey";
  EXPECT_EQ(entries, 0u);  // no temporaries either
}

}  // namespace
}  // namespace veil::he
