// End-to-end: `veil train --checkpoint`, stopped (as a killed run, and by a real SIGTERM) and
// continued with --resume, ends with the bytes of the run that never stopped; what is not the
// same run, or not a checkpoint, is refused without touching any file.
#include <gtest/gtest.h>
#include <signal.h>

#include <nlohmann/json.hpp>

#include "cli_runner.hpp"
#include "veil/nn/checkpoint.hpp"

namespace veil::testing {
namespace {

class TrainCheckpointCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  }
  // ResNet-20 (batch norm, crop and flip augmentation) on 192 images: 6 steps per epoch.
  static std::string run(const std::string& extra, int limit = 192) {
    return "--threads 2 train --arch resnet20 --data fashion-mnist --limit " +
           std::to_string(limit) + " --test-limit 50 --epochs 2 --batch 32 --quiet " + extra;
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  TempDir dir_;
};

TEST_F(TrainCheckpointCli, StoppedRunsResumeToTheSameModel) {
  auto r = run_veil(run("--out " + path("straight.onnx")), dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string straight = slurp(dir_ / "straight.onnx");

  const std::string ck = "--checkpoint " + path("run.vckpt");
  r = run_veil(
      run(ck + " --checkpoint-every 4 --stop-after-steps 3 --json --out " + path("resumed.onnx")),
      dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_TRUE(j["stopped"].get<bool>());
  EXPECT_EQ(j["epochs_done"].get<int>(), 0);
  EXPECT_EQ(j["step"].get<int>(), 4);  // the first checkpoint at or after step 3
  EXPECT_FALSE(std::filesystem::exists(dir_ / "resumed.onnx"));
  const std::string saved = slurp(dir_ / "run.vckpt");

  // An existing checkpoint is neither overwritten nor silently continued.
  r = run_veil(run(ck + " --out " + path("resumed.onnx")), dir_);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--resume"), std::string::npos) << r.err;
  // Another run (here another learning rate) is refused, naming what differs.
  r = run_veil(run(ck + " --resume --lr 0.05 --out " + path("resumed.onnx")), dir_);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("lr: 0.1 in the checkpoint, 0.05 now"), std::string::npos) << r.err;
  // So is another training set.
  r = run_veil(run(ck + " --resume --out " + path("resumed.onnx"), 224), dir_);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("train_images"), std::string::npos) << r.err;
  EXPECT_EQ(slurp(dir_ / "run.vckpt"), saved);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "resumed.onnx"));

  // Stopped once more, at the next checkpoint: the epoch's end; then to the end.
  r = run_veil(run(ck + " --resume --checkpoint-every 4 --stop-after-steps 1 --json --out " +
                   path("resumed.onnx")),
               dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["epochs_done"].get<int>(), 1);
  EXPECT_EQ(j["step"].get<int>(), 0);
  r = run_veil(run(ck + " --resume --json --out " + path("resumed.onnx")), dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["resumed"]["epoch"].get<int>(), 1);
  EXPECT_EQ(j["resumed"]["step"].get<int>(), 0);
  EXPECT_FALSE(j["resumed"].contains("threads_changed"));
  EXPECT_EQ(j["epochs"].size(), 2u);  // the first epoch's record came from the checkpoint
  EXPECT_EQ(slurp(dir_ / "resumed.onnx"), straight);
}

// Another thread count is the same run in another summation order: allowed, and said.
TEST_F(TrainCheckpointCli, ResumingAtAnotherThreadCountIsNoted) {
  const std::string ck = "--checkpoint " + path("run.vckpt");
  auto r = run_veil(run(ck + " --stop-after-steps 3 --checkpoint-every 3 --out " + path("m.onnx")),
                    dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string cmd = run(ck + " --resume --json --out " + path("m.onnx"));
  cmd.replace(cmd.find("--threads 2"), 11, "--threads 1");
  r = run_veil(cmd, dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_TRUE(j["resumed"].contains("threads_changed")) << r.out;
  EXPECT_NE(j["resumed"]["threads_changed"].get<std::string>().find(
                "--threads 2 in the checkpoint, 1 now"),
            std::string::npos);
  EXPECT_TRUE(std::filesystem::exists(dir_ / "m.onnx"));
}

TEST_F(TrainCheckpointCli, AKilledRunResumesToTheSameModel) {
  auto r = run_veil(run("--out " + path("straight.onnx")), dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string ck = " --checkpoint " + path("run.vckpt") + " --checkpoint-every 1";
  const std::string cmd = std::string(VEIL_CLI_PATH) + " " +
                          run(ck + " --out " + path("killed.onnx")) +
                          " >/dev/null 2>&1 & echo $! >" + path("pid");
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  const pid_t pid = std::stoi(slurp(dir_ / "pid"));
  wait_until([&] { return std::filesystem::exists(dir_ / "run.vckpt"); }, std::chrono::seconds(60));
  ::kill(pid, SIGTERM);
  wait_until([&] { return ::kill(pid, 0) != 0; }, std::chrono::seconds(30));
  // Killed at whatever step (or, on a fast machine, finished): no temporary is left behind and
  // the checkpoint continues to the uninterrupted model.
  for (const auto& e : std::filesystem::directory_iterator(dir_.path()))
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();
  std::filesystem::remove(dir_ / "killed.onnx");
  r = run_veil(run(ck + " --resume --out " + path("killed.onnx")), dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(slurp(dir_ / "killed.onnx"), slurp(dir_ / "straight.onnx"));
}

TEST_F(TrainCheckpointCli, RefusesWhatIsNotThisRunsCheckpoint) {
  const std::string ck = "--checkpoint " + path("run.vckpt");
  auto r = run_veil(run(ck + " --resume --out " + path("m.onnx")), dir_);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no checkpoint"), std::string::npos) << r.err;
  r = run_veil(run("--resume --out " + path("m.onnx")), dir_);
  EXPECT_EQ(r.exit_code, 2) << r.err;  // --resume needs --checkpoint
  r = run_veil(run("--checkpoint " + path("m.onnx") + " --out " + path("m.onnx")), dir_);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--checkpoint"), std::string::npos) << r.err;

  r = run_veil(run(ck + " --stop-after-steps 1 --checkpoint-every 1 --out " + path("m.onnx")),
               dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // A damaged checkpoint: refused, left as it is, nothing written.
  std::string bytes = slurp(dir_ / "run.vckpt");
  bytes[bytes.size() / 2] ^= 1;
  std::ofstream(dir_ / "run.vckpt", std::ios::binary) << bytes;
  r = run_veil(run(ck + " --resume --out " + path("m.onnx")), dir_);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("damaged"), std::string::npos) << r.err;
  EXPECT_EQ(slurp(dir_ / "run.vckpt"), bytes);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "m.onnx"));
  // The checkpoint of another model (an MLP's) with this model's run record: the weights do not
  // fit.
  {
    const std::string mlp =
        "--threads 2 train --arch mlp --data fashion-mnist --limit 320 "
        "--test-limit 100 --epochs 2 --batch 32 --quiet --checkpoint " +
        path("mlp.vckpt") + " --stop-after-steps 1 --checkpoint-every 1 " + "--out " +
        path("mlp.onnx");
    ASSERT_EQ(run_veil(mlp, dir_).exit_code, 0);
    auto c = nn::read_checkpoint(dir_ / "mlp.vckpt");
    std::filesystem::remove(dir_ / "run.vckpt");
    r = run_veil(run(ck + " --stop-after-steps 1 --checkpoint-every 1 --out " + path("m.onnx")),
                 dir_);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    c.run = nn::read_checkpoint(dir_ / "run.vckpt").run;
    nn::write_checkpoint(dir_ / "run.vckpt", c);
  }
  r = run_veil(run(ck + " --resume --out " + path("m.onnx")), dir_);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("not a checkpoint of this model"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir_ / "m.onnx"));
}

}  // namespace
}  // namespace veil::testing
