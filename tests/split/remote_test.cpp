// The accelerator in another "process" (a thread behind a memory channel): the wire protocol
// round-trips every message, refuses malformed ones with one clear error, and a pipeline over
// RemoteAccelerator gives bit for bit what it gives over the local accelerator.
#include "veil/split/remote.hpp"

#include <gtest/gtest.h>

#include <future>
#include <random>

#include "veil/core/error.hpp"
#include "veil/model/shape_inference.hpp"
#include "veil/model/zoo.hpp"
#include "veil/split/pipeline.hpp"
#include "veil/split/transcript.hpp"
#include "veil/split/wire.hpp"

namespace veil::split {
namespace {

Tensor random_tensor(Shape shape, uint32_t seed) {
  Tensor t(std::move(shape));
  std::mt19937 gen(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = d(gen);
  return t;
}

FieldTensor random_field(Shape shape, uint32_t seed) {
  FieldTensor f;
  f.shape = std::move(shape);
  f.values.resize(static_cast<size_t>(shape_numel(f.shape)));
  std::mt19937 gen(seed);
  for (auto& v : f.values) v = gen() % kFieldPrime;
  return f;
}

// conv 3 -> 4, 3x3, stride 2, pad 1 on 7x6: output 4x4x3.
OutsourcedLayer conv_layer() {
  OutsourcedLayer l;
  l.kind = LinearKind::Conv;
  l.conv.strides = {2, 2};
  l.conv.pads = {1, 1, 1, 1};
  l.input_shape = {3, 7, 6};
  l.output_shape = {4, 4, 3};
  l.weight = random_tensor({4, 3, 3, 3}, 1);
  return l;
}

OutsourcedLayer field_dense_layer() {
  OutsourcedLayer l;
  l.kind = LinearKind::Dense;
  l.input_shape = {5};
  l.output_shape = {2};
  FieldTensor w = random_field({2, 5}, 2);
  for (auto& v : w.values) v = to_field(static_cast<int64_t>(v % 200) - 100);
  l.weight = w;
  return l;
}

model::Model arch(const std::string& name) {
  model::ArchSpec spec;
  spec.seed = 5;
  model::Model m = model::build_arch(name, spec);
  model::infer_shapes(m);
  return m;
}

// Runs serve_accelerator on the far end of a memory channel pair in a thread.
struct Session {
  explicit Session(AcceleratorOptions options = {}) {
    auto [a, b] = mpc::make_memory_channel_pair(std::chrono::seconds(10));
    trusted = std::move(a);
    far = std::move(b);
    served = std::async(std::launch::async,
                        [this, options] { return serve_accelerator(*far, options); });
  }
  std::unique_ptr<mpc::Channel> trusted, far;
  std::future<AcceleratorReport> served;
};

TEST(Wire, EveryMessageRoundTrips) {
  const std::vector<OutsourcedLayer> layers = {conv_layer(), field_dense_layer()};
  wire::Setup s = wire::parse_setup(wire::encode_setup("slalom", layers));
  EXPECT_EQ(s.scheme, "slalom");
  ASSERT_EQ(s.layers.size(), 2u);
  EXPECT_EQ(std::get<Tensor>(s.layers[0].weight), std::get<Tensor>(layers[0].weight));
  EXPECT_EQ(s.layers[0].conv.pads, layers[0].conv.pads);
  EXPECT_EQ(s.layers[0].output_shape, layers[0].output_shape);
  EXPECT_EQ(std::get<FieldTensor>(s.layers[1].weight).values,
            std::get<FieldTensor>(layers[1].weight).values);

  const std::vector<Payload> in = {random_tensor({2, 3, 7, 6}, 3), random_tensor({1, 3, 7, 6}, 4)};
  wire::Compute c = wire::parse_compute(wire::encode_compute(0, in), layers);
  EXPECT_EQ(c.layer, 0u);
  ASSERT_EQ(c.inputs.size(), 2u);
  EXPECT_EQ(std::get<Tensor>(c.inputs[1]), std::get<Tensor>(in[1]));

  const std::vector<Payload> out = {random_tensor({2, 4, 4, 3}, 5), random_tensor({1, 4, 4, 3}, 6)};
  wire::Reply r = wire::parse_reply(wire::encode_reply(out, 7), layers[0], in);
  EXPECT_EQ(r.faults_injected, 7);
  EXPECT_EQ(std::get<Tensor>(r.outputs[0]), std::get<Tensor>(out[0]));

  const std::vector<Payload> fin = {random_field({3, 5}, 7)};
  wire::Compute fc = wire::parse_compute(wire::encode_compute(1, fin), layers);
  EXPECT_EQ(std::get<FieldTensor>(fc.inputs[0]).values, std::get<FieldTensor>(fin[0]).values);

  EXPECT_EQ(wire::parse_error(wire::encode_error("no")), "no");
  wire::Closed cl = wire::parse_closed(wire::encode_closed({9, 2, 12.5}));
  EXPECT_EQ(cl.queries, 9u);
  EXPECT_EQ(cl.faults_injected, 2);
  EXPECT_EQ(cl.peak_rss_mb, 12.5);
  EXPECT_NO_THROW(wire::parse_close(wire::encode_close()));
  EXPECT_NO_THROW(wire::parse_ready(wire::encode_ready()));
}

TEST(Wire, RefusesMalformedMessages) {
  const std::vector<OutsourcedLayer> layers = {conv_layer(), field_dense_layer()};
  const mpc::Message setup = wire::encode_setup("plain", layers);
  auto with = [&](mpc::Message m, size_t at, uint8_t v) {
    m.payload.at(at) = v;
    return m;
  };
  EXPECT_THROW(wire::parse_setup(with(setup, 0, 'X')), MalformedInput);  // magic
  EXPECT_THROW(wire::parse_setup(with(setup, 4, 2)), MalformedInput);    // version
  mpc::Message truncated = setup;
  truncated.payload.resize(truncated.payload.size() - 1);
  EXPECT_THROW(wire::parse_setup(truncated), MalformedInput);
  mpc::Message trailing = setup;
  trailing.payload.push_back(0);
  EXPECT_THROW(wire::parse_setup(trailing), MalformedInput);
  EXPECT_THROW(wire::parse_compute(setup, layers), ProtocolError);  // wrong kind
  mpc::Message foreign = setup;
  foreign.tag = 3;
  EXPECT_THROW(wire::kind_of(foreign), ProtocolError);

  // A conv whose output does not follow from its input and weight.
  OutsourcedLayer bad = conv_layer();
  bad.output_shape = {4, 4, 4};
  EXPECT_THROW(wire::parse_setup(wire::encode_setup("plain", {bad})), MalformedInput);
  bad = conv_layer();
  bad.conv.group = 2;
  EXPECT_THROW(wire::parse_setup(wire::encode_setup("plain", {bad})), MalformedInput);

  // Payloads that do not fit the layer: shape, type, layer index, value >= P, none at all.
  EXPECT_THROW(
      wire::parse_compute(wire::encode_compute(0, {random_tensor({1, 3, 6, 6}, 1)}), layers),
      MalformedInput);
  EXPECT_THROW(
      wire::parse_compute(wire::encode_compute(0, {random_field({1, 3, 7, 6}, 1)}), layers),
      MalformedInput);
  EXPECT_THROW(
      wire::parse_compute(wire::encode_compute(2, {random_tensor({1, 3, 7, 6}, 1)}), layers),
      MalformedInput);
  FieldTensor big = random_field({1, 5}, 2);
  big.values[3] = kFieldPrime;
  EXPECT_THROW(wire::parse_compute(wire::encode_compute(1, {big}), layers), MalformedInput);
  EXPECT_THROW(wire::parse_compute(wire::encode_compute(1, {}), layers), MalformedInput);
  // A reply with the wrong batch or count for its request.
  const std::vector<Payload> in = {random_tensor({2, 3, 7, 6}, 3)};
  EXPECT_THROW(
      wire::parse_reply(wire::encode_reply({random_tensor({1, 4, 4, 3}, 4)}, 0), layers[0], in),
      MalformedInput);
  EXPECT_THROW(wire::parse_reply(wire::encode_reply({}, 0), layers[0], in), MalformedInput);

  // A huge element count is refused before anything is allocated.
  mpc::Message huge = wire::encode_compute(0, {random_tensor({1, 3, 7, 6}, 1)});
  // type, rank, then the batch dimension: header 8 + layer 8 + count 4 + type 1 + rank 1.
  store_le<int64_t>(huge.payload.data() + 22, int64_t{1} << 40);
  EXPECT_THROW(wire::parse_compute(huge, layers), MalformedInput);
}

TEST(Wire, MutatedMessagesParseOrThrowAVeilError) {
  const std::vector<OutsourcedLayer> layers = {conv_layer(), field_dense_layer()};
  const std::vector<mpc::Message> valid = {
      wire::encode_setup("plain", layers),
      wire::encode_compute(0, {random_tensor({1, 3, 7, 6}, 3)}),
      wire::encode_compute(1, {random_field({2, 5}, 3)}),
      wire::encode_reply({random_tensor({1, 4, 4, 3}, 5)}, 1)};
  const std::vector<Payload> in = {random_tensor({1, 3, 7, 6}, 3)};
  std::mt19937 gen(1);
  int refused = 0;
  for (int i = 0; i < 2000; ++i) {
    mpc::Message m = valid[i % valid.size()];
    for (int k = 0; k < 1 + static_cast<int>(gen() % 3); ++k)
      m.payload[gen() % std::min<size_t>(m.payload.size(), 64)] = static_cast<uint8_t>(gen());
    if (gen() % 4 == 0) m.payload.resize(gen() % m.payload.size());
    try {
      switch (i % valid.size()) {
        case 0:
          wire::parse_setup(m);
          break;
        case 1:
        case 2:
          wire::parse_compute(m, layers);
          break;
        default:
          wire::parse_reply(m, layers[0], in);
      }
    } catch (const Error&) {
      ++refused;
    }
  }
  EXPECT_GT(refused, 1000);
}

class RemoteVsLocal : public ::testing::TestWithParam<std::string> {};

// Every layer geometry of the model (strided and padded convs, 1x1 shortcuts, dense layers)
// passes the wire protocol's checks, and the results are bit for bit the local accelerator's.
TEST_P(RemoteVsLocal, SameResultsAndTranscript) {
  model::Model m = arch(GetParam());
  const Tensor x = random_tensor({3, 1, 28, 28}, 8);
  PipelineOptions po;
  po.scheme = SchemeKind::Plain;

  Transcript local_view;
  AcceleratorOptions lo;
  lo.record = &local_view;
  auto local = make_local_accelerator(lo);
  Pipeline local_pipe(m, po, *local);
  const Tensor want = local_pipe.infer(x);

  Transcript remote_view;
  AcceleratorOptions ro;
  ro.record = &remote_view;
  Session s(ro);
  AcceleratorReport report;
  {
    RemoteAccelerator remote(*s.trusted, "plain");
    Pipeline pipe(m, po, remote);
    EXPECT_EQ(pipe.infer(x), want);
    EXPECT_EQ(pipe.infer(x), want);
    report = remote.close();
  }
  EXPECT_EQ(s.served.get().queries, 2 * local_view.queries.size());
  EXPECT_EQ(report.queries, 2 * local_view.queries.size());
  EXPECT_GT(report.peak_rss_mb, 0);
  EXPECT_EQ(remote_view.scheme, "plain");
  ASSERT_EQ(remote_view.layers.size(), local_view.layers.size());
  ASSERT_EQ(remote_view.queries.size(), 2 * local_view.queries.size());
  for (size_t i = 0; i < local_view.queries.size(); ++i) {
    EXPECT_EQ(remote_view.queries[i].layer, local_view.queries[i].layer);
    EXPECT_EQ(std::get<Tensor>(remote_view.queries[i].inputs.at(0)),
              std::get<Tensor>(local_view.queries[i].inputs.at(0)));
  }
}

INSTANTIATE_TEST_SUITE_P(Archs, RemoteVsLocal, ::testing::Values("lenet5", "resnet20"));

TEST(RemoteAccelerator, ReportsTheFaultsTheAcceleratorInjected) {
  AcceleratorOptions ao;
  ao.inject_faults = 2;
  ao.fault_stride = 3;
  Session s(ao);
  RemoteAccelerator remote(*s.trusted, "plain");
  remote.load({conv_layer()});
  for (int i = 0; i < 7; ++i) remote.compute(0, {random_tensor({1, 3, 7, 6}, i)});
  EXPECT_EQ(remote.faults_injected(), 2);  // replies 0 and 3
  AcceleratorReport r = remote.close();
  EXPECT_EQ(r.faults_injected, 2);
  EXPECT_EQ(r.queries, 7u);
  EXPECT_EQ(s.served.get().faults_injected, 2);
}

TEST(ServeAccelerator, RefusesAMalformedRequestWithOneErrorAndStops) {
  Session s;
  RemoteAccelerator remote(*s.trusted, "plain");
  remote.load({conv_layer()});
  mpc::Message bad = wire::encode_compute(0, {random_tensor({1, 3, 7, 6}, 1)});
  bad.payload.resize(bad.payload.size() - 3);
  s.trusted->send(bad);
  const mpc::Message answer = s.trusted->recv();
  ASSERT_EQ(wire::kind_of(answer), wire::Kind::Error);
  EXPECT_NE(wire::parse_error(answer).find("truncated"), std::string::npos);
  EXPECT_THROW(s.served.get(), MalformedInput);
}

TEST(ServeAccelerator, RefusesGarbageAndAForeignPeer) {
  {
    Session s;
    mpc::Message garbage;
    garbage.tag = wire::tag_of(wire::Kind::Setup);
    garbage.payload.assign(100, 0xff);
    s.trusted->send(garbage);
    EXPECT_EQ(wire::kind_of(s.trusted->recv()), wire::Kind::Error);
    EXPECT_THROW(s.served.get(), MalformedInput);
  }
  {
    Session s;
    mpc::Message foreign;
    foreign.tag = 1;
    s.trusted->send(foreign);
    EXPECT_EQ(wire::kind_of(s.trusted->recv()), wire::Kind::Error);
    EXPECT_THROW(s.served.get(), ProtocolError);
  }
  {
    // The trusted side goes away mid-session: the server ends with ProtocolError.
    Session s;
    RemoteAccelerator remote(*s.trusted, "plain");
    remote.load({conv_layer()});
    s.trusted->close();
    EXPECT_THROW(s.served.get(), ProtocolError);
  }
}

TEST(ServeAccelerator, ASessionClosedBeforeItsSetupEndsCleanly) {
  Session s;
  { RemoteAccelerator remote(*s.trusted, "plain"); }  // e.g. the pipeline could not be built
  EXPECT_EQ(s.served.get().queries, 0u);
}

TEST(RemoteAccelerator, ARefusedRequestIsAProtocolErrorWithTheAcceleratorsReason) {
  Session s;
  RemoteAccelerator remote(*s.trusted, "plain");
  OutsourcedLayer l = field_dense_layer();
  // A weight beyond the field arithmetic's bound: the accelerator refuses to apply it.
  std::get<FieldTensor>(l.weight).values[0] = to_field(int64_t{1} << 20);
  remote.load({l});
  try {
    remote.compute(0, {random_field({1, 5}, 1)});
    FAIL() << "the accelerator accepted an out-of-bound weight";
  } catch (const ProtocolError& e) {
    EXPECT_NE(std::string(e.what()).find("refused"), std::string::npos) << e.what();
  }
  EXPECT_THROW(s.served.get(), Error);
}

}  // namespace
}  // namespace veil::split
