#include "veil/mpc/party_session.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <set>
#include <span>

#include "veil/core/error.hpp"
#include "veil/core/hex.hpp"
#include "veil/core/memory_budget.hpp"
#include "veil/core/peak_rss.hpp"
#include "veil/model/fold_batch_norm.hpp"
#include "veil/model/lowered.hpp"
#include "veil/model/onnx.hpp"
#include "veil/mpc/client_input.hpp"
#include "veil/mpc/memory_plan.hpp"
#include "veil/mpc/network/tcp_channel.hpp"
#include "veil/mpc/network/tls.hpp"
#include "veil/mpc/public_model.hpp"
#include "veil/mpc/range_check.hpp"
#include "veil/nn/preprocess.hpp"

namespace veil::mpc {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

// Raw-link tag of the structure message (sent before the Party handshake).
constexpr uint32_t kStructureTag = 0xffff0002;
// Instead of the structure: the server refuses the session (its error message as payload).
constexpr uint32_t kRefusalTag = 0xffff0003;
constexpr size_t kMaxRefusalBytes = 4096;
constexpr uint64_t kMaxBatches = 10'000'000;
constexpr int64_t kMaxBatchSize = 4096;

// A peer's refusal text (at most kMaxRefusalBytes), bound for a terminal: control bytes become '?'.
std::string peer_text(std::span<const uint8_t> bytes) {
  std::string why(bytes.begin(), bytes.begin() + std::min(bytes.size(), kMaxRefusalBytes));
  for (char& c : why)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  return why;
}

double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

json stats_json(const ChannelStats& s) {
  return {{"bytes_sent", s.bytes_sent},
          {"bytes_received", s.bytes_received},
          {"messages_sent", s.messages_sent},
          {"messages_received", s.messages_received}};
}

ChannelStats stats_from_json(const json& j) {
  return {j.at("bytes_sent").get<uint64_t>(), j.at("bytes_received").get<uint64_t>(),
          j.at("messages_sent").get<uint64_t>(), j.at("messages_received").get<uint64_t>()};
}

// Rows of equal length; [0, 0] for no rows (to_json writes no rows for an empty tensor).
Tensor logits_from_json(const json& rows) {
  if (!rows.is_array()) throw MalformedInput("party report: logits must be an array of rows");
  const int64_t n = static_cast<int64_t>(rows.size());
  const int64_t k = n ? static_cast<int64_t>(rows[0].size()) : 0;
  std::vector<float> v;
  v.reserve(static_cast<size_t>(n * k));
  for (const json& row : rows) {
    if (!row.is_array() || static_cast<int64_t>(row.size()) != k)
      throw MalformedInput("party report: logit rows of different lengths");
    for (const json& x : row) v.push_back(x.get<float>());
  }
  return Tensor::from_floats({n, k}, std::move(v));
}

ChannelStats minus(const ChannelStats& a, const ChannelStats& b) {
  return {a.bytes_sent - b.bytes_sent, a.bytes_received - b.bytes_received,
          a.messages_sent - b.messages_sent, a.messages_received - b.messages_received};
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
    sum[i].drelus += batch[i].drelus;
  }
}

using Links = std::array<std::unique_ptr<Channel>, 3>;
using Log = std::function<void(const std::string&)>;

// Step 1: the links to the other two parties, over TCP or TLS, through the emulated link.
Links connect_links(Role me, const PartyConfig& cfg, const PartyRunOptions& opt,
                    PartyReport& report, const Log& log) {
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
  Links links = connect_tcp_links(me, listener.get(), addrs, tcp, log);
  log(std::string(role_name(me)) + ": links up" + (report.tls ? " (TLS 1.3, pinned keys)" : "") +
      (cfg.link.enabled() ? ", emulating " + cfg.link.spec() + " (" + cfg.link.describe() + ")"
                          : ""));
  return links;
}

// Step 2: the server sends the model's public structure, the others rebuild the graph from it;
// every party checks the structure hash against the configuration's pin and returns it.
// A server that refuses the model (`refusal`: the reason) tells the others instead, so that all
// three fail with the reason.
std::array<uint8_t, 32> share_structure(Role me, const PartyConfig& cfg, Links& links,
                                        model::Model& model, PartyReport& report,
                                        const std::string& refusal) {
  if (me == Role::Server) {
    if (!refusal.empty()) {
      for (Role peer : other_roles(me))
        links[static_cast<size_t>(peer)]->send(
            {kRefusalTag, 0, Bytes(refusal.begin(), refusal.end())});
      throw InvalidArgument(refusal);
    }
    std::vector<uint8_t> bytes = public_model_to_bytes(model);
    for (Role peer : other_roles(me))
      links[static_cast<size_t>(peer)]->send({kStructureTag, 0, Bytes(bytes.begin(), bytes.end())});
  } else {
    Message m = links[static_cast<size_t>(Role::Server)]->recv();
    if (m.tag == kRefusalTag) {
      throw ProtocolError("the server refused the model: " + peer_text(m.payload));
    }
    if (m.tag != kStructureTag)
      throw ProtocolError("the server did not start with the model structure");
    model = public_model_from_bytes(m.payload);
  }
  std::array<uint8_t, 32> hash = structure_hash(model.graph);
  report.model_hash = veil::to_hex(hash);
  report.model_name = model.graph.name;
  if (!cfg.model_hash.empty() && hash != hash_from_hex(cfg.model_hash))
    throw ProtocolError(std::string("the model's structure hash ") + report.model_hash +
                        " differs from the configuration's model_hash " + cfg.model_hash +
                        (me == Role::Server ? "" : " (the server runs another model)"));
  return hash;
}

// Step 4a: the client splits its images into batches of at most `batch` and tells the others
// the sizes (the traffic shows them anyway); they check the plan before running it.
std::vector<uint64_t> exchange_batch_plan(Party& party, int64_t n, int64_t batch) {
  std::vector<uint64_t> plan;
  if (party.is(Role::Client)) {
    for (int64_t b = 0; b < n; b += batch)
      plan.push_back(static_cast<uint64_t>(std::min(batch, n - b)));
    for (Role peer : other_roles(Role::Client)) {
      party.send_u64(peer, Tag::Plan, {plan.size()});
      party.send_u64(peer, Tag::Plan, plan);
    }
    return plan;
  }
  uint64_t count = party.recv_u64(Role::Client, Tag::Plan, 1)[0];
  if (count > kMaxBatches) throw ProtocolError("the client's batch plan is too long");
  plan = party.recv_u64(Role::Client, Tag::Plan, count);
  for (uint64_t b : plan)
    if (b == 0 || b > static_cast<uint64_t>(kMaxBatchSize))
      throw ProtocolError("the client's batch plan has a bad batch size");
  return plan;
}

// Step 4b: every party checks that its memory holds the plan's largest batch and sends its
// verdict (empty, or why not) to both others, so that a party's refusal stops all three with
// its reason instead of leaving two of them with a closed link.
void agree_on_plan(Party& party, const std::string& verdict) {
  const Bytes mine(verdict.begin(), verdict.begin() + std::min(verdict.size(), kMaxRefusalBytes));
  for (Role peer : other_roles(party.role())) {
    party.send_u64(peer, Tag::PlanVerdict, {mine.size()});
    if (!mine.empty()) party.send(peer, Tag::PlanVerdict, mine);
  }
  std::string refused;
  for (Role peer : other_roles(party.role())) {
    const uint64_t size = party.recv_u64(peer, Tag::PlanVerdict, 1)[0];
    if (size > kMaxRefusalBytes) throw ProtocolError("a party's verdict on the plan is too long");
    if (size == 0) continue;
    const Bytes b = party.recv(peer, Tag::PlanVerdict, size);
    if (refused.empty())
      refused = std::string("the ") + role_name(peer) + " refused the batch plan: " + peer_text(b);
  }
  if (!verdict.empty()) throw InvalidArgument(verdict);
  if (!refused.empty()) throw ProtocolError(refused);
}

// Step 4c: the batches. The client passes its normalised images and gets the logits and
// predictions into `report`; the others pass shapes.
void run_batches(Party& party, const SecureModel& secure, const model::Graph& graph,
                 const std::vector<uint64_t>& plan, const Tensor& images, PartyReport& report,
                 const Log& log) {
  const bool client = party.is(Role::Client);
  const auto t_run = Clock::now();
  const uint32_t clock0 = party.clock();
  std::vector<Tensor> outputs;
  int64_t done = 0;
  for (size_t b = 0; b < plan.size(); ++b) {
    const int64_t size = static_cast<int64_t>(plan[b]);
    Tensor x;
    if (!client) {
      x = Tensor(model_input_shape(graph, size));  // shape only matters
    } else {
      int64_t per = images.numel() / images.shape()[0];
      std::vector<float> v(images.data() + done * per, images.data() + (done + size) * per);
      x = Tensor::from_floats(model_input_shape(graph, size), std::move(v));
    }
    ChannelStats before = party.stats();
    uint32_t c0 = party.clock();
    auto t0 = Clock::now();
    std::vector<LayerCost> trace;
    Tensor y = secure.run(party, x, &trace);
    report.batches.push_back(
        {size, since(t0), party.clock() - c0, party.stats().bytes_sent - before.bytes_sent});
    add_costs(report.layers, trace);
    if (client) outputs.push_back(std::move(y));
    done += size;
    log(std::string(role_name(party.role())) + ": batch " + std::to_string(b + 1) + "/" +
        std::to_string(plan.size()) + " done");
  }
  report.run_seconds = since(t_run);
  report.rounds = party.clock() - clock0;
  report.run_stats = minus(party.stats(), report.setup_stats);

  if (client && !outputs.empty()) {
    int64_t classes = outputs[0].numel() / outputs[0].shape()[0];
    std::vector<float> all;
    for (const auto& o : outputs) all.insert(all.end(), o.data(), o.data() + o.numel());
    report.logits = Tensor::from_floats({done, classes}, std::move(all));
    for (int64_t i = 0; i < done; ++i) {
      const float* row = report.logits.data() + i * classes;
      report.predictions.push_back(std::max_element(row, row + classes) - row);
    }
  }
}

}  // namespace

void override_normalization(model::Model& model, const std::string& normalize) {
  if (!normalize.empty()) nn::set_normalization(model, data::Normalization::parse_pair(normalize));
}

namespace {

// SecureModel reads every op at opset 13 (the public structure carries no opset). Before opset
// 11, Clip's bounds were attributes (ReLU6 in older exports): they become scalar initializers,
// the opset-11 form, and the model is read at 13 from then on, as SecureModel reads it anyway.
void clip_bounds_as_inputs(model::Model& m) {
  if (m.opset >= 11) return;
  std::set<std::string> names;  // every value name, for fresh initializer names
  for (const auto& in : m.graph.inputs) names.insert(in.name);
  for (const auto& [name, t] : m.graph.initializers) names.insert(name);
  for (const model::Node& n : m.graph.nodes) names.insert(n.outputs.begin(), n.outputs.end());
  bool rewritten = false;
  for (model::Node& n : m.graph.nodes) {
    if (n.op_type != "Clip" || n.inputs.size() != 1) continue;
    const auto& params = model::lower_node(n, m.opset);
    const auto& p = std::get<model::ClipParams>(params);
    n.inputs.resize(3);
    const float bounds[2] = {p.min, p.max};
    for (size_t i = 0; i < 2; ++i) {
      // Legacy defaults are the float extremes (or infinities): no bound.
      if (!std::isfinite(bounds[i]) || std::fabs(bounds[i]) >= std::numeric_limits<float>::max())
        continue;
      std::string name = n.name + (i == 0 ? ".min" : ".max");
      while (names.count(name)) name += "_";
      names.insert(name);
      m.graph.initializers[name] = Tensor::scalar(bounds[i]);
      n.inputs[i + 1] = name;
    }
    while (!n.inputs.empty() && n.inputs.back().empty()) n.inputs.pop_back();
    n.attributes.erase("min");
    n.attributes.erase("max");
    rewritten = true;
  }
  if (rewritten) m.opset = 13;
}

}  // namespace

model::Model load_model_for_mpc(const std::string& path) {
  if (path.empty()) throw InvalidArgument("the server needs a model (\"model\" in the config)");
  model::Model m = model::load_onnx(path);
  clip_bounds_as_inputs(m);
  model::fold_batch_norm(m);
  SecureModel check(m.graph);  // throws Unsupported naming the first node it cannot run
  model_input_shape(m.graph, 1);
  public_model_to_bytes(m);  // the server sends this: refuse here a name that cannot travel
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
  if (!range_check.empty()) j["range_check"] = range_check;
  j["planned_peak_mb"] = static_cast<double>(planned_peak_bytes) / (1 << 20);
  j["peak_rss_mb"] = peak_rss_mb;
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
                           {"seconds", l.seconds},
                           {"drelus", l.drelus}});
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

PartyReport PartyReport::from_json(const json& j) {
  PartyReport r;
  try {
    r.role = role_from_name(j.at("role").get<std::string>());
    r.model_name = j.at("model").get<std::string>();
    r.model_hash = j.at("model_hash").get<std::string>();
    r.tls = j.at("tls").get<bool>();
    r.link = parse_link_profile(j.at("link").get<std::string>());
    r.setup_seconds = j.at("setup_seconds").get<double>();
    r.run_seconds = j.at("run_seconds").get<double>();
    r.setup_stats = stats_from_json(j.at("setup"));
    r.run_stats = stats_from_json(j.at("run"));
    r.rounds = j.at("rounds").get<uint32_t>();
    if (j.contains("range_check")) r.range_check = j.at("range_check").get<std::string>();
    r.planned_peak_bytes =
        static_cast<uint64_t>(std::llround(j.at("planned_peak_mb").get<double>() * (1 << 20)));
    r.peak_rss_mb = j.at("peak_rss_mb").get<double>();
    for (const json& b : j.at("batches"))
      r.batches.push_back({b.at("size").get<int64_t>(), b.at("seconds").get<double>(),
                           b.at("rounds").get<uint32_t>(), b.at("bytes_sent").get<uint64_t>()});
    for (const json& l : j.at("layers"))
      r.layers.push_back({l.at("node").get<std::string>(), l.at("op").get<std::string>(),
                          l.at("bytes_sent").get<uint64_t>(), l.at("messages_sent").get<uint64_t>(),
                          l.at("rounds").get<uint32_t>(), l.at("seconds").get<double>(),
                          l.at("drelus").get<uint64_t>()});
    if (r.role == Role::Client) {
      r.predictions = j.at("predictions").get<std::vector<int64_t>>();
      if (j.contains("labels")) r.labels = j.at("labels").get<std::vector<int32_t>>();
      r.logits = logits_from_json(j.at("logits"));
    }
  } catch (const json::exception& e) {
    throw MalformedInput(std::string("party report: ") + e.what());
  } catch (const InvalidArgument& e) {
    throw MalformedInput(std::string("party report: ") + e.what());
  }
  return r;
}

PartyReport run_party(Role me, const PartyConfig& cfg, const PartyRunOptions& opt) {
  const Log log = [&](const std::string& s) {
    if (opt.log) opt.log(s);
  };
  PartyReport report;
  report.role = me;
  const auto t_setup = Clock::now();

  // Everything that can fail locally fails before any connection is made, except the server's
  // refusal of the model: the others must learn why, so it waits for the links.
  model::Model model;
  ClientInput input;
  SessionParams params = cfg.session_params();
  // The server's fixed-point check; a refusal is sent to the others once the links are up.
  std::string refusal;
  if (me == Role::Server) {
    model = load_model_for_mpc(cfg.model);
    // The structure carries the range to the client, which enforces it.
    if (!cfg.input_range.empty()) model.metadata["veil.input.range"] = cfg.input_range;
    override_normalization(model, cfg.normalize);  // the client applies it, the check assumes it
    try {
      report.range_check = describe_range(
          check_fixed_point_range(model, SecureModel(model.graph), params.frac_bits, params.drelu));
      log("server: " + report.range_check);
    } catch (const Error& e) {  // InvalidArgument: overflow; others: a value it cannot bound
      refusal = e.what();
    }
  }
  SecureMemoryOptions memory;
  memory.drelu = params.drelu;
  memory.threads = cfg.threads;
  if (me == Role::Client) {
    input = select_client_input(cfg.input);
    memory.images = input.size();  // its floats are part of the client's plan
  }

  Links links = connect_links(me, cfg, opt, report, log);
  const std::array<uint8_t, 32> hash = share_structure(me, cfg, links, model, report, refusal);
  SecureModelOptions smo;
  smo.threads = cfg.threads;
  SecureModel secure(model.graph, smo);

  // Step 3: the handshake checks parameters and hashes pairwise and agrees on the seeds.
  params.model_hash = hash;
  Party party(me, std::move(links), params);
  report.setup_stats = party.stats();
  report.setup_seconds = since(t_setup);

  const std::vector<uint64_t> plan = exchange_batch_plan(party, input.size(), cfg.batch);
  // Each party checks its own memory for the largest batch before running any (veil mpc run
  // has checked the three together before starting them).
  if (!plan.empty()) {
    memory.batch = static_cast<int64_t>(*std::max_element(plan.begin(), plan.end()));
    const SecureMemoryPlan need = plan_secure_memory(secure, memory);
    report.planned_peak_bytes = need.peak[static_cast<size_t>(me)];
    // What the peers may send ahead is part of the plan: more is a flood. Set before the
    // verdict goes out, as no peer sends batch data before it has every verdict.
    party.limit_queued(std::max(report.planned_peak_bytes, kDefaultMaxQueuedBytes));
    std::string verdict;
    try {
      require_secure_within(secure, memory, me, memory_budget(), kDefaultMaxFramePayload);
    } catch (const InvalidArgument& e) {
      verdict = e.what();
    }
    agree_on_plan(party, verdict);
  }
  if (me == Role::Client) {
    check_input_shape(input.images, model_input_shape(model.graph, input.size()));
    check_input_range(input.images, input_range_of(model));  // what the server's check assumed
    nn::normalization_of(model).apply(input.images);
    report.labels = input.labels;
  }
  run_batches(party, secure, model.graph, plan, input.images, report, log);
  party.close();
  report.peak_rss_mb = peak_rss_mb();
  return report;
}

}  // namespace veil::mpc
