#include "veil/core/output_guard.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include "temp_dir.hpp"
#include "veil/core/error.hpp"
#include "veil/core/io.hpp"

namespace veil {
namespace {

namespace fs = std::filesystem;
using veil::testing::TempDir;

// The InvalidArgument message of check(force), or "" when it passes.
std::string refusal(const OutputGuard& g, bool force = false) {
  try {
    g.check(force);
  } catch (const InvalidArgument& e) {
    return e.what();
  }
  return "";
}

class OutputGuardTest : public ::testing::Test {
 protected:
  void SetUp() override { write_file_atomic(model_, "model"); }
  TempDir dir_;
  fs::path model_ = dir_ / "m.onnx";
};

TEST_F(OutputGuardTest, DistinctFilesPass) {
  EXPECT_EQ(refusal(OutputGuard().input("--model", model_).output("--out", dir_ / "new.onnx")), "");
  write_file_atomic(dir_ / "old.onnx", "old");  // an existing ordinary output is replaced
  EXPECT_EQ(refusal(OutputGuard().input("--model", model_).output("--out", dir_ / "old.onnx")), "");
}

TEST_F(OutputGuardTest, RefusesAnOutputThatIsAnInputByEveryName) {
  fs::create_hard_link(model_, dir_ / "hard.onnx");
  fs::create_symlink(model_, dir_ / "sym.onnx");
  fs::create_directory(dir_ / "sub");
  for (const fs::path& alias :
       {model_, dir_ / "hard.onnx", dir_ / "sym.onnx", dir_ / "sub" / ".." / "m.onnx"}) {
    const std::string msg =
        refusal(OutputGuard().input("--model", model_).output("--output", alias));
    EXPECT_EQ(msg, "--output '" + alias.string() + "' is the same file as --model '" +
                       model_.string() + "': refusing to overwrite an input");
  }
}

TEST_F(OutputGuardTest, RefusesTwoOutputsToOneFileEvenIfItIsNew) {
  const auto msg = refusal(OutputGuard()
                               .output("--key", dir_ / "s.key")
                               .output("--secret", dir_ / "sub" / ".." / "s.key"));
  EXPECT_NE(msg.find("--key '"), std::string::npos) << msg;
  EXPECT_NE(msg.find("are the same file"), std::string::npos) << msg;
}

TEST_F(OutputGuardTest, ForceDoesNotAllowAnAlias) {
  EXPECT_NE(refusal(OutputGuard().input("--key", model_).secret_output("--out", model_, "key"),
                    /*force=*/true),
            "");
}

TEST_F(OutputGuardTest, AnExistingSecretNeedsForce) {
  const fs::path pem = dir_ / "a.pem";
  OutputGuard g;
  g.secret_output("--out", pem, "private key");
  EXPECT_EQ(refusal(g), "");  // a new one is fine
  write_file_atomic(pem, "key");
  EXPECT_EQ(refusal(g), "--out '" + pem.string() +
                            "' exists: refusing to overwrite a private key (give --force to "
                            "replace it)");
  EXPECT_EQ(refusal(g, /*force=*/true), "");
  // A dangling symlink there is refused too: it names a key that may come back.
  fs::create_symlink(dir_ / "gone.pem", dir_ / "link.pem");
  EXPECT_NE(refusal(OutputGuard().secret_output("--out", dir_ / "link.pem", "private key")), "");
}

TEST_F(OutputGuardTest, EmptyAndMissingPathsAreSkipped) {
  EXPECT_EQ(refusal(OutputGuard()
                        .input("--secret", "")
                        .input("--passphrase-file", dir_ / "missing")
                        .output("--report", "")
                        .output("--out", dir_ / "out")),
            "");
}

// Hours of training must not end in "cannot write": where an output cannot be created is found
// before the work.
TEST_F(OutputGuardTest, RefusesAnOutputThatCannotBeWrittenWhereItIsNamed) {
  const auto missing = dir_ / "missing" / "m.onnx";
  EXPECT_EQ(refusal(OutputGuard().output("--out", missing)),
            "--out '" + missing.string() + "': directory '" + (dir_ / "missing").string() +
                "' does not exist");
  fs::create_directory(dir_ / "sub");
  EXPECT_EQ(refusal(OutputGuard().output("--checkpoint", dir_ / "sub")),
            "--checkpoint '" + (dir_ / "sub").string() + "' is a directory, not a file");
  const auto under_file = model_ / "x.onnx";  // model_ is a file
  EXPECT_NE(refusal(OutputGuard().output("--out", under_file)).find("is not a directory"),
            std::string::npos);
  // Force replaces secrets, not directories that are not there.
  EXPECT_NE(refusal(OutputGuard().secret_output("--key", missing, "lock key"), /*force=*/true), "");
  // A bare name is written in the working directory.
  const auto cwd = fs::current_path();
  fs::current_path(dir_.path());
  const auto bare = refusal(OutputGuard().output("--out", "bare-name.onnx"));
  fs::current_path(cwd);
  EXPECT_EQ(bare, "");
}

TEST_F(OutputGuardTest, RefusesAnOutputInADirectoryItMayNotWriteIn) {
  if (::geteuid() == 0) GTEST_SKIP() << "root writes in any directory of a writable mount";
  fs::create_directory(dir_ / "ro");
  fs::permissions(dir_ / "ro", fs::perms::owner_read | fs::perms::owner_exec);
  const auto msg = refusal(OutputGuard().output("--out", dir_ / "ro" / "m.onnx"));
  fs::permissions(dir_ / "ro", fs::perms::owner_all);
  EXPECT_NE(msg.find("cannot write in directory"), std::string::npos) << msg;
}

TEST_F(OutputGuardTest, AnOutputDirectoryIsCreatedWhereADirectoryCanBe) {
  // Missing, with missing parents: the files inside need no existing directory.
  const auto keep = dir_ / "a" / "b";
  for (const fs::path& d : {keep, fs::path(keep.string() + "/"), dir_ / "a" / "." / "b"})
    EXPECT_EQ(refusal(OutputGuard().output_dir("--keep", d).output("--keep", keep / "x.json")), "")
        << d;
  // Another directory's file is still checked.
  EXPECT_NE(refusal(OutputGuard().output_dir("--keep", keep).output("--out", dir_ / "c" / "y")),
            "");
  // A file there, or on the way, is refused.
  for (const fs::path& d : {model_, model_ / "session"}) {
    const auto msg = refusal(OutputGuard().output_dir("--keep", d).output("--keep", d / "x.json"));
    EXPECT_NE(msg.find("is not a directory"), std::string::npos) << d << ": " << msg;
  }
}

}  // namespace
}  // namespace veil
