// veil split serve|run: split execution between a trusted process and an untrusted accelerator
// process, joined by TCP (the wire protocol of veil/split/wire.hpp).
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <memory>
#include <thread>

#include "common.hpp"
#include "validators.hpp"
#include "veil/cli/commands.hpp"
#include "veil/core/error.hpp"
#include "veil/core/output_guard.hpp"
#include "veil/core/peak_rss.hpp"
#include "veil/core/printable.hpp"
#include "veil/core/progress.hpp"
#include "veil/mpc/network/tcp_channel.hpp"
#include "veil/nn/executor.hpp"
#include "veil/split/pipeline.hpp"
#include "veil/split/remote.hpp"
#include "veil/split/serve_config.hpp"
#include "veil/split/transcript.hpp"
#include "veil/split/transcript_file.hpp"

extern char** environ;

namespace veil::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

double since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

mpc::TcpOptions tcp_options(int64_t io_timeout_ms, int64_t connect_timeout_ms) {
  mpc::TcpOptions o;
  o.io_timeout = std::chrono::milliseconds(io_timeout_ms);
  o.connect_timeout = std::chrono::milliseconds(connect_timeout_ms);
  return o;
}

// "HOST:PORT" (the last colon splits, so an IPv6 literal may be given as [::1]:7300).
std::pair<std::string, uint16_t> host_port(const std::string& s) {
  const size_t colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0) throw InvalidArgument("expected HOST:PORT: " + s);
  std::string host = s.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  const std::string port = s.substr(colon + 1);
  int p = -1;
  try {
    size_t used = 0;
    p = std::stoi(port, &used);
    if (used != port.size()) p = -1;
  } catch (const std::exception&) {
  }
  if (p < 1 || p > 65535) throw InvalidArgument("bad port in " + s);
  return {host, static_cast<uint16_t>(p)};
}

int64_t argmax_row(const float* row, int64_t k) { return std::max_element(row, row + k) - row; }

// Seconds per batch. The first batch of a run also creates oneDNN primitives and the
// accelerator's engines; latency is quoted over the others (all batches when there is one).
struct BatchTimes {
  double first_s = 0, rest_s = 0;
  int64_t first_images = 0, rest_images = 0;
  void add(double s, int64_t images) {
    if (first_images == 0) {
      first_s = s;
      first_images = images;
    } else {
      rest_s += s;
      rest_images += images;
    }
  }
  double ms_per_image() const {
    return rest_images ? 1000 * rest_s / static_cast<double>(rest_images)
                       : 1000 * first_s / static_cast<double>(std::max<int64_t>(first_images, 1));
  }
};

// ---------------------------------------------------------------------------------------------
// The trusted part: runs the test images through the split pipeline, then through the whole
// model in this process alone, and reports the comparison.

struct TrustedArgs {
  std::string model;
  std::string data = "fashion-mnist";
  std::string scheme = "shadownet";
  int64_t limit = 100;
  int64_t batch = 10;
  bool verify = false;
  int threads = 1;
  bool json = false;
  bool quiet = false;
};

json layer_json(const split::LayerStats& l, int64_t images) {
  const double n = images ? static_cast<double>(images) : 1.0;
  return {{"name", l.name},
          {"macs_per_image", l.macs_per_image},
          {"payload_bytes_sent_per_image", l.bytes_sent / n},
          {"payload_bytes_received_per_image", l.bytes_received / n},
          {"encode_s", l.encode_s},
          {"accelerator_s", l.accelerator_s},
          {"decode_s", l.decode_s},
          {"faults_detected", l.faults_detected}};
}

// What the trusted process reads before the session: the model and the test images.
struct TrustedInputs {
  model::Model model;
  data::Dataset set;
  int64_t batches = 0;
};

TrustedInputs load_trusted_inputs(const TrustedArgs& a) {
  TrustedInputs in{load_model(a.model), data::load_dataset(a.data, data::Split::Test, a.limit)};
  if (in.set.size() == 0) throw InvalidArgument("--data " + a.data + ": no test images");
  in.batches = (in.set.size() + a.batch - 1) / a.batch;
  return in;
}

// Runs the session on `channel` (the accelerator is at its far end) and returns the report.
json run_trusted(const TrustedArgs& a, TrustedInputs& in, mpc::Channel& channel) {
  model::Model& m = in.model;
  const data::Dataset& set = in.set;
  const data::Normalization norm = input_normalization(m, "");
  const int64_t n = set.size();
  const int64_t batches = in.batches;
  auto batch_at = [&](int64_t b) {
    const int64_t first = b * a.batch, count = std::min(a.batch, n - first);
    Tensor x = set.batch(first, count);
    norm.apply(x);
    return x;
  };

  split::PipelineOptions po;
  po.scheme = split::parse_scheme(a.scheme);
  po.scheme_options.verify = a.verify;
  po.threads = a.threads;
  const mpc::ChannelStats at_start = channel.stats();
  auto t0 = Clock::now();
  split::RemoteAccelerator remote(channel, a.scheme);
  split::Pipeline pipe(m, po, remote);
  const double setup_s = since(t0);
  const mpc::ChannelStats at_online = channel.stats();

  std::vector<int64_t> split_pred, plain_pred;
  BatchTimes online;
  {
    ProgressBar bar("split " + a.scheme, n);
    bar.set_quiet(a.quiet || a.json);
    try {
      for (int64_t b = 0; b < batches; ++b) {
        const Tensor x = batch_at(b);
        // The offline material (pads, masks and their products) for this batch only, so the
        // trusted memory stays one batch's worth whatever the image count; its time is the
        // report's offline_s, not the online latency.
        pipe.precompute(x.shape()[0], 1);
        t0 = Clock::now();
        const Tensor y = pipe.infer(x);
        const int64_t rows = x.shape()[0], k = y.numel() / rows;
        online.add(since(t0), rows);
        for (int64_t i = 0; i < rows; ++i) split_pred.push_back(argmax_row(y.data() + i * k, k));
        bar.update(static_cast<int64_t>(split_pred.size()));
      }
    } catch (const Error&) {
      bar.set_quiet(true);  // a failure is one line: the error's
      throw;
    }
    bar.finish();
  }
  const mpc::ChannelStats at_end = channel.stats();
  const split::AcceleratorReport acc = remote.close();
  const double trusted_rss = peak_rss_mb();  // before the baseline below adds its own

  // The baseline: the whole model in this process, on the same batches.
  nn::ExecutorOptions eo;
  eo.threads = a.threads;
  nn::Executor exec(m, eo);
  BatchTimes plain;
  for (int64_t b = 0; b < batches; ++b) {
    const Tensor x = batch_at(b);
    t0 = Clock::now();
    const Tensor y = exec.forward({x}).at(0);
    const int64_t rows = x.shape()[0], k = y.numel() / rows;
    plain.add(since(t0), rows);
    for (int64_t i = 0; i < rows; ++i) plain_pred.push_back(argmax_row(y.data() + i * k, k));
  }

  int64_t agree = 0, split_ok = 0, plain_ok = 0;
  for (int64_t i = 0; i < n; ++i) {
    agree += split_pred[i] == plain_pred[i];
    split_ok += split_pred[i] == set.labels[i];
    plain_ok += plain_pred[i] == set.labels[i];
  }
  const split::PipelineStats& st = pipe.stats();
  const split::Partition& part = pipe.partition();
  const double dn = static_cast<double>(n);
  const int64_t offloaded = part.linear_macs_per_image, kept = part.other_macs_per_image;
  json layers = json::array();
  for (const auto& l : st.layers) layers.push_back(layer_json(l, n));
  return {
      {"scheme", a.scheme},
      {"model", a.model},
      {"data", a.data},
      {"images", n},
      {"batch", a.batch},
      {"verify", a.verify},
      {"agreement", agree / dn},
      {"split_top1", split_ok / dn},
      {"plain_top1", plain_ok / dn},
      {"split_ms_per_image", online.ms_per_image()},
      {"trusted_only_ms_per_image", plain.ms_per_image()},
      {"split_first_batch_s", online.first_s},
      {"trusted_only_first_batch_s", plain.first_s},
      {"setup_s", setup_s},
      {"offline_s", st.offline_s},
      {"offloaded_linear_macs_per_image", offloaded},
      {"trusted_linear_macs_per_image", kept},
      {"offloaded_share_of_linear_macs",
       offloaded + kept ? static_cast<double>(offloaded) / static_cast<double>(offloaded + kept)
                        : 0.0},
      {"payload_bytes_sent_per_image", st.bytes_sent() / dn},
      {"payload_bytes_received_per_image", st.bytes_received() / dn},
      {"channel_bytes_sent_per_image", (at_end.bytes_sent - at_online.bytes_sent) / dn},
      {"channel_bytes_received_per_image", (at_end.bytes_received - at_online.bytes_received) / dn},
      {"setup_bytes_sent", at_online.bytes_sent - at_start.bytes_sent},
      {"trusted_bytes", pipe.trusted_bytes()},
      {"trusted_peak_rss_mb", trusted_rss},
      {"accelerator_peak_rss_mb", acc.peak_rss_mb},
      {"accelerator_queries", acc.queries},
      {"faults_injected", acc.faults_injected},
      {"faults_detected", st.faults_detected()},
      {"false_accept_bound", pipe.false_accept_bound()},
      {"layers", layers},
      {"not_modelled",
       "TEE world switches and memory encryption (the trusted part is an "
       "ordinary process)"}};
}

std::string bytes_text(double v) { return human_count(v) + "B"; }

void print_report(const json& r) {
  const auto d = [&](const char* k) { return r[k].get<double>(); };
  const int64_t n = r["images"].get<int64_t>();
  fmt::print("split {}: {} on {}, {} images in batches of {}{}\n", r["scheme"].get<std::string>(),
             printable(r["model"].get<std::string>()), printable(r["data"].get<std::string>()), n,
             r["batch"].get<int64_t>(), r["verify"].get<bool>() ? ", verified" : "");
  fmt::print("split top-1 = plaintext top-1 on {:.2f} % of the images\n", 100 * d("agreement"));
  fmt::print("accuracy: split {:.2f} %, plaintext {:.2f} %\n", 100 * d("split_top1"),
             100 * d("plain_top1"));
  fmt::print(
      "latency: {:.3f} ms/image split (online), {:.3f} ms/image all in the trusted process "
      "(first batch: {:.3f} s and {:.3f} s); offline {:.3f} s, setup {:.3f} s\n",
      d("split_ms_per_image"), d("trusted_only_ms_per_image"), d("split_first_batch_s"),
      d("trusted_only_first_batch_s"), d("offline_s"), d("setup_s"));
  fmt::print(
      "offloaded: {:.2f} % of the linear MACs ({} of {} per image)\n",
      100 * d("offloaded_share_of_linear_macs"), human_count(d("offloaded_linear_macs_per_image")),
      human_count(d("offloaded_linear_macs_per_image") + d("trusted_linear_macs_per_image")));
  fmt::print("moved per image: payload {} sent, {} received; channel {} sent, {} received\n",
             bytes_text(d("payload_bytes_sent_per_image")),
             bytes_text(d("payload_bytes_received_per_image")),
             bytes_text(d("channel_bytes_sent_per_image")),
             bytes_text(d("channel_bytes_received_per_image")));
  fmt::print(
      "trusted footprint: {} of weights and secrets, peak RSS {:.1f} MB; accelerator peak "
      "RSS {:.1f} MB\n",
      bytes_text(d("trusted_bytes")), d("trusted_peak_rss_mb"), d("accelerator_peak_rss_mb"));
  fmt::print("faults: {} injected, {} detected (false-accept bound per verified result {:.3g})\n",
             r["faults_injected"].get<int64_t>(), r["faults_detected"].get<int64_t>(),
             d("false_accept_bound"));
  fmt::print("\n  {:<24} {:>10} {:>11} {:>11} {:>9} {:>9} {:>9} {:>7}\n", "layer", "MACs/img",
             "sent/img", "recv/img", "enc ms", "acc ms", "dec ms", "faults");
  for (const auto& l : r["layers"])
    fmt::print("  {:<24} {:>10} {:>11} {:>11} {:>9.2f} {:>9.2f} {:>9.2f} {:>7}\n",
               printable(l["name"].get<std::string>()),
               human_count(l["macs_per_image"].get<double>()),
               bytes_text(l["payload_bytes_sent_per_image"].get<double>()),
               bytes_text(l["payload_bytes_received_per_image"].get<double>()),
               1000 * l["encode_s"].get<double>(), 1000 * l["accelerator_s"].get<double>(),
               1000 * l["decode_s"].get<double>(), l["faults_detected"].get<int64_t>());
  fmt::print("\nnot modelled: {}\n", r["not_modelled"].get<std::string>());
}

void emit(const json& report, bool as_json) {
  if (as_json)
    print_json(report);
  else
    print_report(report);
}

// ---------------------------------------------------------------------------------------------
// The accelerator part.

struct AcceleratorArgs {
  split::ServeConfig net;  // the address it listens on, threads, timeouts, transcript, faults
  std::string connect;     // HOST:PORT: connect instead of listening (`split run`'s child)
  pid_t parent = 0;        // `split run`'s child: die with this process
  int64_t die_after = 0;   // test hook: exit abruptly on this many-th message received
  bool json = false;
  bool quiet = false;
};

// Test hook (`--die-after N`): the process dies with exit code 9 when the N-th message arrives,
// as a crashed accelerator would, without a word to its peer.
class DyingChannel final : public mpc::Channel {
 public:
  DyingChannel(std::unique_ptr<mpc::Channel> inner, int64_t after)
      : inner_(std::move(inner)), left_(after) {}
  void send(mpc::Message m) override { inner_->send(std::move(m)); }
  mpc::Message recv() override {
    mpc::Message m = inner_->recv();
    if (--left_ <= 0) ::_exit(9);
    return m;
  }
  void close() override { inner_->close(); }

 private:
  std::unique_ptr<mpc::Channel> inner_;
  int64_t left_;
};

void run_accelerator(const AcceleratorArgs& a) {
  if (a.parent > 0) {
    // Spawned by `split run`: a SIGKILL of the trusted process must not leave this one behind.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != a.parent) throw ProtocolError("split: the trusted process is gone");
  }
  const split::ServeConfig& c = a.net;
  // Written when the session ends: a directory that is not there is refused before it starts.
  OutputGuard().output("--transcript", c.transcript).check();
  const mpc::TcpOptions opts = tcp_options(c.io_timeout_ms, c.connect_timeout_ms);
  std::unique_ptr<mpc::Channel> channel;
  if (!a.connect.empty()) {
    const auto [host, port] = host_port(a.connect);
    channel = mpc::tcp_connect(host, port, opts);
  } else {
    mpc::TcpListener listener(c.host, c.port);
    if (!a.quiet)
      std::cerr << fmt::format("accelerator: listening on {}:{}", printable(c.host),
                               listener.port())
                << std::endl;
    channel = listener.accept(opts, opts.connect_timeout);
  }
  if (a.die_after > 0) channel = std::make_unique<DyingChannel>(std::move(channel), a.die_after);
  split::Transcript view;
  split::AcceleratorOptions ao;
  ao.threads = c.threads;
  ao.inject_faults = c.inject_faults;
  ao.fault_stride = c.fault_stride;
  if (!c.transcript.empty()) ao.record = &view;
  const split::AcceleratorReport r = split::serve_accelerator(*channel, ao);
  if (!c.transcript.empty()) split::write_transcript(c.transcript, view);
  if (a.json) {
    json j = {{"role", "accelerator"},
              {"queries", r.queries},
              {"faults_injected", r.faults_injected},
              {"peak_rss_mb", r.peak_rss_mb}};
    if (!c.transcript.empty()) j["transcript"] = c.transcript;
    print_json(j);
  } else if (!a.quiet) {
    fmt::print("accelerator: {} queries answered, {} faults injected, peak RSS {:.1f} MB{}\n",
               r.queries, r.faults_injected, r.peak_rss_mb,
               c.transcript.empty() ? "" : ", transcript in " + printable(c.transcript));
  }
}

// ---------------------------------------------------------------------------------------------
// split run: the accelerator as a separate process on loopback.

std::string self_exe() {
  std::error_code ec;
  fs::path p = fs::read_symlink("/proc/self/exe", ec);
  if (ec) throw IoError("cannot find the veil executable (/proc/self/exe)");
  return p.string();
}

// The accelerator process, started with posix_spawn (a new program image: it inherits none of
// this process's memory, so no secret), its stdout and stderr in an anonymous memory file read
// back when it fails. The destructor kills and reaps it if it is still running.
class AcceleratorProcess {
 public:
  explicit AcceleratorProcess(std::vector<std::string> args) {
    // Above 0-2: with this process's stderr closed (2>&-) the log would get descriptor 2, and
    // dup2 onto itself would leave it close-on-exec, so the child would lose its stderr.
    const int fd = ::memfd_create("accelerator.log", MFD_CLOEXEC);
    log_fd_ = fd < 0 ? -1 : ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (fd >= 0) ::close(fd);
    if (log_fd_ < 0) throw IoError("cannot create the accelerator's log");
    posix_spawn_file_actions_t fa;
    ::posix_spawn_file_actions_init(&fa);
    ::posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    ::posix_spawn_file_actions_adddup2(&fa, log_fd_, 1);
    ::posix_spawn_file_actions_adddup2(&fa, log_fd_, 2);
    posix_spawnattr_t attr;
    ::posix_spawnattr_init(&attr);
    sigset_t none;
    sigemptyset(&none);
    ::posix_spawnattr_setsigmask(&attr, &none);
    ::posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
    std::vector<char*> argv;
    for (auto& s : args) argv.push_back(s.data());
    argv.push_back(nullptr);
    const int rc = ::posix_spawn(&pid_, argv[0], &fa, &attr, argv.data(), environ);
    ::posix_spawn_file_actions_destroy(&fa);
    ::posix_spawnattr_destroy(&attr);
    if (rc != 0) {
      ::close(log_fd_);
      throw IoError(std::string("cannot start the accelerator process: ") + std::strerror(rc));
    }
    running_ = true;
  }
  ~AcceleratorProcess() {
    if (running_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    ::close(log_fd_);
  }
  AcceleratorProcess(const AcceleratorProcess&) = delete;
  AcceleratorProcess& operator=(const AcceleratorProcess&) = delete;

  bool exited() {
    if (running_ && ::waitpid(pid_, &status_, WNOHANG) == pid_) running_ = false;
    return !running_;
  }
  // Waits up to `limit` for it to exit, then kills it.
  void wait(std::chrono::milliseconds limit) {
    const auto end = Clock::now() + limit;
    while (!exited() && Clock::now() < end)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (!running_) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status_, 0);
    running_ = false;
    killed_ = true;
  }
  // Empty when it exited with 0; otherwise how it ended and the last line it printed.
  std::string failure() const {
    if (running_ || (!killed_ && WIFEXITED(status_) && WEXITSTATUS(status_) == 0)) return "";
    std::string how = killed_ ? std::string("did not stop, killed")
                      : WIFSIGNALED(status_)
                          ? "killed by signal " + std::to_string(WTERMSIG(status_))
                          : "exit code " + std::to_string(WEXITSTATUS(status_));
    const std::string last = last_line();
    return last.empty() ? how : how + ": " + last;
  }

 private:
  std::string last_line() const {
    std::string log(64 << 10, '\0');
    const ssize_t got = ::pread(log_fd_, log.data(), log.size(), 0);
    log.resize(got > 0 ? static_cast<size_t>(got) : 0);
    while (!log.empty() && log.back() == '\n') log.pop_back();
    std::string line = log.substr(log.rfind('\n') == std::string::npos ? 0 : log.rfind('\n') + 1);
    const std::string prefix = "veil: error: ";
    if (line.rfind(prefix, 0) == 0) line = line.substr(prefix.size());
    return line;
  }

  pid_t pid_ = -1;
  int log_fd_ = -1;
  int status_ = 0;
  bool running_ = false, killed_ = false;
};

struct RunArgs {
  TrustedArgs trusted;
  int64_t inject_faults = 0;
  int64_t die_after = 0;
  std::string transcript;
};

void run_split(const RunArgs& a) {
  const TrustedArgs& t = a.trusted;
  OutputGuard()
      .input("--model", t.model)
      .input("--data", t.data)
      .output("--transcript", a.transcript)
      .check();
  split::parse_scheme(t.scheme);  // a bad name is refused before a process is started
  TrustedInputs in = load_trusted_inputs(t);
  // Replies the accelerator will send: one per offloaded layer per batch. Faults are spread
  // over them.
  const int64_t layers = static_cast<int64_t>(split::partition(in.model).linear.size());
  const int64_t batches = in.batches;
  const int64_t stride =
      a.inject_faults > 0 ? std::max<int64_t>(1, layers * batches / a.inject_faults) : 1;

  const mpc::TcpOptions opts = tcp_options(10000, 10000);
  mpc::TcpListener listener("127.0.0.1", 0);
  std::vector<std::string> args = {self_exe(),
                                   "split",
                                   "serve",
                                   "--role",
                                   "accelerator",
                                   "--connect",
                                   "127.0.0.1:" + std::to_string(listener.port()),
                                   "--parent-pid",
                                   std::to_string(::getpid()),
                                   "--threads",
                                   std::to_string(t.threads),
                                   "--inject-faults",
                                   std::to_string(a.inject_faults),
                                   "--fault-stride",
                                   std::to_string(stride),
                                   "--quiet"};
  if (a.die_after > 0) {
    args.push_back("--die-after");
    args.push_back(std::to_string(a.die_after));
  }
  if (!a.transcript.empty()) {
    args.push_back("--transcript");
    args.push_back(fs::absolute(a.transcript).string());
  }
  AcceleratorProcess child(std::move(args));
  std::unique_ptr<mpc::Channel> channel;
  const auto deadline = Clock::now() + opts.connect_timeout;
  while (!channel) {
    if (child.exited())
      throw ProtocolError("split: the accelerator process ended before it connected (" +
                          child.failure() + ")");
    if (Clock::now() >= deadline)
      throw ProtocolError("split: the accelerator process did not connect within 10 s");
    try {
      channel = listener.accept(opts, std::chrono::milliseconds(100));
    } catch (const ProtocolError&) {
      // Not yet: check that it is still alive, then wait again.
    }
  }
  json report;
  try {
    report = run_trusted(t, in, *channel);
  } catch (const ProtocolError& e) {
    // When the accelerator process died (the link drops as it exits), its own error explains the
    // failure best. One still running did not cause it: it is killed on the way out.
    const auto end = Clock::now() + std::chrono::milliseconds(500);
    while (!child.exited() && Clock::now() < end)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    const std::string why = child.exited() ? child.failure() : "";
    if (why.empty()) throw;
    throw ProtocolError(std::string("split: lost the accelerator (") + e.what() +
                        "); the accelerator process: " + why);
  }
  channel.reset();
  // After the session it writes the transcript, which may be large.
  child.wait(a.transcript.empty() ? std::chrono::seconds(10) : std::chrono::seconds(300));
  if (const std::string why = child.failure(); !why.empty())
    throw ProtocolError("split: the accelerator process failed: " + why);
  if (!a.transcript.empty()) report["transcript"] = a.transcript;
  emit(report, t.json);
}

// ---------------------------------------------------------------------------------------------
// split serve

struct ServeArgs {
  std::string role;
  std::string config;
  AcceleratorArgs hidden;  // the options `split run` gives its child instead of a config
  bool json = false;
  bool quiet = false;
};

void run_serve(ServeArgs& a) {
  if (a.role != "trusted" && a.role != "accelerator")
    throw InvalidArgument("--role must be trusted or accelerator");
  if (a.config.empty()) {
    if (a.role != "accelerator" || a.hidden.connect.empty())
      throw InvalidArgument("--config is required");
    a.hidden.json = a.json;
    a.hidden.quiet = a.quiet;
    run_accelerator(a.hidden);
    return;
  }
  const split::ServeConfig c = split::load_serve_config(a.config);
  if (a.role == "accelerator") {
    AcceleratorArgs x;
    x.net = c;
    x.json = a.json;
    x.quiet = a.quiet;
    run_accelerator(x);
    return;
  }
  if (c.model.empty()) throw InvalidArgument(a.config + ": the trusted part needs \"model\"");
  if (c.port == 0) throw InvalidArgument(a.config + ": the trusted part needs accelerator.port");
  OutputGuard().input("model", c.model).input("data", c.data).check();
  TrustedArgs t;
  t.model = c.model;
  t.data = c.data;
  t.scheme = c.scheme;
  t.limit = c.limit;
  t.batch = c.batch;
  t.verify = c.verify;
  t.threads = c.threads;
  t.json = c.json || a.json;
  t.quiet = a.quiet;
  TrustedInputs in = load_trusted_inputs(t);
  std::unique_ptr<mpc::Channel> channel =
      mpc::tcp_connect(c.host, c.port, tcp_options(c.io_timeout_ms, c.connect_timeout_ms));
  emit(run_trusted(t, in, *channel), t.json);
}

}  // namespace

void add_split_commands(CLI::App& app) {
  auto* split = app.add_subcommand(
      "split", "Split execution: a trusted part outsources linear layers to an accelerator");
  split->require_subcommand(1);

  auto ra = std::make_shared<RunArgs>();
  auto* run = split->add_subcommand(
      "run",
      "Run a model split between this (trusted) process and an accelerator process on loopback, "
      "and compare with the whole model in the trusted process");
  TrustedArgs& t = ra->trusted;
  run->add_option("--model", t.model, "ONNX model")->required();
  run->add_option("--data", t.data, "Dataset (its test split): fashion-mnist or a directory");
  run->add_option("--scheme", t.scheme, "plain | shadownet | slalom | darknight | hardened")
      ->required();
  run->add_option("--limit", t.limit, "Test images (0 = all; default 100)")
      ->check(in_range<int64_t>(0, int64_t{1} << 31));
  run->add_option("--batch", t.batch, "Images per batch (default 10)")
      ->check(in_range<int64_t>(1, 4096));
  run->add_flag("--verify", t.verify, "Check every reply (the scheme's integrity check)");
  run->add_option("--inject-faults", ra->inject_faults,
                  "Make the accelerator corrupt this many replies, spread over the run")
      ->check(in_range<int64_t>(0, int64_t{1} << 40));
  run->add_option("--threads", t.threads, "Threads of each process's kernels (default 1)")
      ->check(in_range(1, 256));
  run->add_option("--transcript", ra->transcript,
                  "The accelerator records everything it saw to this file (.vtrs)");
  run->add_option("--die-after", ra->die_after,
                  "The accelerator dies at its N-th message (testing)")
      ->group("")
      ->check(in_range<int64_t>(1, int64_t{1} << 40));
  run->add_flag("--json", t.json, "Machine-readable report on stdout");
  run->add_flag("--quiet", t.quiet, "No progress output");
  run->callback([ra] { run_split(*ra); });

  auto sa = std::make_shared<ServeArgs>();
  auto* serve = split->add_subcommand(
      "serve", "Run one side of a split session over TCP (the keys of --config: docs/SPLIT.md)");
  serve->add_option("--role", sa->role, "trusted | accelerator")->required();
  serve->add_option("--config", sa->config, "Session configuration (JSON)");
  serve->add_flag("--json", sa->json, "Machine-readable report on stdout");
  serve->add_flag("--quiet", sa->quiet, "No progress output");
  // What `split run` passes to the accelerator process it spawns.
  AcceleratorArgs& h = sa->hidden;
  serve->add_option("--connect", h.connect, "HOST:PORT")->group("");
  serve->add_option("--parent-pid", h.parent, "")->group("")->check(in_range(1, 1 << 30));
  serve->add_option("--threads", h.net.threads, "")->group("")->check(in_range(1, 256));
  serve->add_option("--transcript", h.net.transcript, "")->group("");
  serve->add_option("--inject-faults", h.net.inject_faults, "")
      ->group("")
      ->check(in_range<int64_t>(0, int64_t{1} << 40));
  serve->add_option("--fault-stride", h.net.fault_stride, "")
      ->group("")
      ->check(in_range<int64_t>(1, int64_t{1} << 40));
  serve->add_option("--die-after", h.die_after, "")
      ->group("")
      ->check(in_range<int64_t>(1, int64_t{1} << 40));
  serve->callback([sa] { run_serve(*sa); });

  add_split_attack_command(*split);
}

}  // namespace veil::cli
