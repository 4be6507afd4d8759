#include "veil/mpc/local_run.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "veil/core/cpu.hpp"
#include "veil/core/error.hpp"
#include "veil/core/hex.hpp"
#include "veil/core/io.hpp"
#include "veil/core/memory_budget.hpp"
#include "veil/core/signals.hpp"
#include "veil/model/onnx.hpp"
#include "veil/mpc/kernels/ring_kernels.hpp"
#include "veil/mpc/kernels/z67.hpp"
#include "veil/mpc/memory_plan.hpp"
#include "veil/mpc/network/tcp_channel.hpp"
#include "veil/mpc/network/tls.hpp"
#include "veil/mpc/protocols/private_compare.hpp"
#include "veil/mpc/public_model.hpp"
#include "veil/mpc/range_check.hpp"
#include "veil/nn/executor.hpp"
#include "veil/nn/preprocess.hpp"

namespace veil::mpc {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr std::array<Role, 3> kRoles = {Role::Client, Role::Server, Role::Helper};
// A failing party's peers must stop within io_timeout; the supervisor allows 2 s of slack
// before it kills them and reports a hang.
constexpr auto kStopSlack = std::chrono::seconds(2);
constexpr auto kPollInterval = std::chrono::milliseconds(20);
constexpr int64_t kReferenceBatch = 256;

size_t idx(Role r) { return static_cast<size_t>(r); }

PlainReference plain_reference(const std::string& model_path, const std::string& normalize,
                               const Tensor& images) {
  model::Model model = model::load_onnx(model_path);
  override_normalization(model, normalize);
  Tensor x = images.reshaped(images.shape());
  nn::normalization_of(model).apply(x);
  nn::Executor exec(model);
  PlainReference ref;
  const int64_t n = x.shape()[0];
  const int64_t per = x.numel() / n;
  for (int64_t b = 0; b < n; b += kReferenceBatch) {
    const int64_t m = std::min(kReferenceBatch, n - b);
    Shape s = x.shape();
    s[0] = m;
    Tensor xb =
        Tensor::from_floats(s, std::vector<float>(x.data() + b * per, x.data() + (b + m) * per));
    Tensor y = exec.forward({xb})[0];
    const int64_t k = y.numel() / m;
    for (int64_t i = 0; i < m; ++i) {
      const float* row = y.data() + i * k;
      ref.logits.emplace_back(row, row + k);
      ref.predictions.push_back(std::max_element(row, row + k) - row);
    }
  }
  return ref;
}

// The session's files: configuration, private keys, logs, reports. With --keep they are files
// in that directory. Otherwise they are anonymous memory files (memfd_create) that the parties
// inherit and open as /proc/self/fd/<n>: nothing of the session is ever on disk, so no exit
// path of the supervisor, not even a SIGKILL that no cleanup code survives, can leave a private
// key, a log or a report behind; the memory is freed when the last process holding it exits.
class SessionFiles {
 public:
  struct File {
    int fd = -1;    // close-on-exec: a party gets only the files it is given (spawn)
    fs::path path;  // opens the file here and in a party that inherited `fd`
  };

  explicit SessionFiles(const std::string& keep) {
    if (keep.empty()) return;
    dir_ = fs::absolute(keep);
    fs::create_directories(dir_);
  }
  ~SessionFiles() {
    for (const File& f : files_) ::close(f.fd);
  }
  SessionFiles(const SessionFiles&) = delete;
  SessionFiles& operator=(const SessionFiles&) = delete;
  bool kept() const { return !dir_.empty(); }
  // What relative paths of the configuration are resolved against.
  fs::path base() const { return kept() ? dir_ : fs::current_path(); }

  // A new empty file, readable and writable by this user only.
  File create(const std::string& name) {
    File f;
    if (kept()) {
      f.path = dir_ / name;
      ::unlink(f.path.c_str());  // a new inode: an old file's wider mode must not carry over
      f.fd = ::open(f.path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    } else {
      f.fd = ::memfd_create(name.c_str(), MFD_CLOEXEC);
      f.path = "/proc/self/fd/" + std::to_string(f.fd);
    }
    if (f.fd < 0)
      throw IoError("cannot create the session file " + name + ": " + std::strerror(errno));
    files_.push_back(f);
    return f;
  }

 private:
  fs::path dir_;
  std::vector<File> files_;
};

// Opens /dev/null on any of descriptors 0-2 that is closed: a session file or a listening socket
// must not get one of those numbers, which a party's stdout and stderr replace.
void open_standard_descriptors() {
  for (int fd = 0; fd <= 2; ++fd)
    if (::fcntl(fd, F_GETFD) < 0 && errno == EBADF) {
      const int null_fd = ::open("/dev/null", O_RDWR);  // the lowest free number: this one
      if (null_fd != fd && null_fd >= 0) ::close(null_fd);
    }
}

// The configuration every party reads; with TLS, fresh keys pinned by fingerprint, in session
// files whose descriptors go to `key_fds` (each party inherits its own only).
PartyConfig session_config(const LocalRunOptions& o, SessionFiles& files, uint16_t server_port,
                           uint16_t helper_port, const std::string& model_hash, int64_t n,
                           std::array<int, 3>& key_fds) {
  PartyConfig cfg;
  cfg.parties[idx(Role::Server)].port = server_port;
  cfg.parties[idx(Role::Helper)].port = helper_port;
  cfg.model = fs::absolute(o.model).string();
  cfg.model_hash = model_hash;
  cfg.input = o.input;
  if (!cfg.input.npy.empty()) cfg.input.npy = fs::absolute(cfg.input.npy).string();
  cfg.input.n = n;
  cfg.batch = o.batch;
  cfg.frac_bits = o.frac_bits;
  cfg.input_range = o.input_range;
  cfg.normalize = o.normalize;
  cfg.drelu = o.drelu;
  cfg.threads = o.threads;
  cfg.io_timeout_ms = o.io_timeout_ms;
  cfg.tls = o.tls ? TlsMode::On : TlsMode::Off;
  cfg.link = o.link;
  key_fds.fill(-1);
  if (o.tls)
    for (Role r : kRoles) {
      auto id = TlsIdentity::generate();
      SessionFiles::File key = files.create(std::string(role_name(r)) + ".pem");
      id->write_pem(key.fd);
      key_fds[idx(r)] = key.fd;
      cfg.parties[idx(r)].key = key.path.string();
      cfg.parties[idx(r)].fingerprint = id->fingerprint();
    }
  return cfg;
}

// Last "error:" line of a party's log, or its last line.
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

// SIGTERM, SIGINT and SIGHUP while the parties run: the handler only records the signal, the
// supervisor's loop then kills and reaps the parties, and restore() puts back the dispositions
// it found and raises the signal again, so the process ends as that signal says (killed by it,
// status 128 + sig in a shell) after every party is gone. A disposition found is kept in the
// chain: a process-wide handler (one removing temporary files, say) runs on the re-raise. A
// signal found ignored (nohup, a background job's SIGINT) stays ignored.
volatile sig_atomic_t g_stop_signal = 0;

void record_stop_signal(int sig) {
  if (g_stop_signal == 0) g_stop_signal = sig;
}

class StopSignals {
 public:
  StopSignals() {
    g_stop_signal = 0;
    for (size_t i = 0; i < kSignals.size(); ++i)
      installed_[i] = install_unless_ignored(kSignals[i], record_stop_signal, false, &previous_[i]);
  }
  ~StopSignals() { restore(); }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  int caught() const { return g_stop_signal; }

  void restore() {
    for (size_t i = 0; i < kSignals.size(); ++i)
      if (installed_[i]) ::sigaction(kSignals[i], &previous_[i], nullptr);
    installed_.fill(false);
    const int sig = g_stop_signal;
    if (sig == 0) return;
    g_stop_signal = 0;
    ::raise(sig);  // the disposition found: the default ends the process here
    // A handler found returned instead of ending the process: end it as the signal would.
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    ::sigaction(sig, &dfl, nullptr);
    ::raise(sig);
    ::_exit(128 + sig);
  }

 private:
  static constexpr const std::array<int, 3>& kSignals = kStopSignals;
  std::array<struct sigaction, 3> previous_{};
  std::array<bool, 3> installed_{};
};

// The three party processes. They die with the supervisor: each gets PR_SET_PDEATHSIG
// (SIGKILL) before it runs, so even a SIGKILL of the supervisor takes them along (the signal
// comes when the thread that forked ends: run_local's caller, which waits for them), and they run
// in a process group of their own, so a terminal's Ctrl-C reaches the supervisor only, which
// stops them in order. The destructor kills and reaps any still running, so no exit path (an
// exception between two spawns included) leaves one behind.
class PartyProcesses {
 public:
  struct Child {
    Role role = Role::Client;
    pid_t pid = -1;
    bool running = false;
    int status = 0;
    Clock::time_point ended;
    SessionFiles::File log, report;
    bool failed() const { return !WIFEXITED(status) || WEXITSTATUS(status) != 0; }
    std::string describe_exit() const;
  };

  PartyProcesses() = default;
  PartyProcesses(const PartyProcesses&) = delete;
  PartyProcesses& operator=(const PartyProcesses&) = delete;
  ~PartyProcesses() {
    for (Child& c : kids_)
      if (c.running) {
        ::kill(c.pid, SIGKILL);
        ::waitpid(c.pid, nullptr, 0);
      }
  }

  // Runs `exe mpc party --role <r> --config <config> --report-fd <r.json>` with stdout and
  // stderr in the session file <r>.log. It inherits the configuration, its report, `key_fd`
  // (its private key) and `listen_fd` (as --listen-fd) when >= 0, and no other session file.
  void spawn(Role r, const std::string& exe, const SessionFiles::File& config, SessionFiles& files,
             int key_fd, int listen_fd);
  // Polls until all three exited. After the first failure (or a frozen party), the others get
  // `stop_within` before they are killed; returns the roles so killed that were not frozen.
  // When `stop` caught a signal, kills and reaps all three at once and returns.
  std::string supervise(const std::optional<PartyFault>& fault, Clock::duration stop_within,
                        const StopSignals& stop);
  // The ProtocolError message after a failure; empty if all three exited with 0.
  std::string failure_report(const std::string& hung, int64_t io_timeout_ms, bool kept) const;

  const Child& child(Role r) const { return kids_[idx(r)]; }
  Clock::time_point started() const { return t0_; }

 private:
  std::array<Child, 3> kids_;
  Clock::time_point t0_ = Clock::now();
  std::optional<Clock::time_point> first_failure_;
  pid_t group_ = 0;  // the parties' process group (the first party's pid)
};

std::string PartyProcesses::Child::describe_exit() const {
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  if (WIFEXITED(status)) return "exit code " + std::to_string(WEXITSTATUS(status));
  return "stopped";
}

void PartyProcesses::spawn(Role r, const std::string& exe, const SessionFiles::File& config,
                           SessionFiles& files, int key_fd, int listen_fd) {
  Child& c = kids_[idx(r)];
  c.role = r;
  c.log = files.create(std::string(role_name(r)) + ".log");
  c.report = files.create(std::string(role_name(r)) + ".json");
  // The supervisor's budget (its --max-memory, or the default) is each party's too.
  std::vector<std::string> args = {exe,
                                   "--max-memory",
                                   std::to_string(memory_budget()),
                                   "mpc",
                                   "party",
                                   "--role",
                                   role_name(r),
                                   "--config",
                                   config.path.string(),
                                   "--report-fd",
                                   std::to_string(c.report.fd)};
  if (listen_fd >= 0) {
    args.push_back("--listen-fd");
    args.push_back(std::to_string(listen_fd));
  }
  std::vector<char*> argv;
  for (auto& s : args) argv.push_back(s.data());
  argv.push_back(nullptr);
  const std::array<int, 4> inherit = {config.fd, c.report.fd, key_fd, listen_fd};
  const pid_t supervisor = ::getpid();
  const pid_t group = group_;
  pid_t pid = ::fork();
  if (pid < 0) throw IoError("fork failed");
  if (pid == 0) {
    // Only async-signal-safe calls between fork and exec.
    ::setpgid(0, group);  // 0: a new group, led by this first party
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != supervisor) ::_exit(127);  // it died before the line above
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::dup2(c.log.fd, 1);
    ::dup2(c.log.fd, 2);
    for (int fd : inherit)
      if (fd >= 0) ::fcntl(fd, F_SETFD, 0);
    ::execv(exe.c_str(), argv.data());
    ::_exit(127);
  }
  ::setpgid(pid, group ? group : pid);  // also here: the group exists before the next joins it
  if (!group_) group_ = pid;
  c.pid = pid;
  c.running = true;
}

std::string PartyProcesses::supervise(const std::optional<PartyFault>& fault,
                                      Clock::duration stop_within, const StopSignals& stop) {
  bool fault_done = !fault;
  std::string hung;
  for (;;) {
    if (stop.caught()) {
      for (Child& c : kids_)
        if (c.running) {
          ::kill(c.pid, SIGKILL);
          ::waitpid(c.pid, &c.status, 0);
          c.running = false;
        }
      return hung;
    }
    bool any_running = false;
    for (Child& c : kids_) {
      if (!c.running) continue;
      int st = 0;
      if (::waitpid(c.pid, &st, WNOHANG) == c.pid) {
        c.running = false;
        c.status = st;
        c.ended = Clock::now();
        if (c.failed() && !first_failure_) first_failure_ = c.ended;
      } else {
        any_running = true;
      }
    }
    if (!any_running) return hung;
    const auto now = Clock::now();
    if (!fault_done && now - t0_ >= fault->after) {
      fault_done = true;
      Child& c = kids_[idx(fault->role)];
      if (c.running) {
        ::kill(c.pid, fault->freeze ? SIGSTOP : SIGKILL);
        if (fault->freeze) first_failure_ = now;
      }
    }
    if (first_failure_ && now - *first_failure_ > stop_within)
      for (Child& c : kids_)
        if (c.running) {
          // A party frozen by the fault hook is expected to be killed here; others are hangs.
          if (!(fault && fault->freeze && c.role == fault->role))
            hung += std::string(hung.empty() ? "" : ", ") + role_name(c.role);
          ::kill(c.pid, SIGKILL);
        }
    std::this_thread::sleep_for(kPollInterval);
  }
}

std::string PartyProcesses::failure_report(const std::string& hung, int64_t io_timeout_ms,
                                           bool kept) const {
  if (std::none_of(kids_.begin(), kids_.end(), [](const Child& c) { return c.failed(); }))
    return "";
  // One line (the CLI prints every failure as one line): the parties separated by "; ".
  std::string msg = "secure inference failed: ";
  for (const Child& c : kids_) {
    if (&c != &kids_.front()) msg += "; ";
    msg += std::string(role_name(c.role)) + ": " + (c.failed() ? c.describe_exit() : "finished");
    if (!c.failed()) continue;
    if (first_failure_) {
      msg += fmt::format(" ({:.2f} s after the first failure)",
                         std::chrono::duration<double>(c.ended - *first_failure_).count());
    }
    std::string err = party_error(c.log.path);
    if (!err.empty() && !WIFSIGNALED(c.status)) msg += ": " + err;
  }
  if (!hung.empty())
    msg += "; did not stop within " + std::to_string(io_timeout_ms) + " ms of the failure: " + hung;
  if (!kept) msg += " (run with --keep DIR to keep the parties' logs)";
  return msg;
}

PartyReport read_report(const fs::path& p) {
  std::vector<uint8_t> b = read_file(p, uint64_t{1} << 30);
  json j = json::parse(b.begin(), b.end(), nullptr, false);
  if (j.is_discarded()) throw MalformedInput(p.string() + ": not JSON");
  return PartyReport::from_json(j);
}

// Layers in graph order, the three parties' costs side by side.
std::vector<CostRow> merge_layers(const std::array<PartyReport, 3>& rep) {
  const size_t nl = rep[0].layers.size();
  for (const PartyReport& r : rep)
    if (r.layers.size() != nl) throw ProtocolError("the parties traced different layers");
  std::vector<CostRow> rows(nl);
  for (size_t i = 0; i < nl; ++i) {
    rows[i].node = rep[0].layers[i].node;
    rows[i].op = rep[0].layers[i].op;
    for (Role r : kRoles) {
      const LayerCost& l = rep[idx(r)].layers[i];
      rows[i].bytes_sent[idx(r)] = l.bytes_sent;
      rows[i].rounds = std::max<uint64_t>(rows[i].rounds, l.rounds);
      rows[i].seconds = std::max(rows[i].seconds, l.seconds);
      if (l.drelus != rep[0].layers[i].drelus)
        throw ProtocolError("the parties counted different DReLUs in " + rows[i].node);
    }
    rows[i].drelus = rep[0].layers[i].drelus;
  }
  return rows;
}

std::vector<CostRow> by_op(const std::vector<CostRow>& layers) {
  std::vector<CostRow> ops;
  std::map<std::string, size_t> at;
  for (const CostRow& l : layers) {
    auto [it, fresh] = at.try_emplace(l.op, ops.size());
    if (fresh) {
      ops.push_back({"", l.op, 0, {}, 0, 0});
    }
    CostRow& o = ops[it->second];
    o.count += 1;
    for (size_t r = 0; r < 3; ++r) o.bytes_sent[r] += l.bytes_sent[r];
    o.rounds += l.rounds;
    o.seconds += l.seconds;
    o.drelus += l.drelus;
  }
  return ops;
}

json cost_row_json(const CostRow& c, int64_t batches, int64_t images, bool layer) {
  json j = {
      {"op", c.op},
      {"bytes_sent",
       {{"client", c.bytes_sent[0]}, {"server", c.bytes_sent[1]}, {"helper", c.bytes_sent[2]}}},
      {"bytes_total", c.bytes_total()},
      {"rounds", c.rounds},
      {"seconds", c.seconds},
      {"drelus", c.drelus},
      {"drelus_per_image", images ? static_cast<double>(c.drelus) / images : 0.0}};
  if (layer) {
    j["node"] = c.node;
    j["rounds_per_batch"] = batches ? static_cast<double>(c.rounds) / batches : 0.0;
  } else {
    j["count"] = c.count;
  }
  return j;
}

std::optional<double> top1(const std::vector<int64_t>& pred, const std::vector<int32_t>& labels) {
  if (labels.empty() || pred.empty()) return std::nullopt;
  int64_t correct = 0;
  for (size_t i = 0; i < pred.size() && i < labels.size(); ++i) correct += pred[i] == labels[i];
  return static_cast<double>(correct) / static_cast<double>(pred.size());
}

}  // namespace

PartyFault parse_party_fault(const std::string& spec) {
  const InvalidArgument usage("--fault kill|stop:<role>:<ms>");
  auto p1 = spec.find(':'), p2 = spec.rfind(':');
  if (p1 == std::string::npos || p2 == p1) throw usage;
  PartyFault f;
  const std::string what = spec.substr(0, p1);
  if (what != "kill" && what != "stop") throw usage;
  f.freeze = what == "stop";
  f.role = role_from_name(spec.substr(p1 + 1, p2 - p1 - 1));
  const std::string ms = spec.substr(p2 + 1);
  if (ms.empty() || ms.size() > 9 || ms.find_first_not_of("0123456789") != std::string::npos)
    throw usage;
  f.after = std::chrono::milliseconds(std::stoll(ms));
  return f;
}

std::optional<double> LocalRunResult::secure_top1() const {
  return top1(secure_predictions, labels);
}
std::optional<double> LocalRunResult::plain_top1() const { return top1(plain_predictions, labels); }

json LocalRunResult::to_json() const {
  json out;
  out["model"] = model;
  out["model_hash"] = model_hash;
  out["images"] = images;
  out["batch"] = batch;
  out["batches"] = batches;
  out["frac_bits"] = frac_bits;
  out["range_check"] = range_check;
  out["drelu"] = {{"num_lsb_to_ignore", drelu.num_lsb_to_ignore},
                  {"comparison_bits_ignored", drelu.comparison_bits_ignored}};
  out["tls"] = tls;
  out["kernels"] = {{"path", kernel_path_name(kernel_path())},
                    {"ring_gemm", gemm_u64_kernel_name()},
                    {"private_compare", compare_kernel_name()},
                    {"z67", z67_kernel_name()}};
  out["link"] = {{"profile", link.spec()},
                 {"emulated", link.enabled()},
                 {"description", link.describe()},
                 {"rtt_ms", link.rtt_ms()},
                 {"rate_mbit_s", link.bits_per_second > 0 ? json(link.rate_mbit_s()) : json()}};
  out["agreement"] = agreement();
  out["agreeing_images"] = agreeing_images;
  out["max_logit_diff"] = max_logit_diff;
  if (auto s = secure_top1()) out["secure_top1"] = *s;
  if (auto p = plain_top1()) out["plain_top1"] = *p;
  out["secure_predictions"] = secure_predictions;
  out["plain_predictions"] = plain_predictions;
  out["latency"] = {{"per_batch_s", per_batch_seconds()},
                    {"per_image_s", per_image_seconds()},
                    {"run_s", run_seconds},
                    {"setup_s", setup_seconds},
                    {"wall_s", wall_seconds}};
  out["rounds"] = {{"per_batch", rounds_per_batch()}, {"total", rounds}};
  uint64_t drelus = 0;
  for (const CostRow& l : layers) drelus += l.drelus;
  out["drelus"] = {{"total", drelus},
                   {"per_image", images ? static_cast<double>(drelus) / images : 0.0}};
  json parties_json = json::object();
  for (Role r : kRoles) {
    const PartyTotals& p = parties[idx(r)];
    parties_json[role_name(r)] = {
        {"bytes_sent", p.bytes_sent},
        {"bytes_sent_per_image", images ? static_cast<double>(p.bytes_sent) / images : 0.0},
        {"messages_sent", p.messages_sent},
        {"setup_bytes_sent", p.setup_bytes_sent},
        {"rounds", p.rounds},
        {"seconds", p.seconds},
        {"planned_peak_mb", static_cast<double>(p.planned_peak_bytes) / (1 << 20)},
        {"peak_rss_mb", p.peak_rss_mb}};
  }
  out["parties"] = parties_json;
  out["layers"] = json::array();
  for (const CostRow& l : layers) out["layers"].push_back(cost_row_json(l, batches, images, true));
  out["ops"] = json::array();
  for (const CostRow& o : ops) out["ops"].push_back(cost_row_json(o, batches, images, false));
  return out;
}

LocalRunResult merge_party_reports(const std::array<PartyReport, 3>& rep,
                                   const PlainReference& plain,
                                   const std::vector<int32_t>& labels) {
  const PartyReport& client = rep[idx(Role::Client)];
  const int64_t n = static_cast<int64_t>(plain.predictions.size());
  if (static_cast<int64_t>(client.predictions.size()) != n || client.logits.rank() != 2 ||
      client.logits.shape()[0] != n)
    throw ProtocolError("the client reported a wrong number of predictions");
  const size_t nb = client.batches.size();
  for (const PartyReport& r : rep)
    if (r.batches.size() != nb) throw ProtocolError("the parties ran different batch plans");
  LocalRunResult res;
  res.model_hash = client.model_hash;
  res.images = n;
  res.batches = static_cast<int64_t>(nb);
  res.secure_predictions = client.predictions;
  res.plain_predictions = plain.predictions;
  res.labels = labels;
  const int64_t k = client.logits.shape()[1];
  for (int64_t i = 0; i < n; ++i) {
    res.agreeing_images += res.secure_predictions[i] == res.plain_predictions[i];
    const auto& pl = plain.logits[i];
    for (int64_t c = 0; c < k && c < static_cast<int64_t>(pl.size()); ++c)
      res.max_logit_diff =
          std::max(res.max_logit_diff,
                   static_cast<double>(std::fabs(pl[c] - client.logits.data()[i * k + c])));
  }
  for (size_t b = 0; b < nb; ++b) {
    res.batch_seconds += client.batches[b].seconds;
    uint32_t rmax = 0;
    for (const PartyReport& r : rep) rmax = std::max(rmax, r.batches[b].rounds);
    res.rounds += rmax;
  }
  res.run_seconds = client.run_seconds;
  res.setup_seconds = client.setup_seconds;
  for (Role r : kRoles) {
    const PartyReport& p = rep[idx(r)];
    res.parties[idx(r)] = {p.run_stats.bytes_sent,
                           p.run_stats.messages_sent,
                           p.setup_stats.bytes_sent,
                           p.rounds,
                           p.run_seconds,
                           p.planned_peak_bytes,
                           p.peak_rss_mb};
  }
  res.layers = merge_layers(rep);
  res.ops = by_op(res.layers);
  return res;
}

int default_frac_bits(const model::Model& folded, const DreluParams& drelu) {
  bool blocks = false;
  for (const auto& n : folded.graph.nodes) blocks = blocks || n.op_type == "BlockRelu";
  if (!blocks) return kDefaultFracBits;
  const SecureModel secure(folded.graph);
  for (int f = 16; f > kDefaultFracBits; --f) {
    try {
      check_fixed_point_range(folded, secure, f, drelu);
      return f;
    } catch (const InvalidArgument&) {
      // does not fit at f: try one bit fewer
    }
  }
  return kDefaultFracBits;
}

LocalRunResult run_local(const LocalRunOptions& given) {
  LocalRunOptions o = given;
  if (o.model.empty()) throw InvalidArgument("--model is required");
  if (o.veil_exe.empty()) throw InvalidArgument("mpc run: the veil executable is not known");
  if (o.frac_bits != 0) SessionParams{o.frac_bits, o.drelu, {}}.validate();

  // 1. The images and the plaintext reference (the original, unfolded model).
  model::Model folded = load_model_for_mpc(o.model);
  if (!o.input_range.empty()) folded.metadata["veil.input.range"] = o.input_range;
  override_normalization(folded, o.normalize);
  if (o.frac_bits == 0) o.frac_bits = default_frac_bits(folded, o.drelu);
  SessionParams{o.frac_bits, o.drelu, {}}.validate();
  // The server party checks the same; refusing here gives one error line.
  const SecureModel secure(folded.graph);
  const RangeReport range = check_fixed_point_range(folded, secure, o.frac_bits, o.drelu);
  const auto hash = structure_hash(folded.graph);
  ClientInput input = select_client_input(o.input, model_input_shape(folded.graph, 1));
  check_input_range(input.images, input_range_of(folded));
  // The three parties run on this machine: their plans together must fit the budget, checked
  // before the float reference runs or any party starts (each party checks its own again).
  SecureMemoryOptions memory;
  memory.batch = std::min<int64_t>(o.batch, std::max<int64_t>(input.size(), 1));
  memory.images = input.size();
  memory.drelu = o.drelu;
  memory.threads = o.threads;
  require_secure_within(secure, memory, std::nullopt, memory_budget(), kDefaultMaxFramePayload);
  const PlainReference plain = plain_reference(o.model, o.normalize, input.images);

  // 2. Session files, listening sockets, configuration.
  open_standard_descriptors();
  SessionFiles files(o.keep);
  TcpListener server_listener("127.0.0.1", 0), helper_listener("127.0.0.1", 0);
  std::array<int, 3> key_fds{};
  const PartyConfig cfg = session_config(o, files, server_listener.port(), helper_listener.port(),
                                         veil::to_hex(hash), input.size(), key_fds);
  const nlohmann::json cfg_json = cfg.to_json();
  PartyConfig::from_json(cfg_json, files.base());  // the parties' own checks, before they start
  const SessionFiles::File config = files.create("parties.json");
  write_all(config.fd, cfg_json.dump(2), "the party configuration");

  // 3. The parties. A failing party flushes its queued frames on close, which an emulated
  // link delays.
  StopSignals stop;
  PartyProcesses procs;
  procs.spawn(Role::Client, o.veil_exe, config, files, key_fds[idx(Role::Client)], -1);
  procs.spawn(Role::Server, o.veil_exe, config, files, key_fds[idx(Role::Server)],
              server_listener.fd());
  procs.spawn(Role::Helper, o.veil_exe, config, files, key_fds[idx(Role::Helper)],
              helper_listener.fd());
  const std::string hung = procs.supervise(
      o.fault, std::chrono::milliseconds(o.io_timeout_ms) + kStopSlack + o.link.one_way_delay,
      stop);
  stop.restore();  // every party is reaped: a signal caught meanwhile ends the process here
  const double wall = std::chrono::duration<double>(Clock::now() - procs.started()).count();
  const std::string failure = procs.failure_report(hung, o.io_timeout_ms, files.kept());
  if (!failure.empty()) throw ProtocolError(failure);

  // 4. Merge.
  std::array<PartyReport, 3> reports;
  for (Role r : kRoles) reports[idx(r)] = read_report(procs.child(r).report.path);
  LocalRunResult res = merge_party_reports(reports, plain, input.labels);
  res.model = o.model;
  res.model_hash = cfg.model_hash;
  res.batch = o.batch;
  res.frac_bits = o.frac_bits;
  res.range_check = describe_range(range);
  res.drelu = o.drelu;
  res.tls = o.tls;
  res.link = o.link;
  res.wall_seconds = wall;
  return res;
}

}  // namespace veil::mpc
