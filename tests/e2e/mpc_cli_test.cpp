// End-to-end: `veil mpc run|party|keygen|hash` through the real binary (three OS processes
// talking TCP or TLS on loopback).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <future>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <utility>

#include "cli_runner.hpp"
#include "graph_node.hpp"
#include "veil/data/npy.hpp"
#include "veil/model/onnx.hpp"
#include "veil/model/zoo.hpp"

namespace veil::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class MpcCli : public ::testing::Test {
 protected:
  void SetUp() override {
    model::ArchSpec spec;
    spec.seed = 11;  // random weights: secure and plaintext must still agree
    model::Model m = model::build_arch("lenet5", spec);
    m.metadata["veil.normalize.mean"] = "0.28";
    m.metadata["veil.normalize.std"] = "0.35";
    model_ = dir_ / "lenet5.onnx";
    model::save_onnx(m, model_);
    Tensor x({4, 1, 28, 28});
    for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] = static_cast<float>((i * 37) % 256) / 255;
    input_ = dir_ / "x.npy";
    data::write_npy(input_, x);
  }
  // `mpc run` one image at a time over 400 images (pixel i is (i % period) / period): enough
  // that the session is still running when a --fault hits.
  CliResult run_many_with(int period, const std::string& options) {
    Tensor x({400, 1, 28, 28});
    for (int64_t i = 0; i < x.numel(); ++i)
      x.data()[i] = static_cast<float>(i % period) / static_cast<float>(period);
    data::write_npy(dir_ / "many.npy", x);
    return run_veil("mpc run --model " + model_.string() + " --input " +
                        (dir_ / "many.npy").string() + " --batch 1 " + options,
                    dir_);
  }

  TempDir dir_;
  fs::path model_, input_;
};

void expect_agreement(const json& j, int64_t n) {
  EXPECT_EQ(j["images"].get<int64_t>(), n);
  EXPECT_EQ(j["secure_predictions"], j["plain_predictions"]);
  EXPECT_DOUBLE_EQ(j["agreement"].get<double>(), 1.0);
  EXPECT_LT(j["max_logit_diff"].get<double>(), 0.05);
  for (const char* role : {"client", "server", "helper"})
    EXPECT_GT(j["parties"][role]["bytes_sent"].get<uint64_t>(), 0u) << role;
  EXPECT_GT(j["rounds"]["per_batch"].get<double>(), 0);
  // The per-layer breakdown adds up to what each party sent, minus the client's batch plan (a
  // count and the sizes, to each peer) and each party's verdict on it (a zero to each peer).
  uint64_t by_layer = 0;
  for (const auto& l : j["layers"]) by_layer += l["bytes_total"].get<uint64_t>();
  uint64_t total = 0;
  for (const char* role : {"client", "server", "helper"})
    total += j["parties"][role]["bytes_sent"].get<uint64_t>();
  EXPECT_EQ(by_layer + 2 * 8 * (1 + j["batches"].get<uint64_t>()) + 3 * 2 * 8, total);
}

TEST_F(MpcCli, RunMatchesPlaintextOnNpyInput) {
  auto r = run_veil(
      "mpc run --model " + model_.string() + " --input " + input_.string() + " --batch 3 --json",
      dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(r.out);
  expect_agreement(j, 4);
  EXPECT_EQ(j["batches"].get<int64_t>(), 2);
  EXPECT_EQ(j["frac_bits"].get<int>(), 12);  // the default for a model without block ReLUs
  EXPECT_FALSE(j["tls"].get<bool>());
  EXPECT_EQ(j["link"]["profile"], "none");
  EXPECT_FALSE(j["link"]["emulated"].get<bool>());
}

TEST_F(MpcCli, RunsWithItsStandardDescriptorsClosed) {
  // With stderr closed, a listening socket or a session file would get descriptor 2, which a
  // party's stderr (its log) replaces.
  const fs::path out = dir_ / "closed.json";
  const std::string cmd = std::string(VEIL_CLI_PATH) + " mpc run --model " + model_.string() +
                          " --input " + input_.string() + " --tls --json >" + out.string() +
                          " 2>&- <&-";
  const int status = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  expect_agreement(json::parse(slurp(out)), 4);
}

TEST_F(MpcCli, AnEmulatedLinkKeepsAgreementAndCostsItsDelayEveryRound) {
  auto r = run_veil("mpc run --model " + model_.string() + " --input " + input_.string() +
                        " --n 2 --batch 1 --link rtt=20,rate=1000 --json",
                    dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(r.out);
  expect_agreement(j, 2);
  EXPECT_EQ(j["link"]["profile"], "rtt=20,rate=1000");
  EXPECT_TRUE(j["link"]["emulated"].get<bool>());
  EXPECT_DOUBLE_EQ(j["link"]["rtt_ms"].get<double>(), 20);
  EXPECT_DOUBLE_EQ(j["link"]["rate_mbit_s"].get<double>(), 1000);
  // A protocol of R rounds is a chain of R messages, each sent after the previous one arrived,
  // so a batch takes at least R one-way delays (R x RTT / 2). The factor 0.75 leaves room for a
  // round or two of the chain overlapping the previous batch (the rounds are the largest clock
  // advance of the three parties, whose batches do not start at the same instant).
  const double rounds = j["rounds"]["per_batch"].get<double>();
  const double per_batch = j["latency"]["per_batch_s"].get<double>();
  EXPECT_GT(rounds, 10);
  EXPECT_GE(per_batch, 0.75 * rounds * 0.020 / 2) << rounds << " rounds";

  auto bad = run_veil("mpc run --model " + model_.string() + " --link rtt=20,rate=fast", dir_);
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("link profile"), std::string::npos) << bad.err;
}

TEST_F(MpcCli, RunOverTlsOnFashionMnist) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  auto r = run_veil(
      "mpc run --model " + model_.string() + " --data fashion-mnist --n 4 --batch 2 --tls --json",
      dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(r.out);
  expect_agreement(j, 4);
  EXPECT_TRUE(j["tls"].get<bool>());
  EXPECT_TRUE(j.contains("secure_top1"));
}

// A failed session: non-zero exit, each of `expected` in the error, and no party that had to be
// killed for not stopping after the failure.
void expect_stopped_cleanly(const CliResult& r, std::initializer_list<const char*> expected) {
  EXPECT_NE(r.exit_code, 0);
  for (const char* e : expected) EXPECT_NE(r.err.find(e), std::string::npos) << e << "\n" << r.err;
  EXPECT_EQ(r.err.find("did not stop"), std::string::npos) << r.err;
}

TEST_F(MpcCli, AKilledPartyStopsTheOthersWithAClearError) {
  expect_stopped_cleanly(run_many_with(199, "--fault kill:helper:300"),
                         {"helper: killed by signal 9", "client: exit code 1",
                          "server: exit code 1", "link to the helper"});
}

TEST_F(MpcCli, AFrozenPartyIsDetectedByTheIoTimeout) {
  // SIGSTOP: the server's sockets stay open but it sends nothing, not even heartbeats.
  expect_stopped_cleanly(run_many_with(97, "--io-timeout 1500 --fault stop:server:300"),
                         {"nothing from the peer", "client: exit code 1", "helper: exit code 1"});
}

// Three `veil mpc party` processes with hand-written configurations.
std::array<CliResult, 3> run_parties(const std::array<fs::path, 3>& configs,
                                     const std::string& extra) {
  std::array<TempDir, 3> dirs;
  std::array<std::future<CliResult>, 3> f;
  const char* roles[] = {"client", "server", "helper"};
  for (int i = 0; i < 3; ++i)
    f[i] = std::async(std::launch::async, [&, i] {
      return run_veil(std::string("mpc party --role ") + roles[i] + " --config " +
                          configs[i].string() + " " + extra,
                      dirs[i]);
    });
  return {f[0].get(), f[1].get(), f[2].get()};
}

TEST_F(MpcCli, PartiesWithPinnedKeysAndAnImpostor) {
  const char* roles[] = {"client", "server", "helper"};
  std::array<std::string, 3> fps;
  for (int i = 0; i < 3; ++i) {
    auto r = run_veil(
        std::string("mpc keygen --out ") + (dir_ / (std::string(roles[i]) + ".pem")).string(),
        dir_);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    fps[i] = r.out.substr(0, r.out.find('\n'));
    ASSERT_EQ(fps[i].rfind("sha256:", 0), 0u) << fps[i];
  }
  auto h = run_veil("mpc hash --model " + model_.string(), dir_);
  ASSERT_EQ(h.exit_code, 0) << h.err;
  std::string hash = h.out.substr(0, h.out.find('\n'));
  ASSERT_EQ(hash.size(), 64u);

  auto config = [&](const std::array<std::string, 3>& keys,
                    const std::array<std::string, 3>& pins) {
    json c = {{"version", 1},
              {"model", model_.string()},
              {"model_hash", hash},
              {"input", {{"npy", input_.string()}, {"batch", 2}}},
              {"tls", "on"},
              {"io_timeout_ms", 5000},
              {"connect_timeout_ms", 5000}};
    uint16_t ps = free_port(), ph = free_port();
    for (int i = 0; i < 3; ++i)
      c["parties"][roles[i]] = {{"host", "127.0.0.1"},
                                {"port", i == 1   ? ps
                                         : i == 2 ? ph
                                                  : 0},
                                {"key", keys[i]},
                                {"fingerprint", pins[i]}};
    return c;
  };
  std::array<std::string, 3> keys;
  for (int i = 0; i < 3; ++i) keys[i] = (dir_ / (std::string(roles[i]) + ".pem")).string();

  {
    json c = config(keys, fps);
    std::ofstream(dir_ / "good.json") << c.dump(2);
    auto rs = run_parties({dir_ / "good.json", dir_ / "good.json", dir_ / "good.json"}, "--json");
    for (int i = 0; i < 3; ++i) ASSERT_EQ(rs[i].exit_code, 0) << roles[i] << ": " << rs[i].err;
    json cj = json::parse(rs[0].out);
    EXPECT_EQ(cj["predictions"].size(), 4u);
    EXPECT_TRUE(cj["tls"].get<bool>());
    EXPECT_EQ(cj["model_hash"], hash);
  }
  {
    // The server runs with a key the others have not pinned.
    auto k = run_veil("mpc keygen --out " + (dir_ / "evil.pem").string(), dir_);
    ASSERT_EQ(k.exit_code, 0) << k.err;
    std::string evil_fp = k.out.substr(0, k.out.find('\n'));
    json honest = config(keys, fps);
    json evil = honest;
    evil["parties"]["server"]["key"] = (dir_ / "evil.pem").string();
    evil["parties"]["server"]["fingerprint"] = evil_fp;
    std::ofstream(dir_ / "honest.json") << honest.dump(2);
    std::ofstream(dir_ / "evil.json") << evil.dump(2);
    auto rs =
        run_parties({dir_ / "honest.json", dir_ / "evil.json", dir_ / "honest.json"}, "--quiet");
    for (int i = 0; i < 3; ++i) EXPECT_NE(rs[i].exit_code, 0) << roles[i];
    EXPECT_TRUE(rs[0].err.find("not the pinned one") != std::string::npos ||
                rs[2].err.find("not the pinned one") != std::string::npos)
        << rs[0].err << "\n"
        << rs[2].err;
    EXPECT_EQ(rs[0].out.find("image 0"), std::string::npos);  // the client got no result
  }
}

Tensor uniform_tensor(Shape s, uint64_t seed, float lo, float hi) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  Tensor t(s);
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = u(rng);
  return t;
}

// A CNN as an exporter writes one with the ops three-party inference gained for issue 16:
// x[N,1,28,28] -> Conv3x3/2 (pad 1) -> LeakyRelu -> Clip(-0.5, 6) -> Concat(axis 1, PRelu of
// Conv1x1/2 of x) -> AveragePool3/2 (pad 1, counting it) -> GlobalAveragePool -> Flatten -> Gemm ->
// y[N,10].
model::Model widened_cnn() {
  model::Model m;
  model::Graph& g = m.graph;
  g.inputs = {{"x", DType::Float32, {-1, 1, 28, 28}}};
  g.outputs = {{"y", DType::Float32, {-1, 10}}};
  g.initializers["w1"] = uniform_tensor({4, 1, 3, 3}, 1, -0.8f, 0.8f);
  g.initializers["b1"] = uniform_tensor({4}, 2, -0.3f, 0.3f);
  g.initializers["w2"] = uniform_tensor({2, 1, 1, 1}, 3, -1, 1);
  g.initializers["slope"] = uniform_tensor({2, 1, 1}, 6, 0.05f, 0.3f);
  g.initializers["lo"] = Tensor::scalar(-0.5f);
  g.initializers["hi"] = Tensor::scalar(6.0f);
  g.initializers["wf"] = uniform_tensor({10, 6}, 4, -2, 2);
  g.initializers["bf"] = uniform_tensor({10}, 5, -0.1f, 0.1f);
  auto conv1 = node("conv1", "Conv", {"x", "w1", "b1"}, {"c1"});
  conv1.attributes["pads"] = std::vector<int64_t>{1, 1, 1, 1};
  conv1.attributes["strides"] = std::vector<int64_t>{2, 2};
  auto conv2 = node("conv2", "Conv", {"x", "w2"}, {"c2"});
  conv2.attributes["strides"] = std::vector<int64_t>{2, 2};
  auto leaky = node("leaky", "LeakyRelu", {"c1"}, {"l1"});
  leaky.attributes["alpha"] = 0.1f;
  auto cat = node("cat", "Concat", {"k1", "q2"}, {"j1"});
  cat.attributes["axis"] = int64_t{1};
  auto avg = node("avg", "AveragePool", {"j1"}, {"p1"});
  avg.attributes["kernel_shape"] = std::vector<int64_t>{3, 3};
  avg.attributes["strides"] = std::vector<int64_t>{2, 2};
  avg.attributes["pads"] = std::vector<int64_t>{1, 1, 1, 1};
  avg.attributes["count_include_pad"] = int64_t{1};
  auto fc = node("fc", "Gemm", {"f1", "wf", "bf"}, {"y"});
  fc.attributes["transB"] = int64_t{1};
  g.nodes = {conv1,
             leaky,
             node("clip", "Clip", {"l1", "lo", "hi"}, {"k1"}),
             conv2,
             node("prelu", "PRelu", {"c2", "slope"}, {"q2"}),
             cat,
             avg,
             node("gap", "GlobalAveragePool", {"p1"}, {"g1"}),
             node("flat", "Flatten", {"g1"}, {"f1"}),
             fc};
  return m;
}

// Such a model runs (it was refused at its LeakyRelu before), agrees with the float engine, and
// the cost report lists the new layers with their DReLUs: one per element for LeakyRelu and
// PRelu, two for Clip, none for the local Concat and pools.
TEST_F(MpcCli, AnExportedCnnWithTheWidenedOpsRunsAndReportsItsDrelus) {
  const fs::path path = dir_ / "widened.onnx";
  model::save_onnx(widened_cnn(), path);
  auto r = run_veil("mpc run --model " + path.string() + " --input " + input_.string() +
                        " --batch 3 --normalize 0.28,0.35 --json",
                    dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = json::parse(r.out);
  expect_agreement(j, 4);
  std::map<std::string, std::pair<std::string, uint64_t>> layers;
  for (const auto& l : j["layers"])
    layers[l["node"].get<std::string>()] = {l["op"].get<std::string>(),
                                            l["drelus"].get<uint64_t>()};
  const uint64_t elements = 4 * 4 * 14 * 14;  // images x channels x 14 x 14
  EXPECT_EQ(layers["leaky"], std::make_pair(std::string("LeakyRelu"), elements));
  EXPECT_EQ(layers["clip"], std::make_pair(std::string("Clip"), 2 * elements));
  EXPECT_EQ(layers["prelu"], std::make_pair(std::string("PRelu"), elements / 2));
  EXPECT_EQ(layers["cat"], std::make_pair(std::string("Concat"), uint64_t{0}));
  EXPECT_EQ(layers["avg"], std::make_pair(std::string("AveragePool"), uint64_t{0}));
  EXPECT_EQ(layers["gap"], std::make_pair(std::string("GlobalAveragePool"), uint64_t{0}));
  EXPECT_EQ(j["drelus"]["total"].get<uint64_t>(), 3 * elements + elements / 2);
  EXPECT_DOUBLE_EQ(j["drelus"]["per_image"].get<double>(), 3.5 * elements / 4);
  for (const auto& o : j["ops"])
    if (o["op"] == "Clip") EXPECT_EQ(o["drelus"].get<uint64_t>(), 2 * elements);
  // Nothing but the comparisons talks: the local layers send nothing.
  for (const auto& l : j["layers"])
    if (l["op"] == "Concat") EXPECT_EQ(l["bytes_total"].get<uint64_t>(), 0u);
}

// A model exported without veil's normalisation metadata runs with `--normalize MEAN,STD`
// exactly as the same model with the metadata: the client normalises before sharing, the
// plaintext reference and the server's overflow check assume the same.
TEST_F(MpcCli, NormalizeStandsInForTheStrippedMetadata) {
  model::Model m = model::load_onnx(model_);
  m.metadata.clear();
  const fs::path bare = dir_ / "bare.onnx";
  model::save_onnx(m, bare);
  const std::string tail = " --input " + input_.string() + " --batch 2 --json";
  auto with_meta = run_veil("mpc run --model " + model_.string() + tail, dir_);
  auto with_flag =
      run_veil("mpc run --model " + bare.string() + " --normalize 0.28,0.35" + tail, dir_);
  auto without = run_veil("mpc run --model " + bare.string() + tail, dir_);
  ASSERT_EQ(with_meta.exit_code, 0) << with_meta.err;
  ASSERT_EQ(with_flag.exit_code, 0) << with_flag.err;
  ASSERT_EQ(without.exit_code, 0) << without.err;
  const json a = json::parse(with_meta.out), b = json::parse(with_flag.out),
             c = json::parse(without.out);
  expect_agreement(b, 4);
  EXPECT_EQ(a["secure_predictions"], b["secure_predictions"]);
  EXPECT_EQ(a["plain_predictions"], b["plain_predictions"]);
  // The overflow check's headroom depends on the normalised input range.
  EXPECT_EQ(a["range_check"], b["range_check"]);
  EXPECT_NE(a["range_check"], c["range_check"]);
  auto bad = run_veil("mpc run --model " + bare.string() + " --normalize 0.5" + tail, dir_);
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("MEAN,STD"), std::string::npos) << bad.err;
}

// The overflow check assumes raw inputs in [0, 1] unless told otherwise; an image outside is
// refused (the check would not cover it), and `--input-range` declares another range.
TEST_F(MpcCli, InputsOutsideTheCheckedRangeAreRefusedUnlessDeclared) {
  Tensor x({2, 1, 28, 28});
  for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] = i % 97 == 0 ? 1.5f : 0.5f;
  data::write_npy(dir_ / "wide.npy", x);
  const std::string base =
      "mpc run --model " + model_.string() + " --input " + (dir_ / "wide.npy").string();
  auto r = run_veil(base, dir_);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("outside [0, 1], the input range the server's overflow check assumed"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  r = run_veil(base + " --input-range 0,1.5 --json", dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(r.out);
  expect_agreement(j, 2);
  EXPECT_NE(j["range_check"].get<std::string>().find("fixed point f = 12"), std::string::npos);
}

// Issue 14: a model whose last layer is scaled by 1e12 overflows Z_2^64 in the product before
// truncation. It used to run to the end with wrong logits and exit 0; now `mpc run` refuses it
// with one line naming the layer, and in a networked session every party exits non-zero with
// the server's reason.
TEST_F(MpcCli, AModelThatOverflowsTheRingIsRefusedNamingTheLayer) {
  model::Model m = model::load_onnx(model_);
  for (const auto& n : m.graph.nodes)
    if (n.name == "fc3")
      for (size_t i = 1; i < n.inputs.size(); ++i)
        for (float& w : m.graph.initializers.at(n.inputs[i]).floats()) w *= 1e12f;
  const fs::path scaled = dir_ / "scaled.onnx";
  model::save_onnx(m, scaled);

  auto r = run_veil(
      "mpc run --model " + scaled.string() + " --input " + input_.string() + " --json", dir_);
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_EQ(r.err.rfind("veil: error: node 'fc3' (Gemm) overflows Z_2^64 at frac_bits 12", 0), 0u)
      << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_EQ(r.out, "");

  const char* roles[] = {"client", "server", "helper"};
  json c = {{"version", 1},
            {"model", scaled.string()},
            {"input", {{"npy", input_.string()}, {"batch", 2}}},
            {"tls", "off"},
            {"io_timeout_ms", 5000},
            {"connect_timeout_ms", 5000}};
  const uint16_t ps = free_port(), ph = free_port();
  for (int i = 0; i < 3; ++i)
    c["parties"][roles[i]] = {{"host", "127.0.0.1"}, {"port", i == 1 ? ps : i == 2 ? ph : 0}};
  std::ofstream(dir_ / "scaled.json") << c.dump(2);
  const fs::path cfg = dir_ / "scaled.json";
  auto rs = run_parties({cfg, cfg, cfg}, "--quiet");
  for (int i = 0; i < 3; ++i) EXPECT_NE(rs[i].exit_code, 0) << roles[i];
  EXPECT_NE(rs[0].err.find("the server refused the model: node 'fc3' (Gemm) overflows"),
            std::string::npos)
      << rs[0].err;
  EXPECT_NE(rs[1].err.find("node 'fc3' (Gemm) overflows"), std::string::npos) << rs[1].err;
  EXPECT_EQ(rs[0].out.find("image 0"), std::string::npos);  // the client got no result
}

}  // namespace
}  // namespace veil::testing
