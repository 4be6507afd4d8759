#include "veil/split/remote.hpp"

#include "veil/core/error.hpp"
#include "veil/core/peak_rss.hpp"
#include "veil/split/transcript.hpp"
#include "veil/split/wire.hpp"

namespace veil::split {
namespace {

// The layer without its weight: what parsing replies and requests needs (its type included).
OutsourcedLayer without_weight(const OutsourcedLayer& l) {
  OutsourcedLayer g;
  g.kind = l.kind;
  g.conv = l.conv;
  g.input_shape = l.input_shape;
  g.output_shape = l.output_shape;
  if (std::holds_alternative<FieldTensor>(l.weight))
    g.weight = FieldTensor{wire::payload_shape(l.weight), {}};
  else
    g.weight = Tensor(Shape{0});
  return g;
}

}  // namespace

RemoteAccelerator::RemoteAccelerator(mpc::Channel& channel, std::string scheme)
    : channel_(channel), scheme_(std::move(scheme)) {}

RemoteAccelerator::~RemoteAccelerator() {
  if (!open_) return;
  try {
    channel_.send(wire::encode_close());
  } catch (const Error&) {
    // The link is gone already: nothing to end.
  }
}

mpc::Message RemoteAccelerator::receive(uint32_t expected_tag) {
  mpc::Message m = channel_.recv();
  if (m.tag == expected_tag) return m;
  if (wire::kind_of(m) == wire::Kind::Error) {
    open_ = false;
    throw ProtocolError("split: the accelerator refused the request: " + wire::parse_error(m));
  }
  throw ProtocolError(std::string("split: unexpected ") + wire::kind_name(wire::kind_of(m)) +
                      " message from the accelerator");
}

void RemoteAccelerator::load(std::vector<OutsourcedLayer> layers) {
  if (!open_) throw ProtocolError("split: the accelerator session is closed");
  for (size_t i = 0; i < layers.size(); ++i)
    wire::check_layer(layers[i], "split: layer " + std::to_string(i));
  channel_.send(wire::encode_setup(scheme_, layers));
  geometry_.clear();
  for (const OutsourcedLayer& l : layers) geometry_.push_back(without_weight(l));
  wire::parse_ready(receive(wire::tag_of(wire::Kind::Ready)));
}

std::vector<Payload> RemoteAccelerator::compute(size_t layer, std::vector<Payload> inputs) {
  if (!open_) throw ProtocolError("split: the accelerator session is closed");
  if (layer >= geometry_.size())
    throw InvalidArgument("split: no outsourced layer " + std::to_string(layer));
  channel_.send(wire::encode_compute(layer, inputs));
  wire::Reply r =
      wire::parse_reply(receive(wire::tag_of(wire::Kind::Reply)), geometry_[layer], inputs);
  faults_ = r.faults_injected;
  return std::move(r.outputs);
}

AcceleratorReport RemoteAccelerator::close() {
  if (!open_) throw ProtocolError("split: the accelerator session is closed");
  channel_.send(wire::encode_close());
  open_ = false;
  const wire::Closed c = wire::parse_closed(receive(wire::tag_of(wire::Kind::Closed)));
  faults_ = c.faults_injected;
  return {c.queries, c.faults_injected, c.peak_rss_mb};
}

AcceleratorReport serve_accelerator(mpc::Channel& channel, const AcceleratorOptions& options) {
  std::unique_ptr<Accelerator> accelerator = make_local_accelerator(options);
  AcceleratorReport report;
  try {
    mpc::Message first = channel.recv();
    if (wire::kind_of(first) == wire::Kind::Close) {
      // The trusted part gave up before its setup (e.g. a scheme it could not build).
      wire::parse_close(first);
      report.peak_rss_mb = peak_rss_mb();
      channel.send(wire::encode_closed({0, 0, report.peak_rss_mb}));
      channel.close();
      return report;
    }
    wire::Setup setup = wire::parse_setup(first);
    if (options.record != nullptr) options.record->scheme = setup.scheme;
    std::vector<OutsourcedLayer> geometry;
    for (const OutsourcedLayer& l : setup.layers) geometry.push_back(without_weight(l));
    accelerator->load(std::move(setup.layers));
    channel.send(wire::encode_ready());
    for (;;) {
      mpc::Message m = channel.recv();
      const wire::Kind kind = wire::kind_of(m);
      if (kind == wire::Kind::Close) {
        wire::parse_close(m);
        break;
      }
      if (kind == wire::Kind::Error)
        throw ProtocolError("split: the trusted part ended the session: " + wire::parse_error(m));
      wire::Compute c = wire::parse_compute(m, geometry);
      std::vector<Payload> out = accelerator->compute(c.layer, std::move(c.inputs));
      ++report.queries;
      channel.send(wire::encode_reply(out, accelerator->faults_injected()));
    }
  } catch (const Error& e) {
    try {
      channel.send(wire::encode_error(e.what()));
      channel.close();
    } catch (const Error&) {
      // The link failed: the peer learns of it from the link itself.
    }
    throw;
  }
  report.faults_injected = accelerator->faults_injected();
  report.peak_rss_mb = peak_rss_mb();
  channel.send(wire::encode_closed({report.queries, report.faults_injected, report.peak_rss_mb}));
  channel.close();
  return report;
}

}  // namespace veil::split
