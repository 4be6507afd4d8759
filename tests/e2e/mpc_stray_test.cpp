// End-to-end: a listening `veil mpc party` that gets stray connections (closed at once,
// garbage, silent) before its real peers refuses each with one line and runs the session.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <future>
#include <nlohmann/json.hpp>

#include "cli_runner.hpp"
#include "mpc_inputs.hpp"

namespace veil::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;

// A connected socket to 127.0.0.1:port, retried until the party listens; -1 after 30 s.
int connect_when_listening(uint16_t port) {
  int fd = -1;
  wait_until(
      [&] {
        fd = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons(port);
        if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) return true;
        ::close(fd);
        fd = -1;
        return false;
      },
      30s);
  return fd;
}

class StrayConnections : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    model_ = save_lenet5(dir_ / "lenet5.onnx");
    input_ = save_images(dir_ / "x.npy", 2, 199);
  }
  TempDir dir_;
  fs::path model_, input_;
};

// The server and the helper listen; before the client starts, each gets a connection that
// closes at once, one that sends garbage and closes, and one that stays open and says nothing
// for the whole session. Each is refused with one line and the session then runs normally.
TEST_P(StrayConnections, DoNotKillAListeningParty) {
  const bool tls = GetParam();
  const char* roles[] = {"client", "server", "helper"};
  auto h = run_veil("mpc hash --model " + model_.string(), dir_);
  ASSERT_EQ(h.exit_code, 0) << h.err;
  json c = {{"version", 1},
            {"model", model_.string()},
            {"model_hash", h.out.substr(0, h.out.find('\n'))},
            {"input", {{"npy", input_.string()}, {"batch", 2}}},
            {"tls", tls ? "on" : "off"},
            {"io_timeout_ms", 20000},
            {"connect_timeout_ms", 30000}};
  const uint16_t ports[] = {0, free_port(), free_port()};
  for (int i = 0; i < 3; ++i) {
    c["parties"][roles[i]] = {{"host", "127.0.0.1"}, {"port", ports[i]}};
    if (!tls) continue;
    const std::string key = (dir_ / (std::string(roles[i]) + ".pem")).string();
    auto k = run_veil("mpc keygen --out " + key, dir_);
    ASSERT_EQ(k.exit_code, 0) << k.err;
    c["parties"][roles[i]]["key"] = key;
    c["parties"][roles[i]]["fingerprint"] = k.out.substr(0, k.out.find('\n'));
  }
  std::ofstream(dir_ / "parties.json") << c.dump(2);

  std::array<TempDir, 3> dirs;
  auto party = [&](int i) {
    return std::async(std::launch::async, [&, i] {
      return run_veil(std::string("mpc party --role ") + roles[i] + " --config " +
                          (dir_ / "parties.json").string(),
                      dirs[i]);
    });
  };
  auto server = party(1), helper = party(2);
  std::vector<int> silent;
  for (int i : {1, 2}) {
    int fd = connect_when_listening(ports[i]);
    ASSERT_GE(fd, 0) << roles[i] << " never listened";
    ::close(fd);
    fd = connect_when_listening(ports[i]);
    ASSERT_GE(fd, 0);
    const char garbage[] = "GET / HTTP/1.0\r\n\r\n\x16\x03\x01\xff\xff garbage garbage garbage";
    ASSERT_GT(::send(fd, garbage, sizeof(garbage), MSG_NOSIGNAL), 0);
    ::close(fd);
    silent.push_back(connect_when_listening(ports[i]));
  }
  auto client = party(0);
  std::array<CliResult, 3> rs = {client.get(), server.get(), helper.get()};
  for (int fd : silent) ::close(fd);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(rs[i].exit_code, 0) << roles[i] << ": " << rs[i].err;
  EXPECT_NE(rs[0].out.find("image 1: class"), std::string::npos) << rs[0].out;
  for (int i : {1, 2}) {
    // One line per refused connection (3), and the real peers' links came up.
    size_t lines = 0;
    for (size_t p = rs[i].err.find("refused a connection"); p != std::string::npos;
         p = rs[i].err.find("refused a connection", p + 1))
      ++lines;
    EXPECT_EQ(lines, 3u) << roles[i] << ":\n" << rs[i].err;
    EXPECT_NE(rs[i].err.find("links up"), std::string::npos) << rs[i].err;
  }
}

INSTANTIATE_TEST_SUITE_P(PlainAndTls, StrayConnections, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "Tls" : "Plain"; });

}  // namespace
}  // namespace veil::testing
