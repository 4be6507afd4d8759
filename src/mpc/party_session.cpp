#include "veil/mpc/party_session.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "veil/core/error.hpp"
#include "veil/data/dataset.hpp"
#include "veil/data/npy.hpp"
#include "veil/model/fold_batch_norm.hpp"
#include "veil/model/onnx.hpp"
#include "veil/mpc/public_model.hpp"
#include "veil/mpc/tcp_channel.hpp"
#include "veil/mpc/tls.hpp"
#include "veil/nn/preprocess.hpp"

namespace veil::mpc {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

// Raw-link tag of the structure message (sent before the Party handshake).
constexpr uint32_t kStructureTag = 0xffff0002;
constexpr uint64_t kMaxBatches = 10'000'000;
constexpr int64_t kMaxBatchSize = 4096;

double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

json stats_json(const ChannelStats& s) {
  return {{"bytes_sent", s.bytes_sent},
          {"bytes_received", s.bytes_received},
          {"messages_sent", s.messages_sent},
          {"messages_received", s.messages_received}};
}

ChannelStats minus(const ChannelStats& a, const ChannelStats& b) {
  return {a.bytes_sent - b.bytes_sent, a.bytes_received - b.bytes_received,
          a.messages_sent - b.messages_sent, a.messages_received - b.messages_received};
}

// The client's images: the first n (from offset) of a dataset's test split, or an .npy tensor.
struct ClientInput {
  Tensor images;
  std::vector<int32_t> labels;
};

ClientInput load_client_input(const PartyConfig& c) {
  ClientInput in;
  if (!c.npy.empty()) {
    Tensor t = data::read_npy(c.npy);
    if (t.rank() < 2 || t.dtype() != DType::Float32)
      throw InvalidArgument(c.npy + ": expected a float32 [N, ...] tensor");
    int64_t total = t.shape()[0];
    if (c.offset > total) throw InvalidArgument(c.npy + ": offset beyond the tensor");
    int64_t n = c.n > 0 ? std::min(c.n, total - c.offset) : total - c.offset;
    int64_t per = t.numel() / std::max<int64_t>(total, 1);
    Shape s = t.shape();
    s[0] = n;
    std::vector<float> v(t.data() + c.offset * per, t.data() + (c.offset + n) * per);
    in.images = Tensor::from_floats(s, std::move(v));
    return in;
  }
  data::Dataset ds = data::load_dataset(c.data, data::Split::Test, c.n > 0 ? c.offset + c.n : 0);
  if (c.offset > ds.size()) throw InvalidArgument("input offset beyond the dataset");
  int64_t n = ds.size() - c.offset;
  in.images = ds.batch(c.offset, n);
  in.labels = ds.batch_labels(c.offset, n);
  return in;
}

std::shared_ptr<const TlsSettings> tls_settings(Role me, const PartyConfig& c) {
  auto s = std::make_shared<TlsSettings>();
  const PartyEndpoint& mine = c.parties[static_cast<size_t>(me)];
  std::string why =
      c.tls == TlsMode::On ? "TLS is on" : "TLS is on (the parties are not all on loopback)";
  if (mine.key.empty())
    throw InvalidArgument(why + " but parties." + role_name(me) +
                          ".key (this party's private key, `veil mpc keygen`) is not set");
  s->identity = TlsIdentity::load(mine.key);
  if (!mine.fingerprint.empty() && mine.fingerprint != s->identity->fingerprint())
    throw InvalidArgument(std::string("the key in ") + mine.key + " has fingerprint " +
                          s->identity->fingerprint() + ", but the configuration pins " +
                          mine.fingerprint + " for the " + role_name(me));
  for (Role peer : other_roles(me)) {
    const std::string& fp = c.parties[static_cast<size_t>(peer)].fingerprint;
    if (fp.empty())
      throw InvalidArgument(why + " but parties." + role_name(peer) +
                            ".fingerprint (the key to pin) is not set");
    s->peer_fingerprints[static_cast<size_t>(peer)] = fp;
  }
  return s;
}

Shape batch_shape(const model::Graph& g, int64_t batch) {
  if (g.inputs.empty()) throw MalformedInput("the model has no input");
  Shape s = g.inputs[0].shape;
  if (s.empty()) throw Unsupported("the model's input must have a batch dimension");
  s[0] = batch;
  for (size_t i = 1; i < s.size(); ++i)
    if (s[i] <= 0) throw Unsupported("the model's input must have fixed non-batch dimensions");
  return s;
}

void add_costs(std::vector<LayerCost>& sum, const std::vector<LayerCost>& batch) {
  if (sum.empty()) {
    sum = batch;
    return;
  }
  if (sum.size() != batch.size()) throw Error("mpc: inconsistent layer trace");
  for (size_t i = 0; i < sum.size(); ++i) {
    sum[i].bytes_sent += batch[i].bytes_sent;
    sum[i].messages_sent += batch[i].messages_sent;
    sum[i].rounds += batch[i].rounds;
    sum[i].seconds += batch[i].seconds;
  }
}

}  // namespace

model::Model load_model_for_mpc(const std::string& path) {
  if (path.empty()) throw InvalidArgument("the server needs a model (\"model\" in the config)");
  model::Model m = model::load_onnx(path);
  model::fold_batch_norm(m);
  SecureModel check(m.graph);  // throws Unsupported naming the first node it cannot run
  batch_shape(m.graph, 1);
  return m;
}

json PartyReport::to_json() const {
  json j;
  j["role"] = role_name(role);
  j["model"] = model_name;
  j["model_hash"] = model_hash;
  j["tls"] = tls;
  j["link"] = link.spec();
  j["setup_seconds"] = setup_seconds;
  j["run_seconds"] = run_seconds;
  j["setup"] = stats_json(setup_stats);
  j["run"] = stats_json(run_stats);
  j["rounds"] = rounds;
  j["batches"] = json::array();
  for (const auto& b : batches)
    j["batches"].push_back({{"size", b.size},
                            {"seconds", b.seconds},
                            {"rounds", b.rounds},
                            {"bytes_sent", b.bytes_sent}});
  j["layers"] = json::array();
  for (const auto& l : layers)
    j["layers"].push_back({{"node", l.node},
                           {"op", l.op},
                           {"bytes_sent", l.bytes_sent},
                           {"messages_sent", l.messages_sent},
                           {"rounds", l.rounds},
                           {"seconds", l.seconds}});
  if (role == Role::Client) {
    j["predictions"] = predictions;
    if (!labels.empty()) j["labels"] = labels;
    json logit_rows = json::array();
    if (logits.rank() == 2)
      for (int64_t i = 0; i < logits.shape()[0]; ++i)
        logit_rows.push_back(std::vector<float>(logits.data() + i * logits.shape()[1],
                                                logits.data() + (i + 1) * logits.shape()[1]));
    j["logits"] = logit_rows;
  }
  return j;
}

PartyReport run_party(Role me, const PartyConfig& cfg, const PartyRunOptions& opt) {
  auto log = [&](const std::string& s) {
    if (opt.log) opt.log(s);
  };
  PartyReport report;
  report.role = me;
  const auto t_setup = Clock::now();

  // Everything that can fail locally fails before any connection is made.
  model::Model model;
  ClientInput input;
  if (me == Role::Server) model = load_model_for_mpc(cfg.model);
  if (me == Role::Client) input = load_client_input(cfg);

  TcpOptions tcp;
  tcp.io_timeout = std::chrono::milliseconds(cfg.io_timeout_ms);
  tcp.connect_timeout = std::chrono::milliseconds(cfg.connect_timeout_ms);
  tcp.heartbeat = std::min(tcp.heartbeat, tcp.io_timeout / 4);
  if (cfg.tls_enabled()) tcp.tls = tls_settings(me, cfg);
  report.tls = static_cast<bool>(tcp.tls);
  tcp.link = cfg.link;
  report.link = cfg.link;

  std::unique_ptr<TcpListener> listener;
  if (me != Role::Client) {
    const PartyEndpoint& e = cfg.parties[static_cast<size_t>(me)];
    listener = opt.listen_fd >= 0 ? std::make_unique<TcpListener>(opt.listen_fd)
                                  : std::make_unique<TcpListener>(e.host, e.port);
    log(std::string(role_name(me)) + ": listening on port " + std::to_string(listener->port()));
  }
  std::array<PartyAddress, 3> addrs;
  for (size_t i = 0; i < 3; ++i) addrs[i] = {cfg.parties[i].host, cfg.parties[i].port};
  auto links = connect_tcp_links(me, listener.get(), addrs, tcp);
  listener.reset();
  log(std::string(role_name(me)) + ": links up" + (report.tls ? " (TLS 1.3, pinned keys)" : "") +
      (cfg.link.enabled() ? ", emulating " + cfg.link.spec() + " (" + cfg.link.describe() + ")"
                          : ""));

  // Step 2: the model's public structure, from the server.
  if (me == Role::Server) {
    std::vector<uint8_t> bytes = public_model_to_bytes(model);
    for (Role peer : other_roles(me))
      links[static_cast<size_t>(peer)]->send({kStructureTag, 0, Bytes(bytes.begin(), bytes.end())});
  } else {
    Message m = links[static_cast<size_t>(Role::Server)]->recv();
    if (m.tag != kStructureTag)
      throw ProtocolError("the server did not start with the model structure");
    model = public_model_from_bytes(m.payload);
  }
  std::array<uint8_t, 32> hash = structure_hash(model.graph);
  report.model_hash = to_hex(hash.data(), hash.size());
  report.model_name = model.graph.name;
  if (!cfg.model_hash.empty() && hash != hash_from_hex(cfg.model_hash))
    throw ProtocolError(std::string("the model's structure hash ") + report.model_hash +
                        " differs from the configuration's model_hash " + cfg.model_hash +
                        (me == Role::Server ? "" : " (the server runs another model)"));
  SecureModelOptions smo;
  smo.threads = cfg.threads;
  SecureModel secure(model.graph, smo);

  // Step 3: the handshake checks parameters and hashes pairwise and agrees on the seeds.
  SessionParams params = cfg.session_params();
  params.model_hash = hash;
  Party party(me, std::move(links), params);
  report.setup_stats = party.stats();
  report.setup_seconds = since(t_setup);

  // Step 4: batch plan, then the batches.
  std::vector<uint64_t> plan;
  if (me == Role::Client) {
    int64_t n = input.images.rank() > 0 ? input.images.shape()[0] : 0;
    for (int64_t b = 0; b < n; b += cfg.batch)
      plan.push_back(static_cast<uint64_t>(std::min(cfg.batch, n - b)));
    for (Role peer : other_roles(me)) {
      party.send_u64(peer, Tag::Plan, {plan.size()});
      party.send_u64(peer, Tag::Plan, plan);
    }
    Shape want = batch_shape(model.graph, n);
    if (input.images.shape() != want)
      throw InvalidArgument("the input has shape " + shape_to_string(input.images.shape()) +
                            ", the model expects " + shape_to_string(want));
    data::Normalization norm = nn::normalization_of(model);
    norm.apply(input.images);
  } else {
    uint64_t count = party.recv_u64(Role::Client, Tag::Plan, 1)[0];
    if (count > kMaxBatches) throw ProtocolError("the client's batch plan is too long");
    plan = party.recv_u64(Role::Client, Tag::Plan, count);
    for (uint64_t b : plan)
      if (b == 0 || b > static_cast<uint64_t>(kMaxBatchSize))
        throw ProtocolError("the client's batch plan has a bad batch size");
  }

  const auto t_run = Clock::now();
  const uint32_t clock0 = party.clock();
  std::vector<Tensor> outputs;
  int64_t done = 0;
  for (size_t b = 0; b < plan.size(); ++b) {
    const int64_t size = static_cast<int64_t>(plan[b]);
    Tensor x;
    if (me != Role::Client) {
      x = Tensor(batch_shape(model.graph, size));  // shape only matters
    } else {
      int64_t per = input.images.numel() / input.images.shape()[0];
      std::vector<float> v(input.images.data() + done * per,
                           input.images.data() + (done + size) * per);
      x = Tensor::from_floats(batch_shape(model.graph, size), std::move(v));
    }
    ChannelStats before = party.stats();
    uint32_t c0 = party.clock();
    auto t0 = Clock::now();
    std::vector<LayerCost> trace;
    Tensor y = secure.run(party, x, &trace);
    report.batches.push_back(
        {size, since(t0), party.clock() - c0, party.stats().bytes_sent - before.bytes_sent});
    add_costs(report.layers, trace);
    if (me == Role::Client) outputs.push_back(std::move(y));
    done += size;
    log(std::string(role_name(me)) + ": batch " + std::to_string(b + 1) + "/" +
        std::to_string(plan.size()) + " done");
  }
  report.run_seconds = since(t_run);
  report.rounds = party.clock() - clock0;
  report.run_stats = minus(party.stats(), report.setup_stats);

  if (me == Role::Client && !outputs.empty()) {
    int64_t classes = outputs[0].numel() / outputs[0].shape()[0];
    std::vector<float> all;
    for (const auto& o : outputs) all.insert(all.end(), o.data(), o.data() + o.numel());
    report.logits = Tensor::from_floats({done, classes}, std::move(all));
    for (int64_t i = 0; i < done; ++i) {
      const float* row = report.logits.data() + i * classes;
      report.predictions.push_back(std::max_element(row, row + classes) - row);
    }
    report.labels = input.labels;
  }
  party.close();
  return report;
}

}  // namespace veil::mpc
