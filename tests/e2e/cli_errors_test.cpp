// End-to-end: how the `veil` binary fails. Every failure is one line "veil: error: ..." on stderr
// (exit 2 for usage errors the option parser catches, 1 for the others); numeric options are
// range-checked instead of silently replaced; strings from a model cannot add lines or send
// terminal escape sequences.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli_runner.hpp"
#include "veil/data/npy.hpp"
#include "veil/model/onnx.hpp"
#include "veil/model/zoo.hpp"

namespace veil::testing {
namespace {

namespace fs = std::filesystem;

// The name a hostile model gives its first node: a new line starting in red.
const std::string kEvil = "fc1\n\x1b[31mOK: all weights verified";

class CliErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = dir_ / "mlp.onnx";
    model::save_onnx(model::build_arch("mlp", {}), model_);
    Tensor x({2, 1, 28, 28});
    for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] = static_cast<float>(i % 251) / 251;
    input_ = dir_ / "x.npy";
    data::write_npy(input_, x);
  }
  CliResult veil(const std::string& args) { return run_veil(args, dir_); }

  TempDir dir_;
  fs::path model_, input_;
};

size_t lines(const std::string& s) { return std::count(s.begin(), s.end(), '\n'); }

// Exactly one line on stderr, "veil: error: ...", and `code`.
void expect_one_error_line(const CliResult& r, int code, const std::string& args) {
  EXPECT_EQ(r.exit_code, code) << args << "\n" << r.err;
  EXPECT_EQ(r.err.rfind("veil: error: ", 0), 0u) << args << "\n" << r.err;
  EXPECT_EQ(lines(r.err), 1u) << args << "\n" << r.err;
  EXPECT_EQ(r.err.back(), '\n') << args;
}

TEST_F(CliErrors, OptionErrorsAreOneLineAndExitTwo) {
  const std::string m = " --model " + model_.string();
  const std::string d = dir_.path().string() + "/";
  for (const std::string& args : std::vector<std::string>{
           "eval --batch 0" + m,    // out of range
           "eval --batch abc" + m,  // not a number
           "lock encrypt --key " + d + "k --out " + d + "o --secret " + d + "s --passphrase-file " +
               d + "p" + m,              // excluded
           "he bench --n 1000",          // not a member
           "eval",                       // missing --model
           "eval --no-such-option" + m,  // unknown option
           "",                           // no command
           "mpc run --frac-bits 31" + m,
           // --classifier-activation is keras-cifar10's alone, and one of its three choices
           "train --arch lenet5 --classifier-activation square --out " + d + "t.onnx",
           "train --arch he-cnn --classifier-activation relu --out " + d + "t.onnx",
           "train --arch keras-cifar10 --classifier-activation tanh --out " + d + "t.onnx",
       }) {
    const CliResult r = veil(args);
    expect_one_error_line(r, 2, args);
    EXPECT_EQ(r.out, "") << args;
  }
  EXPECT_FALSE(fs::exists(dir_ / "t.onnx"));
  const CliResult lenet = veil("train --arch lenet5 --classifier-activation none --out " + d + "t");
  EXPECT_NE(lenet.err.find("--classifier-activation"), std::string::npos) << lenet.err;
  EXPECT_NE(lenet.err.find("keras-cifar10"), std::string::npos) << lenet.err;
  // The message says what was wrong and where the options are listed.
  const CliResult r = veil("eval --batch 0" + m);
  EXPECT_NE(r.err.find("--batch"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("veil eval --help"), std::string::npos) << r.err;
}

TEST_F(CliErrors, HelpAndVersionStillSucceed) {
  CliResult r = veil("eval --help");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("--limit"), std::string::npos) << r.out;
  EXPECT_EQ(r.err, "");
  r = veil("--version");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "veil 0.1.0\n");
}

TEST_F(CliErrors, InvalidNumbersAreRefusedNotReplaced) {
  // --lr nan and --lr -1 used to train with the default rate; negative counts meant "all" for
  // mpc run and an error elsewhere. Each is now refused before any work: no model is written.
  const std::string m = " --model " + model_.string();
  const fs::path out = dir_ / "trained.onnx";
  // Paths in dir_: a command that wrongly ran would leave them there.
  const std::string ks = " --key " + (dir_ / "k").string() + " --secret " + (dir_ / "s").string();
  for (const std::string& args : std::vector<std::string>{
           "train --epochs 1 --limit 100 --lr nan --out " + out.string(),
           "train --epochs 1 --limit 100 --lr -1 --out " + out.string(),
           "train --epochs 1 --limit 100 --lr inf --out " + out.string(),
           "train --epochs 1 --limit -1 --out " + out.string(),
           "train --epochs 1 --momentum nan --out " + out.string(),
           "train --epochs 1 --batch 1.5 --out " + out.string(),
           "train --epochs 1 --seed -1 --out " + out.string(),
           "eval --limit -5" + m,
           "mpc run --n -1 --input " + input_.string() + m,
           "mpc run --offset -1 --input " + input_.string() + m,
           "mpc run --lsb-ignored -1 --input " + input_.string() + m,
           "mpc party --role client --config " + (dir_ / "c.json").string() + " --n -2",
           "lock eval " + ks + " --limit -1" + m,
           "lock run " + ks + " --limit -1" + m,
           "lock keygen " + ks + " --samples 0" + m,
           "lock keygen " + ks + " --intensity nan" + m,
           "lock keygen " + ks + " --max-percent 2" + m,
           "lock keygen " + ks + " --scrypt-log2n 9" + m,
           "lock sweep --nums 5 -1" + m,
           "lock attack finetune --lr -0.5" + m,
           "lock attack outlier --suspects -3" + m,
           "he info --scale-bits 99",
           "--threads 0 info" + m,
       }) {
    const CliResult r = veil(args);
    expect_one_error_line(r, 2, args);
    EXPECT_NE(r.err.find("must be"), std::string::npos) << args << "\n" << r.err;
  }
  EXPECT_FALSE(fs::exists(out));
  EXPECT_FALSE(fs::exists(dir_ / "k"));
  EXPECT_FALSE(fs::exists(dir_ / "s"));
}

TEST_F(CliErrors, KeepThatIsAFileIsRefusedWithOneLine) {
  // --keep names a directory for the session's files; a file there (or on the way) is refused
  // before any party starts, and the file is left as it was.
  std::ofstream(dir_ / "notes.txt") << "mine";
  for (const fs::path& keep : {dir_ / "notes.txt", dir_ / "notes.txt" / "session"}) {
    const std::string args = "mpc run --model " + model_.string() + " --input " + input_.string() +
                             " --quiet --keep " + keep.string();
    const CliResult r = veil(args);
    expect_one_error_line(r, 1, args);
    EXPECT_NE(r.err.find("not a directory"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("internal"), std::string::npos) << r.err;
  }
  EXPECT_EQ(slurp(dir_ / "notes.txt"), "mine");
}

bool has_raw_escape(const std::string& s) { return s.find('\x1b') != std::string::npos; }

TEST_F(CliErrors, ModelStringsCannotInjectLinesOrEscapes) {
  model::Model m = model::build_arch("mlp", {});
  m.graph.nodes.at(0).name = kEvil;
  m.metadata["veil.class_names"] = "cat\r\x1b]0;pwned\x07,dog";
  const fs::path evil = dir_ / "evil.onnx";
  model::save_onnx(m, evil);

  // veil info: the name and the metadata stay on their own lines, escaped.
  CliResult r = veil("info --model " + evil.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(has_raw_escape(r.out)) << r.out;
  EXPECT_EQ(r.out.find('\r'), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("\nOK: all weights"), std::string::npos) << r.out;  // no injected line
  EXPECT_NE(r.out.find("fc1\\n\\x1b[31mOK"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("cat\\r\\x1b]0;pwned\\x07,dog"), std::string::npos) << r.out;
  // Line count: header, column titles, one per node, totals, one per metadata entry.
  EXPECT_EQ(lines(r.out), 3 + m.graph.nodes.size() + m.metadata.size()) << r.out;

  // --json keeps the exact strings (JSON escapes them itself).
  r = veil("info --json --model " + evil.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(has_raw_escape(r.out));
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["layers"][0]["name"], kEvil);

  // An error that names the node: the same name, escaped, in one error line.
  m.graph.nodes.at(0).op_type = "Evil\n\x1b[2J";
  model::save_onnx(m, evil);
  r = veil("infer --model " + evil.string() + " --input " + input_.string() + " --output " +
           (dir_ / "y.npy").string());
  expect_one_error_line(r, 1, "infer");
  EXPECT_FALSE(has_raw_escape(r.err)) << r.err;
  EXPECT_NE(r.err.find("\\x1b"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "y.npy"));
}

TEST_F(CliErrors, LockAndMpcReportsEscapeNames) {
  // The first layer's node and weight tensor carry the hostile name.
  model::Model m = model::build_arch("mlp", {});
  model::Node& fc = m.graph.nodes.at(1);
  ASSERT_EQ(fc.op_type, "Gemm");
  fc.name = kEvil;
  const std::string weight = fc.inputs.at(1);
  auto node = m.graph.initializers.extract(weight);
  node.key() = kEvil + ".weight";
  m.graph.initializers.insert(std::move(node));
  fc.inputs[1] = kEvil + ".weight";
  const fs::path evil = dir_ / "evil.onnx";
  model::save_onnx(m, evil);

  // mpc run's per-layer table names the node.
  CliResult r = veil("mpc run --model " + evil.string() + " --input " + input_.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(has_raw_escape(r.out)) << r.out;
  EXPECT_NE(r.out.find("fc1\\n\\x1b[31mOK"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("\nOK: all weights"), std::string::npos) << r.out;

  // lock keygen's per-layer rows name the weight tensor.
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  r = veil("lock keygen --preset reference --samples 50 --model " + evil.string() + " --key " +
           (dir_ / "k.vkey").string() + " --secret " + (dir_ / "s.key").string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(has_raw_escape(r.out + r.err)) << r.out << r.err;
  EXPECT_NE(r.out.find("fc1\\n\\x1b[31mOK: all weights verified.weight"), std::string::npos)
      << r.out;
}

TEST_F(CliErrors, ANameThatIsNotUtf8IsEscapedOrRefusedCleanly) {
  model::Model m = model::build_arch("mlp", {});
  m.graph.nodes.at(0).name = "fc\xff\xfe";
  const fs::path bad = dir_ / "latin1.onnx";
  model::save_onnx(m, bad);
  CliResult r = veil("info --model " + bad.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("fc\\xff\\xfe"), std::string::npos) << r.out;
  // JSON cannot hold those bytes: they become U+FFFD instead of an internal error.
  r = veil("info --json --model " + bad.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["layers"][0]["name"], "fc\xEF\xBF\xBD\xEF\xBF\xBD");
  // The server could not send such a structure to the client: refused up front, not as an
  // internal error inside the server party.
  const std::string args =
      "mpc run --quiet --model " + bad.string() + " --input " + input_.string();
  r = veil(args);
  expect_one_error_line(r, 1, args);
  EXPECT_NE(r.err.find("not valid UTF-8"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("internal"), std::string::npos) << r.err;
}

TEST_F(CliErrors, AFailedSecureSessionIsOneLine) {
  // The helper is killed mid-session: the supervisor names each party and what it said, on one
  // line (it used to print one line per party).
  model::Model m = model::build_arch("mlp", {});
  m.graph.nodes.at(0).name = kEvil;
  const fs::path evil = dir_ / "evil.onnx";
  model::save_onnx(m, evil);
  Tensor x({400, 1, 28, 28});
  for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] = static_cast<float>(i % 199) / 199;
  data::write_npy(dir_ / "many.npy", x);
  const CliResult r = veil("mpc run --quiet --batch 1 --fault kill:helper:300 --model " +
                           evil.string() + " --input " + (dir_ / "many.npy").string());
  expect_one_error_line(r, 1, "mpc run");
  EXPECT_NE(r.err.find("helper: killed by signal 9"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("client: exit code 1"), std::string::npos) << r.err;
  EXPECT_FALSE(has_raw_escape(r.err)) << r.err;
}

}  // namespace
}  // namespace veil::testing
