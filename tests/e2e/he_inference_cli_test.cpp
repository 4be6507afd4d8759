// End-to-end: homomorphic inference by role through the CLI. The owner makes keys and encrypts
// the model; the data source encrypts with public.vkey only; the edge runs with a directory that
// holds public.vkey and eval.vkey only; the owner decrypts. The decrypted logits must match the
// plaintext model's (`veil infer`) to CKKS precision, and files of another key set are refused
// without writing anything.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <string>

#include "cli_runner.hpp"
#include "veil/data/npy.hpp"
#include "veil/model/onnx.hpp"
#include "veil/model/zoo.hpp"

namespace veil::testing {
namespace {

namespace fs = std::filesystem;

class HeInferenceCli : public ::testing::Test {
 protected:
  void SetUp() override {
    // Untrained he-cnn (random weights): the encrypted result is compared with the plaintext
    // logits of the same file, so training adds nothing but time.
    model_ = dir_ / "he-cnn.onnx";
    model::save_onnx(model::build_arch("he-cnn", {}), model_);
    Tensor x({3, 1, 28, 28});
    for (int64_t i = 0; i < x.numel(); ++i)
      x.data()[i] = static_cast<float>((i * 37) % 251) / 251 - 0.5f;
    input_ = dir_ / "x.npy";
    data::write_npy(input_, x);
    std::ofstream(dir_ / "pass") << "correct horse\n";
  }
  CliResult veil(const std::string& args) { return run_veil(args, dir_); }
  std::string p(const std::string& name) const { return (dir_ / name).string(); }

  // Keys for `model` in dir `k`, the edge's copy in `k`.edge (no secret.vkey).
  void keygen(const std::string& k, const std::string& extra = "") {
    auto r = veil("he keygen --model " + model_.string() + " --out-dir " + p(k) +
                  " --passphrase-file " + p("pass") + " --scrypt-log2n 10 " + extra);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    fs::create_directories(p(k + ".edge"));
    for (const char* f : {"public.vkey", "eval.vkey"})
      fs::copy_file(p(k) + "/" + f, p(k + ".edge") + "/" + f);
  }

  TempDir dir_;
  fs::path model_, input_;
};

TEST_F(HeInferenceCli, RolesEndToEndMatchThePlaintextModel) {
  keygen("K");
  ASSERT_EQ(veil("infer --model " + model_.string() + " --input " + input_.string() + " --output " +
                 p("plain.npy"))
                .exit_code,
            0);
  const Tensor want = data::read_npy(p("plain.npy"));
  for (const std::string features : {"encrypted", "plain"}) {
    for (const std::string part : {"all", "classifier", "last"}) {
      SCOPED_TRACE(features + " " + part);
      const std::string m = p("m." + part + ".vhe"), x = p("x.vct"), y = p("y.vct"),
                        out = p("y." + part + "." + features + ".npy");
      fs::remove(x);
      fs::remove(y);
      if (features == "encrypted") {
        auto r = veil("he encrypt-model --model " + model_.string() + " --part " + part +
                      " --keys " + p("K") + " --passphrase-file " + p("pass") + " --out " + m);
        ASSERT_EQ(r.exit_code, 0) << r.err;
      }
      auto r = veil("he encrypt-input --keys " + p("K.edge") + " --model " + m + " --input " +
                    input_.string() + " --features " + features + " --out " + x);
      ASSERT_EQ(r.exit_code, 0) << r.err;
      r = veil("he infer --model " + m + " --input " + x + " --keys " + p("K.edge") + " --out " +
               y);
      ASSERT_EQ(r.exit_code, 0) << r.err;
      r = veil("he decrypt --keys " + p("K") + " --passphrase-file " + p("pass") + " --input " + y +
               " --output " + out);
      ASSERT_EQ(r.exit_code, 0) << r.err;
      const Tensor got = data::read_npy(out);
      ASSERT_EQ(got.shape(), want.shape());
      float mag = 0;
      for (float v : want.floats()) mag = std::max(mag, std::fabs(v));
      for (int64_t i = 0; i < got.numel(); ++i)
        EXPECT_NEAR(got.data()[i], want.data()[i], 2e-3 * (1 + mag)) << i;
    }
  }
}

TEST_F(HeInferenceCli, OtherKeysAreRefusedAndNothingIsWritten) {
  keygen("K");
  keygen("L");
  const std::string m = p("m.vhe"), x = p("x.vct"), y = p("y.vct");
  ASSERT_EQ(veil("he encrypt-model --model " + model_.string() + " --keys " + p("K") +
                 " --passphrase-file " + p("pass") + " --out " + m)
                .exit_code,
            0);
  ASSERT_EQ(veil("he encrypt-input --keys " + p("K.edge") + " --model " + m + " --input " +
                 input_.string() + " --out " + x)
                .exit_code,
            0);
  // The edge with another key set's evaluation keys.
  auto r =
      veil("he infer --model " + m + " --input " + x + " --keys " + p("L.edge") + " --out " + y);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("other keys"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(y));
  // The data source with the other public key.
  r = veil("he encrypt-input --keys " + p("L.edge") + " --model " + m + " --input " +
           input_.string() + " --out " + p("x2.vct"));
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_FALSE(fs::exists(p("x2.vct")));
  // The edge has no secret key: decrypt with the edge directory fails.
  ASSERT_EQ(
      veil("he infer --model " + m + " --input " + x + " --keys " + p("K.edge") + " --out " + y)
          .exit_code,
      0);
  r = veil("he decrypt --keys " + p("K.edge") + " --passphrase-file " + p("pass") + " --input " +
           y + " --output " + p("y.npy"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_FALSE(fs::exists(p("y.npy")));
  // The other owner cannot decrypt.
  r = veil("he decrypt --keys " + p("L") + " --passphrase-file " + p("pass") + " --input " + y +
           " --output " + p("y.npy"));
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_FALSE(fs::exists(p("y.npy")));
  // A wrong passphrase.
  std::ofstream(dir_ / "wrong") << "battery staple\n";
  r = veil("he decrypt --keys " + p("K") + " --passphrase-file " + p("wrong") + " --input " + y +
           " --output " + p("y.npy"));
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_FALSE(fs::exists(p("y.npy")));
  // keygen does not overwrite a key set without --force.
  r = veil("he keygen --model " + model_.string() + " --out-dir " + p("K") + " --passphrase-file " +
           p("pass"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--force"), std::string::npos) << r.err;
}

TEST_F(HeInferenceCli, EvalJsonReportsAgreementAndCosts) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "Fashion-MNIST not installed";
  auto r = veil("he eval --model " + model_.string() + " --mode full --limit 4 --json --quiet");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["images"], 4);
  EXPECT_EQ(j["agreement"], 1.0);
  for (const char* k : {"encrypt_s_per_image", "infer_s_per_image", "decrypt_s_per_image",
                        "peak_rss_mb", "encrypted_model_mb", "precision_bits"})
    EXPECT_GT(j[k].get<double>(), 0) << k;
  EXPECT_EQ(j["security"], 128);
  // A ReLU classifier cannot run under CKKS: one line naming the node.
  const fs::path relu = dir_ / "keras.onnx";
  model::save_onnx(model::build_arch("keras-cifar10", {}, "relu"), relu);
  r = veil("he eval --model " + relu.string() + " --mode classifier-square --limit 2 --quiet");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("act1"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace veil::testing
