// End-to-end: no command overwrites one of its own inputs (by any name: the same path, another
// path, a symlink, a hard link), no command replaces a key without --force, and a failed
// `lock keygen` leaves no secret it created.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "cli_runner.hpp"
#include "veil/data/npy.hpp"
#include "veil/model/onnx.hpp"
#include "veil/model/zoo.hpp"

namespace veil::testing {
namespace {

namespace fs = std::filesystem;

std::string bytes_of(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

class OutputGuardCli : public ::testing::Test {
 protected:
  void SetUp() override {
    model::ArchSpec spec;
    spec.seed = 3;
    model::save_onnx(model::build_arch("lenet5", spec), model_);
    Tensor x({1, 1, 28, 28});
    for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] = static_cast<float>(i % 7) / 7;
    data::write_npy(input_, x);
    model_bytes_ = bytes_of(model_);
  }

  // A quick key (50 samples, reference preset); needs the dataset.
  CliResult keygen(const fs::path& key, const fs::path& secret, const std::string& extra = "") {
    return run_veil("lock keygen --model " + model_.string() +
                        " --data fashion-mnist --samples 50 --preset reference --key " +
                        key.string() + " --secret " + secret.string() + " " + extra,
                    dir_);
  }

  // Expects a refusal naming `what`, with `victim` unchanged.
  void expect_refused(const CliResult& r, const std::string& what, const fs::path& victim,
                      const std::string& before) {
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_NE(r.err.find("veil: error: "), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(what), std::string::npos) << r.err;
    EXPECT_EQ(bytes_of(victim), before) << victim << " was modified";
  }

  TempDir dir_;
  fs::path model_ = dir_ / "m.onnx", input_ = dir_ / "x.npy";
  std::string model_bytes_;
};

#define NEED_DATASET() \
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist is not installed"

// A training run of hours must not end in "cannot write": an output in a directory that is not
// there is refused before the first step, whether it is the model or the checkpoint.
TEST_F(OutputGuardCli, TrainRefusesAnOutputItCouldNotWriteBeforeTraining) {
  NEED_DATASET();
  const std::string run =
      "train --arch lenet5 --data fashion-mnist --limit 64 --test-limit 10 --epochs 1 --quiet";
  const auto missing = dir_ / "missing";
  fs::create_directory(dir_ / "d");
  for (const std::string& extra :
       {" --out " + (missing / "m.onnx").string(),
        " --out " + (dir_ / "t.onnx").string() + " --checkpoint " + (missing / "c.vckpt").string(),
        " --out " + (dir_ / "d").string()}) {
    const auto r = run_veil(run + extra, dir_);
    expect_refused(r, "--", model_, model_bytes_);
    EXPECT_TRUE(r.err.find("does not exist") != std::string::npos ||
                r.err.find("is a directory") != std::string::npos)
        << r.err;
    EXPECT_EQ(r.err.find("epoch"), std::string::npos) << "trained before refusing: " << r.err;
  }
  EXPECT_FALSE(fs::exists(missing));
  EXPECT_FALSE(fs::exists(dir_ / "t.onnx"));
}

TEST_F(OutputGuardCli, InferRefusesToOverwriteItsModelOrInputByAnyName) {
  fs::create_hard_link(model_, dir_ / "hard.onnx");
  fs::create_symlink(model_, dir_ / "sym.onnx");
  fs::create_directory(dir_ / "sub");
  const fs::path aliases[] = {model_, dir_ / "hard.onnx", dir_ / "sym.onnx",
                              dir_ / "sub" / ".." / "m.onnx"};
  for (const auto& alias : aliases) {
    auto r = run_veil("infer --model " + model_.string() + " --input " + input_.string() +
                          " --output " + alias.string(),
                      dir_);
    expect_refused(r, "--output '" + alias.string() + "' is the same file as --model", model_,
                   model_bytes_);
  }
  const std::string x = bytes_of(input_);
  auto r = run_veil("infer --model " + model_.string() + " --input " + input_.string() +
                        " --output " + input_.string(),
                    dir_);
  expect_refused(r, "is the same file as --input", input_, x);
  r = run_veil("infer --model " + model_.string() + " --input " + input_.string() + " --output " +
                   (dir_ / "y.npy").string(),
               dir_);
  EXPECT_EQ(r.exit_code, 0) << r.err;  // a distinct output is fine
  EXPECT_TRUE(fs::exists(dir_ / "y.npy"));
}

TEST_F(OutputGuardCli, LockEncryptAndDecryptRefuseToOverwriteTheSecretOrTheKey) {
  NEED_DATASET();
  const auto key = dir_ / "k.vkey", secret = dir_ / "s.key";
  auto r = keygen(key, secret);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string key_bytes = bytes_of(key), secret_bytes = bytes_of(secret);
  const std::string common =
      " --model " + model_.string() + " --key " + key.string() + " --secret " + secret.string();
  r = run_veil("lock encrypt" + common + " --out " + secret.string(), dir_);
  expect_refused(r, "--out '" + secret.string() + "' is the same file as --secret", secret,
                 secret_bytes);
  r = run_veil("lock encrypt" + common + " --out " + key.string(), dir_);
  expect_refused(r, "--out '" + key.string() + "' is the same file as --key", key, key_bytes);
  fs::create_hard_link(key, dir_ / "k.hard");
  r = run_veil("lock decrypt" + common + " --out " + (dir_ / "k.hard").string(), dir_);
  expect_refused(r, "is the same file as --key", key, key_bytes);
  r = run_veil("lock encrypt" + common + " --out " + (dir_ / "locked.onnx").string(), dir_);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = run_veil("lock attack outlier --model " + (dir_ / "locked.onnx").string() +
                   " --data fashion-mnist --limit 10 --out " + (dir_ / "locked.onnx").string(),
               dir_);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("is the same file as --model"), std::string::npos) << r.err;
}

TEST_F(OutputGuardCli, LockKeygenRefusesToOverwriteTheModelOrItsOwnSecret) {
  NEED_DATASET();
  auto r = keygen(model_, dir_ / "s.key");
  expect_refused(r, "--key '" + model_.string() + "' is the same file as --model", model_,
                 model_bytes_);
  EXPECT_FALSE(fs::exists(dir_ / "s.key"));  // refused before any work: no secret created
  // A new secret and the key to one file: the key would replace the secret it is sealed with.
  r = keygen(dir_ / "both", dir_ / "both");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("are the same file"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "both"));
  // An existing secret given as the key.
  ASSERT_EQ(keygen(dir_ / "k.vkey", dir_ / "s.key").exit_code, 0);
  const std::string secret_bytes = bytes_of(dir_ / "s.key");
  r = keygen(dir_ / "s.key", dir_ / "s.key");
  expect_refused(r, "is the same file as --secret", dir_ / "s.key", secret_bytes);
}

TEST_F(OutputGuardCli, LockKeygenReplacesAKeyOnlyWithForce) {
  NEED_DATASET();
  const auto key = dir_ / "k.vkey", secret = dir_ / "s.key";
  ASSERT_EQ(keygen(key, secret).exit_code, 0);
  const std::string before = bytes_of(key);
  auto r = keygen(key, secret);
  expect_refused(r, "--key '" + key.string() + "' exists: refusing to overwrite a lock key", key,
                 before);
  EXPECT_NE(r.err.find("--force"), std::string::npos) << r.err;
  r = keygen(key, secret, "--force");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(bytes_of(key), before);  // a fresh seal (new nonce) at least
}

TEST_F(OutputGuardCli, FailedKeygenLeavesNoNewSecretAndKeepsAnExistingOne) {
  NEED_DATASET();
  // A key in a directory that is not there is refused before anything is generated.
  auto r = keygen(dir_ / "no-such-dir" / "k.vkey", dir_ / "new.secret");
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("does not exist"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "new.secret"));
  // A name the file system refuses (longer than NAME_MAX) passes that check: the run fails after
  // the key was generated, when the new secret would already exist.
  const auto unwritable = dir_ / (std::string(300, 'k') + ".vkey");
  r = keygen(unwritable, dir_ / "new.secret");
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("cannot write"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "new.secret"));

  ASSERT_EQ(keygen(dir_ / "k.vkey", dir_ / "old.secret").exit_code, 0);
  const std::string old = bytes_of(dir_ / "old.secret");
  r = keygen(unwritable, dir_ / "old.secret");
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(bytes_of(dir_ / "old.secret"), old);
}

TEST_F(OutputGuardCli, LockSweepRefusesOneFileForBothOutputs) {
  const auto out = dir_ / "sweep.out";
  auto r = run_veil("lock sweep --model " + model_.string() +
                        " --data fashion-mnist --nums 0 --intensities 0.1 --samples 20 --limit 20 "
                        "--csv " +
                        out.string() + " --plot " + out.string(),
                    dir_);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("--csv '" + out.string() + "' and --plot '" + out.string() +
                       "' are the same file"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(out));
}

TEST_F(OutputGuardCli, MpcKeygenReplacesAPrivateKeyOnlyWithForce) {
  const auto pem = dir_ / "a.pem";
  auto r = run_veil("mpc keygen --out " + pem.string(), dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string before = bytes_of(pem);
  r = run_veil("mpc keygen --out " + pem.string(), dir_);
  expect_refused(r, "--out '" + pem.string() + "' exists: refusing to overwrite a private key", pem,
                 before);
  EXPECT_TRUE(r.out.empty()) << r.out;  // no fingerprint of a key that was not saved
  r = run_veil("mpc keygen --force --out " + pem.string(), dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(bytes_of(pem), before);
}

TEST_F(OutputGuardCli, MpcPartyRefusesAReportOverItsConfigOrKey) {
  auto k = run_veil("mpc keygen --out " + (dir_ / "client.pem").string(), dir_);
  ASSERT_EQ(k.exit_code, 0) << k.err;
  nlohmann::json c = {{"version", 1},
                      {"model", model_.string()},
                      {"input", {{"npy", input_.string()}}},
                      {"tls", "on"},
                      {"connect_timeout_ms", 200}};
  const char* roles[] = {"client", "server", "helper"};
  for (int i = 0; i < 3; ++i)
    c["parties"][roles[i]] = {{"host", "127.0.0.1"},
                              {"port", i == 0 ? 0 : 1},
                              {"key", (dir_ / (std::string(roles[i]) + ".pem")).string()},
                              {"fingerprint", k.out.substr(0, k.out.find('\n'))}};
  const auto config = dir_ / "parties.json";
  std::ofstream(config) << c.dump(2);
  const std::string config_bytes = bytes_of(config), key_bytes = bytes_of(dir_ / "client.pem");
  const std::string party = "mpc party --role client --quiet --config " + config.string();
  auto r = run_veil(party + " --report " + config.string(), dir_);
  expect_refused(r, "--report '" + config.string() + "' is the same file as --config", config,
                 config_bytes);
  fs::create_hard_link(dir_ / "client.pem", dir_ / "report.json");
  r = run_veil(party + " --report " + (dir_ / "report.json").string(), dir_);
  expect_refused(r, "is the same file as the config's key", dir_ / "client.pem", key_bytes);
  r = run_veil(party + " --output " + input_.string(), dir_);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--output '" + input_.string() + "' is the same file as --input"),
            std::string::npos)
      << r.err;
}

TEST_F(OutputGuardCli, MpcRunKeepsPrivateKeysInKeepUnlessForced) {
  const auto keep = dir_ / "session";
  fs::create_directory(keep);
  auto k = run_veil("mpc keygen --out " + (keep / "server.pem").string(), dir_);
  ASSERT_EQ(k.exit_code, 0) << k.err;
  const std::string before = bytes_of(keep / "server.pem");
  const std::string run = "mpc run --quiet --json --tls --model " + model_.string() + " --input " +
                          input_.string() + " --keep " + keep.string();
  auto r = run_veil(run, dir_);
  expect_refused(r, "--keep '" + (keep / "server.pem").string() + "' exists", keep / "server.pem",
                 before);
  r = run_veil(run + " --force", dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(bytes_of(keep / "server.pem"), before);  // the session's fresh key
  // --keep inside itself: the model is one of the files the session writes.
  r = run_veil("mpc run --quiet --model " + (keep / "parties.json").string() + " --input " +
                   input_.string() + " --keep " + keep.string(),
               dir_);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("is the same file as --model"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace veil::testing
