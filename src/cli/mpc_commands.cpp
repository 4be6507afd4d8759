// veil mpc party | run | keygen | hash: three-party secure inference over TCP (or TLS 1.3).
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <thread>

#include "common.hpp"
#include "veil/cli/commands.hpp"
#include "veil/core/error.hpp"
#include "veil/core/io.hpp"
#include "veil/data/dataset.hpp"
#include "veil/data/npy.hpp"
#include "veil/mpc/link_profile.hpp"
#include "veil/mpc/party_session.hpp"
#include "veil/mpc/private_compare.hpp"
#include "veil/mpc/public_model.hpp"
#include "veil/mpc/ring_kernels.hpp"
#include "veil/mpc/tcp_channel.hpp"
#include "veil/mpc/tls.hpp"
#include "veil/nn/executor.hpp"
#include "veil/nn/preprocess.hpp"

namespace veil::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

// The reference implementation's approximate-DReLU setting (yg320/secure_inference const.py).
constexpr int kApproxLsbIgnored = 5;
constexpr int kApproxBitsIgnored = 48;
// A failing party's peers must stop within io_timeout (10 s by default); `mpc run` allows 2 s
// of slack before it kills them and reports a hang.
constexpr auto kStopSlack = std::chrono::seconds(2);

// ---------------------------------------------------------------------------------------------
// mpc party

struct PartyArgs {
  std::string role;
  std::string config;
  std::string report;
  std::string output;
  std::string data;
  std::string input;
  std::string link;
  int64_t n = -1;
  int64_t batch = 0;
  int listen_fd = -1;
  bool json = false;
  bool quiet = false;
};

void run_party_command(const PartyArgs& a) {
  mpc::Role role = mpc::role_from_name(a.role);
  mpc::PartyConfig cfg = mpc::load_party_config(a.config);
  if (!a.data.empty()) cfg.data = a.data, cfg.npy.clear();
  if (!a.input.empty()) cfg.npy = a.input;
  if (a.n >= 0) cfg.n = a.n;
  if (a.batch > 0) cfg.batch = a.batch;
  if (!a.link.empty()) cfg.link = mpc::parse_link_profile(a.link);
  mpc::PartyRunOptions opt;
  opt.listen_fd = a.listen_fd;
  if (!a.quiet) opt.log = [](const std::string& s) { std::cerr << s << std::endl; };
  mpc::PartyReport r = mpc::run_party(role, cfg, opt);
  json j = r.to_json();
  if (!a.report.empty()) write_file_atomic(a.report, j.dump(1));
  if (role == mpc::Role::Client && !a.output.empty()) data::write_npy(a.output, r.logits);

  int64_t n = static_cast<int64_t>(r.predictions.size());
  int64_t correct = 0;
  for (int64_t i = 0; i < n && i < static_cast<int64_t>(r.labels.size()); ++i)
    correct += r.predictions[i] == r.labels[i];
  if (a.json) {
    json out = {{"role", a.role},       {"model_hash", r.model_hash},
                {"tls", r.tls},         {"seconds", r.run_seconds},
                {"rounds", r.rounds},   {"bytes_sent", r.run_stats.bytes_sent},
                {"link", r.link.spec()}};
    if (role == mpc::Role::Client) {
      out["images"] = n;
      out["predictions"] = r.predictions;
      if (!r.labels.empty()) out["top1"] = n ? static_cast<double>(correct) / n : 0.0;
    }
    print_json(out);
    return;
  }
  const std::string link_note =
      r.link.enabled() ? " (emulated link " + r.link.spec() + ": " + r.link.describe() + ")" : "";
  if (role != mpc::Role::Client) {
    std::cout << fmt::format("{}: done, {} batches, {} sent, {} rounds, {:.3f} s{}\n", a.role,
                             r.batches.size(), human_count(r.run_stats.bytes_sent) + "B", r.rounds,
                             r.run_seconds, link_note);
    return;
  }
  for (int64_t i = 0; i < n; ++i) {
    std::cout << "image " << i << ": class " << r.predictions[i];
    if (i < static_cast<int64_t>(r.labels.size())) std::cout << " (label " << r.labels[i] << ")";
    std::cout << "\n";
  }
  if (!r.labels.empty())
    std::cout << fmt::format("secure top-1: {:.2f} % ({}/{})\n", n ? 100.0 * correct / n : 0.0,
                             correct, n);
  std::cout << fmt::format("{} images in {:.3f} s ({:.2f} ms/image), {} rounds, {} sent{}\n", n,
                           r.run_seconds, n ? 1000 * r.run_seconds / n : 0.0, r.rounds,
                           human_count(r.run_stats.bytes_sent) + "B", link_note);
}

// ---------------------------------------------------------------------------------------------
// mpc run

struct RunArgs {
  std::string model;
  std::string data = "fashion-mnist";
  std::string input;
  int64_t n = 100;
  int64_t offset = 0;
  int64_t batch = 10;
  int frac_bits = 12;
  bool approx = false;
  int lsb_ignored = -1;
  int bits_ignored = -1;
  bool tls = false;
  int threads = 1;
  int64_t io_timeout_ms = 10000;
  std::string link = "none";  // emulated link profile (link_profile.hpp)
  bool json = false;
  bool quiet = false;
  std::string keep;   // keep the session directory (configs, logs, reports) here
  std::string fault;  // test hook: "kill:<role>:<ms>" or "stop:<role>:<ms>"
};

std::string self_exe() {
  std::error_code ec;
  fs::path p = fs::read_symlink("/proc/self/exe", ec);
  if (ec) throw IoError("cannot find the veil executable (/proc/self/exe)");
  return p.string();
}

struct Child {
  mpc::Role role;
  pid_t pid = -1;
  bool running = false;
  int status = 0;
  Clock::time_point ended;
  fs::path log, report;
};

// Last "veil: error:" line of a party's log, or its last line.
std::string party_error(const fs::path& log) {
  std::ifstream in(log);
  std::string line, last, err;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    last = line;
    if (line.find("error:") != std::string::npos) err = line;
  }
  return err.empty() ? last : err;
}

std::string describe_exit(const Child& c) {
  if (WIFSIGNALED(c.status)) return fmt::format("killed by signal {}", WTERMSIG(c.status));
  if (WIFEXITED(c.status)) return fmt::format("exit code {}", WEXITSTATUS(c.status));
  return "stopped";
}

bool failed(const Child& c) { return !WIFEXITED(c.status) || WEXITSTATUS(c.status) != 0; }

json read_json_file(const fs::path& p) {
  std::vector<uint8_t> b = read_file(p, uint64_t{1} << 30);
  json j = json::parse(b.begin(), b.end(), nullptr, false);
  if (j.is_discarded()) throw MalformedInput(p.string() + ": not JSON");
  return j;
}

void run_local(const RunArgs& a) {
  if (a.model.empty()) throw InvalidArgument("--model is required");
  const mpc::LinkProfile link = mpc::parse_link_profile(a.link);
  const std::array<mpc::Role, 3> roles = {mpc::Role::Client, mpc::Role::Server, mpc::Role::Helper};

  // Plaintext reference on the same images (the original, unfolded model).
  model::Model model = load_model(a.model);
  model::Model folded = mpc::load_model_for_mpc(a.model);
  auto hash = mpc::structure_hash(folded.graph);
  Tensor images;
  std::vector<int32_t> labels;
  if (!a.input.empty()) {
    images = data::read_npy(a.input);
    if (images.rank() < 2) throw InvalidArgument(a.input + ": expected [N, ...]");
    int64_t total = images.shape()[0];
    int64_t n = a.n > 0 ? std::min(a.n, total - a.offset) : total - a.offset;
    if (a.offset > total || n <= 0) throw InvalidArgument("no images selected from " + a.input);
    int64_t per = images.numel() / total;
    Shape s = images.shape();
    s[0] = n;
    images = Tensor::from_floats(s, std::vector<float>(images.data() + a.offset * per,
                                                       images.data() + (a.offset + n) * per));
  } else {
    data::Dataset ds = data::load_dataset(a.data, data::Split::Test, a.n > 0 ? a.offset + a.n : 0);
    if (a.offset >= ds.size()) throw InvalidArgument("--offset beyond the dataset");
    images = ds.batch(a.offset, ds.size() - a.offset);
    labels = ds.batch_labels(a.offset, ds.size() - a.offset);
  }
  const int64_t n = images.shape()[0];
  std::vector<int64_t> plain_pred;
  std::vector<std::vector<float>> plain_logits;
  {
    Tensor x = images.reshaped(images.shape());
    nn::normalization_of(model).apply(x);
    nn::Executor exec(model);
    int64_t per = x.numel() / n;
    for (int64_t b = 0; b < n; b += 256) {
      int64_t m = std::min<int64_t>(256, n - b);
      Shape s = x.shape();
      s[0] = m;
      Tensor xb =
          Tensor::from_floats(s, std::vector<float>(x.data() + b * per, x.data() + (b + m) * per));
      Tensor y = exec.forward({xb})[0];
      int64_t k = y.numel() / m;
      for (int64_t i = 0; i < m; ++i) {
        const float* row = y.data() + i * k;
        plain_logits.emplace_back(row, row + k);
        plain_pred.push_back(std::max_element(row, row + k) - row);
      }
    }
  }

  // Session directory: config, keys, logs, reports.
  fs::path dir;
  std::unique_ptr<void, void (*)(void*)> cleanup(nullptr, [](void*) {});
  if (!a.keep.empty()) {
    dir = fs::absolute(a.keep);
    fs::create_directories(dir);
  } else {
    std::string tmpl = (fs::temp_directory_path() / "veil_mpc_XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw IoError("cannot create a temporary directory");
    dir = tmpl;
  }
  struct DirGuard {
    fs::path d;
    bool remove;
    ~DirGuard() {
      std::error_code ec;
      if (remove) fs::remove_all(d, ec);
    }
  } guard{dir, a.keep.empty()};

  // The listening sockets are bound here (ephemeral ports, no race) and inherited.
  mpc::TcpListener server_listener("127.0.0.1", 0), helper_listener("127.0.0.1", 0);
  mpc::PartyConfig cfg;
  cfg.parties[1].port = server_listener.port();
  cfg.parties[2].port = helper_listener.port();
  cfg.model = fs::absolute(a.model).string();
  cfg.model_hash = mpc::to_hex(hash.data(), hash.size());
  if (!a.input.empty()) {
    cfg.npy = fs::absolute(a.input).string();
  } else {
    cfg.data = a.data;
  }
  cfg.n = n;
  cfg.offset = a.offset;
  cfg.batch = a.batch;
  cfg.frac_bits = a.frac_bits;
  cfg.drelu.num_lsb_to_ignore = a.lsb_ignored >= 0 ? a.lsb_ignored
                                : a.approx         ? kApproxLsbIgnored
                                                   : 0;
  cfg.drelu.comparison_bits_ignored = a.bits_ignored >= 0 ? a.bits_ignored
                                      : a.approx          ? kApproxBitsIgnored
                                                          : 0;
  cfg.session_params().validate();
  cfg.threads = a.threads;
  cfg.io_timeout_ms = a.io_timeout_ms;
  cfg.tls = a.tls ? mpc::TlsMode::On : mpc::TlsMode::Off;
  cfg.link = link;
  if (a.tls) {
    for (mpc::Role r : roles) {
      auto id = mpc::TlsIdentity::generate();
      fs::path key = dir / (std::string(mpc::role_name(r)) + ".pem");
      id->save(key);
      cfg.parties[static_cast<size_t>(r)].key = key.string();
      cfg.parties[static_cast<size_t>(r)].fingerprint = id->fingerprint();
    }
  }
  fs::path config_path = dir / "parties.json";
  write_file_atomic(config_path, cfg.to_json().dump(2));

  // Fault injection (tests): kill or freeze one party after a delay.
  int fault_role = -1;
  int fault_signal = 0;
  std::chrono::milliseconds fault_after{0};
  if (!a.fault.empty()) {
    auto p1 = a.fault.find(':'), p2 = a.fault.rfind(':');
    if (p1 == std::string::npos || p2 == p1) throw InvalidArgument("--fault kill|stop:<role>:<ms>");
    std::string what = a.fault.substr(0, p1);
    fault_role = static_cast<int>(mpc::role_from_name(a.fault.substr(p1 + 1, p2 - p1 - 1)));
    fault_after = std::chrono::milliseconds(std::stoll(a.fault.substr(p2 + 1)));
    if (what == "kill")
      fault_signal = SIGKILL;
    else if (what == "stop")
      fault_signal = SIGSTOP;
    else
      throw InvalidArgument("--fault kill|stop:<role>:<ms>");
  }

  const std::string exe = self_exe();
  std::array<Child, 3> kids;
  const auto t0 = Clock::now();
  for (mpc::Role r : roles) {
    Child& c = kids[static_cast<size_t>(r)];
    c.role = r;
    c.log = dir / (std::string(mpc::role_name(r)) + ".log");
    c.report = dir / (std::string(mpc::role_name(r)) + ".json");
    int lfd = r == mpc::Role::Server   ? server_listener.fd()
              : r == mpc::Role::Helper ? helper_listener.fd()
                                       : -1;
    std::vector<std::string> args = {exe,
                                     "mpc",
                                     "party",
                                     "--role",
                                     mpc::role_name(r),
                                     "--config",
                                     config_path.string(),
                                     "--report",
                                     c.report.string()};
    if (lfd >= 0) {
      args.push_back("--listen-fd");
      args.push_back(std::to_string(lfd));
    }
    std::vector<char*> argv;
    for (auto& s : args) argv.push_back(s.data());
    argv.push_back(nullptr);
    int log_fd = ::open(c.log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (log_fd < 0) throw IoError("cannot create " + c.log.string());
    pid_t pid = ::fork();
    if (pid < 0) throw IoError("fork failed");
    if (pid == 0) {
      // Only async-signal-safe calls between fork and exec.
      ::dup2(log_fd, 1);
      ::dup2(log_fd, 2);
      if (lfd >= 0) ::fcntl(lfd, F_SETFD, 0);  // inherit the listening socket
      ::execv(exe.c_str(), argv.data());
      ::_exit(127);
    }
    ::close(log_fd);
    c.pid = pid;
    c.running = true;
  }

  // Supervise: a party that fails must make the others stop within io_timeout.
  bool fault_done = fault_role < 0;
  std::optional<Clock::time_point> first_failure;
  std::string hung;
  for (;;) {
    bool any_running = false;
    for (Child& c : kids) {
      if (!c.running) continue;
      int st = 0;
      pid_t r = ::waitpid(c.pid, &st, WNOHANG);
      if (r == c.pid) {
        c.running = false;
        c.status = st;
        c.ended = Clock::now();
        if (failed(c) && !first_failure) first_failure = c.ended;
      } else {
        any_running = true;
      }
    }
    if (!any_running) break;
    auto now = Clock::now();
    if (!fault_done && now - t0 >= fault_after) {
      fault_done = true;
      Child& c = kids[static_cast<size_t>(fault_role)];
      if (c.running) {
        ::kill(c.pid, fault_signal);
        if (fault_signal == SIGSTOP) first_failure = now;
      }
    }
    // A failing party flushes its queued frames on close, which an emulated link delays.
    if (first_failure && now - *first_failure > std::chrono::milliseconds(a.io_timeout_ms) +
                                                    kStopSlack + link.one_way_delay) {
      for (Child& c : kids)
        if (c.running) {
          // A party frozen by --fault stop is expected to be killed here; others are hangs.
          if (!(fault_signal == SIGSTOP && static_cast<int>(c.role) == fault_role))
            hung += std::string(hung.empty() ? "" : ", ") + mpc::role_name(c.role);
          ::kill(c.pid, SIGKILL);
        }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const double wall = std::chrono::duration<double>(Clock::now() - t0).count();

  bool any_failed = false;
  for (const Child& c : kids) any_failed = any_failed || failed(c);
  if (any_failed) {
    std::string msg = "secure inference failed:";
    for (const Child& c : kids) {
      std::string what = failed(c) ? describe_exit(c) : "finished";
      std::string err = party_error(c.log);
      msg += fmt::format("\n  {}: {}", mpc::role_name(c.role), what);
      if (first_failure && failed(c))
        msg += fmt::format(" ({:.2f} s after the first failure)",
                           std::chrono::duration<double>(c.ended - *first_failure).count());
      if (!err.empty() && failed(c) && !WIFSIGNALED(c.status)) msg += ": " + err;
    }
    if (!hung.empty())
      msg += fmt::format("\n  did not stop within {} ms of the failure: {}", a.io_timeout_ms, hung);
    if (a.keep.empty()) msg += "\n  (run with --keep DIR to keep the parties' logs)";
    throw ProtocolError(msg);
  }

  // Merge the three reports.
  std::array<json, 3> rep;
  for (mpc::Role r : roles)
    rep[static_cast<size_t>(r)] = read_json_file(kids[static_cast<size_t>(r)].report);
  const json& cj = rep[0];
  auto secure_pred = cj["predictions"].get<std::vector<int64_t>>();
  auto secure_logits = cj["logits"].get<std::vector<std::vector<float>>>();
  if (static_cast<int64_t>(secure_pred.size()) != n)
    throw ProtocolError("the client reported a wrong number of predictions");
  int64_t agree = 0, secure_correct = 0, plain_correct = 0;
  double max_diff = 0;
  for (int64_t i = 0; i < n; ++i) {
    agree += secure_pred[i] == plain_pred[i];
    if (!labels.empty()) {
      secure_correct += secure_pred[i] == labels[i];
      plain_correct += plain_pred[i] == labels[i];
    }
    for (size_t k = 0; k < plain_logits[i].size() && k < secure_logits[i].size(); ++k)
      max_diff = std::max(max_diff,
                          static_cast<double>(std::fabs(plain_logits[i][k] - secure_logits[i][k])));
  }
  const size_t nb = cj["batches"].size();
  double batch_seconds = 0;
  double rounds_sum = 0;
  for (size_t b = 0; b < nb; ++b) {
    batch_seconds += cj["batches"][b]["seconds"].get<double>();
    uint32_t rmax = 0;
    for (const auto& r : rep) rmax = std::max(rmax, r["batches"][b]["rounds"].get<uint32_t>());
    rounds_sum += rmax;
  }
  json out;
  out["model"] = a.model;
  out["model_hash"] = cfg.model_hash;
  out["images"] = n;
  out["batch"] = a.batch;
  out["batches"] = nb;
  out["frac_bits"] = cfg.frac_bits;
  out["drelu"] = {{"num_lsb_to_ignore", cfg.drelu.num_lsb_to_ignore},
                  {"comparison_bits_ignored", cfg.drelu.comparison_bits_ignored}};
  out["tls"] = a.tls;
  out["kernels"] = {{"ring_gemm", mpc::gemm_u64_kernel_name()},
                    {"private_compare", mpc::compare_kernel_name()}};
  out["link"] = {{"profile", link.spec()},
                 {"emulated", link.enabled()},
                 {"description", link.describe()},
                 {"rtt_ms", link.rtt_ms()},
                 {"rate_mbit_s", link.bits_per_second > 0 ? json(link.rate_mbit_s()) : json()}};
  out["agreement"] = n ? static_cast<double>(agree) / n : 0.0;
  out["agreeing_images"] = agree;
  out["max_logit_diff"] = max_diff;
  if (!labels.empty()) {
    out["secure_top1"] = static_cast<double>(secure_correct) / n;
    out["plain_top1"] = static_cast<double>(plain_correct) / n;
  }
  out["secure_predictions"] = secure_pred;
  out["plain_predictions"] = plain_pred;
  out["latency"] = {{"per_batch_s", nb ? batch_seconds / nb : 0.0},
                    {"per_image_s", n ? cj["run_seconds"].get<double>() / n : 0.0},
                    {"run_s", cj["run_seconds"].get<double>()},
                    {"setup_s", cj["setup_seconds"].get<double>()},
                    {"wall_s", wall}};
  out["rounds"] = {{"per_batch", nb ? rounds_sum / nb : 0.0}, {"total", rounds_sum}};
  json parties = json::object();
  for (mpc::Role r : roles) {
    const json& pj = rep[static_cast<size_t>(r)];
    uint64_t sent = pj["run"]["bytes_sent"].get<uint64_t>();
    parties[mpc::role_name(r)] = {{"bytes_sent", sent},
                                  {"bytes_sent_per_image", n ? static_cast<double>(sent) / n : 0.0},
                                  {"messages_sent", pj["run"]["messages_sent"]},
                                  {"setup_bytes_sent", pj["setup"]["bytes_sent"]},
                                  {"rounds", pj["rounds"]},
                                  {"seconds", pj["run_seconds"]}};
  }
  out["parties"] = parties;
  // By layer (graph order) and by op type: bytes each party sent, rounds (max over parties),
  // wall time (largest over parties).
  json layers = json::array();
  std::map<std::string, json> by_op;
  std::vector<std::string> op_order;
  const size_t nl = cj["layers"].size();
  for (size_t i = 0; i < nl; ++i) {
    json l = {{"node", cj["layers"][i]["node"]}, {"op", cj["layers"][i]["op"]}};
    uint64_t total = 0;
    uint32_t rounds = 0;
    double secs = 0;
    for (mpc::Role r : roles) {
      const json& li = rep[static_cast<size_t>(r)]["layers"][i];
      uint64_t b = li["bytes_sent"].get<uint64_t>();
      l["bytes_sent"][mpc::role_name(r)] = b;
      total += b;
      rounds = std::max(rounds, li["rounds"].get<uint32_t>());
      secs = std::max(secs, li["seconds"].get<double>());
    }
    l["bytes_total"] = total;
    l["rounds"] = rounds;
    l["rounds_per_batch"] = nb ? static_cast<double>(rounds) / nb : 0.0;
    l["seconds"] = secs;
    std::string op = l["op"].get<std::string>();
    if (!by_op.count(op)) {
      op_order.push_back(op);
      by_op[op] = {
          {"op", op},         {"count", 0},
          {"bytes_total", 0}, {"rounds", 0},
          {"seconds", 0.0},   {"bytes_sent", {{"client", 0}, {"server", 0}, {"helper", 0}}}};
    }
    json& o = by_op[op];
    o["count"] = o["count"].get<int>() + 1;
    o["bytes_total"] = o["bytes_total"].get<uint64_t>() + total;
    o["rounds"] = o["rounds"].get<uint64_t>() + rounds;
    o["seconds"] = o["seconds"].get<double>() + secs;
    for (mpc::Role r : roles) {
      const char* rn = mpc::role_name(r);
      o["bytes_sent"][rn] =
          o["bytes_sent"][rn].get<uint64_t>() + l["bytes_sent"][rn].get<uint64_t>();
    }
    layers.push_back(std::move(l));
  }
  out["layers"] = layers;
  out["ops"] = json::array();
  for (const auto& op : op_order) out["ops"].push_back(by_op[op]);

  if (a.json) {
    print_json(out);
    return;
  }
  std::cout << fmt::format(
      "model {} (structure {}), {} images, batch {}, f = {}, DReLU s = {} k = {}{}\n", a.model,
      cfg.model_hash.substr(0, 16), n, a.batch, cfg.frac_bits, cfg.drelu.num_lsb_to_ignore,
      cfg.drelu.comparison_bits_ignored, a.tls ? ", TLS 1.3" : "");
  std::cout << (link.enabled() ? fmt::format("link: {} ({}), emulated in-process\n", link.spec(),
                                             link.describe())
                               : std::string("link: loopback, not shaped\n"));
  std::cout << fmt::format("kernels: ring GEMM {}, PrivateCompare {}\n",
                           mpc::gemm_u64_kernel_name(), mpc::compare_kernel_name());
  std::cout << fmt::format(
      "secure top-1 = plaintext top-1 on {}/{} images ({:.2f} %), max |logit diff| {:.4g}\n", agree,
      n, n ? 100.0 * agree / n : 0.0, max_diff);
  if (!labels.empty())
    std::cout << fmt::format("accuracy: secure {:.2f} %, plaintext {:.2f} %\n",
                             100.0 * secure_correct / n, 100.0 * plain_correct / n);
  std::cout << fmt::format(
      "latency: {:.1f} ms/batch, {:.2f} ms/image ({:.2f} s for {} batches; setup {:.2f} s)\n",
      1000 * out["latency"]["per_batch_s"].get<double>(),
      1000 * out["latency"]["per_image_s"].get<double>(), out["latency"]["run_s"].get<double>(), nb,
      out["latency"]["setup_s"].get<double>());
  std::cout << fmt::format("rounds: {:.1f} per batch\n", out["rounds"]["per_batch"].get<double>());
  for (mpc::Role r : roles) {
    const json& p = parties[mpc::role_name(r)];
    std::cout << fmt::format("  {:<7} sent {:>10}B ({:>9}B/image) in {} messages\n",
                             mpc::role_name(r), human_count(p["bytes_sent"].get<double>()),
                             human_count(p["bytes_sent_per_image"].get<double>()),
                             p["messages_sent"].get<uint64_t>());
  }
  auto row = [&](const json& l, const std::string& name) {
    std::cout << fmt::format(
        "  {:<20} {:<17} {:>10} {:>10} {:>10} {:>7.1f} {:>9.1f}\n", name,
        l["op"].get<std::string>(), human_count(l["bytes_sent"]["client"].get<double>()) + "B",
        human_count(l["bytes_sent"]["server"].get<double>()) + "B",
        human_count(l["bytes_sent"]["helper"].get<double>()) + "B",
        nb ? l["rounds"].get<double>() / nb : 0.0, 1000 * l["seconds"].get<double>());
  };
  std::cout << fmt::format(
      "\nby layer (bytes and ms: all batches; rounds per batch)\n  {:<20} {:<17} {:>10} {:>10} "
      "{:>10} {:>7} {:>9}\n",
      "node", "op", "client", "server", "helper", "rnd/b", "ms");
  for (const auto& l : layers) row(l, l["node"].get<std::string>());
  std::cout << fmt::format("\nby operation\n  {:<20} {:<17} {:>10} {:>10} {:>10} {:>7} {:>9}\n",
                           "count", "op", "client", "server", "helper", "rnd/b", "ms");
  for (const auto& o : out["ops"]) row(o, std::to_string(o["count"].get<int>()) + "x");
}

// ---------------------------------------------------------------------------------------------

void run_keygen(const std::string& out) {
  auto id = mpc::TlsIdentity::generate();
  id->save(out);
  std::cout << id->fingerprint() << "\n";
}

void run_hash(const std::string& path, bool as_json) {
  model::Model m = mpc::load_model_for_mpc(path);
  auto h = mpc::structure_hash(m.graph);
  std::string hex = mpc::to_hex(h.data(), h.size());
  if (as_json)
    print_json({{"model", path}, {"model_hash", hex}});
  else
    std::cout << hex << "\n";
}

}  // namespace

void add_mpc_commands(CLI::App& app) {
  auto* mpc = app.add_subcommand("mpc", "Three-party secure inference (SecureNN setting)");
  mpc->require_subcommand(1);

  auto pa = std::make_shared<PartyArgs>();
  auto* party =
      mpc->add_subcommand("party", "Run one party (client, server or helper) of a session");
  party->add_option("--role", pa->role, "client | server | helper")->required();
  party->add_option("--config", pa->config, "Session configuration (JSON)")->required();
  party->add_option("--report", pa->report, "Write this party's full report (JSON) here");
  party->add_option("--output", pa->output, "Client: write the logits to this .npy file");
  party->add_option("--data", pa->data, "Client: dataset (overrides the config)");
  party->add_option("--input", pa->input, "Client: .npy input tensor (overrides the config)");
  party->add_option("--n", pa->n, "Client: number of images (overrides the config)");
  party->add_option("--batch", pa->batch, "Client: batch size (overrides the config)");
  party->add_option("--link", pa->link,
                    "Emulated link for this party's sends: lan | wan | none | "
                    "rtt=<ms>,rate=<Mbit/s> (overrides the config)");
  party->add_option("--listen-fd", pa->listen_fd, "Inherited listening socket")->group("");
  party->add_flag("--json", pa->json, "Machine-readable summary on stdout");
  party->add_flag("--quiet", pa->quiet, "No progress output");
  party->callback([pa] { run_party_command(*pa); });

  auto ra = std::make_shared<RunArgs>();
  auto* run = mpc->add_subcommand(
      "run", "Run all three parties locally on loopback and compare with plaintext inference");
  run->add_option("--model", ra->model, "ONNX model")->required();
  run->add_option("--data", ra->data, "fashion-mnist or a dataset directory");
  run->add_option("--input", ra->input, ".npy input tensor instead of a dataset");
  run->add_option("--n", ra->n, "Number of test images (0 = all)");
  run->add_option("--offset", ra->offset, "First test image");
  run->add_option("--batch", ra->batch, "Images per secure batch")->check(CLI::Range(1, 4096));
  run->add_option("--frac-bits", ra->frac_bits, "Fixed-point fractional bits")
      ->check(CLI::Range(1, 30));
  run->add_flag("--approx", ra->approx, "Approximate DReLU (s = 5, k = 48 as in the reference)");
  run->add_option("--lsb-ignored", ra->lsb_ignored, "Approximate DReLU: low bits ignored (s)");
  run->add_option("--bits-ignored", ra->bits_ignored,
                  "Approximate DReLU: comparison bits ignored (k)");
  run->add_flag("--tls", ra->tls, "TLS 1.3 with pinned keys between the parties (fresh keys)");
  run->add_option("--threads", ra->threads, "Ring GEMM threads per party")
      ->check(CLI::Range(1, 64));
  run->add_option("--io-timeout", ra->io_timeout_ms,
                  "ms without any frame from a peer before a party gives up")
      ->check(CLI::Range(100, 3600000));
  run->add_option("--link", ra->link,
                  "Emulate a link between the parties, in process: lan (1 Gbit/s, 0.5 ms RTT), "
                  "wan (100 Mbit/s, 40 ms RTT), none, or rtt=<ms>,rate=<Mbit/s>");
  run->add_option("--keep", ra->keep, "Keep the session directory (config, keys, logs, reports)");
  run->add_option("--fault", ra->fault, "kill|stop:<role>:<ms> (testing)")->group("");
  run->add_flag("--json", ra->json, "Machine-readable report on stdout");
  run->add_flag("--quiet", ra->quiet, "No progress output");
  run->callback([ra] { run_local(*ra); });

  auto key_out = std::make_shared<std::string>();
  auto* keygen =
      mpc->add_subcommand("keygen", "Create a party's Ed25519 key; prints its fingerprint");
  keygen->add_option("--out", *key_out, "Private key file (PEM, mode 0600)")->required();
  keygen->callback([key_out] { run_keygen(*key_out); });

  auto ha = std::make_shared<std::pair<std::string, bool>>();
  auto* hash = mpc->add_subcommand("hash", "Structure hash of a model (after folding BatchNorm)");
  hash->add_option("--model", ha->first, "ONNX model")->required();
  hash->add_flag("--json", ha->second, "JSON output");
  hash->callback([ha] { run_hash(ha->first, ha->second); });
}

}  // namespace veil::cli
